/**
 * LlmRouter: the organism's way to call models — backends (OpenAI, OpenAI-compatible servers,
 * Anthropic, the mock), strategies (failover, round-robin, least-loaded), retries with backoff
 * and jitter honouring Retry-After, fallback across backends, per-backend rate limits and
 * concurrency, usage and cost, and the token budget checked before and charged after every
 * call.
 *
 * One call, in order:
 * 1. the conversation's budget is checked (`BudgetExhausted`: no request is sent);
 * 2. the backends serving the model are ordered by the strategy — backends cooling down
 *    after a failure go last;
 * 3. on each backend in turn: wait for its rate limit (a delay, never a failure), take one of
 *    its concurrency slots for the HTTP exchange only, and send; a retryable failure (429,
 *    5xx, 408/409, timeout, dropped connection, unreadable body) is retried on the same
 *    backend after a backoff, up to `retries` times, then the next backend is tried;
 * 4. a refused request (another 4xx) ends the call at once (`rejected`): the request is wrong,
 *    not the backend. A stream that breaks after output has started ends it too
 *    (`stream-failed`): the caller has seen part of an answer that no other backend would
 *    continue;
 * 5. the usage is recorded (per agent, model, backend, with cost) and charged to the budget,
 *    whose warnings come back in the response.
 *
 * With an `Events` service in context (an organism's run), every attempt is published —
 * `LlmCallStarted`, then `LlmCallCompleted` or `LlmCallFailed` — and a call that gives up
 * ends with a final `LlmCallFailed`: the stream, the journal, tracing and the console see
 * each model exchange. Nothing is built while nobody listens.
 */
import type { AiError, Prompt, Response, Toolkit } from "@effect/ai"
import type { FileSystem, HttpClient, Path } from "@effect/platform"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Clock, Context, Duration, Effect, Either, Layer, Option, Schedule, type Scope, Stream } from "effect"
import {
  LlmAttempt,
  LlmConfigError,
  LlmError,
  type LlmRequest,
  type LlmResponse,
  type LlmToolCall,
  type LlmRouterService,
  type UsageLine
} from "../domain/Llm.js"
import type { LlmBackendConfig, LlmConfig, LlmProvider } from "../domain/LlmConfig.js"
import { LlmCallCompleted, LlmCallFailed, LlmCallStarted, LlmOutputDelta, makeEvent } from "../domain/PumpEvent.js"
import type { BackendConnection } from "../llm/LlmBackend.js"
import { AttemptFailed, classify, describeStreamError } from "../llm/LlmFailure.js"
import { makeRateLimit, type RateLimit } from "../llm/RateLimiter.js"
import { retrySchedule } from "../llm/RetrySchedule.js"
import { makeUsageLedger } from "../llm/UsageLedger.js"
import { requestHashes } from "../llm/RequestHash.js"
import { promptOf, toolCallFailure, toolCallsOf, toolkitOf } from "../llm/ToolPrompt.js"
import { BudgetRegistry } from "./BudgetRegistry.js"
import { Events } from "./Events.js"
import { SharedLimits } from "./SharedLimits.js"

export type { BackendStatus, UsageLine, UsageReport } from "../domain/Llm.js"

export declare namespace LlmRouter {
  /** The service's interface is a domain type, so domain types can name the requirement. */
  export interface Service extends LlmRouterService {}

  export interface Options {
    /** The organism file's directory: a mock backend's `script` is relative to it. */
    readonly baseDir: string
    /** Where API keys are read (`Config.redacted`): this map, or else the ConfigProvider (process.env by default). */
    readonly env?: Readonly<Record<string, string | undefined>> | undefined
  }
}

