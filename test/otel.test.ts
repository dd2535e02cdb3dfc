/**
 * OpenTelemetry: spans built from the pump's events reach a real OTLP/HTTP receiver on
 * loopback, in both encodings (protobuf, the default, and JSON), with their parent links and
 * the GenAI attributes of model calls. The agent runs against the mock model server through
 * the real LlmRouter.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Option, Schema, Scope, Tracer } from "effect"
import { Listener } from "../src/pipeline/Listeners.js"
import { LlmConfig } from "../src/domain/LlmConfig.js"
import { Organism } from "../src/domain/Organism.js"
import { HandlerCompleted, MessageReceived, ThreadCompleted, ThreadCreated } from "../src/domain/PumpEvent.js"
import { TextInput } from "../src/domain/SystemPayloads.js"
import { MockLlmServer } from "../src/llm/MockLlmServer.js"
import * as Tracing from "../src/observability/Tracing.js"
import { type OtlpProtocol, tracingOptions } from "../src/observability/TracingConfig.js"
import { Pump } from "../src/pipeline/Pump.js"
import { LlmRouter } from "../src/services/LlmRouter.js"
import { otlpReceiver, type ReceivedSpan } from "./support/otlpReceiver.js"

const organism = Organism.make({
  listeners: [Listener.llmAgent({ name: "assistant", payload: TextInput, prompt: "You answer." })]
})

/**
 * Runs one conversation with tracing to the receiver, then closes the run's scope (which
 * sends the spans still waiting) and returns what the receiver got.
 */
const traced = (protocol: OtlpProtocol, hopSampleRatio = 0, sampleRatio = 1) =>
  Effect.gen(function*() {
    const receiver = yield* otlpReceiver
    const server = yield* MockLlmServer.make({
      script: {
        responses: [
          { status: 500, error: "overloaded" },
          { text: "<Respond>hi</Respond>", usage: { prompt_tokens: 42, completion_tokens: 7 } }
        ]
      }
    })
    const config = Schema.decodeUnknownSync(LlmConfig)({
      retries: 1,
      backoff_base: "1 millis",
      backoff_max: "1 millis",
      backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["m"] }]
    })
    const services = Layer.provideMerge(LlmRouter.layer(config, { baseDir: __dirname }), Pump.layerServicesFor(organism))
    const run = yield* Scope.make()
    yield* Effect.gen(function*() {
      yield* Tracing.observe({
        url: `${receiver.url}/v1/traces`,
        protocol,
        serviceName: "otel-test",
        headers: {},
        hopSampleRatio,
        sampleRatio
      })
      const pump = yield* Pump.make(organism)
      yield* pump.inject("assistant", new TextInput({ text: "hello", source: "test", user: "" }))
      yield* pump.awaitIdle
    }).pipe(Effect.provide(services), Scope.extend(run))
    yield* Scope.close(run, Exit.void)
    return { spans: receiver.spans(), contentTypes: receiver.contentTypes() }
  }).pipe(Effect.scoped)

const one = (spans: ReadonlyArray<ReceivedSpan>, name: string) => {
  const found = spans.filter((s) => s.name === name)
  expect(found.map((s) => s.name), `spans named ${name} among ${spans.map((s) => s.name).join(", ")}`).toEqual([name])
  return found[0]!
}

