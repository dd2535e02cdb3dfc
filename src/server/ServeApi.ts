/**
 * The HTTP API of `organism serve`, declared with @effect/platform's HttpApi: the same
 * declaration gives the server its routes, request decoding, typed error responses and the
 * OpenAPI document (`/api/openapi.json`, shown at `/docs`).
 *
 * Live events (SSE, WebSocket) and the dashboard's static files are plain routes next to it
 * (Server.ts): a stream of events is not a request/response pair the OpenAPI document can
 * describe.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"

// --- errors: every one a 4xx/5xx whose body is the error as JSON (`_tag`, `message`, …) ---

/** The request is well-formed JSON but asks for something impossible (unknown listener, bad XML, fields of the wrong type). */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 400 })) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

/**
 * The organism's inbox is full: every permit is held by a message in flight, and none came
 * back within the admission wait. The response carries `Retry-After`.
 */
export class Busy extends Schema.TaggedError<Busy>()("Busy", {
  message: Schema.String,
  retryAfterSeconds: Schema.Number
}, HttpApiSchema.annotations({ status: 429 })) {}

/** The organism is stopping and takes no new messages. */
export class Stopping extends Schema.TaggedError<Stopping>()("Stopping", {
  message: Schema.String
}, HttpApiSchema.annotations({ status: 503 })) {}

/** A request's conversation ended without an answer, or the answer was a SystemError. */
export class NoAnswer extends Schema.TaggedError<NoAnswer>()("NoAnswer", {
  message: Schema.String,
  thread: Schema.String,
  /** The SystemError's code, when that is what came back. */
  code: Schema.NullOr(Schema.String)
}, HttpApiSchema.annotations({ status: 502 })) {}

export class TimedOut extends Schema.TaggedError<TimedOut>()("TimedOut", {
  message: Schema.String,
  thread: Schema.NullOr(Schema.String)
}, HttpApiSchema.annotations({ status: 504 })) {}

/** A reload that did not take effect: the organism keeps running its last good version. */
export class ReloadFailed extends Schema.TaggedError<ReloadFailed>()("ReloadFailed", {
  message: Schema.String,
  problems: Schema.Array(Schema.String)
}, HttpApiSchema.annotations({ status: 422 })) {}

/** No message waits for approval under that id (unknown, already decided, or withdrawn). */
export class ApprovalNotFound extends Schema.TaggedError<ApprovalNotFound>()("ApprovalNotFound", {
  message: Schema.String,
  id: Schema.String
}, HttpApiSchema.annotations({ status: 404 })) {}

/** The envelope sent with a decision is not the one waiting under the id: refused. */
export class ApprovalConflict extends Schema.TaggedError<ApprovalConflict>()("ApprovalConflict", {
  message: Schema.String,
  id: Schema.String,
  /** The SHA-256 of the envelope that was sent. */
  seen: Schema.String
}, HttpApiSchema.annotations({ status: 409 })) {}

// --- bodies ------------------------------------------------------------------------------

const SendFields = {
  to: Schema.optional(Schema.String).annotations({
    description: "the listener to send to; by default, the one listener whose payload type this is"
  }),
  xml: Schema.optional(Schema.String).annotations({
    description: "the payload element as XML, e.g. <Greeting><Name>Ada</Name></Greeting>"
  }),
  type: Schema.optional(Schema.String).annotations({ description: "with `fields`: the payload type's name" }),
  fields: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })).annotations({
    description: "with `type`: the payload's fields as JSON (as its Schema encodes them)"
  }),
  from: Schema.optional(Schema.String).annotations({ description: "the injector's name (default: the organism's injector)" })
}

/** A payload to send: `xml`, or `type` + `fields`. */
export const SendBody = Schema.Struct(SendFields).annotations({ identifier: "SendBody" })
export type SendBody = typeof SendBody.Type

export const RequestBody = Schema.Struct({
  ...SendFields,
  timeoutMs: Schema.optional(Schema.Number.pipe(Schema.positive(), Schema.lessThanOrEqualTo(600_000))).annotations({
    description: "how long to wait for the answer (default 30000)"
  })
}).annotations({ identifier: "RequestBody" })

export const Injected = Schema.Struct({ thread: Schema.String }).annotations({ identifier: "Injected" })

/** An envelope's bytes taken: the pipeline judges them as they come (events tell the outcome). */
export const InjectedRaw = Schema.Struct({ accepted: Schema.Boolean, size: Schema.Number })

export const Answer = Schema.Struct({
  payloadType: Schema.String,
  /** The answer's payload element as XML. */
  payload: Schema.String
}).annotations({ identifier: "Answer" })

