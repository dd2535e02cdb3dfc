/**
 * The records of a journal: one JSON object per line, in the order the pump published the
 * events they come from. Each lifecycle record keeps the fields of its event under the
 * event's names, plus `type` (the lifecycle step) and `seq` (its line number from 0, the
 * header), so a reader who knows the events knows the records. Reading a journal decodes
 * every line with `JournalRecord`: a file that is not a journal is refused, not guessed at.
 */
import { Schema } from "effect"
import { deliveryFields, LlmCallCompleted, LlmCallFailed, LlmCallStarted, type PumpEvent, rejectionFields, threadEndFields } from "./PumpEvent.js"

export const JOURNAL_FORMAT = "xml-organism-journal"
export const JOURNAL_VERSION = 1

const Nullable = Schema.NullOr(Schema.String)

const base = { seq: Schema.Int, time: Schema.Number }
const hop = { thread: Nullable, root: Nullable }

/** The first line: what wrote the journal, for which organism, when. */
export class Header extends Schema.Class<Header>("Header")({
  type: Schema.tag("header"),
  ...base,
  format: Schema.Literal(JOURNAL_FORMAT),
  version: Schema.Literal(JOURNAL_VERSION),
  organism: Schema.String,
  startedAt: Schema.String,
  /** The organism file, when the run was started from one. */
  source: Nullable
}) {}

/**
 * The organism has started: every input recorded before this line was sent by the organism
 * itself (Boot, the `boot:` messages), which a replay must not send again.
 */
export class Booted extends Schema.Class<Booted>("Booted")({
  type: Schema.tag("booted"),
  ...base
}) {}

/**
 * An envelope entered the pump. `origin`: `injected` (input from an injector: inject,
 * request, console, boot), `reply` (written for a handler), `system` (a SystemError from
 * the pump), `raw` (bytes from outside, `injectRaw`: only `envelope` and `size` are known
 * yet, and `envelope` holds at most 64 KiB of them).
 */
export class Received extends Schema.Class<Received>("Received")({
  type: Schema.tag("received"),
  ...base,
  ...hop,
  parent: Nullable,
  origin: Schema.Literal("injected", "reply", "system", "raw"),
  from: Nullable,
  to: Nullable,
  payloadType: Nullable,
  payload: Nullable,
  envelope: Schema.String,
  /** Bytes of the envelope as received (for `raw`, more than `envelope` when it was cut). */
  size: Schema.Int
}) {}

/** A message was delivered: to a listener's handler, or back to its injector. */
export class Dispatched extends Schema.Class<Dispatched>("Dispatched")({
  type: Schema.tag("dispatched"),
  ...base,
  ...hop,
  parent: Nullable,
  ...deliveryFields
}) {}

/** A handler finished (with a reply, or none). */
export class Acknowledged extends Schema.Class<Acknowledged>("Acknowledged")({
  type: Schema.tag("acknowledged"),
  ...base,
  ...hop,
  listener: Schema.String,
  /** Payload types of the reply envelopes written, in order. */
  replies: Schema.Array(Schema.String),
  durationMs: Schema.Number
}) {}

/** A message was rejected (by an ingress stage, or a reply refused when routing). */
export class Rejected extends Schema.Class<Rejected>("Rejected")({
  type: Schema.tag("failed"),
  failure: Schema.tag("rejected"),
  ...base,
  ...hop,
  ...rejectionFields
}) {}

/** A handler failed, died, timed out or returned something that is not a valid reply. */
export class HandlerFailure extends Schema.Class<HandlerFailure>("HandlerFailure")({
  type: Schema.tag("failed"),
  failure: Schema.tag("handler"),
  ...base,
  ...hop,
  listener: Schema.String,
  reason: Schema.Literal("failed", "died", "timed-out", "invalid-reply", "cancelled"),
  detail: Schema.String
}) {}

/** A guard stopped a message. */
export class GuardStop extends Schema.Class<GuardStop>("GuardStop")({
  type: Schema.tag("failed"),
  failure: Schema.tag("guard"),
  ...base,
  ...hop,
  guard: Schema.String,
  listener: Nullable,
  detail: Schema.String
}) {}

/** A conversation (root thread) started; `thread` is its id. */
export class ThreadStarted extends Schema.Class<ThreadStarted>("ThreadStarted")({
  type: Schema.tag("thread-created"),
  ...base,
  thread: Schema.String,
  injector: Schema.String,
  to: Nullable
}) {}

/** A conversation completed: nothing of it is left in flight. */
export class ThreadEnded extends Schema.Class<ThreadEnded>("ThreadEnded")({
  type: Schema.tag("thread-completed"),
  ...base,
  thread: Schema.String,
  invocations: Schema.Int,
  ...threadEndFields
}) {}

/**
 * A model call's step (`step`: started, completed, failed), with the fields of its
 * `LlmCall…` event. Journals written before model calls were recorded have none: readers
 * that do not need them skip them.
 */
const modelCallFields = <F extends Schema.Struct.Fields>(fields: F) => {
  const { _tag: _, thread: _t, root: _r, time: _time, ...rest } = fields as unknown as Record<string, unknown>
  return rest as Omit<F, "_tag" | "thread" | "root" | "time">
}

export class ModelCallStarted extends Schema.Class<ModelCallStarted>("ModelCallStarted")({
  type: Schema.tag("model-call"),
  step: Schema.tag("started"),
  ...base,
  ...hop,
  ...modelCallFields(LlmCallStarted.fields)
}) {}

export class ModelCallCompleted extends Schema.Class<ModelCallCompleted>("ModelCallCompleted")({
  type: Schema.tag("model-call"),
  step: Schema.tag("completed"),
  ...base,
  ...hop,
  ...modelCallFields(LlmCallCompleted.fields)
}) {}