describe("OpenTelemetry over OTLP/HTTP", () => {
  for (const protocol of ["http/protobuf", "http/json"] as const) {
    it.live(`${protocol}: conversation → handler → chat, linked, with the GenAI attributes`, () =>
      Effect.gen(function*() {
        const { spans, contentTypes } = yield* traced(protocol)
        expect(contentTypes.length).toBeGreaterThan(0)
        for (const t of contentTypes) expect(t).toBe(protocol === "http/json" ? "application/json" : "application/x-protobuf")

        const chat = one(spans, "chat m")
        const handler = one(spans, "handler assistant")
        // The conversation of the injected message: the one the handler is in.
        const conversation = spans.find((s) => s.spanId === handler.parentSpanId)!
        expect(conversation.name).toBe("conversation")
        expect(conversation.parentSpanId).toBe("")
        expect(chat.parentSpanId).toBe(handler.spanId)
        expect(new Set([chat.traceId, handler.traceId, conversation.traceId]).size).toBe(1)
        expect(conversation.serviceName).toBe("otel-test")

        expect(chat.attributes).toMatchObject({
          "gen_ai.operation.name": "chat",
          "gen_ai.system": "openai",
          "gen_ai.request.model": "m",
          "gen_ai.response.model": "m",
          "gen_ai.usage.input_tokens": 42,
          "gen_ai.usage.output_tokens": 7,
          "gen_ai.response.finish_reasons": ["stop"],
          "organism.agent": "assistant",
          "organism.llm.backend": "local",
          "organism.llm.attempts": 2
        })
        // The retried attempt is an event of the call's span.
        expect(chat.events).toContain("attempt failed")
        expect(chat.kind).toBe(3) // client
        expect(handler.attributes).toMatchObject({ "organism.listener": "assistant", "organism.payload_type": "TextInput" })
        expect(conversation.attributes["organism.invocations"]).toBe(1)
        // Times nest: the call inside the handler inside the conversation.
        expect(chat.startNanos >= handler.startNanos && chat.endNanos <= handler.endNanos).toBe(true)
        expect(handler.startNanos >= conversation.startNanos && handler.endNanos <= conversation.endNanos).toBe(true)
        // Hops are not traced unless asked.
        expect(spans.filter((s) => s.name.startsWith("hop "))).toEqual([])
      }))
  }

  it.live("hops are traced when sampled: each a child of the handler that wrote it, or of its conversation", () =>
    Effect.gen(function*() {
      const { spans } = yield* traced("http/json", 1)
      const hops = spans.filter((s) => s.name.startsWith("hop "))
      const input = hops.find((s) => s.name === "hop TextInput")!
      const output = hops.find((s) => s.name === "hop TextOutput")!
      const handler = one(spans, "handler assistant")
      expect(input.parentSpanId).toBe(handler.parentSpanId)
      expect(output.parentSpanId).toBe(handler.spanId)
      expect(output.attributes).toMatchObject({ "organism.from": "assistant", "organism.origin": "reply" })
    }))

  it.live("a conversation left out by the sampler sends nothing", () =>
    Effect.gen(function*() {
      const { contentTypes, spans } = yield* traced("http/json", 1, 0)
      expect(spans).toEqual([])
      expect(contentTypes).toEqual([])
    }))

  it.effect("the sampler's ratio is per conversation, the same for all its events", () =>
    Effect.gen(function*() {
      const ended: Array<string> = []
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind) =>
          ({
            name, spanId: String(ended.length), traceId: "t", parent, context, links, sampled: true, kind,
            status: { _tag: "Started", startTime }, attributes: new Map(),
            attribute: () => {}, event: () => {}, addLinks: () => {}, end: () => void ended.push(name)
          }) as unknown as Tracer.Span,
        context: (f) => f()
      })
      const builder = Tracing.makeSpanBuilder(tracer, { hopSampleRatio: 0, sampleRatio: 0.5 })
      for (let i = 0; i < 400; i++) {
        const root = `conversation-${i}`
        builder.onEvent(new ThreadCreated({ thread: root, time: i, injector: "console", to: "a" }))
        builder.onEvent(new MessageReceived({ thread: root, root, parent: null, time: i, from: "console", to: "a", payloadType: "P", payload: "", diagnostics: [], envelope: "" }))
        builder.onEvent(new HandlerCompleted({ thread: root, root, time: i + 0.5, listener: "a", replies: [], durationMs: 0.5 }))
        builder.onEvent(new ThreadCompleted({ thread: root, time: i + 1, invocations: 1 }))
      }
      const conversations = ended.filter((n) => n === "conversation").length
      expect(conversations).toBeGreaterThan(140)
      expect(conversations).toBeLessThan(260)
      // Every traced conversation has its handler span; no other does.
      expect(ended.filter((n) => n === "handler a")).toHaveLength(conversations)
      expect(builder.openConversations()).toBe(0)
    }))

  it.effect("the standard variables turn tracing on; --otel wins; nothing set is tracing off", () =>
    Effect.gen(function*() {
      const withEnv = (env: Record<string, string>, otel?: string) =>
        tracingOptions({ otel, serviceName: "org" }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
      expect(yield* withEnv({})).toEqual(Option.none())
      expect(yield* withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" })).toEqual(Option.none())
      const fromEnv = Option.getOrThrow(yield* withEnv({
        OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318/",
        OTEL_SERVICE_NAME: "svc",
        OTEL_EXPORTER_OTLP_HEADERS: "api-key=abc,x=1",
        ORGANISM_OTEL_HOPS: "0.25"
      }))
      expect(fromEnv).toMatchObject({
        url: "http://c:4318/v1/traces",
        protocol: "http/protobuf",
        serviceName: "svc",
        headers: { "api-key": "abc", x: "1" },
        hopSampleRatio: 0.25
      })
      const traces = Option.getOrThrow(yield* withEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://t/v1/traces", OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }))
      expect(traces).toMatchObject({ url: "http://t/v1/traces", protocol: "http/json", serviceName: "org" })
      const flag = Option.getOrThrow(yield* withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }, "http://other:4318"))
      expect(flag.url).toBe("http://other:4318/v1/traces")
      const sampled = Option.getOrThrow(yield* withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: "0.1", OTEL_BSP_SCHEDULE_DELAY: "500" }))
      expect(sampled).toMatchObject({ sampleRatio: 0.1, exportIntervalMs: 500 })
      expect(Option.getOrThrow(yield* withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", OTEL_TRACES_SAMPLER: "always_off" })).sampleRatio).toBe(0)
      const bad = yield* Effect.either(withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c", ORGANISM_OTEL_HOPS: "2" }))
      expect(bad._tag).toBe("Left")
    }))
})
