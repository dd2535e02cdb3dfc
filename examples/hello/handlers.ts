import { Effect } from "effect"
import { type HandlerMetadata, Reply, TextInput } from "../../src/index.js"
import { type Greeting, GreetingResponse, ShoutedResponse } from "./payloads.js"

/** Greets by name; console lines (`@greeter Ada`) arrive as TextInput. */
export const greet = (payload: Greeting | TextInput, meta: HandlerMetadata) =>
  Effect.succeed(
    Reply.forward(
      "shouter",
      new GreetingResponse({
        message: `Hello, ${payload instanceof TextInput ? payload.text.trim() : payload.name}!`,
        originalSender: meta.from
      })
    )
  )

export const shout = (payload: GreetingResponse) =>
  Reply.forward("response-handler", new ShoutedResponse({ message: payload.message.toUpperCase() }))

/** The end of the line: the shouted greeting is delivered here and the thread completes. */
export const receive = (_payload: ShoutedResponse) => Reply.none
