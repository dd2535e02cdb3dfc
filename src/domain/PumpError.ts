import { Schema } from "effect"
import { SystemError } from "./SystemPayloads.js"

/** A payload value the pump cannot write as XML. */
export class PayloadNotEncodable extends Schema.TaggedError<PayloadNotEncodable>()("PayloadNotEncodable", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/** The pump is draining or stopped and takes no new messages. */
export class PumpStopped extends Schema.TaggedError<PumpStopped>()("PumpStopped", {}) {
  override get message() {
    return "the organism is stopping and accepts no new messages"
  }
}

/** The conversation ended without anything coming back to the requester. */
export class NoReply extends Schema.TaggedError<NoReply>()("NoReply", {
  thread: Schema.String,
  /** Why, when the pump knows (the rejection or guard that ended it). */
  reason: Schema.String
}) {
  override get message() {
    return `no reply on thread ${this.thread}: ${this.reason}`
  }
}

/** What came back to the requester was a SystemError. */
export class RequestFailed extends Schema.TaggedError<RequestFailed>()("RequestFailed", {
  thread: Schema.String,
  error: SystemError
}) {
  override get message() {
    return `request failed (${this.error.code}): ${this.error.message}`
  }
}

export class RequestTimedOut extends Schema.TaggedError<RequestTimedOut>()("RequestTimedOut", {
  thread: Schema.String
}) {
  override get message() {
    return `no reply on thread ${this.thread} within the request timeout`
  }
}

/** A reload whose organism cannot take effect: nothing of it was applied. */
export class ReloadRefused extends Schema.TaggedError<ReloadRefused>()("ReloadRefused", {
  /** The setting that cannot take effect. */
  key: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `reload refused: ${this.key}: ${this.reason}`
  }
}

/**
 * No permit came back within the injection's `maxWait`: the organism's inbox holds
 * `inbox_capacity` external messages in flight. Only an injection given a `maxWait` fails so.
 */
export class InboxFull extends Schema.TaggedError<InboxFull>()("InboxFull", {
  waitedMs: Schema.Number
}) {
  override get message() {
    return `the organism's inbox is full (no permit within ${this.waitedMs} ms); retry later`
  }
}

export type InjectError = PayloadNotEncodable | PumpStopped | InboxFull
export type RequestError = InjectError | NoReply | RequestFailed | RequestTimedOut
