/**
 * Events the pump publishes: for the CLI, the journal, tests and anyone watching.
 * Every event has a `thread` (null when unknown) and a `time` (epoch milliseconds, with a
 * sub-millisecond fraction).
 */
import { Schema } from "effect"

const Nullable = Schema.NullOr(Schema.String)

const base = { thread: Nullable, time: Schema.Number }

/** The conversation (root thread) a hop belongs to, when known. */
const root = { root: Nullable }

/**
 * The thread that `thread` extends: the previous hop of its call chain (null at the
 * injector's own thread). With it the chain tree of a conversation can be rebuilt from
 * events alone (a journal's trace and replay), though every hop has a fresh opaque id.
 */
const parent = { parent: Nullable }

/** The pump wrote an envelope (an injection, a handler's reply, a SystemError). */
export class MessageSent extends Schema.TaggedClass<MessageSent>()("MessageSent", {
  ...base,
  ...root,
  ...parent,
  from: Schema.String,
  to: Nullable,
  payloadType: Schema.String,
  /** The payload element as XML. */
  payload: Schema.String,
  /**
   * `injected`: from an injector (inject, request, console, boot) — the organism's input;
   * `reply`: written for a handler; `system`: a SystemError or Boot from the pump itself.
   */
  origin: Schema.Literal("injected", "reply", "system"),
  /** The whole envelope as written (already canonical). */
  envelope: Schema.String
}) {}

/** Raw bytes arrived from outside (`injectRaw`), before any check. */
export class RawReceived extends Schema.TaggedClass<RawReceived>()("RawReceived", {
  ...base,
  /** The bytes as UTF-8 text (invalid sequences replaced), at most 64 KiB. */
  text: Schema.String,
  size: Schema.Number
}) {}

/** A message was delivered: to a listener's handler, or back to its injector. */
/** What a delivery says, in events and in journals alike. */
export const deliveryFields = {
  from: Schema.String,
  to: Schema.String,
  payloadType: Schema.String,
  payload: Schema.String,
  /** Diagnostics noted on the way in (repairs, replaced thread ids). */
  diagnostics: Schema.Array(Schema.String),
  /** The envelope in canonical form. */
  envelope: Schema.String
}

export class MessageReceived extends Schema.TaggedClass<MessageReceived>()("MessageReceived", {
  ...base,
  ...root,
  ...parent,
  ...deliveryFields
}) {}

/** A handler finished with a reply (or none); failures are `HandlerFailed`. */
export class HandlerCompleted extends Schema.TaggedClass<HandlerCompleted>()("HandlerCompleted", {
  ...base,
  ...root,
  listener: Schema.String,
  /** Payload types of the reply envelopes written, in order. */
  replies: Schema.Array(Schema.String),
  durationMs: Schema.Number
}) {}

/** What a rejection says, in events and in journals alike. */
export const rejectionFields = {
  stage: Schema.String,
  kind: Schema.String,
  reason: Schema.String,
  diagnostics: Schema.Array(Schema.String),
  from: Nullable,
  to: Nullable,
  payloadType: Nullable,
  /** The message as text (canonical when it got that far), truncated to 4 KiB. */
  payload: Nullable
}

export class MessageRejected extends Schema.TaggedClass<MessageRejected>()("MessageRejected", {
  ...base,
  ...root,
  ...rejectionFields
}) {}

export class AgentState extends Schema.TaggedClass<AgentState>()("AgentState", {
  ...base,
  ...root,
  listener: Schema.String,
  state: Schema.Literal("running", "idle")
}) {}

export class ThreadCreated extends Schema.TaggedClass<ThreadCreated>()("ThreadCreated", {
  ...base,
  injector: Schema.String,
  to: Nullable
}) {}

/**
 * Why a conversation ended: `completed` when nothing went wrong; `stopped` when an agent's
 * stop condition (`stop_when`) ended its loop; otherwise what stopped or spoiled it — a guard,
 * its token budget, a handler timing out, a cancellation, a handler failing. When several
 * happened, the gravest is kept (cancelled, guard, budget, timeout, failed, stopped).
 */