export const Counters = Schema.Struct({
  injected: Schema.Number,
  delivered: Schema.Number,
  rejected: Schema.Number,
  guardStopped: Schema.Number,
  inFlight: Schema.Number,
  invocations: Schema.Number,
  running: Schema.Number,
  rejectedBy: Schema.Record({ key: Schema.String, value: Schema.Number }),
  pendingApprovals: Schema.Number,
  threads: Schema.Struct({ roots: Schema.Number, nodes: Schema.Number }),
  conversationsIndexed: Schema.Number,
  liveClients: Schema.Number,
  models: Schema.Struct({
    requests: Schema.Number,
    promptTokens: Schema.Number,
    completionTokens: Schema.Number,
    costUsd: Schema.Number
  })
}).annotations({ identifier: "Counters" })

export const ConversationSummary = Schema.Struct({
  thread: Schema.String,
  state: Schema.Literal("running", "completed"),
  reason: Schema.Unknown,
  injector: Schema.NullOr(Schema.String),
  to: Schema.NullOr(Schema.String),
  payloadType: Schema.NullOr(Schema.String),
  startedAt: Schema.Number,
  endedAt: Schema.NullOr(Schema.Number),
  invocations: Schema.Number,
  messages: Schema.Number,
  rejections: Schema.Number,
  guardTrips: Schema.Number,
  failures: Schema.Number,
  modelCalls: Schema.Number,
  tokens: Schema.Number,
  costUsd: Schema.Number
}).annotations({ identifier: "ConversationSummary" })

export const MessageNode = Schema.Struct({
  thread: Schema.NullOr(Schema.String),
  parent: Schema.NullOr(Schema.String),
  depth: Schema.Number,
  time: Schema.Number,
  from: Schema.String,
  to: Schema.NullOr(Schema.String),
  origin: Schema.String,
  payloadType: Schema.String,
  payload: Schema.String
}).annotations({ identifier: "MessageNode" })

export const ConversationDetail = Schema.Struct({
  ...ConversationSummary.fields,
  tree: Schema.Array(MessageNode),
  events: Schema.Array(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  droppedEvents: Schema.Number
}).annotations({ identifier: "ConversationDetail" })

export const DeadLetter = Schema.Struct({
  time: Schema.Number,
  stage: Schema.String,
  kind: Schema.String,
  reason: Schema.String,
  diagnostics: Schema.Array(Schema.String),
  from: Schema.NullOr(Schema.String),
  to: Schema.NullOr(Schema.String),
  thread: Schema.NullOr(Schema.String),
  payloadType: Schema.NullOr(Schema.String),
  text: Schema.String
}).annotations({ identifier: "DeadLetter" })

export const AgentPrompt = Schema.Struct({
  agent: Schema.String,
  prompt: Schema.String,
  usage: Schema.String,
  system: Schema.String
}).annotations({ identifier: "AgentPrompt" })

export const PayloadTypeInfo = Schema.Struct({
  tag: Schema.String,
  description: Schema.String,
  /** Listeners that accept it (the first is where a send without `to` goes). */
  listeners: Schema.Array(Schema.String),
  builtin: Schema.Boolean,
  xsd: Schema.String,
  example: Schema.String
}).annotations({ identifier: "PayloadTypeInfo" })

export const ListenerInfo = Schema.Struct({
  name: Schema.String,
  description: Schema.String,
  payloadType: Schema.String,
  accepts: Schema.Array(Schema.String),
  agent: Schema.Boolean,
  peers: Schema.NullOr(Schema.Array(Schema.String))
}).annotations({ identifier: "ListenerInfo" })

export const OrganismInfo = Schema.Struct({
  name: Schema.String,
  file: Schema.String,
  injector: Schema.String,
  listeners: Schema.Array(ListenerInfo)
}).annotations({ identifier: "OrganismInfo" })

export const ReloadDiff = Schema.Struct({
  added: Schema.Array(Schema.String),
  removed: Schema.Array(Schema.String),
  updated: Schema.Array(Schema.String),
  details: Schema.Array(Schema.String)
}).annotations({ identifier: "ReloadDiff" })

export const PendingApproval = Schema.Struct({
  id: Schema.String.annotations({ description: "SHA-256 (hex) of the canonical envelope" }),
  listener: Schema.String.annotations({ description: "the listener that requires the approval" }),
  thread: Schema.String,
  root: Schema.String,
  from: Schema.String,
  to: Schema.NullOr(Schema.String),
  payloadType: Schema.String,
  payload: Schema.String.annotations({ description: "the payload element as it will be delivered" }),
  envelope: Schema.String.annotations({ description: "the canonical envelope the id hashes" }),
  requestedAt: Schema.Number.annotations({ description: "epoch milliseconds" })
}).annotations({ identifier: "PendingApproval" })

const decisionFields = {
  envelope: Schema.optional(Schema.String).annotations({
    description: "the envelope as you were shown it: the decision is refused (409) unless its SHA-256 is the id"
  }),
  by: Schema.optional(Schema.String).annotations({ description: "who decides, for the events (default: http)" })
}

/** Optional: a POST without a body approves too. */
export const ApproveBody = Schema.NullOr(Schema.Struct(decisionFields).annotations({ identifier: "ApproveBody" }))

export const DenyBody = Schema.Struct({
  ...decisionFields,
  reason: Schema.Trim.pipe(Schema.nonEmptyString()).annotations({ description: "why: the sender hears it as a SystemError" })
}).annotations({ identifier: "DenyBody" })

const thread = HttpApiSchema.param("thread", Schema.String)
const approvalIdParam = HttpApiSchema.param("id", Schema.String)

// --- the API -----------------------------------------------------------------------------

export class MessagesGroup extends HttpApiGroup.make("messages")
  .add(
    HttpApiEndpoint.post("inject", "/api/inject")
      .setPayload(SendBody)
      .addSuccess(Injected, { status: 202 })
      .addError(BadRequest)
      .addError(Busy)
      .addError(Stopping)
  )
  .add(
    HttpApiEndpoint.post("injectRaw", "/api/inject/raw")
      .setPayload(HttpApiSchema.Uint8Array({ contentType: "application/xml" }))
      .addSuccess(InjectedRaw, { status: 202 })
      .addError(BadRequest)
      .addError(Busy)
      .addError(Stopping)
  )
  .add(
    HttpApiEndpoint.post("request", "/api/request")
      .setPayload(RequestBody)
      .addSuccess(Answer)
      .addError(BadRequest)
      .addError(Busy)
      .addError(Stopping)
      .addError(NoAnswer)
      .addError(TimedOut)
  )
{}

export class ConversationsGroup extends HttpApiGroup.make("conversations")
  .add(
    HttpApiEndpoint.get("list", "/api/conversations")
      .setUrlParams(Schema.Struct({ limit: Schema.optional(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 1000))) }))
      .addSuccess(Schema.Array(ConversationSummary))
      .addError(BadRequest)
  )
  .add(
    HttpApiEndpoint.get("get")`/api/conversations/${thread}`
      .addSuccess(ConversationDetail)
      .addError(NotFound)
  )
{}

