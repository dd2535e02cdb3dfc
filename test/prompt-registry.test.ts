import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Either, Exit, Option, Schema } from "effect"
import { Listener } from "../src/domain/Listener.js"
import * as Payload from "../src/domain/Payload.js"
import { TextInput } from "../src/domain/SystemPayloads.js"
import {
  DuplicateListener,
  makePromptRegistry,
  PromptConfigError,
  PromptRegistry,
  PromptRegistryFrozen,
  UnknownPeer
} from "../src/services/PromptRegistry.js"
import { isDuplicateListener, isPromptRegistryFrozen } from "../src/services/errors.js"
import { XmlEngine } from "../src/services/XmlEngine.js"

class Task extends Payload.Class<Task>("Task")({ goal: Schema.String }) {}
class ResearchRequest extends Payload.Class<ResearchRequest>("ResearchRequest", { description: "a question to research" })({
  topic: Schema.String,
  depth: Schema.optional(Schema.Literal("shallow", "deep")),
  sources: Schema.Array(Schema.String),
  max_results: Schema.Int
}) {}
class Shout extends Payload.Class<Shout>("Shout", { description: "text to shout" })({ text: Schema.String }) {}

const noop = () => undefined

const writer = Listener.make({
  name: "writer",
  payload: Task,
  accepts: [TextInput],
  agent: true,
  peers: ["researcher", "Shouter"],
  prompt: "  You write short articles.\n",
  handler: noop
})
const researcher = Listener.make({
  name: "researcher",
  payload: ResearchRequest,
  description: "Finds facts about a topic and answers with sources.",
  handler: noop
})
const shouter = Listener.make({ name: "shouter", payload: Shout, handler: noop })
const loner = Listener.make({ name: "loner", payload: Task, agent: true, handler: noop })

const xmlBlocks = (text: string) => [...text.matchAll(/```xml\n([\s\S]*?)\n```/g)].map((m) => m[1]!)