/** A backend at run time: its connection, limits and counters. */
interface Backend {
  readonly config: LlmBackendConfig
  readonly index: number
  readonly provider: LlmProvider
  readonly connection: BackendConnection
  readonly limiter: RateLimit
  readonly semaphore: Effect.Semaphore | undefined
  /** When to retry a failed request on this backend (its `retries`, the router's backoff). */
  readonly retry: Schedule.Schedule<number, AttemptFailed>
  readonly timeout: Duration.Duration
  /** Requests assigned to it now, whatever they are doing (the least-loaded measure). */
  assigned: number
  inFlight: number
  requests: number
  failures: number
  /** Epoch ms until which it is passed over; 0 when healthy. */
  coolingUntil: number
}

/** What one successful request produced. */
interface Completion {
  readonly text: string
  readonly promptTokens: number
  readonly completionTokens: number
  readonly reasoningTokens: number | undefined
  readonly finishReason: string
  /** Tool calls (a request with tools), and a problem reading them (see ToolPrompt.ts). */
  readonly toolCalls?: ReadonlyArray<LlmToolCall> | undefined
  readonly toolCallProblem?: string | undefined
  /** Which attempt of its call, and how long its exchange took (set once it succeeded). */
  readonly attempt?: number
  readonly latencyMs?: number
}

/** An answer whose tool calls could not be read: the problem is what the caller gets (usage estimated). */
const problemCompletion = (problem: string): Completion => ({
  text: "",
  promptTokens: -1,
  completionTokens: -1,
  reasoningTokens: undefined,
  finishReason: "tool-calls",
  toolCalls: [],
  toolCallProblem: problem
})

/** With tools offered, a failure to read the answer's tool calls is an answer, not an error. */
const unreadableToolCalls = (toolkit: Toolkit.Toolkit<any> | undefined, error: AiError.AiError) => {
  const problem = toolkit === undefined ? undefined : toolCallFailure(error)
  return problem === undefined ? undefined : Effect.succeed(problemCompletion(problem))
}

/** About four characters per token: the estimate for rate limits and missing usage figures. */
const estimateTokens = (chars: number) => Math.ceil(chars / 4)

const byPriority = (a: Backend, b: Backend): number => {
  // Lower first; backends without a priority after every numbered one, in file order.
  const pa = a.config.priority ?? Number.POSITIVE_INFINITY
  const pb = b.config.priority ?? Number.POSITIVE_INFINITY
  return pa < pb ? -1 : pa > pb ? 1 : a.index - b.index
}

