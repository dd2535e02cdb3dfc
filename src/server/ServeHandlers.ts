/**
 * The handlers of the HTTP API (ServeApi.ts), over a running pump. Every failure is one of
 * the API's typed errors: the server answers a bad request with a 4xx and its reason as
 * JSON, and no input can make a handler die.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Context, Duration, Effect, Either, Layer, ParseResult, Schema } from "effect"
import { closest } from "../config/suggest.js"
import { builtinPayloads } from "../domain/BuiltinPayloads.js"
import type { Listener } from "../domain/Listener.js"
import * as Payload from "../domain/Payload.js"
import type { InjectError, RequestError } from "../domain/PumpError.js"
import { RawPayload, type PayloadValue } from "../domain/Reply.js"
import type { Pump } from "../pipeline/Pump.js"
import type { LlmRouter } from "../services/LlmRouter.js"
import type { XmlEngine } from "../services/XmlEngine.js"
import type { ConversationIndex } from "./ConversationIndex.js"
import type { LiveEvents } from "./LiveEvents.js"
import type { ApprovalError } from "../services/Approvals.js"
import {
  ApprovalConflict,
  ApprovalNotFound,
  BadRequest,
  Busy,
  NoAnswer,
  NotFound,
  ReloadFailed,
  type SendBody,
  ServeApi,
  Stopping,
  TimedOut
} from "./ServeApi.js"

/** What the handlers work with: the running organism and the server's own state. */
export interface ServeState {
  readonly file: string
  readonly pump: Pump.Service
  readonly engine: XmlEngine.Service
  readonly models: LlmRouter.Service
  readonly index: ConversationIndex
  readonly live: LiveEvents
  /** Parses a payload element written as XML (loadOrganism's parser, with its checks). */
  readonly parsePayloadXml: (xml: string) => Either.Either<RawPayload, string>
  /** Loads the organism file again and hot-reloads the pump with it. */
  readonly reload: Effect.Effect<{ added: ReadonlyArray<string>; removed: ReadonlyArray<string>; updated: ReadonlyArray<string>; details: ReadonlyArray<string> }, ReloadFailed>
  /**
   * How long an injection waits for one of the inbox's permits before the answer is 429:
   * the pump admits at most `inbox_capacity` external messages in flight.
   */
  readonly admissionWait: Duration.Duration
}

export class ServeContext extends Context.Tag("xml-organism/server/ServeContext")<ServeContext, ServeState>() {}

const DEFAULT_REQUEST_TIMEOUT = Duration.seconds(30)

type PayloadTypes = Map<string, { type: Payload.PayloadType; listeners: Array<string>; builtin: boolean }>

/**
 * Per version of the organism (a reload makes a new one): every injection looks its payload
 * type up here.
 */
const payloadTypesCache = new WeakMap<object, PayloadTypes>()

/** The payload types an organism knows: its listeners' and the framework's own. */
export const payloadTypesOf = (pump: Pump.Service): PayloadTypes => {
  const organism = pump.organism
  let types = payloadTypesCache.get(organism)
  if (types === undefined) {
    types = collectPayloadTypes(organism.listeners as ReadonlyArray<Listener>)
    payloadTypesCache.set(organism, types)
  }
  return types
}

const collectPayloadTypes = (listeners: ReadonlyArray<Listener>): PayloadTypes => {
  const byTag: PayloadTypes = new Map()
  const add = (type: Payload.PayloadType, listener: string | undefined, builtin: boolean) => {
    const key = type.payloadTag.toLowerCase()
    let entry = byTag.get(key)
    if (entry === undefined) {
      entry = { type, listeners: [], builtin }
      byTag.set(key, entry)
    }
    if (listener !== undefined && !entry.listeners.includes(listener)) entry.listeners.push(listener)
  }
  // A listener's own payload type first: a send without `to` goes to the first listener named.
  const own = listeners.filter((l) => !l.name.startsWith("system."))
  for (const l of own) add(l.payload, l.name, false)
  for (const l of own) for (const t of l.accepts) add(t, l.name, false)
  for (const t of Object.values(builtinPayloads)) add(t, undefined, true)
  return byTag
}

const tooBusy = (wait: Duration.Duration) =>
  new Busy({
    message: `the organism's inbox is full (no permit within ${Duration.format(wait)}); retry later`,
    retryAfterSeconds: 1
  })

const injectError = (wait: Duration.Duration) => (e: InjectError) => {
  switch (e._tag) {
    case "PumpStopped":
      return new Stopping({ message: e.message })
    case "InboxFull":
      return tooBusy(wait)
    case "PayloadNotEncodable":
      return new BadRequest({ message: e.message })
  }
}

