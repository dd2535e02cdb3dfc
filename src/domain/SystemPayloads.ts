/**
 * Payloads the framework itself sends. Every listener accepts SystemError without declaring
 * it; field names follow xml-pipeline's primitives (camelCase here, PascalCase on the wire).
 */
import { Schema } from "effect"
import * as Payload from "./Payload.js"

/**
 * What a listener receives when something it sent could not be delivered, a guard stopped
 * it, or a handler it called failed. The text is generic on purpose: it never reveals the
 * organism's topology (details go to events and logs).
 *
 * In the xmlify wire form it is written and read as xml-pipeline's hand-written SystemError:
 * `<code>`, `<message>`, `<retry-allowed>`.
 */
export class SystemError extends Payload.Class<SystemError>("SystemError", {
  description: "an error reported by the organism to a listener"
})({
  // "validation" is a code xml-pipeline documents for its SystemError; this framework sends
  // "invalid" instead, and reads both.
  code: Schema.Literal("routing", "invalid", "timeout", "failed", "guard", "forbidden", "budget", "validation")
    .annotations(Payload.xmlifyElement("code")),
  message: Schema.String.annotations(Payload.xmlifyElement("message")),
  retryAllowed: Schema.Boolean.annotations(Payload.xmlifyElement("retry-allowed"))
}) {}

/** Sent to `system.boot` on the boot root thread when the organism starts. */
export class Boot extends Payload.Class<Boot>("Boot")({
  organismName: Schema.String,
  timestamp: Schema.String,
  listenerCount: Schema.Int
}) {}

/** A line of text from the console or an API caller. */
export class TextInput extends Payload.Class<TextInput>("TextInput")({
  text: Schema.String,
  source: Schema.optionalWith(Schema.String, { default: () => "console" }),
  user: Schema.optionalWith(Schema.String, { default: () => "" })
}) {}

/** Text for a human: what console and API callers print. */
export class TextOutput extends Payload.Class<TextOutput>("TextOutput")({
  text: Schema.String,
  status: Schema.optionalWith(Schema.Literal("ok", "error", "pending"), { default: () => "ok" as const })
}) {}

export const systemError = (code: SystemError["code"], message: string, retryAllowed = true): SystemError =>
  new SystemError({ code, message, retryAllowed }, true)

/** The generic texts. Specifics go to events, never to the receiving listener. */
export const SystemErrors = {
  routing: () => systemError("routing", "Message could not be delivered. Please verify your target and try again."),
  invalid: (detail: string) => systemError("invalid", `Message was rejected as invalid: ${detail}`),
  timeout: () => systemError("timeout", "Handler timed out. Please try again."),
  failed: () => systemError("failed", "Handler failed while processing the message."),
  forbidden: () => systemError("forbidden", "You are not allowed to send to that target.", false),
  guard: (detail: string) => systemError("guard", detail, false),
  /** A person denied the message (a listener with `approval: required`): their reason. */
  denied: (reason: string) => systemError("forbidden", `Message was denied by an approver: ${reason}`, false),
  /** A listener's message to `peer` whose branch ended with nothing coming back. */
  noReply: (peer: string, why: string) => systemError("failed", `Your message to ${peer} ended without a reply: ${why}.`)
} as const