const make = Effect.fn("LlmRouter.make")(function*(config: LlmConfig, options: LlmRouter.Options): Effect.fn.Return<
  LlmRouter.Service,
  LlmConfigError,
  BudgetRegistry | HttpClient.HttpClient | FileSystem.FileSystem | Path.Path | Scope.Scope
> {
  const budget = yield* BudgetRegistry
  const events = Option.getOrUndefined(yield* Effect.serviceOption(Events))
  // Limits shared with other processes (a durable organism's runners), when in context.
  const shared = Option.getOrUndefined(yield* Effect.serviceOption(SharedLimits))
  const observed = () => events !== undefined && events.active()
  let calls = 0
  // Cooldowns are set in this clock's time; `backends()` reads it outside any Effect.
  const clock = yield* Effect.clock
  // The provider clients (and their generated schemas) load only for an organism with
  // models: importing them costs every other run a third of its start-up time.
  const { connectBackend } = yield* Effect.promise(() => import("../llm/LlmBackend.js"))
  const backends: Array<Backend> = []
  for (const [index, b] of config.backends.entries()) {
    const connection = yield* connectBackend(b, { baseDir: options.baseDir, env: options.env })
    backends.push({
      config: b,
      index,
      provider: b.provider,
      connection,
      limiter: yield* makeRateLimit({ requestsPerMinute: b.rate_limit_rpm, tokensPerMinute: b.rate_limit_tpm }),
      semaphore: b.max_concurrent === undefined ? undefined : yield* Effect.makeSemaphore(b.max_concurrent),
      retry: retrySchedule({
        retries: b.retries ?? config.retries,
        base: config.backoff_base,
        max: config.backoff_max,
        retryAfterMax: config.retry_after_max
      }),
      timeout: b.timeout ?? config.timeout,
      assigned: 0,
      inFlight: 0,
      requests: 0,
      failures: 0,
      coolingUntil: 0
    })
  }
  const ledger = makeUsageLedger(config.prices)
  const cooldownMs = Duration.toMillis(config.cooldown)
  let turn = 0

  /** The order to try the candidates in: the strategy's among healthy ones, then the rest. */
  const order = (candidates: ReadonlyArray<Backend>, now: number): Array<Backend> => {
    const healthy = candidates.filter((b) => b.coolingUntil <= now).sort(byPriority)
    const cooling = candidates.filter((b) => b.coolingUntil > now).sort((a, b) => a.coolingUntil - b.coolingUntil || byPriority(a, b))
    let first: Array<Backend> = healthy
    if (healthy.length > 1) {
      if (config.strategy === "round-robin") {
        const start = turn++ % healthy.length
        first = [...healthy.slice(start), ...healthy.slice(0, start)]
      } else if (config.strategy === "least-loaded") {
        // A stable sort: equal loads keep the priority order.
        first = [...healthy].sort((a, b) => a.assigned - b.assigned)
      }
    }
    return [...first, ...cooling]
  }

  /** One HTTP exchange, plain: the whole answer or a failure. */
  const generate = (b: Backend, model: string, prompt: Prompt.Prompt, maxOutputTokens: number, toolkit?: Toolkit.Toolkit<any>) =>
    b.connection.generateText(model, prompt, maxOutputTokens, toolkit).pipe(
      Effect.map((r): Completion => ({
        text: r.text,
        promptTokens: r.usage.inputTokens ?? -1,
        completionTokens: r.usage.outputTokens ?? -1,
        reasoningTokens: r.usage.reasoningTokens,
        finishReason: r.finishReason,
        ...(toolkit !== undefined ? { toolCalls: toolCallsOf(r.content) } : {})
      })),
      Effect.catchAll((e) => unreadableToolCalls(toolkit, e) ?? Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(classify(e, false, now)))),
      Effect.timeoutFail({
        duration: b.timeout,
        onTimeout: () =>
          new AttemptFailed({
            kind: "retryable",
            status: undefined,
            retryAfterMs: undefined,
            message: `no answer within ${Duration.format(b.timeout)}`
          })
      })
    )

  /**
   * One HTTP exchange, streamed and gathered. A provider stops at the output cap itself; one
   * that goes on far past it (a server ignoring the cap: half as much again, by the estimate)
   * is cut off here, and the partial answer finishes with `length` like a capped one.
   * The stream has started once a
   * `response-metadata` or `text-delta` part arrived; a failure after that is `stream-failed`.
   * A stream that ends with an `error` part, or without a `finish` part, has failed: the
   * clients end some broken streams successfully.
   */
  const stream = (b: Backend, model: string, call: Call) =>
    Effect.suspend(() => {
      let started = false
      let text = ""
      let pieces = 0
      let cutOff = false
      const attemptNo = call.tries
      const toolkit = call.toolkit
      const toolCalls: Array<Response.AnyPart> = []
      let toolProblem: Completion | undefined
      const outputGuard = Math.ceil(call.maxOutputTokens * 1.5) + 32
      let finish: Response.FinishPart | undefined
      let error: { readonly error: unknown } | undefined
      const failed = (message: string) =>
        new AttemptFailed({
          kind: started ? "stream-failed" : "retryable",
          status: undefined,
          retryAfterMs: undefined,
          message,
          partialText: text
        })
      return b.connection.streamText(model, call.prompt, call.maxOutputTokens, toolkit).pipe(
        Stream.takeUntil((part) => part.type === "error" || cutOff),
        Stream.runForEach((part) =>
          Effect.sync(() => {
            switch (part.type) {
              case "response-metadata":
                started = true
                break
              case "text-delta":
                started = true
                text += part.delta
                if (estimateTokens(text.length) > outputGuard) cutOff = true
                // Built only while someone listens: the stream's hot path pays one check.
                if (observed() && part.delta !== "") {
                  events!.publish(makeEvent(LlmOutputDelta, {
                    thread: call.request.thread ?? call.request.root,
                    root: call.request.root,
                    time: nowMs(),
                    call: call.id,
                    agent: call.request.agent,
                    attempt: attemptNo,
                    index: pieces++,
                    delta: part.delta
                  }))
                }
                break
              case "tool-params-start":
                started = true
                break
              case "tool-call" as typeof part.type:
                // A toolkit widens the parts: tool calls come whole, once their arguments are in.
                started = true
                toolCalls.push(part as Response.AnyPart)
                break
              case "finish":
                finish = part
                break
              case "error":
                error = { error: part.error }
                break
            }
          })
        ),
        Effect.catchAll((e) => {
          const problem = toolkit === undefined ? undefined : toolCallFailure(e)
          if (problem !== undefined) {
            toolProblem = problemCompletion(problem)
            return Effect.void
          }
          return Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(classify(e, started, now, text)))
        }),
        Effect.timeoutFail({ duration: b.timeout, onTimeout: () => failed(`the stream did not finish within ${Duration.format(b.timeout)}`) }),
        Effect.flatMap((): Effect.Effect<Completion, AttemptFailed> => {
          if (error !== undefined) return Effect.fail(failed(`the provider sent an error in the stream: ${describeStreamError(error.error)}`))
          if (cutOff) {
            return Effect.succeed({
              text,
              promptTokens: -1,
              completionTokens: estimateTokens(text.length),
              reasoningTokens: undefined,
              finishReason: "length"
            })
          }
          if (finish === undefined) {
            // A stream whose tool calls could not be read has ended: the problem is the answer.
            return toolProblem === undefined ? Effect.fail(failed("the stream ended without finishing")) : Effect.succeed(toolProblem)
          }
          return Effect.succeed({
            text,
            promptTokens: finish.usage.inputTokens ?? -1,
            completionTokens: finish.usage.outputTokens ?? -1,
            reasoningTokens: finish.usage.reasoningTokens,
            finishReason: finish.reason,
            ...(toolkit !== undefined ? { toolCalls: toolCallsOf(toolCalls) } : {})
          })
        })
      )
    })

  interface Call {
    readonly request: LlmRequest
    readonly prompt: Prompt.Prompt
    readonly toolkit: Toolkit.Toolkit<any> | undefined
    readonly promptChars: number
    readonly maxOutputTokens: number
    readonly stream: boolean
    readonly attempts: Array<LlmAttempt>
    /** For the events: the call's id, attempts made, when it started (epoch ms). */
    readonly id: string
    tries: number
    readonly startedAt: number
    /** Computed for the first event, only when someone listens. */
    hashes?: { readonly requestHash: string; readonly messageHashes: ReadonlyArray<string> }
  }

  const nowMs = () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
  const callFields = (call: Call, b: Backend, model: string, attempt: number, time: number) => ({
    thread: call.request.root,
    root: call.request.root,
    time,
    call: call.id,
    agent: call.request.agent,
    backend: b.config.name,
    model,
    attempt
  })

  type BackendOutcome =
    | { readonly _tag: "done"; readonly completion: Completion; readonly model: string }
    | { readonly _tag: "exhausted" }
  const done = (completion: Completion, model: string): BackendOutcome => ({ _tag: "done", completion, model })
  const exhausted: BackendOutcome = { _tag: "exhausted" }

  /** Charges what a call used: usage ledger and budget. */
  const charge = (call: Call, b: Backend, model: string, promptTokens: number, completionTokens: number) => {
    const costUsd = ledger.record({ agent: call.request.agent, model, backend: b.config.name, promptTokens, completionTokens })
    const warnings = budget.unsafeConsume(call.request.root, call.request.agent, { promptTokens, completionTokens, model })
    return { costUsd, warnings }
  }

  /** One attempt on one backend: its rate limit, a concurrency slot, the HTTP exchange. */
  const attempt = (b: Backend, model: string, call: Call) =>
    Effect.gen(function*() {
      const estimate = estimateTokens(call.promptChars) + call.maxOutputTokens
      yield* b.limiter.acquire(estimate)
      if (shared !== undefined && (b.config.rate_limit_rpm !== undefined || b.config.rate_limit_tpm !== undefined)) {
        yield* shared.acquire(b.config.name, { requestsPerMinute: b.config.rate_limit_rpm, tokensPerMinute: b.config.rate_limit_tpm }, estimate)
      }
      const tryNo = ++call.tries
      const startedAt = nowMs()
      if (observed()) {
        events!.publish(
          new LlmCallStarted({
            ...callFields(call, b, model, tryNo, startedAt),
            provider: b.provider,
            maxOutputTokens: call.maxOutputTokens,
            stream: call.stream,
            ...(call.hashes ??= requestHashes(call.request, call.maxOutputTokens))
          }, true)
        )
      }
      const exchange = Effect.gen(function*() {
        b.inFlight++
        b.requests++
        return yield* (call.stream ? stream(b, model, call) : generate(b, model, call.prompt, call.maxOutputTokens, call.toolkit)).pipe(
          Effect.ensuring(Effect.sync(() => void b.inFlight--))
        )
      })
      // The slot is held for the HTTP exchange alone: not while waiting for the rate limit
      // (above) nor during a backoff (the retry schedule, outside).
      const slotted = shared === undefined || b.config.max_concurrent === undefined
        ? exchange
        : shared.withSlot(b.config.name, b.config.max_concurrent, exchange)
      const result = yield* Effect.either(b.semaphore === undefined ? slotted : b.semaphore.withPermits(1)(slotted))
      if (Either.isRight(result)) {
        const c = result.right
        const completion: Completion = {
          ...c,
          // A provider that reports no usage is charged the estimate.
          promptTokens: c.promptTokens >= 0 ? c.promptTokens : estimateTokens(call.promptChars),
          completionTokens: c.completionTokens >= 0 ? c.completionTokens : estimateTokens(c.text.length),
          attempt: tryNo,
          latencyMs: nowMs() - startedAt
        }
        yield* b.limiter.settle(estimate, completion.promptTokens + completion.completionTokens)
        b.coolingUntil = 0
        return completion
      }
      const failure = result.left
      b.failures++
      if (observed()) {
        const time = nowMs()
        events!.publish(
          new LlmCallFailed({
            ...callFields(call, b, model, tryNo, time),
            latencyMs: time - startedAt,
            status: failure.status ?? null,
            error: failure.message,
            final: false,
            reason: null
          }, true)
        )
      }
      call.attempts.push(
        new LlmAttempt({
          backend: b.config.name,
          model,
          ...(failure.status !== undefined ? { status: failure.status } : {}),
          error: failure.message
        })
      )
      if (failure.kind === "stream-failed") {
        // Tokens were spent on the part that arrived: charged as estimated.
        const spent = estimateTokens(call.promptChars) + estimateTokens(failure.partialText?.length ?? 0)
        yield* b.limiter.settle(estimate, spent)
        charge(call, b, model, estimateTokens(call.promptChars), estimateTokens(failure.partialText?.length ?? 0))
      } else {
        yield* b.limiter.settle(estimate, 0)
      }
      return yield* failure
    })

  /**
   * Every attempt on one backend: retried by its schedule (retryable failures only, with
   * backoff and Retry-After); once they are used up the backend cools down and the call
   * moves on. A refused request or a broken stream ends the call.
   */
  const onBackend = (b: Backend, model: string, call: Call): Effect.Effect<BackendOutcome, AttemptFailed> =>
    attempt(b, model, call).pipe(
      Effect.retry(b.retry),
      Effect.map((completion) => done(completion, model)),
      Effect.catchIf(
        (failure) => failure.kind === "retryable",
        () => Effect.map(Clock.currentTimeMillis, (now): BackendOutcome => {
          b.coolingUntil = now + cooldownMs
          return exhausted
        })
      )
    )

  /** The backend counts the request as its load from assignment to the end, waits included. */
  const assigned = (b: Backend, model: string, call: Call) =>
    Effect.suspend(() => {
      b.assigned++
      return onBackend(b, model, call).pipe(Effect.ensuring(Effect.sync(() => void b.assigned--)))
    })

  const summary = (attempts: ReadonlyArray<LlmAttempt>) =>
    attempts.map((a) => `${a.backend} (${a.model}): ${a.error}`).join("; ")

  /** The call has given up (or was interrupted): the final event, after its attempts' own. */
  const gaveUp = (call: Call, reason: string, message: string) => {
    if (call.tries === 0 || !observed()) return
    const last = call.attempts[call.attempts.length - 1]
    const time = nowMs()
    events!.publish(
      new LlmCallFailed({
        thread: call.request.root,
        root: call.request.root,
        time,
        call: call.id,
        agent: call.request.agent,
        backend: last?.backend ?? "",
        model: last?.model ?? call.request.model ?? "",
        attempt: call.tries,
        latencyMs: time - call.startedAt,
        status: last?.status ?? null,
        error: message,
        final: true,
        reason
      }, true)
    )
  }

  const complete = Effect.fn("LlmRouter.complete")(function*(request: LlmRequest) {
    yield* budget.check(request.root, request.agent)
    const candidates = backends.filter((b) => request.model === undefined || b.config.models.includes(request.model))
    if (candidates.length === 0) {
      const served = backends.map((b) => `${b.config.name}: ${b.config.models.join(", ")}`).join("; ")
      return yield* new LlmError({
        reason: "no-backend",
        message: `no backend serves model "${request.model}" (${served})`,
        attempts: []
      })
    }
    const call: Call = {
      request,
      prompt: promptOf(request.system, request.messages),
      toolkit: toolkitOf(request.tools),
      promptChars: request.system.length + request.messages.reduce((n, m) => n + m.content.length, 0),
      maxOutputTokens: request.maxOutputTokens ?? config.max_output_tokens,
      stream: request.stream ?? config.stream,
      attempts: [],
      id: `llm-${++calls}`,
      tries: 0,
      startedAt: nowMs()
    }
    return yield* attemptAll(call, candidates).pipe(
      Effect.tapError((e) => Effect.sync(() => gaveUp(call, e.reason, e.message))),
      Effect.onInterrupt(() => Effect.sync(() => gaveUp(call, "interrupted", "the call was interrupted")))
    )
  })

  /** The candidates in the strategy's order, until one answers. */
  const attemptAll = (call: Call, candidates: ReadonlyArray<Backend>) => Effect.gen(function*() {
    const request = call.request
    for (const b of order(candidates, yield* Clock.currentTimeMillis)) {
      const model = request.model ?? b.config.models[0]!
      const outcome = yield* assigned(b, model, call).pipe(
        Effect.catchTag("AttemptFailed", (failure) =>
          new LlmError({
            reason: failure.kind === "rejected" ? "rejected" : "stream-failed",
            message: failure.kind === "rejected"
              ? `backend ${b.config.name} refused the request (not retried elsewhere): ${failure.message}`
              : `the stream from backend ${b.config.name} broke after output had started (not retried): ${failure.message}`,
            attempts: call.attempts
          }))
      )
      if (outcome._tag === "exhausted") continue
      const c = outcome.completion
      const { costUsd, warnings } = charge(call, b, outcome.model, c.promptTokens, c.completionTokens)
      if (observed()) {
        events!.publish(
          new LlmCallCompleted({
            ...callFields(call, b, outcome.model, c.attempt ?? call.tries, nowMs()),
            latencyMs: c.latencyMs ?? 0,
            inputTokens: c.promptTokens,
            outputTokens: c.completionTokens,
            costUsd,
            finishReason: c.finishReason,
            truncated: c.finishReason === "length",
            text: c.text,
            ...(c.reasoningTokens !== undefined ? { reasoningTokens: c.reasoningTokens } : {}),
            ...(c.toolCalls !== undefined ? { toolCalls: c.toolCalls } : {}),
            ...(c.toolCallProblem !== undefined ? { toolCallProblem: c.toolCallProblem } : {})
          }, true)
        )
      }
      const response: LlmResponse = {
        text: c.text,
        usage: {
          promptTokens: c.promptTokens,
          completionTokens: c.completionTokens,
          // Only when there were some: most calls have none to report.
          ...(c.reasoningTokens !== undefined && c.reasoningTokens > 0 ? { reasoningTokens: c.reasoningTokens } : {})
        },
        model: outcome.model,
        backend: b.config.name,
        costUsd,
        finishReason: c.finishReason,
        warnings,
        attempts: call.attempts.length + 1,
        ...(c.toolCalls !== undefined ? { toolCalls: c.toolCalls } : {}),
        ...(c.toolCallProblem !== undefined ? { toolCallProblem: c.toolCallProblem } : {})
      }
      return response
    }
    return yield* new LlmError({
      reason: "unavailable",
      message: `every backend failed: ${summary(call.attempts)}`,
      attempts: call.attempts
    })
  })

  const service: LlmRouter.Service = {
    complete,
    usage: () => ledger.report(),
    backends: () => {
      const now = clock.unsafeCurrentTimeMillis()
      return backends.map((b) => ({
        name: b.config.name,
        provider: b.provider,
        models: b.config.models,
        inFlight: b.inFlight,
        waiting: b.assigned - b.inFlight,
        healthy: b.coolingUntil <= now,
        requests: b.requests,
        failures: b.failures,
        baseUrl: b.connection.baseUrl,
        contextWindow: b.connection.contextWindow
      }))
    }
  }
  return service
})