const requestError = (e: RequestError) => {
  switch (e._tag) {
    case "PumpStopped":
      return new Stopping({ message: e.message })
    case "InboxFull":
      return new Busy({ message: e.message, retryAfterSeconds: 1 })
    case "PayloadNotEncodable":
      return new BadRequest({ message: e.message })
    case "NoReply":
      return new NoAnswer({ message: e.message, thread: e.thread, code: null })
    case "RequestFailed":
      return new NoAnswer({ message: e.message, thread: e.thread, code: e.error.code })
    case "RequestTimedOut":
      return new TimedOut({ message: e.message, thread: e.thread })
  }
}

/** The target and payload a body asks to send, or why it cannot be sent. */
export const resolveSend = (
  state: ServeState,
  body: SendBody
): Either.Either<{ readonly to: string; readonly payload: PayloadValue; readonly from: string | undefined }, BadRequest> => {
  const types = payloadTypesOf(state.pump)
  let payload: PayloadValue
  let tag: string
  if (body.xml !== undefined) {
    if (body.type !== undefined || body.fields !== undefined) {
      return Either.left(new BadRequest({ message: "give either xml, or type and fields, not both" }))
    }
    const parsed = state.parsePayloadXml(body.xml)
    if (Either.isLeft(parsed)) return Either.left(new BadRequest({ message: `xml: ${parsed.left}` }))
    payload = parsed.right
    tag = parsed.right.tag
  } else if (body.type !== undefined) {
    const entry = types.get(body.type.toLowerCase())
    if (entry === undefined) {
      const near = closest(body.type, [...types.values()].map((t) => t.type.payloadTag))
      return Either.left(new BadRequest({ message: `no payload type is called ${body.type}${near === undefined ? "" : ` (did you mean ${near}?)`}` }))
    }
    const decoded = Schema.decodeUnknownEither(entry.type as Schema.Schema<object, unknown>)(body.fields ?? {}, { onExcessProperty: "error" })
    if (Either.isLeft(decoded)) {
      return Either.left(new BadRequest({ message: `fields of ${entry.type.payloadTag}: ${ParseResult.TreeFormatter.formatErrorSync(decoded.left)}` }))
    }
    payload = decoded.right
    tag = entry.type.payloadTag
  } else {
    return Either.left(new BadRequest({ message: "give the payload as xml, or as type and fields" }))
  }
  const names = (state.pump.organism.listeners as ReadonlyArray<Listener>).map((l) => l.name)
  let to = body.to
  if (to === undefined) {
    to = types.get(tag.toLowerCase())?.listeners[0]
    if (to === undefined) return Either.left(new BadRequest({ message: `no listener takes <${tag}>: say which one with "to"` }))
  } else if (!names.some((n) => n.toLowerCase() === to!.toLowerCase())) {
    const near = closest(to, names)
    return Either.left(
      new BadRequest({ message: `no listener is called ${to}${near === undefined ? ` (listeners: ${names.join(", ")})` : ` (did you mean ${near}?)`}` })
    )
  }
  return Either.right({ to, payload, from: body.from })
}

/** An answer's payload as its XML element. */
const answerXml = (state: ServeState, value: unknown): { payloadType: string; payload: string } => {
  if (value instanceof RawPayload) return { payloadType: value.tag, payload: value.xml }
  const type = Payload.typeOfValue(value)
  if (type !== undefined) {
    const xml = Payload.encode(type, value, state.pump.organism.settings.wire)
    if (Either.isRight(xml)) return { payloadType: type.payloadTag, payload: xml.right }
  }
  return { payloadType: "unknown", payload: "" }
}

/**
 * What POST /api/inject does with its decoded body, and POST /api/inject/raw with its bytes:
 * one function each, which both the API's handlers and the injection lane
 * (internal/InjectLane.ts) run, so the two answer alike by construction. An injection waits
 * for a permit at most the admission wait; a free one is taken at once.
 */
export const injectSend = (state: ServeState, body: SendBody): Effect.Effect<{ readonly thread: string }, BadRequest | Busy | Stopping> => {
  const send = resolveSend(state, body)
  if (Either.isLeft(send)) return Effect.fail(send.left)
  const { from, payload, to } = send.right
  const maxWait = state.admissionWait
  return state.pump.inject(to, payload, from === undefined ? { maxWait } : { from, maxWait }).pipe(
    Effect.map((thread) => ({ thread })),
    Effect.mapError(injectError(maxWait))
  )
}

export const injectBytes = (state: ServeState, bytes: Uint8Array): Effect.Effect<{ readonly accepted: boolean; readonly size: number }, BadRequest | Busy | Stopping> => {
  if (bytes.length === 0) return Effect.fail(new BadRequest({ message: "the body is empty: send the envelope's bytes" }))
  const maxWait = state.admissionWait
  return state.pump.injectRaw(bytes, { maxWait }).pipe(
    Effect.as({ accepted: true, size: bytes.length }),
    Effect.mapError(injectError(maxWait))
  )
}