export class ModelCallFailed extends Schema.Class<ModelCallFailed>("ModelCallFailed")({
  type: Schema.tag("model-call"),
  step: Schema.tag("failed"),
  ...base,
  ...hop,
  ...modelCallFields(LlmCallFailed.fields)
}) {}

/** The last line of a journal closed in order; a journal without one was cut short. */
export class Closed extends Schema.Class<Closed>("Closed")({
  type: Schema.tag("closed"),
  ...base,
  /**
   * Present when the run was stopped with work still in flight (a drain deadline): why.
   * Deliveries and conversations without an outcome in the journal were interrupted.
   */
  stopped: Schema.optional(Schema.String)
}) {}

export const JournalRecord = Schema.Union(
  Header,
  Booted,
  Received,
  Dispatched,
  Acknowledged,
  Rejected,
  HandlerFailure,
  GuardStop,
  ThreadStarted,
  ThreadEnded,
  ModelCallStarted,
  ModelCallCompleted,
  ModelCallFailed,
  Closed
)
export type JournalRecord = typeof JournalRecord.Type

/** Lifecycle records (everything but header, booted and closed). */
export type LifecycleRecord = Exclude<JournalRecord, Header | Booted | Closed>

/** The fields of an event, without its tag, for a record that keeps them all. */
const fieldsOf = <E extends { readonly _tag: string }>(e: E): Omit<E, "_tag"> => {
  const { _tag: _, ...rest } = e
  return rest
}

const encoder = new TextEncoder()

/** Milliseconds kept to the microsecond: finer digits are noise of the float arithmetic. */
export const micros = (ms: number) => Math.round(ms * 1000) / 1000

/**
 * The record of a pump event (undefined for events a journal does not keep: agent states).
 * Built without validation (the event was valid) and with `type` first, so a line reads
 * well; the keys are written in the order given here.
 */
export const recordOf = (seq: number, e: PumpEvent): LifecycleRecord | undefined => {
  switch (e._tag) {
    case "MessageSent":
      return new Received({
        type: "received",
        seq,
        time: micros(e.time),
        thread: e.thread,
        root: e.root,
        parent: e.parent,
        origin: e.origin,
        from: e.from,
        to: e.to,
        payloadType: e.payloadType,
        payload: e.payload,
        envelope: e.envelope,
        size: encoder.encode(e.envelope).length
      }, true)
    case "RawReceived":
      return new Received({
        type: "received",
        seq,
        time: micros(e.time),
        thread: null,
        root: null,
        parent: null,
        origin: "raw",
        from: null,
        to: null,
        payloadType: null,
        payload: null,
        envelope: e.text,
        size: e.size
      }, true)
    case "MessageReceived":
      return new Dispatched({
        type: "dispatched",
        seq,
        time: micros(e.time),
        thread: e.thread,
        root: e.root,
        parent: e.parent,
        from: e.from,
        to: e.to,
        payloadType: e.payloadType,
        payload: e.payload,
        diagnostics: e.diagnostics,
        envelope: e.envelope
      }, true)
    case "HandlerCompleted":
      return new Acknowledged({
        type: "acknowledged",
        seq,
        time: micros(e.time),
        thread: e.thread,
        root: e.root,
        listener: e.listener,
        replies: e.replies,
        durationMs: micros(e.durationMs)
      }, true)
    case "MessageRejected":
      return new Rejected({
        type: "failed",
        failure: "rejected",
        seq,
        time: micros(e.time),
        thread: e.thread,
        root: e.root,
        stage: e.stage,
        kind: e.kind,
        reason: e.reason,
        diagnostics: e.diagnostics,
        from: e.from,
        to: e.to,
        payloadType: e.payloadType,
        payload: e.payload
      }, true)
    case "HandlerFailed":
      return new HandlerFailure({
        type: "failed",
        failure: "handler",
        seq,
        time: micros(e.time),
        thread: e.thread,
        root: e.root,
        listener: e.listener,
        reason: e.reason,
        detail: e.detail
      }, true)
    case "GuardTripped":
      return new GuardStop({
        type: "failed",
        failure: "guard",
        seq,
        time: micros(e.time),
        thread: e.thread,
        root: e.root,
        guard: e.guard,
        listener: e.listener,
        detail: e.detail
      }, true)
    case "ThreadCreated":
      return e.thread === null
        ? undefined
        : new ThreadStarted({ type: "thread-created", seq, time: micros(e.time), thread: e.thread, injector: e.injector, to: e.to }, true)
    case "ThreadCompleted":
      return e.thread === null
        ? undefined
        : new ThreadEnded({
          type: "thread-completed",
          seq,
          time: micros(e.time),
          thread: e.thread,
          invocations: e.invocations,
          reason: e.reason,
          detail: e.detail
        }, true)
    case "AgentState":
    // The completed call records the whole text; its pieces are for live views only.
    case "LlmOutputDelta":
      return undefined
    // A person's decision shows in the message's own records: dispatched when approved,
    // failed (rejected at the approval stage, or stopped by a guard) otherwise.
    case "ApprovalRequested":
    case "ApprovalDecided":
      return undefined
    case "LlmCallStarted":
      return new ModelCallStarted({ type: "model-call", step: "started", seq, ...fieldsOf(e), time: micros(e.time) }, true)
    case "LlmCallCompleted":
      return new ModelCallCompleted({ type: "model-call", step: "completed", seq, ...fieldsOf(e), time: micros(e.time) }, true)
    case "LlmCallFailed":
      return new ModelCallFailed({ type: "model-call", step: "failed", seq, ...fieldsOf(e), time: micros(e.time) }, true)
  }
}