export const ThreadEndReason = Schema.Literal("completed", "stopped", "guard", "budget", "timeout", "cancelled", "failed")
export type ThreadEndReason = typeof ThreadEndReason.Type

/** The reason and its detail, as events and journal records carry them (old records: completed). */
export const threadEndFields = {
  reason: Schema.optionalWith(ThreadEndReason, { default: () => "completed" as const }),
  /** What happened (`max-invocations: …`, `loop (coordinator → researcher): …`); empty when completed. */
  detail: Schema.optionalWith(Schema.String, { default: () => "" })
}

export class ThreadCompleted extends Schema.TaggedClass<ThreadCompleted>()("ThreadCompleted", {
  ...base,
  invocations: Schema.Number,
  ...threadEndFields
}) {}

export class GuardTripped extends Schema.TaggedClass<GuardTripped>()("GuardTripped", {
  ...base,
  ...root,
  guard: Schema.String,
  listener: Nullable,
  detail: Schema.String
}) {}

export class HandlerFailed extends Schema.TaggedClass<HandlerFailed>()("HandlerFailed", {
  ...base,
  ...root,
  listener: Schema.String,
  reason: Schema.Literal("failed", "died", "timed-out", "invalid-reply", "cancelled"),
  detail: Schema.String
}) {}

/**
 * A message to a listener with `approval: required` passed every check and now waits for a
 * person's decision. `id` is the SHA-256 (hex) of `envelope`, the canonical envelope text.
 */
export class ApprovalRequested extends Schema.TaggedClass<ApprovalRequested>()("ApprovalRequested", {
  ...base,
  ...root,
  id: Schema.String,
  /** The listener that requires the approval. */
  listener: Schema.String,
  from: Schema.String,
  to: Nullable,
  payloadType: Schema.String,
  /** The payload element as it will be delivered (after the organism's stages). */
  payload: Schema.String,
  envelope: Schema.String
}) {}

/**
 * A pending approval ended: `approved` (the message is delivered), `denied` (rejected at the
 * `approval` stage; the sender hears `reason`), or `withdrawn` by the pump (its conversation
 * was cancelled, the organism is draining; stopped by a guard).
 */
export class ApprovalDecided extends Schema.TaggedClass<ApprovalDecided>()("ApprovalDecided", {
  ...base,
  ...root,
  id: Schema.String,
  listener: Schema.String,
  decision: Schema.Literal("approved", "denied", "withdrawn"),
  /** The denial's reason, or why it was withdrawn; empty when approved. */
  reason: Schema.String,
  /** Who decided (as the approver said), or `system` for a withdrawal. */
  by: Schema.String
}) {}

/** A hot reload was applied, or rejected (the organism keeps running on its last good version). */
export class ReloadEvent extends Schema.TaggedClass<ReloadEvent>()("ReloadEvent", {
  ...base,
  outcome: Schema.Literal("applied", "rejected"),
  added: Schema.Array(Schema.String),
  removed: Schema.Array(Schema.String),
  updated: Schema.Array(Schema.String),
  /** `listener: field, field…` for each updated listener. */
  details: Schema.Array(Schema.String),
  /** Why a reload was rejected (file:line: key: message). */
  problems: Schema.Array(Schema.String)
}) {}

/**
 * Model calls, published by the LLM router. One call (`call`, an id unique in the run) makes
 * one or more attempts (`attempt`, counted from 1 across retries and backends): each attempt
 * opens with `LlmCallStarted` and ends with `LlmCallCompleted` or a non-final
 * `LlmCallFailed`; a call that gives up ends with one `LlmCallFailed` whose `final` is true.
 * `thread` and `root` are the conversation the call was made for, `agent` who asked.
 */
const llmCall = {
  ...base,
  ...root,
  call: Schema.String,
  agent: Schema.String,
  backend: Schema.String,
  model: Schema.String,
  attempt: Schema.Number
}

