/**
 * Tracing: OpenTelemetry spans built from the pump's events and sent over OTLP/HTTP by
 * `@effect/opentelemetry`'s OtlpTracer (protobuf or JSON, batched every few seconds, flushed
 * when the run ends).
 *
 * The spans come from the event stream (`Events.observe`), not from code in the pump: with
 * tracing off nothing observes, so an organism pays nothing for it. Each event carries the
 * ids that place it (thread, root, parent), so the tree is rebuilt here:
 *
 *   conversation                 ThreadCreated → ThreadCompleted (one trace per conversation)
 *   ├─ handler <listener>         MessageReceived → HandlerCompleted / HandlerFailed
 *   │  └─ chat <model>           LlmCallStarted → LlmCallCompleted / final LlmCallFailed,
 *   │                             with the GenAI attributes @effect/ai's Telemetry writes
 *   └─ hop <Payload>             MessageSent → MessageReceived / MessageRejected (sampled)
 *
 * A model call's parent is the handler of the calling agent running in that conversation
 * (the router knows the conversation and the agent, not the job); the conversation itself
 * when none is open. Spans with no ending event (a delivery back to an injector, a run cut
 * short) are never sent.
 */
import type { HttpClient } from "@effect/platform"
import * as OtlpSerialization from "@effect/opentelemetry/OtlpSerialization"
import * as OtlpTracer from "@effect/opentelemetry/OtlpTracer"
import { Context, Effect, Exit, Layer, Option, type Scope, type Tracer } from "effect"
import type { PumpEvent } from "../domain/PumpEvent.js"
import { Events } from "../services/Events.js"
import type { TracingOptions } from "./TracingConfig.js"

/** Event times are epoch milliseconds with a fraction; spans want nanoseconds. */
const nanos = (ms: number) => BigInt(Math.round(ms * 1_000_000))

/** `gen_ai.system` as @effect/ai writes it: the well-known names, else the provider's own. */
const genAiSystem = (provider: string) => (provider === "openai-compatible" ? "openai" : provider)

/** A number in [0, 1) from a conversation id, so hop sampling is the same for every event of it. */
const fraction = (id: string) => {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  return (h >>> 0) / 0x1_0000_0000
}

interface Conversation {
  readonly span: Tracer.Span
  /** Handler spans by `thread \0 listener`. */
  readonly handlers: Map<string, Tracer.Span>
  /** Open handler spans per listener, oldest first: a model call's parent is the newest. */
  readonly running: Map<string, Array<Tracer.Span>>
  readonly calls: Map<string, Tracer.Span>
  /** Hop spans by the thread id of the envelope written; undefined when hops are not sampled. */
  readonly hops: Map<string, Tracer.Span> | undefined
}

/** The listener's most recently started handler span still open in the conversation. */
const newest = (c: Conversation, listener: string) => {
  const running = c.running.get(listener)
  return running === undefined || running.length === 0 ? undefined : running[running.length - 1]
}

const ok = Exit.void
const failed = (message: string) => Exit.fail(message)

/**
 * The span builder over a Tracer: `onEvent` for every pump event, in order. Exposed for tests
 * (with any Tracer) and used by `Tracing.observe`.
 */
