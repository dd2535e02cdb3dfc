/**
 * Durable conversations on the in-memory cluster layers (the same code the Postgres runners
 * run): the agents example's conversation as a workflow, its model calls as activities,
 * injections deduplicated by envelope id, and stored answers served instead of new calls.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { join } from "node:path"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { layerMemory } from "../src/cluster/ClusterLayers.js"
import { ConversationWorkflow } from "../src/cluster/ConversationWorkflow.js"
import { DurableRunner } from "../src/cluster/DurableRunner.js"
import { DurableStore, makeMemoryBooks } from "../src/cluster/DurableStore.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { loadOrganism } from "./support/files.js"

const example = join(__dirname, "..", "examples", "agents", "organism.yaml")
const ask = (id: string, text: string) =>
  ConversationWorkflow.execute({ id, to: "coordinator", from: "console", payload: `<TextInput><Text>${text}</Text></TextInput>` })

const runner = (books = makeMemoryBooks()) =>
  Effect.gen(function*() {
    const loaded = yield* loadOrganism(example)
    const layer = DurableRunner.layer(loaded.organism, { maxOutputTokens: 1024 }).pipe(
      Layer.provideMerge(Layer.mergeAll(layerForOrganism(loaded), DurableStore.layerMemory(books), layerMemory))
    )
    return { layer, books }
  }).pipe(Effect.provide(XmlEngine.layer))

describe("durable conversations (in-memory cluster)", () => {
  it.live("a conversation runs as a workflow: its end and the payloads that came back; each model call an activity", () =>
    Effect.gen(function*() {
      const { books, layer } = yield* runner()
      yield* Effect.gen(function*() {
        const end = yield* ask("envelope-1", "Explain envelopes.")
        expect(end.reason).toBe("completed")
        expect(end.replies.map((r) => r.type)).toEqual(["TextOutput"])
        expect(end.replies[0]!.xml).toContain("The writer delivered")
        const counters = (yield* DurableRunner).counters()
        // coordinator ×3, researcher, writer: each sent once.
        expect(counters.llmCalls).toBe(5)
        expect(counters.llmReplayed).toBe(0)
        expect([...books.sends.values()].every((n) => n === 1)).toBe(true)
        // The ledger line is written behind the conversation.
        yield* Effect.sleep("100 millis")
        expect(books.usage).toHaveLength(5)
        const [stored] = [...books.conversations.values()]
        expect(stored!.state).toBe("completed")
        // Its journal, stored with its end: a header, the lifecycle, each model call, the closing line.
        const types = stored!.journal.map((r) => (r as { type: string }).type)
        expect(types[0]).toBe("header")
        expect(types.at(-1)).toBe("closed")
        expect(stored!.journal.filter((r) => (r as { type: string; step?: string }).type === "model-call" && (r as { step?: string }).step === "completed")).toHaveLength(5)
      }).pipe(Effect.provide(layer), Effect.scoped)
    }))

  it.live("the same envelope id sent again is the same conversation: its stored end, no model call", () =>
    Effect.gen(function*() {
      const { layer } = yield* runner()
      yield* Effect.gen(function*() {
        const first = yield* ask("envelope-2", "Explain envelopes.")
        const calls = (yield* DurableRunner).counters().llmCalls
        const again = yield* ask("envelope-2", "Explain envelopes.")
        expect(again).toEqual(first)
        expect((yield* DurableRunner).counters().llmCalls).toBe(calls)
        const other = yield* ask("envelope-3", "Explain envelopes.")
        expect(other.reason).toBe("completed")
        expect((yield* DurableRunner).counters().llmCalls).toBe((calls ?? 0) * 2)
      }).pipe(Effect.provide(layer), Effect.scoped)
    }))
})