export class LlmCallStarted extends Schema.TaggedClass<LlmCallStarted>()("LlmCallStarted", {
  ...llmCall,
  /** The provider behind the backend: openai, openai-compatible, anthropic, mock. */
  provider: Schema.String,
  maxOutputTokens: Schema.Number,
  stream: Schema.Boolean,
  /**
   * SHA-256 (hex) of the request in canonical form — agent, requested model, system prompt,
   * messages, output cap — the same whatever backend serves it: what an offline replay looks
   * its recorded answer up by.
   */
  requestHash: Schema.String,
  /** The first 12 hex digits of the SHA-256 of the system prompt, then of each message: where two requests differ. */
  messageHashes: Schema.Array(Schema.String)
}) {}

export class LlmCallCompleted extends Schema.TaggedClass<LlmCallCompleted>()("LlmCallCompleted", {
  ...llmCall,
  /** From this attempt's request to its whole answer. */
  latencyMs: Schema.Number,
  inputTokens: Schema.Number,
  outputTokens: Schema.Number,
  costUsd: Schema.Number,
  /** As the provider said (normalized by @effect/ai): stop, length, content-filter, tool-calls… */
  finishReason: Schema.String,
  /** The answer was cut at the output limit (`finishReason` length): not a complete answer. */
  truncated: Schema.Boolean,
  /** The answer's text, as the agent received it. */
  text: Schema.String,
  /** Hidden reasoning among `outputTokens`, where the provider reports it. */
  reasoningTokens: Schema.optional(Schema.Number),
  /**
   * The answer's tool calls, in order (a request that offered tools), and a problem reading
   * them: what an offline replay serves back.
   */
  toolCalls: Schema.optionalWith(Schema.Array(Schema.Struct({ id: Schema.String, name: Schema.String, arguments: Schema.Unknown })), {
    exact: true
  }),
  toolCallProblem: Schema.optionalWith(Schema.String, { exact: true })
}) {}

/**
 * A piece of a streamed answer as it arrived (`stream: true`), for live views: `index`
 * counts the pieces of one attempt from 0, and the pieces of an attempt joined are the text
 * of its `LlmCallCompleted`. Published only while someone listens, and not journaled (the
 * completed call records the whole text).
 */
export class LlmOutputDelta extends Schema.TaggedClass<LlmOutputDelta>()("LlmOutputDelta", {
  ...base,
  ...root,
  call: Schema.String,
  agent: Schema.String,
  attempt: Schema.Number,
  index: Schema.Number,
  delta: Schema.String
}) {}

export class LlmCallFailed extends Schema.TaggedClass<LlmCallFailed>()("LlmCallFailed", {
  ...llmCall,
  latencyMs: Schema.Number,
  /** HTTP status, when there was one. */
  status: Schema.NullOr(Schema.Number),
  error: Schema.String,
  /**
   * False: this attempt failed, the call goes on (a retry, another backend). True: the call
   * has given up, with `reason` (unavailable, rejected, stream-failed); `attempt` is then
   * the last one made and `latencyMs` the whole call's.
   */
  final: Schema.Boolean,
  reason: Schema.NullOr(Schema.String)
}) {}

export type PumpEvent =
  | MessageSent
  | RawReceived
  | MessageReceived
  | HandlerCompleted
  | MessageRejected
  | AgentState
  | ThreadCreated
  | ThreadCompleted
  | GuardTripped
  | HandlerFailed
  | ReloadEvent
  | ApprovalRequested
  | ApprovalDecided
  | LlmCallStarted
  | LlmCallCompleted
  | LlmCallFailed
  | LlmOutputDelta

export const PumpEvent = Schema.Union(
  MessageSent,
  RawReceived,
  MessageReceived,
  HandlerCompleted,
  MessageRejected,
  AgentState,
  ThreadCreated,
  ThreadCompleted,
  GuardTripped,
  HandlerFailed,
  ReloadEvent,
  ApprovalRequested,
  ApprovalDecided,
  LlmCallStarted,
  LlmCallCompleted,
  LlmCallFailed,
  LlmOutputDelta
)