export const makeSpanBuilder = (tracer: Tracer.Tracer, options: Pick<TracingOptions, "hopSampleRatio" | "sampleRatio">) => {
  const conversations = new Map<string, Conversation>()
  /** Conversations left out by sampling, until they complete. */
  const skipped = new Set<string>()
  const ratio = options.sampleRatio ?? 1
  const sampled = (root: string) => ratio >= 1 || (ratio > 0 && fraction(`trace:${root}`) < ratio)
  const empty = Context.empty()

  const start = (name: string, parent: Tracer.Span | undefined, time: number, kind: Tracer.SpanKind, attributes: Record<string, unknown>) => {
    const span = tracer.span(name, parent === undefined ? Option.none() : Option.some(parent), empty, [], nanos(time), kind)
    for (const key in attributes) {
      const value = attributes[key]
      if (value !== undefined && value !== null) span.attribute(key, value)
    }
    return span
  }

  const open = (root: string, time: number, attributes: Record<string, unknown> = {}): Conversation => {
    const sampled = options.hopSampleRatio >= 1 || (options.hopSampleRatio > 0 && fraction(root) < options.hopSampleRatio)
    const c: Conversation = {
      span: start("conversation", undefined, time, "server", { "organism.conversation": root, ...attributes }),
      handlers: new Map(),
      running: new Map(),
      calls: new Map(),
      hops: sampled ? new Map() : undefined
    }
    conversations.set(root, c)
    return c
  }

  /** The conversation of an event; one observed from its middle (tracing began late) opens now. */
  const of = (root: string | null, time: number): Conversation | undefined => {
    if (root === null) return undefined
    const c = conversations.get(root)
    if (c !== undefined || skipped.has(root)) return c
    if (sampled(root)) return open(root, time)
    skipped.add(root)
    return undefined
  }

  const endHandler = (c: Conversation, thread: string | null, listener: string, time: number, exit: Exit.Exit<unknown, unknown>, attributes: Record<string, unknown>) => {
    const key = `${thread}\u0000${listener}`
    const span = c.handlers.get(key)
    if (span === undefined) return
    c.handlers.delete(key)
    const running = c.running.get(listener)
    if (running !== undefined) {
      const i = running.lastIndexOf(span)
      if (i >= 0) running.splice(i, 1)
    }
    for (const k in attributes) span.attribute(k, attributes[k])
    span.end(nanos(time), exit)
  }

  const endHop = (c: Conversation, thread: string | null, time: number, exit: Exit.Exit<unknown, unknown>) => {
    if (c.hops === undefined || thread === null) return
    const span = c.hops.get(thread)
    if (span === undefined) return
    c.hops.delete(thread)
    span.end(nanos(time), exit)
  }

  const onEvent = (e: PumpEvent): void => {
    switch (e._tag) {
      case "ThreadCreated": {
        if (e.thread === null || conversations.has(e.thread) || skipped.has(e.thread)) return
        if (sampled(e.thread)) open(e.thread, e.time, { "organism.injector": e.injector, "organism.target": e.to })
        else skipped.add(e.thread)
        return
      }
      case "ThreadCompleted": {
        if (e.thread === null) return
        skipped.delete(e.thread)
        const c = conversations.get(e.thread)
        if (c === undefined) return
        conversations.delete(e.thread)
        c.span.attribute("organism.invocations", e.invocations)
        c.span.end(nanos(e.time), ok)
        return
      }
      case "MessageSent": {
        const c = of(e.root, e.time)
        if (c?.hops === undefined || e.thread === null) return
        // The hop is a child of the handler that wrote it (a reply is written while its
        // handler's job is open), else of the conversation.
        const sender = e.origin === "reply" ? newest(c, e.from) : undefined
        c.hops.set(
          e.thread,
          start(`hop ${e.payloadType}`, sender ?? c.span, e.time, "producer", {
            "organism.from": e.from,
            "organism.to": e.to,
            "organism.payload_type": e.payloadType,
            "organism.origin": e.origin,
            "organism.thread": e.thread
          })
        )
        return
      }
      case "MessageReceived": {
        const c = of(e.root, e.time)
        if (c === undefined) return
        endHop(c, e.thread, e.time, ok)
        if (e.parent !== null) endHop(c, e.parent, e.time, ok)
        if (e.to === "") return
        const span = start(`handler ${e.to}`, c.span, e.time, "consumer", {
          "organism.listener": e.to,
          "organism.from": e.from,
          "organism.payload_type": e.payloadType,
          "organism.thread": e.thread,
          "organism.parent_thread": e.parent
        })
        c.handlers.set(`${e.thread}\u0000${e.to}`, span)
        const running = c.running.get(e.to)
        if (running === undefined) c.running.set(e.to, [span])
        else running.push(span)
        return
      }
      case "MessageRejected": {
        const c = e.root === null ? undefined : conversations.get(e.root)
        if (c !== undefined) endHop(c, e.thread, e.time, failed(`rejected at ${e.stage} (${e.kind}): ${e.reason}`))
        return
      }
      case "HandlerCompleted": {
        const c = e.root === null ? undefined : conversations.get(e.root)
        if (c !== undefined) {
          endHandler(c, e.thread, e.listener, e.time, ok, { "organism.replies": e.replies.join(","), "organism.duration_ms": e.durationMs })
        }
        return
      }
      case "HandlerFailed": {
        const c = e.root === null ? undefined : conversations.get(e.root)
        if (c !== undefined) endHandler(c, e.thread, e.listener, e.time, failed(`${e.reason}: ${e.detail}`), { "organism.failure": e.reason })
        return
      }
      case "LlmCallStarted": {
        const c = of(e.root, e.time)
        if (c === undefined) return
        const existing = c.calls.get(e.call)
        if (existing !== undefined) {
          existing.event("attempt", nanos(e.time), { "organism.llm.backend": e.backend, "organism.llm.attempt": e.attempt })
          return
        }
        const parent = newest(c, e.agent) ?? c.span
        c.calls.set(
          e.call,
          start(`chat ${e.model}`, parent, e.time, "client", {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": genAiSystem(e.provider),
            "gen_ai.request.model": e.model,
            "gen_ai.request.max_tokens": e.maxOutputTokens,
            "organism.agent": e.agent,
            "organism.llm.backend": e.backend,
            "organism.llm.stream": e.stream
          })
        )
        return
      }
      case "LlmCallCompleted": {
        const c = e.root === null ? undefined : conversations.get(e.root)
        const span = c?.calls.get(e.call)
        if (c === undefined || span === undefined) return
        c.calls.delete(e.call)
        span.attribute("gen_ai.response.model", e.model)
        span.attribute("gen_ai.usage.input_tokens", e.inputTokens)
        span.attribute("gen_ai.usage.output_tokens", e.outputTokens)
        span.attribute("gen_ai.response.finish_reasons", [e.finishReason])
        span.attribute("organism.llm.backend", e.backend)
        span.attribute("organism.llm.attempts", e.attempt)
        span.attribute("organism.llm.cost_usd", e.costUsd)
        span.attribute("organism.llm.truncated", e.truncated)
        span.end(nanos(e.time), ok)
        return
      }
      case "LlmCallFailed": {
        const c = e.root === null ? undefined : conversations.get(e.root)
        const span = c?.calls.get(e.call)
        if (c === undefined || span === undefined) return
        if (!e.final) {
          span.event("attempt failed", nanos(e.time), {
            "organism.llm.backend": e.backend,
            "organism.llm.attempt": e.attempt,
            "organism.llm.error": e.error,
            ...(e.status === null ? {} : { "http.response.status_code": e.status })
          })
          return
        }
        c.calls.delete(e.call)
        span.attribute("error.type", e.reason ?? "failed")
        span.attribute("organism.llm.attempts", e.attempt)
        span.end(nanos(e.time), failed(e.error))
        return
      }
      case "RawReceived":
      case "AgentState":
      case "GuardTripped":
      case "ReloadEvent":
      case "ApprovalRequested":
      case "ApprovalDecided":
        return
    }
  }

  return { onEvent, openConversations: () => conversations.size }
}

