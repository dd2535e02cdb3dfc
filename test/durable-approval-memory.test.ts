/**
 * Durable approvals on the in-memory cluster layers (the code the Postgres runners run): a
 * held message parks its conversation — the workflow suspends, nothing waits in the pump —
 * and the decision, a DurableDeferred completed through the workflow engine, resumes it: the
 * new run holds the same message again and the decision applies to it. The deferred is named
 * by the envelope without its thread id, so a run with fresh thread ids finds it, and a
 * different message does not. A message that cannot be filed is stopped, never delivered.
 */
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer } from "effect"
import { join } from "node:path"
import { approvalDeferred, contentKey, deferredName } from "../src/cluster/ApprovalDeferred.js"
import { layerMemory } from "../src/cluster/ClusterLayers.js"
import { ConversationWorkflow } from "../src/cluster/ConversationWorkflow.js"
import { DurableRunner } from "../src/cluster/DurableRunner.js"
import { DurableStore, makeMemoryBooks } from "../src/cluster/DurableStore.js"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { loadOrganism } from "./support/files.js"

const gated = join(__dirname, "fixtures", "cli", "durable-approval.yaml")

const pay = (id: string, n: number) => ({ id, to: "clerk", from: "console", payload: `<Ping><N>${n}</N></Ping>` })

/** Waits until the books hold `n` filed approvals. */
const filed = (books: ReturnType<typeof makeMemoryBooks>, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200; i++) {
      if (books.approvals.size >= n) return [...books.approvals.values()]
      yield* Effect.sleep("25 millis")
    }
    return yield* Effect.dieMessage(`${n} approvals were not filed`)
  })

/** Decides as the desk does: the row first, then the deferred, through the workflow engine. */
const decide = (books: ReturnType<typeof makeMemoryBooks>, conversation: string, deferred: string, decision: "approved" | "denied", reason = "") =>
  Effect.gen(function*() {
    const entry = books.approvals.get(`${conversation}\u0000${deferred}`)!
    const verdict = { id: entry.row.id, decision, by: "test", reason }
    entry.verdict = verdict
    const d = approvalDeferred(deferred)
    const token = DurableDeferred.tokenFromExecutionId(d, { workflow: ConversationWorkflow, executionId: conversation })
    yield* DurableDeferred.done(d, { token, exit: Exit.succeed(verdict) })
  })

describe("durable approvals (in-memory cluster)", () => {
  it("the deferred's name ignores the thread id, and only the thread id", () => {
    const envelope = (thread: string, n: number) =>
      `<message xmlns="https://xml-pipeline.org/ns/envelope/v1"><meta><from>clerk</from><to>payments</to><thread>${thread}</thread></meta><Ping2 xmlns=""><N>${n}</N></Ping2></message>`
    const a = envelope("0b3c8f0e-2f52-4a43-9d1e-0c1f5b6f7a10", 21)
    const b = envelope("7d0e5b1a-9c4e-4f0b-8a2d-3e6f1c9b8a77", 21)
    expect(contentKey(a)).toBe(contentKey(b))
    expect(contentKey(a)).not.toBe(contentKey(envelope("0b3c8f0e-2f52-4a43-9d1e-0c1f5b6f7a10", 22)))
    expect(contentKey(a)).not.toBe(contentKey(a.replace("<from>clerk</from>", "<from>mallory</from>")))
    expect(deferredName(contentKey(a), 2)).toBe(`approval/${contentKey(a)}/2`)
  })

  it.live("a held message suspends its workflow; approve resumes it and delivers, deny rejects and the sender hears why", () =>
    Effect.gen(function*() {
      const books = makeMemoryBooks()
      const loaded = yield* loadOrganism(gated).pipe(Effect.provide(XmlEngine.layer))
      const layer = DurableRunner.layer(loaded.organism, { maxOutputTokens: 1024 }).pipe(
        Layer.provideMerge(Layer.mergeAll(layerForOrganism(loaded), DurableStore.layerMemory(books), layerMemory))
      )
      yield* Effect.gen(function*() {
        const approved = yield* Effect.fork(ConversationWorkflow.execute(pay("m-21", 21)))
        const denied = yield* Effect.fork(ConversationWorkflow.execute(pay("m-5", 5)))
        const c21 = yield* ConversationWorkflow.executionId(pay("m-21", 21))
        const c5 = yield* ConversationWorkflow.executionId(pay("m-5", 5))

        const rows = (yield* filed(books, 2)).map((e) => e.row)
        const r21 = rows.find((r) => r.conversation === c21)!
        const r5 = rows.find((r) => r.conversation === c5)!
        expect(r21).toMatchObject({ listener: "payments", from: "clerk", payload: "<Ping2><N>21</N></Ping2>" })
        expect(r21.deferred).toBe(deferredName(contentKey(r21.envelope), 1))
        // Parked: the workflows suspended, their conversations wait, nothing is held in the pump.
        yield* Effect.sleep("200 millis")
        expect(books.conversations.get(c21)!.state).toBe("waiting")
        expect(books.conversations.get(c5)!.state).toBe("waiting")
        expect((yield* ConversationWorkflow.poll(c21))?._tag).toBe("Suspended")
        const runner = yield* DurableRunner
        expect(runner.pump.counters().pendingApprovals).toBe(0)

        yield* decide(books, c21, r21.deferred, "approved")
        const end21 = yield* Fiber.join(approved)
        expect(end21).toEqual({
          reason: "completed",
          detail: "",
          replies: [{ type: "TextOutput", xml: "<TextOutput><Text>paid 42</Text><Status>ok</Status></TextOutput>" }]
        })
        expect(books.conversations.get(c21)!.runs).toBe(2)

        yield* decide(books, c5, r5.deferred, "denied", "over the limit")
        const end5 = yield* Fiber.join(denied)
        expect(end5.detail).toBe("denied by an approver: over the limit")
        expect(end5.replies).toHaveLength(1)
        expect(end5.replies[0]!.xml).toContain("payments refused: Message was denied by an approver: over the limit")
        // Filed once each: the runs that found the decision filed nothing new.
        expect(books.approvals.size).toBe(2)
      }).pipe(Effect.provide(layer), Effect.scoped)
    }), { timeout: 60_000 })

  it.live("a held message that cannot be filed is never delivered: it is stopped and its sender hears why", () =>
    Effect.gen(function*() {
      const books = makeMemoryBooks()
      const loaded = yield* loadOrganism(gated).pipe(Effect.provide(XmlEngine.layer))
      // The store's database fails just when the approval is filed.
      const failing = Layer.effect(
        DurableStore,
        Effect.map(DurableStore, (store) => ({ ...store, approvalRequested: () => Effect.die("the database is gone") }))
      ).pipe(Layer.provide(DurableStore.layerMemory(books)))
      const layer = DurableRunner.layer(loaded.organism, { maxOutputTokens: 1024 }).pipe(
        Layer.provideMerge(Layer.mergeAll(layerForOrganism(loaded), failing, layerMemory))
      )
      const end = yield* ConversationWorkflow.execute(pay("m-7", 7)).pipe(Effect.provide(layer), Effect.scoped)
      expect(end.replies).toHaveLength(1)
      expect(end.replies[0]!.xml).toContain("payments refused: Message was denied by an approver: the approval could not be filed")
      expect(books.approvals.size).toBe(0)
    }), { timeout: 60_000 })
})
