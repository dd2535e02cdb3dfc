/**
 * Handlers: plain functions from a payload to a reply. The pump writes the envelopes (from,
 * to, thread); a handler only says what to answer and to whom.
 */
import { Effect } from "effect"
import { type HandlerMetadata, Reply } from "xml-organism"
import { type Greeting, GreetingReply } from "./payloads.js"

/** Answers whoever sent the Greeting (`Reply.forward("name", …)` would send it elsewhere). */
export const greet = (payload: Greeting, meta: HandlerMetadata) =>
  Effect.gen(function*() {
    yield* Effect.logInfo(`greeting ${payload.name} for ${meta.from}`)
    return Reply.respond(new GreetingReply({ message: `Hello, ${payload.name}!` }))
  })