describe("PromptRegistry", () => {
  layer(XmlEngine.layer)((it) => {
    it.effect("the system prompt is the agent's own prompt, then usage instructions for each peer", () =>
      Effect.gen(function*() {
        const prompts = yield* PromptRegistry.fromListeners([writer, researcher, shouter, loner])
        const p = Option.getOrThrow(yield* prompts.promptFor("writer"))
        expect(p.agent).toBe("writer")
        expect(p.prompt).toBe("You write short articles.")
        expect(p.system).toBe(`${p.prompt}\n\n${p.usage}`)
        expect(p.peers.map((x) => x.name)).toEqual(["researcher", "shouter"])
        const u = p.usage
        expect(u).toContain(`You are "writer"`)
        expect(u).toContain("You receive payloads of these types: Task, TextInput.")
        expect(u).toContain("You may call only these listeners: researcher, shouter.")
        // What replies do to the call chain.
        expect(u).toContain("extends the call chain by that peer")
        expect(u).toContain("prunes the call chain by one hop")
        expect(u).toContain("returns to your caller")
        expect(u).toContain("Complete your sub-tasks before you respond")
        // Each peer: description (its own, else its payload's), the example and the XSD verbatim.
        expect(u).toContain("## researcher\n\nFinds facts about a topic and answers with sources.")
        expect(u).toContain("## shouter\n\ntext to shout")
        expect(u).toContain("To call researcher, send it a ResearchRequest:")
        for (const type of [ResearchRequest, Shout]) {
          expect(u).toContain("```xml\n" + Payload.exampleOf(type) + "\n```")
          expect(u).toContain(Payload.xsdOf(type).replace(/^<\?xml[^>]*\?>\n/, ""))
        }
        expect(u).toContain("<MaxResults>1</MaxResults>")
        expect(u.indexOf("## researcher")).toBeLessThan(u.indexOf("## shouter"))
      }))

    it.effect("every example in a prompt validates against the XSD shown next to it", () =>
      Effect.gen(function*() {
        const engine = yield* XmlEngine
        const prompts = yield* PromptRegistry.fromListeners([writer, researcher, shouter])
        const blocks = xmlBlocks(Option.getOrThrow(yield* prompts.promptFor("writer")).usage)
        expect(blocks).toHaveLength(4)
        for (let i = 0; i < blocks.length; i += 2) {
          const [example, xsd] = [blocks[i]!, blocks[i + 1]!]
          const tag = /^<(\w+)>/.exec(example)![1]!
          const schema = yield* engine.compileSchema(`prompt-${tag}`, xsd)
          const errors = engine.withDocument(Buffer.from(example), { recover: false }, (doc) => engine.validateDocument(schema, doc))
          expect(Either.getOrThrow(errors).map(String)).toEqual([])
        }
      }).pipe(Effect.scoped))
  })

  describe("content", () => {
    const build = (listeners: ReadonlyArray<Listener>) => Effect.runSync(PromptRegistry.fromListeners(listeners))

    it("an agent without peers is told it can only respond", () => {
      const p = build([loner]).unsafePromptFor("loner")!
      expect(p.prompt).toBe("")
      expect(p.system).toBe(p.usage)
      expect(p.usage).toContain("You have no peers: you cannot call anyone. Respond to your caller.")
      expect(p.usage).not.toContain("extends the call chain")
      expect(p.usage).toContain("prunes the call chain by one hop")
    })

    it("peers taking the same payload type are told apart by name", () => {
      const a = Listener.make({ name: "loud", payload: Shout, handler: noop })
      const b = Listener.make({ name: "louder", payload: Shout, handler: noop })
      const agent = Listener.make({ name: "boss", payload: Task, agent: true, peers: ["loud", "louder"], handler: noop })
      expect(build([agent, a, b]).unsafePromptFor("boss")!.usage).toContain("loud and louder all accept Shout: say which one you are calling.")
    })

    it("lookups are case-insensitive; non-agents and unknown names have no prompt", () => {
      const prompts = build([writer, researcher, shouter])
      expect(prompts.unsafePromptFor("WRITER")?.agent).toBe("writer")
      expect(prompts.unsafePromptFor("researcher")).toBeUndefined()
      expect(prompts.unsafePromptFor("nobody")).toBeUndefined()
      expect(prompts.unsafeAgents()).toEqual(["writer"])
    })

    it.effect("the same through the Effect interface: Options and Effects", () =>
      Effect.gen(function*() {
        const prompts = build([writer, researcher, shouter])
        expect((yield* prompts.promptFor("WRITER")).pipe(Option.map((p) => p.agent))).toEqual(Option.some("writer"))
        expect(yield* prompts.promptFor("researcher")).toEqual(Option.none())
        expect(yield* prompts.promptFor("nobody")).toEqual(Option.none())
        expect(yield* prompts.agents).toEqual(["writer"])
        expect(yield* prompts.isFrozen).toBe(true)
      }))
  })

  describe("errors and freezing", () => {
    it("an unknown peer is a config error naming the agent and the peer, with every problem at once", () => {
      const other = Listener.make({ name: "other", payload: Task, agent: true, peers: ["ghost", "researcher"], handler: noop })
      const typo = Listener.make({ ...writer, peers: ["reseacher", "shouter"] })
      const exit = Effect.runSyncExit(PromptRegistry.fromListeners([typo, other, researcher, shouter]))
      expect(exit).toStrictEqual(
        Exit.fail(
          new PromptConfigError({
            unknownPeers: [
              new UnknownPeer({ agent: "writer", peer: "reseacher", suggestion: "researcher" }),
              new UnknownPeer({ agent: "other", peer: "ghost" })
            ]
          })
        )
      )
      const error = Effect.runSync(Effect.flip(PromptRegistry.fromListeners([typo, researcher, shouter])))
      expect(error.message).toBe(`agent "writer" names peer "reseacher", which is not a listener (did you mean "researcher"?)`)
    })

    it.effect("a failed freeze leaves the registry open: register the missing peer, then freeze", () =>
      Effect.gen(function*() {
        const prompts = makePromptRegistry()
        yield* prompts.register(writer)
        yield* prompts.register(researcher)
        expect(yield* Effect.flip(prompts.freeze())).toBeInstanceOf(PromptConfigError)
        expect(yield* prompts.isFrozen).toBe(false)
        // Before freezing, prompts render on demand from what is registered.
        expect(Option.getOrThrow(yield* prompts.promptFor("writer")).peers.map((p) => p.name)).toEqual(["researcher"])
        yield* prompts.register(shouter)
        yield* prompts.freeze()
        yield* prompts.freeze() // idempotent
        expect(yield* prompts.isFrozen).toBe(true)
        expect(Option.getOrThrow(yield* prompts.promptFor("writer")).peers.map((p) => p.name)).toEqual(["researcher", "shouter"])
      }))

    it.effect("registration after freeze fails with PromptRegistryFrozen; prompts stay as frozen", () =>
      Effect.gen(function*() {
        const prompts = yield* PromptRegistry.fromListeners([writer, researcher, shouter])
        const before = prompts.unsafePromptFor("writer")
        const late = Listener.make({ name: "late", payload: Task, agent: true, handler: noop })
        expect(yield* Effect.exit(prompts.register(late))).toStrictEqual(Exit.fail(new PromptRegistryFrozen({ listener: "late" })))
        const refused = prompts.unsafeRegister(late)
        expect(Either.isLeft(refused) && isPromptRegistryFrozen(refused.left)).toBe(true)
        expect(yield* prompts.promptFor("late")).toEqual(Option.none())
        expect(prompts.unsafePromptFor("writer")).toBe(before)
      }))

    it("two listeners with one name (case-insensitively) are refused", () => {
      const prompts = makePromptRegistry()
      Effect.runSync(prompts.register(shouter))
      const twin = Listener.make({ name: "Shouter", payload: Shout, handler: noop })
      expect(Effect.runSyncExit(prompts.register(twin))).toStrictEqual(Exit.fail(new DuplicateListener({ listener: "Shouter" })))
      const refused = prompts.unsafeRegister(twin)
      expect(Either.isLeft(refused) && isDuplicateListener(refused.left)).toBe(true)
      expect(Either.isRight(prompts.unsafeRegister(writer))).toBe(true)
      expect(prompts.unsafeAgents()).toEqual(["writer"])
    })

    it("layerFromListeners provides a frozen registry", () => {
      const prompts = Effect.runSync(Effect.provide(PromptRegistry, PromptRegistry.layerFromListeners([writer, researcher, shouter])))
      expect(prompts.unsafeIsFrozen()).toBe(true)
      expect(Effect.runSync(Effect.provide(PromptRegistry, PromptRegistry.layerMemory)).unsafeIsFrozen()).toBe(false)
    })
  })
})