const SHUTDOWN_TIMEOUT = "2 seconds"

/**
 * Sends spans of every conversation to `options.url` for the lifetime of the Scope; the
 * spans waiting are sent when it closes. Builds the exporter over Node's HTTP client.
 */
export const observe = (options: TracingOptions): Effect.Effect<void, never, Events | Scope.Scope> =>
  Effect.gen(function*() {
    const { layerUndici } = yield* Effect.promise(() => import("@effect/platform-node/NodeHttpClient"))
    // Built in the caller's scope: the client must outlive this call, until the last export.
    const client = yield* Layer.build(layerUndici)
    yield* observeWith(options).pipe(Effect.provide(client))
  })

/** `observe` over the HttpClient in context. */
export const observeWith = (options: TracingOptions): Effect.Effect<void, never, Events | HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function*() {
    const events = yield* Events
    const tracer = yield* OtlpTracer.make({
      url: options.url,
      resource: { serviceName: options.serviceName, serviceVersion: options.serviceVersion },
      headers: options.headers,
      exportInterval: options.exportIntervalMs ?? 2000,
      // Exports only on the interval and at the end, never because a batch filled up: a
      // batch export forked on the way would be interrupted (and its spans lost) when the
      // run ends, while the final flush sends everything still waiting.
      maxBatchSize: Number.MAX_SAFE_INTEGER,
      // At the end of a run, what is left is sent within this: an unreachable collector must
      // not hold the exit for long (failed exports are dropped silently, as OTLP exporters do).
      shutdownTimeout: SHUTDOWN_TIMEOUT
    }).pipe(Effect.provide(options.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf))
    const builder = makeSpanBuilder(tracer, options)
    yield* events.observe(builder.onEvent)
  })
