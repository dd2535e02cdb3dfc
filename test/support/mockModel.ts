/** An organism with LLM agents, run against the mock model server on loopback. */
import { Effect, Layer, Schema } from "effect"
import { LlmConfig } from "../../src/domain/LlmConfig.js"
import type { Organism } from "../../src/domain/Organism.js"
import type { PumpEvent } from "../../src/domain/PumpEvent.js"
import { MockLlmServer } from "../../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../../src/llm/MockScript.js"
import type { Conversation } from "../../src/pipeline/Conversation.js"
import { Pump } from "../../src/pipeline/Pump.js"
import { LlmRouter } from "../../src/services/LlmRouter.js"
import { type Harness, withPump } from "./pump.js"

export interface ModelHarness extends Harness {
  readonly server: MockLlmServer.Service
}

/**
 * Starts the mock server with `script`, a router over it (Chat Completions, no retries), and
 * a pump for `organism`; runs `body`, then checks the books (withPump).
 */
export const withMockModel = <A, E>(
  script: MockScriptInput,
  organism: Organism<LlmRouter | Conversation>,
  body: (h: ModelHarness) => Effect.Effect<A, E, LlmRouter>
) =>
  Effect.gen(function*() {
    const server = yield* MockLlmServer.make({ script })
    const config = Schema.decodeUnknownSync(LlmConfig)({
      retries: 0,
      backends: [{ name: "local", provider: "openai-compatible", base_url: server.openAiUrl, models: ["m"] }]
    })
    const services = Layer.provideMerge(LlmRouter.layer(config, { baseDir: __dirname, env: {} }), Pump.layerServicesFor(organism))
    return yield* withPump(organism, (h) => body({ ...h, server }), services)
  }).pipe(Effect.scoped)

/** What was delivered between listeners (the pump's own SystemErrors included), in order. */
export const deliveries = (events: ReadonlyArray<PumpEvent>) =>
  events.flatMap((e) => (e._tag === "MessageReceived" && e.to !== "system.boot" ? [`${e.from} → ${e.to}: ${e.payloadType}`] : []))

export const guardsOf = (events: ReadonlyArray<PumpEvent>) => events.flatMap((e) => (e._tag === "GuardTripped" ? [e.guard] : []))

/** How the conversation `thread` ended (its ThreadCompleted). */
export const endingOf = (events: ReadonlyArray<PumpEvent>, thread: string) => {
  const done = events.find((e) => e._tag === "ThreadCompleted" && e.thread === thread)
  return done?._tag === "ThreadCompleted" ? { reason: done.reason, detail: done.detail } : undefined
}

/** Real time passes (the mock server and the sockets run on it, whatever clock the test has). */
export const realSleep = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/** Waits, in real time, until `check` holds (at most ~5 s). */
export const eventually = (check: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500 && !check(); i++) yield* realSleep(10)
  })