/**
 * The JSON-lines form: `type`, `thread`, `from`, `to`, `payloadType`, `payload` always
 * present (null when they do not apply), then the event's other fields.
 */
export const eventToJson = (e: PumpEvent): Record<string, unknown> => {
  const { _tag, ...rest } = e as unknown as { _tag: string } & Record<string, unknown>
  return {
    type: _tag,
    thread: rest.thread ?? null,
    from: rest.from ?? null,
    to: rest.to ?? null,
    payloadType: rest.payloadType ?? null,
    payload: rest.payload ?? null,
    ...rest
  }
}

/**
 * Builds an event on the pump's hot path. The Schema class constructor copies its input,
 * merges defaults and goes through Data.Class — about 25 times the cost of the object itself,
 * which made one event subscriber slow the pump by half. Here every field is given (the type
 * says so), so the event is the class's prototype with the fields assigned: the same
 * instance for `instanceof`, Equal and the Schema codecs, with `_tag` last as the
 * constructor writes it.
 */
export const makeEvent = <E extends PumpEvent>(
  Class: { readonly prototype: E; readonly _tag: E["_tag"] },
  fields: Omit<E, "_tag">
): E => {
  const event = Object.assign(Object.create(Class.prototype), fields)
  event._tag = Class._tag
  return event
}

type Fields<E> = Omit<E, "_tag">
type Writable = Record<string, unknown>

/*
 * The three events of every hop, built faster still than `makeEvent`: a constructor that
 * writes each field by name on an object of the class's prototype, so V8 gives every event
 * of a kind one fixed shape with its fields in the object itself. `Object.assign` onto
 * `Object.create(prototype)` copied field by field through generic lookups and allocated the
 * fields object besides — ≈ 0.7 µs of a pingpong hop with one subscriber. The fields are
 * written in the order `makeEvent` wrote them (its callers' order), `_tag` last.
 */
function SentEvent(this: Writable, f: Fields<MessageSent>) {
  this.thread = f.thread
  this.root = f.root
  this.parent = f.parent
  this.time = f.time
  this.from = f.from
  this.to = f.to
  this.payloadType = f.payloadType
  this.payload = f.payload
  this.origin = f.origin
  this.envelope = f.envelope
  this._tag = "MessageSent"
}
SentEvent.prototype = MessageSent.prototype

function ReceivedEvent(this: Writable, f: Fields<MessageReceived>) {
  this.thread = f.thread
  this.root = f.root
  this.parent = f.parent
  this.time = f.time
  this.from = f.from
  this.to = f.to
  this.payloadType = f.payloadType
  this.payload = f.payload
  this.diagnostics = f.diagnostics
  this.envelope = f.envelope
  this._tag = "MessageReceived"
}
ReceivedEvent.prototype = MessageReceived.prototype

function CompletedEvent(this: Writable, f: Fields<HandlerCompleted>) {
  this.thread = f.thread
  this.root = f.root
  this.time = f.time
  this.listener = f.listener
  this.replies = f.replies
  this.durationMs = f.durationMs
  this._tag = "HandlerCompleted"
}
CompletedEvent.prototype = HandlerCompleted.prototype

/** A MessageSent on the hot path: the same event as `makeEvent(MessageSent, fields)`. */
export const messageSent = (fields: Fields<MessageSent>): MessageSent =>
  new (SentEvent as unknown as new(f: Fields<MessageSent>) => MessageSent)(fields)

/** A MessageReceived on the hot path: the same event as `makeEvent(MessageReceived, fields)`. */
export const messageReceived = (fields: Fields<MessageReceived>): MessageReceived =>
  new (ReceivedEvent as unknown as new(f: Fields<MessageReceived>) => MessageReceived)(fields)

/** A HandlerCompleted on the hot path: the same event as `makeEvent(HandlerCompleted, fields)`. */
export const handlerCompleted = (fields: Fields<HandlerCompleted>): HandlerCompleted =>
  new (CompletedEvent as unknown as new(f: Fields<HandlerCompleted>) => HandlerCompleted)(fields)
