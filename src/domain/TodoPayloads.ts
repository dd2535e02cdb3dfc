/**
 * The todo primitives ("raise an eyebrow"): an agent asks `system.todo` to watch its
 * conversation for a payload type, is nudged once a matching message arrives, and closes the
 * todo with `system.todo-complete`. Field names follow xml-pipeline's primitives (`wait_for`
 * there, `waitFor` here, `<WaitFor>` on the wire).
 */
import { Schema } from "effect"
import * as Payload from "./Payload.js"

/** Registers a watcher on the sender's conversation. */
export class TodoUntil extends Payload.Class<TodoUntil>("TodoUntil", {
  description: "watch this conversation for a message of a payload type, and remind me when it arrives"
})({
  /** The payload type to wait for (its element name, matched case-insensitively). */
  waitFor: Schema.propertySignature(Schema.String).annotations({ description: "the payload type (element name) to wait for" }),
  /** Only a message from this listener counts. */
  fromListener: Schema.optional(Schema.String).annotations({ description: "only count it when sent by this listener" }),
  description: Schema.propertySignature(Schema.String).annotations({ description: "what you are waiting for, in your own words" })
}) {}

/** Closes a watcher (raised or not). */
export class TodoComplete extends Payload.Class<TodoComplete>("TodoComplete", {
  description: "close one of your todos"
})({
  id: Schema.propertySignature(Schema.String).annotations({ description: "the id from TodoRegistered" })
}) {}

/** `system.todo`'s answer to TodoUntil: the id to close the todo with. */
export class TodoRegistered extends Payload.Class<TodoRegistered>("TodoRegistered", {
  description: "a todo was registered"
})({
  id: Schema.String,
  waitFor: Schema.String,
  description: Schema.String
}) {}

/** `system.todo-complete`'s answer to TodoComplete. */
export class TodoClosed extends Payload.Class<TodoClosed>("TodoClosed", {
  description: "a todo was closed"
})({
  id: Schema.String,
  /** Whether its message had arrived before it was closed. */
  wasRaised: Schema.Boolean
}) {}
