/**
 * Why a message was rejected before reaching a handler: one tagged error per cause, each
 * carrying the pipeline stage that produced it and the diagnostics that explain it.
 * These cross boundaries (events, journal, CLI JSON), hence Schema.TaggedError.
 */
import { Schema } from "effect"
import { Diagnostic } from "./Diagnostic.js"

export const Stage = Schema.Literal(
  "ingress",
  "parse",
  "canonicalize",
  "envelope",
  "extract",
  "thread",
  "route",
  "payload",
  "decode",
  "dispatch",
  "stage",
  "outbox",
  "approval"
)
export type Stage = typeof Stage.Type

const common = { diagnostics: Schema.Array(Diagnostic) }

/** The stage that rejected the message; each kind has its usual stage as the default. */
const stage = (usual: Stage) => Schema.optionalWith(Stage, { default: () => usual })

const summarize = (head: string, diagnostics: ReadonlyArray<Diagnostic>): string =>
  diagnostics.length === 0 ? head : `${head}: ${diagnostics.map(String).join("; ")}`

export class MessageTooLarge extends Schema.TaggedError<MessageTooLarge>()("MessageTooLarge", {
  ...common,
  stage: stage("ingress"),
  size: Schema.Number,
  limit: Schema.Number
}) {
  override get message() {
    return `message of ${this.size} bytes exceeds the limit of ${this.limit} bytes`
  }
}

export class InvalidEncoding extends Schema.TaggedError<InvalidEncoding>()("InvalidEncoding", {
  ...common,
  stage: stage("ingress")
}) {
  override get message() {
    return summarize("message is not valid UTF-8", this.diagnostics)
  }
}

export class MalformedXml extends Schema.TaggedError<MalformedXml>()("MalformedXml", {
  ...common,
  stage: stage("parse")
}) {
  override get message() {
    return summarize("malformed XML", this.diagnostics)
  }
}

export class DtdForbidden extends Schema.TaggedError<DtdForbidden>()("DtdForbidden", {
  ...common,
  stage: stage("parse")
}) {
  override get message() {
    return summarize("document type declarations (DTDs, entities) are not allowed", this.diagnostics)
  }
}

export class TooDeep extends Schema.TaggedError<TooDeep>()("TooDeep", {
  ...common,
  stage: stage("canonicalize"),
  limit: Schema.Number
}) {
  override get message() {
    return `element nesting exceeds the limit of ${this.limit}`
  }
}

export class WrongRoot extends Schema.TaggedError<WrongRoot>()("WrongRoot", {
  ...common,
  stage: stage("envelope"),
  root: Schema.String
}) {
  override get message() {
    return `root element is <${this.root}>, expected <message>`
  }
}

export class WrongNamespace extends Schema.TaggedError<WrongNamespace>()("WrongNamespace", {
  ...common,
  stage: stage("envelope"),
  namespace: Schema.String
}) {
  override get message() {
    return `root <message> is in namespace "${this.namespace}", expected the envelope namespace`
  }
}

export class MissingMeta extends Schema.TaggedError<MissingMeta>()("MissingMeta", {
  ...common,
  stage: stage("envelope")
}) {
  override get message() {
    return summarize("envelope has no <meta>", this.diagnostics)
  }
}

export class MissingFrom extends Schema.TaggedError<MissingFrom>()("MissingFrom", {
  ...common,
  stage: stage("envelope")
}) {
  override get message() {
    return summarize("envelope <meta> has no <from>", this.diagnostics)
  }
}

export class MissingThread extends Schema.TaggedError<MissingThread>()("MissingThread", {
  ...common,
  stage: stage("envelope")
}) {
  override get message() {
    return summarize("envelope <meta> has no <thread>", this.diagnostics)
  }
}

export class EnvelopeInvalid extends Schema.TaggedError<EnvelopeInvalid>()("EnvelopeInvalid", {
  ...common,
  stage: stage("envelope")
}) {
  override get message() {
    return summarize("envelope does not match the envelope schema", this.diagnostics)
  }
}

export class NoPayload extends Schema.TaggedError<NoPayload>()("NoPayload", {
  ...common,
  stage: stage("extract")
}) {
  override get message() {
    return "envelope carries no payload element"
  }
}

export class SeveralPayloads extends Schema.TaggedError<SeveralPayloads>()("SeveralPayloads", {
  ...common,
  stage: stage("envelope"),
  count: Schema.Number
}) {
  override get message() {
    return `envelope carries ${this.count} payload elements; exactly one is allowed`
  }
}

export class UnknownRoute extends Schema.TaggedError<UnknownRoute>()("UnknownRoute", {
  ...common,
  stage: stage("route"),
  routeKey: Schema.String
}) {
  override get message() {
    return `no listener for route "${this.routeKey}"`
  }
}

export class PayloadInvalid extends Schema.TaggedError<PayloadInvalid>()("PayloadInvalid", {
  ...common,
  stage: stage("payload"),
  payloadTag: Schema.String
}) {
  override get message() {
    return summarize(`payload <${this.payloadTag}> does not match its schema`, this.diagnostics)
  }
}

export class DecodeFailed extends Schema.TaggedError<DecodeFailed>()("DecodeFailed", {
  ...common,
  stage: stage("decode"),
  payloadTag: Schema.String
}) {
  override get message() {
    return summarize(`payload <${this.payloadTag}> could not be decoded`, this.diagnostics)
  }
}

/**
 * The pipeline itself threw (a libxml2 trap, a bug, a registry Layer that threw): the
 * message is rejected and recorded instead of taking the pump down with it.
 */
export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", {
  ...common,
  stage: stage("ingress"),
  detail: Schema.String
}) {
  override get message() {
    return `internal error while processing the message: ${this.detail}`
  }
}

/** A listener replied to a target that is not among its peers. */
export class PeerViolation extends Schema.TaggedError<PeerViolation>()("PeerViolation", {
  ...common,
  stage: stage("outbox"),
  listener: Schema.String,
  target: Schema.String
}) {
  override get message() {
    return `${this.listener} may not send to ${this.target} (not a peer)`
  }
}

/** A stage of the organism's own (`stages:`) refused the message, with its reason. */
export class StageRejected extends Schema.TaggedError<StageRejected>()("StageRejected", {
  ...common,
  stage: stage("stage"),
  /** The name of the user stage that refused it. */
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `refused by stage ${this.name}: ${this.reason}`
  }
}

/**
 * A listener with `approval: required` was sent this message and a person denied it, with
 * their reason (the sender hears it as a SystemError).
 */
export class ApprovalDenied extends Schema.TaggedError<ApprovalDenied>()("ApprovalDenied", {
  ...common,
  stage: stage("approval"),
  /** The approval's id: the SHA-256 (hex) of the canonical envelope. */
  id: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `denied by an approver: ${this.reason}`
  }
}

export type IngressError =
  | MessageTooLarge
  | InvalidEncoding
  | MalformedXml
  | DtdForbidden
  | TooDeep
  | WrongRoot
  | WrongNamespace
  | MissingMeta
  | MissingFrom
  | MissingThread
  | EnvelopeInvalid
  | NoPayload
  | SeveralPayloads
  | UnknownRoute
  | PayloadInvalid
  | DecodeFailed
  | PeerViolation
  | StageRejected
  | InternalError
  | ApprovalDenied

export type IngressErrorKind = IngressError["_tag"]