export class LlmRouter extends Context.Tag("xml-organism/LlmRouter")<LlmRouter, LlmRouter.Service>() {
  /**
   * Connects every backend (starting mock servers), in the caller's scope. Takes the
   * HttpClient, FileSystem and Path from context: `layer` provides Node's (undici's client).
   */
  static readonly make: (
    config: LlmConfig,
    options: LlmRouter.Options
  ) => Effect.Effect<
    LlmRouter.Service,
    LlmConfigError,
    BudgetRegistry | HttpClient.HttpClient | FileSystem.FileSystem | Path.Path | Scope.Scope
  > = make

  /**
   * The router over its own undici HTTP client (`NodeHttpClient.layerUndici`): with
   * node:http, a connection dropped mid-stream leaves the stream hanging forever, which no
   * retry policy can recover from. Fails with LlmConfigError when a backend cannot start (a
   * missing API key, a mock script that does not load).
   */
  static readonly layer = (config: LlmConfig, options: LlmRouter.Options): Layer.Layer<LlmRouter, LlmConfigError, BudgetRegistry> =>
    Layer.scoped(LlmRouter, make(config, options)).pipe(
      Layer.provide(Layer.unwrapEffect(
        Effect.promise(() => import("@effect/platform-node/NodeHttpClient")).pipe(Effect.map((m) => m.layerUndici))
      )),
      // A mock backend's script is read from the file system.
      Layer.provide(Layer.merge(NodeFileSystem.layer, NodePath.layer))
    )

  /**
   * A router without backends, for an organism that configures none: every call fails with
   * `no-backend`, saying why — rather than a missing-service defect deep in a handler.
   */
  static readonly layerNone = (reason: string): Layer.Layer<LlmRouter> =>
    Layer.succeed(LlmRouter, {
      complete: () => Effect.fail(new LlmError({ reason: "no-backend", message: reason, attempts: [] })),
      usage: () => ({ totals: noUsage, byAgent: {}, byModel: {}, byBackend: {} }),
      backends: () => []
    })
}

const noUsage: UsageLine = { requests: 0, promptTokens: 0, completionTokens: 0, costUsd: 0 }
