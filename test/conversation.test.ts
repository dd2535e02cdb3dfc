/**
 * The Conversation service: any handler whose Effect asks for it gets its job's view of the
 * conversation — history, sender, caller — and can act when its branch or conversation ends.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { Conversation } from "../src/pipeline/Conversation.js"
import { Note, Ping, withPump } from "./support/pump.js"

describe("Conversation", () => {
  it.effect("a handler reads its conversation's history and hears when its branch ends", () => {
    const seen: Array<string> = []
    const organism = Organism.make({
      listeners: [
        Listener.make<Ping, [typeof Note], Conversation>({
          name: "watcher",
          payload: Ping,
          accepts: [Note],
          handler: (p) =>
            Effect.gen(function*() {
              const conversation = yield* Conversation
              if (p instanceof Note) {
                const history = yield* conversation.history({})
                seen.push(`history: ${history.map((s) => `${s.from}→${s.to} ${s.payloadType}`).join(", ")}`)
                seen.push(`caller: ${Option.isSome(conversation.caller)}`)
                return Reply.none
              }
              seen.push(`from ${conversation.from}, self ${conversation.self}`)
              // The silent step never replies: the branch ends, and the watcher says so.
              yield* conversation.onBranchEnd((reply) => reply(Reply.respond(new Note({ text: "the step ended without a reply" }))))
              return Reply.forward("silent", new Note({ text: "do something" }))
            })
        }),
        Listener.make({ name: "silent", payload: Note, handler: () => Reply.none })
      ]
    })
    return withPump(organism, ({ pump }) =>
      Effect.gen(function*() {
        const answer = yield* pump.request("watcher", new Ping({ n: 1 }))
        expect((answer as Note).text).toBe("the step ended without a reply")
        expect(seen).toEqual(["from console, self watcher"])
      }))
  })

  it.effect("its parts can be taken out of it, and still speak of the same job", () => {
    const seen: Array<string> = []
    const organism = Organism.make({
      listeners: [
        Listener.make<Ping, [], Conversation>({
          name: "taker",
          payload: Ping,
          handler: () =>
            Effect.gen(function*() {
              const { from, history, root, self, thread, xmlOf } = yield* Conversation
              const slots = yield* history({})
              seen.push(`${self} from ${from}, root is thread: ${root === thread}, history ${slots.length}`)
              seen.push(xmlOf(new Note({ text: "a & b" })))
              return Reply.none
            })
        })
      ]
    })
    return withPump(organism, ({ pump }) =>
      Effect.gen(function*() {
        yield* pump.inject("taker", new Ping({ n: 1 }))
        yield* pump.awaitIdle
        expect(seen).toEqual(["taker from console, root is thread: true, history 1", "<Note><Text>a &amp; b</Text></Note>"])
      }))
  })
})
