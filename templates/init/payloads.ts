/**
 * The messages of this organism. A payload type is a class: its fields become XML elements
 * (`name` ↔ <Name>), and every message is checked against the XSD generated from it before
 * a handler sees it. `npx organism schema ./payloads.ts#Greeting` prints both.
 */
import { Schema } from "effect"
import { Payload } from "xml-organism"

/** Someone to greet. */
export class Greeting extends Payload.Class<Greeting>("Greeting", { description: "a person to greet by name" })({
  name: Schema.String
}) {}

/** The greeting itself. */
export class GreetingReply extends Payload.Class<GreetingReply>("GreetingReply", { description: "a greeting" })({
  message: Schema.String
}) {}