export class OrganismGroup extends HttpApiGroup.make("organism")
  .add(HttpApiEndpoint.get("info", "/api/organism").addSuccess(OrganismInfo))
  .add(HttpApiEndpoint.get("counters", "/api/counters").addSuccess(Counters))
  .add(HttpApiEndpoint.get("deadLetters", "/api/dead-letters").addSuccess(Schema.Array(DeadLetter)))
  .add(HttpApiEndpoint.get("prompts", "/api/prompts").addSuccess(Schema.Array(AgentPrompt)))
  .add(HttpApiEndpoint.get("payloads", "/api/payloads").addSuccess(Schema.Array(PayloadTypeInfo)))
  .add(HttpApiEndpoint.post("reload", "/api/reload").addSuccess(ReloadDiff).addError(ReloadFailed))
{}

/** Human approval: messages to listeners with `approval: required` wait here for a decision. */
export class ApprovalsGroup extends HttpApiGroup.make("approvals")
  .add(HttpApiEndpoint.get("list", "/api/approvals").addSuccess(Schema.Array(PendingApproval)))
  .add(
    HttpApiEndpoint.post("approve")`/api/approvals/${approvalIdParam}/approve`
      .setPayload(ApproveBody)
      .addSuccess(PendingApproval)
      .addError(ApprovalNotFound)
      .addError(ApprovalConflict)
  )
  .add(
    HttpApiEndpoint.post("deny")`/api/approvals/${approvalIdParam}/deny`
      .setPayload(DenyBody)
      .addSuccess(PendingApproval)
      .addError(ApprovalNotFound)
      .addError(ApprovalConflict)
  )
{}

export class ServeApi extends HttpApi.make("organism")
  .add(MessagesGroup)
  .add(ConversationsGroup)
  .add(OrganismGroup)
  .add(ApprovalsGroup)
  .annotate(OpenApi.Title, "organism serve")
  .annotate(OpenApi.Description, "An xml-organism behind HTTP: send payloads, read its conversations, counters and dead letters, approve or deny the messages waiting for approval. Live events: GET /api/events (Server-Sent Events) and /api/events/ws (WebSocket), ?thread=ID for one conversation.")
{}