const MessagesLive = HttpApiBuilder.group(ServeApi, "messages", (handlers) =>
  Effect.gen(function*() {
    const state = yield* ServeContext
    return handlers
      .handle("inject", ({ payload: body }) => injectSend(state, body))
      .handle("injectRaw", ({ payload: bytes }) => injectBytes(state, bytes))
      .handle("request", ({ payload: body }) =>
        Effect.gen(function*() {
          const send = yield* resolveSend(state, body)
          const timeout = body.timeoutMs === undefined ? DEFAULT_REQUEST_TIMEOUT : Duration.millis(body.timeoutMs)
          // The admission wait and the answer share one deadline: past it, 504.
          const answer = yield* state.pump.request(send.to, send.payload, { timeout, ...(send.from === undefined ? {} : { from: send.from }) }).pipe(
            Effect.mapError(requestError),
            Effect.timeoutFail({
              duration: Duration.sum(timeout, state.admissionWait),
              onTimeout: () => new TimedOut({ message: "no answer within the request timeout (the inbox was full)", thread: null })
            })
          )
          return answerXml(state, answer)
        }))
  }))

const ConversationsLive = HttpApiBuilder.group(ServeApi, "conversations", (handlers) =>
  Effect.gen(function*() {
    const state = yield* ServeContext
    return handlers
      .handle("list", ({ urlParams }) => Effect.sync(() => state.index.list(urlParams.limit)))
      .handle("get", ({ path }) =>
        Effect.suspend(() => {
          const detail = state.index.get(path.thread)
          return detail === undefined
            ? Effect.fail(new NotFound({ message: `no conversation ${path.thread} (unknown, or older than the last ${state.index.limits.maxConversations} kept)` }))
            : Effect.succeed(detail)
        }))
  }))

const OrganismLive = HttpApiBuilder.group(ServeApi, "organism", (handlers) =>
  Effect.gen(function*() {
    const state = yield* ServeContext
    const { pump } = state
    return handlers
      .handle("info", () =>
        Effect.sync(() => ({
          name: pump.organism.settings.name,
          file: state.file,
          injector: pump.organism.settings.injector,
          // The platform's own listeners (system.*) are not the organism's.
          listeners: (pump.organism.listeners as ReadonlyArray<Listener>).filter((l) => !l.name.startsWith("system.")).map((l) => ({
            name: l.name,
            description: l.description,
            payloadType: l.payload.payloadTag,
            accepts: l.accepts.map((t) => t.payloadTag),
            agent: l.agent,
            peers: l.peers === undefined ? null : [...l.peers]
          }))
        })))
      .handle("counters", () =>
        Effect.sync(() => {
          const u = state.models.usage().totals
          return {
            ...pump.counters(),
            threads: pump.threads(),
            conversationsIndexed: state.index.size,
            liveClients: state.live.connected,
            models: { requests: u.requests, promptTokens: u.promptTokens, completionTokens: u.completionTokens, costUsd: u.costUsd }
          }
        }))
      .handle("deadLetters", () => Effect.sync(() => pump.deadLetters()))
      .handle("prompts", () =>
        Effect.sync(() => {
          const prompts = pump.prompts()
          return prompts.unsafeAgents().flatMap((agent) => {
            const p = prompts.unsafePromptFor(agent)
            return p === undefined ? [] : [{ agent: p.agent, prompt: p.prompt, usage: p.usage, system: p.system }]
          })
        }))
      .handle("payloads", () =>
        Effect.sync(() => {
          const wire = pump.organism.settings.wire
          return [...payloadTypesOf(pump).values()].map(({ builtin, listeners, type }) => {
            const spec = Payload.specOf(type, wire)
            return { tag: spec.tag, description: spec.description ?? "", listeners, builtin, xsd: spec.xsd, example: spec.example }
          })
        }))
      .handle("reload", () => state.reload)
  }))

const approvalError = (e: ApprovalError) =>
  e._tag === "ApprovalNotPending"
    ? new ApprovalNotFound({ message: e.message, id: e.id })
    : new ApprovalConflict({ message: e.message, id: e.id, seen: e.seen })

const ApprovalsLive = HttpApiBuilder.group(ServeApi, "approvals", (handlers) =>
  Effect.gen(function*() {
    const { pump } = yield* ServeContext
    return handlers
      .handle("list", () => pump.approvals.pending)
      .handle("approve", ({ path, payload }) =>
        Effect.mapError(pump.approvals.approve(path.id, { envelope: payload?.envelope, by: payload?.by ?? "http" }), approvalError))
      .handle("deny", ({ path, payload }) =>
        Effect.mapError(
          pump.approvals.deny(path.id, payload.reason, { envelope: payload.envelope, by: payload.by ?? "http" }),
          approvalError
        ))
  }))

/** The API's handlers, given a ServeContext. */
export const handlersLayer = Layer.mergeAll(MessagesLive, ConversationsLive, OrganismLive, ApprovalsLive)
