import { Schema } from "effect"
import { Payload } from "../../src/index.js"

/** Someone to greet. */
export class Greeting extends Payload.Class<Greeting>("Greeting", { description: "a person to greet" })({
  name: Schema.String
}) {}

/** The greeting, on its way to be shouted. */
export class GreetingResponse extends Payload.Class<GreetingResponse>("GreetingResponse")({
  message: Schema.String,
  originalSender: Schema.String
}) {}

/** The greeting, shouted. */
export class ShoutedResponse extends Payload.Class<ShoutedResponse>("ShoutedResponse")({
  message: Schema.String
}) {}
