/**
 * A mock LLM provider: a real HTTP server on loopback that speaks OpenAI Chat Completions,
 * OpenAI Responses and Anthropic Messages — plain JSON and server-sent events — and answers
 * from a script: scripted text, error statuses with `Retry-After`, slow headers and slow
 * chunks, malformed JSON, connections dropped before or during a response. Real clients
 * (fetch, @effect/ai-openai, @effect/ai-anthropic) run against it unchanged, which is the
 * point: the LLM router's retries, fallbacks and timeouts are tested over real sockets.
 *
 * Raw `node:http` rather than @effect/platform's server, because faults need what a
 * well-behaved server framework hides: writing half a body, destroying the socket mid-stream.
 */
import { Clock, Context, Effect, Either, FiberSet, Layer, Schema, type Scope } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { type RequestView, viewRequest } from "./mock/requestView.js"
import { AnthropicMessages } from "./mock/wire/AnthropicMessages.js"
import { OpenAiChat } from "./mock/wire/OpenAiChat.js"
import { OpenAiResponses } from "./mock/wire/OpenAiResponses.js"
import { chunkText, type Completion, estimateTokens, type Frame, sse, statusMessage, type WireFormat } from "./mock/wire/Wire.js"
import {
  decodeMockScript,
  type Endpoint,
  type MockEntry,
  type MockMatch,
  MockReply,
  MockScript,
  type MockScriptError,
  type MockScriptInput,
  millisOf,
  type Provider
} from "./MockScript.js"

/** The server could not start (port taken, address not available…). */
export class MockLlmServerError extends Schema.TaggedError<MockLlmServerError>()("MockLlmServerError", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/** How a request ended, as the server saw it. */
export type RequestOutcome = "pending" | "completed" | "dropped" | "client_closed"

/** One request received, in the order of arrival. */
export interface RecordedRequest {
  /** 0-based order of arrival since the start or the last `reset`. */
  readonly index: number
  readonly time: Date
  readonly method: string
  /** The path without the query string (which `url` keeps). */
  readonly path: string
  readonly url: string
  readonly endpoint: Endpoint | "models" | "unknown"
  readonly provider: Provider | undefined
  readonly model: string
  readonly stream: boolean
  /** Lower-cased names, as node:http gives them. */
  readonly headers: Readonly<Record<string, string>>
  /** The parsed JSON body; the raw text when it is not JSON; undefined without a body. */
  readonly body: unknown
  readonly system: string
  readonly lastUser: string
  /** Which `responses` entry served it (its index), `"default"`, or undefined (not an LLM call). */
  readonly served: number | "default" | undefined
  /** The status line sent, undefined while none was (or when the connection was dropped first). */
  readonly status: number | undefined
  readonly outcome: RequestOutcome
}

export declare namespace MockLlmServer {
  export interface Options {
    /** The script, decoded or as written (the same object YAML would give). Default: echo. */
    readonly script?: MockScript | MockScriptInput | undefined
    /** 0 (the default) picks a free port. */
    readonly port?: number | undefined
    /** Default 127.0.0.1: the mock is for tests and local runs, never for the network. */
    readonly host?: string | undefined
    /** Called for each request once it is read and its reply chosen (the CLI logs with it). */
    readonly onRequest?: ((request: RecordedRequest) => void) | undefined
  }

  export interface Service {
    /** `http://127.0.0.1:PORT`: the base URL for Anthropic clients. */
    readonly url: string
    /** `http://127.0.0.1:PORT/v1`: the base URL for OpenAI clients. */
    readonly openAiUrl: string
    readonly port: number
    /** A snapshot of the requests received, oldest first. */
    readonly requests: () => ReadonlyArray<RecordedRequest>
    /** Forgets the requests, restores every entry's `times`; with a script, replaces it. */
    readonly reset: (script?: MockScript | MockScriptInput) => Effect.Effect<void, MockScriptError>
  }
}

const ECHO = new MockReply({ echo: true })
const DEFAULT_CHUNK_SIZE = 16

const wireOf: Record<Endpoint, WireFormat> = {
  chat: OpenAiChat,
  responses: OpenAiResponses,
  messages: AnthropicMessages
}

/** `/v1/chat/completions` and `/chat/completions` alike: base URLs are given both ways. */
const routeOf = (method: string, path: string): Endpoint | "models" | "unknown" => {
  const p = path.replace(/^\/v1(?=\/)/, "").replace(/\/+$/, "")
  if (method === "GET" && p === "/models") return "models"
  if (method !== "POST") return "unknown"
  return p === "/chat/completions" ? "chat" : p === "/responses" ? "responses" : p === "/messages" ? "messages" : "unknown"
}

const matches = (match: MockMatch | undefined, view: RequestView): boolean =>
  match === undefined || (
    (match.model === undefined || match.model.test(view.model)) &&
    (match.provider === undefined || match.provider === view.provider) &&
    (match.endpoint === undefined || match.endpoint === view.endpoint) &&
    (match.stream === undefined || match.stream === view.stream) &&
    (match.user === undefined || match.user.test(view.lastUser)) &&
    (match.system === undefined || match.system.test(view.system))
  )

const toScript = (script: MockScript | MockScriptInput | undefined): Either.Either<MockScript, MockScriptError> =>
  script === undefined
    ? Either.right(new MockScript({}))
    : script instanceof MockScript
    ? Either.right(script)
    : decodeMockScript(script)

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

const headersOf = (req: IncomingMessage): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(req.headers)) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(", ") : v
  }
  return out
}

/** The body as text; whatever arrived when the client goes away mid-request. */
const readBody = (req: IncomingMessage) =>
  Effect.async<string>((resume) => {
    const chunks: Array<Buffer> = []
    let done = false
    const finish = () => {
      if (done) return
      done = true
      resume(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
    }
    req.on("data", (c: Buffer) => chunks.push(c))
    req.once("end", finish)
    req.once("error", finish)
    req.once("close", finish)
  })

/** Completes when the response's connection closes, whoever closed it. */
const closed = (res: ServerResponse) =>
  Effect.async<void>((resume) => {
    if (res.destroyed || res.writableFinished) return resume(Effect.void)
    const done = () => resume(Effect.void)
    res.once("close", done)
    return Effect.sync(() => void res.off("close", done))
  })

export class MockLlmServer extends Context.Tag("xml-organism/MockLlmServer")<MockLlmServer, MockLlmServer.Service>() {
  static readonly make: (
    options?: MockLlmServer.Options
  ) => Effect.Effect<MockLlmServer.Service, MockLlmServerError | MockScriptError, Scope.Scope> = Effect.fn(
    "MockLlmServer.make"
  )(function*(options: MockLlmServer.Options = {}) {
    let script = yield* toScript(options.script)
    const fresh = (s: MockScript) => s.responses.map((e) => (e.times === "always" ? Infinity : e.times ?? 1))
    let remaining = fresh(script)
    let log: Array<Mutable<RecordedRequest>> = []
    // Ids stay unique across resets, like a real provider's.
    let served = 0

    const choose = (view: RequestView): { readonly served: number | "default"; readonly reply: MockReply | MockEntry } => {
      for (let i = 0; i < script.responses.length; i++) {
        const entry = script.responses[i]!
        if (remaining[i]! > 0 && matches(entry.match, view)) {
          remaining[i]! -= 1
          return { served: i, reply: entry }
        }
      }
      return { served: "default", reply: script.default ?? ECHO }
    }

    const send = (res: ServerResponse, rec: Mutable<RecordedRequest>, status: number, headers: Record<string, string>, body: string) =>
      Effect.sync(() => {
        rec.status = status
        res.writeHead(status, { "content-length": String(Buffer.byteLength(body)), ...headers })
        res.end(body)
      })

    const sendJson = (res: ServerResponse, rec: Mutable<RecordedRequest>, status: number, body: unknown, headers: Record<string, string> = {}) =>
      send(res, rec, status, { "content-type": "application/json", ...headers }, JSON.stringify(body))

    const drop = (res: ServerResponse, rec: Mutable<RecordedRequest>) =>
      Effect.sync(() => {
        rec.outcome = "dropped"
        res.socket?.destroy()
        res.destroy()
      })

    const modelsList = () => {
      const ids = script.models ?? ["mock-llm"]
      const created = Math.floor(Date.now() / 1000)
      // One body both clients accept: OpenAI's list fields and Anthropic's side by side.
      return {
        object: "list",
        data: ids.map((id) => ({
          id,
          object: "model",
          created,
          owned_by: "mock-llm",
          type: "model",
          display_name: id,
          created_at: new Date(created * 1000).toISOString()
        })),
        has_more: false,
        first_id: ids[0] ?? null,
        last_id: ids[ids.length - 1] ?? null
      }
    }

    const serveReply = (
      res: ServerResponse,
      rec: Mutable<RecordedRequest>,
      view: RequestView,
      reply: MockReply | MockEntry
    ) =>
      Effect.gen(function*() {
        const wire = wireOf[view.endpoint]
        const headers: Record<string, string> = { "x-request-id": `req_mock_${served}`, ...reply.headers }
        if (reply.delay !== undefined) yield* Effect.sleep(reply.delay)
        if (reply.fault === "drop") return yield* drop(res, rec)
        if (reply.status !== undefined) {
          const retryAfter = reply.retry_after === undefined ? {} : { "retry-after": String(reply.retry_after) }
          return yield* sendJson(res, rec, reply.status, wire.errorBody(reply.status, reply.error ?? statusMessage(reply.status)), {
            ...headers,
            ...retryAfter
          })
        }
        // A request that is not streamed has no stream to fail in: it fails as a whole.
        if (reply.fault === "stream_error" && !view.stream) {
          return yield* sendJson(res, rec, 500, wire.errorBody(500, reply.error ?? statusMessage(500)), headers)
        }

        // Without text, a reply echoes, like the default one.
        const text = reply.echo === true || reply.text === undefined ? view.lastUser : reply.text
        const completion: Completion = {
          id: `mock${String(served).padStart(4, "0")}`,
          model: view.model === "" ? "mock-llm" : view.model,
          created: Math.floor(Date.now() / 1000),
          text,
          finishReason: reply.finish_reason ?? "stop",
          promptTokens: reply.usage?.prompt_tokens ?? estimateTokens(view.promptText),
          completionTokens: reply.usage?.completion_tokens ?? estimateTokens(text)
        }

        if (!view.stream) {
          const body = JSON.stringify(wire.body(completion))
          if (reply.fault === "malformed") {
            return yield* send(res, rec, 200, { "content-type": "application/json", ...headers }, body.slice(0, Math.floor(body.length / 2)))
          }
          if (reply.fault === "drop_mid_response") {
            // The length announces the whole body, so the client knows it was cut short.
            rec.status = 200
            res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), ...headers })
            res.write(body.slice(0, Math.floor(body.length / 2)))
            yield* Effect.sleep(10)
            return yield* drop(res, rec)
          }
          return yield* send(res, rec, 200, { "content-type": "application/json", ...headers }, body)
        }

        const frames = wire.frames(completion, chunkText(text, reply.chunk_size ?? DEFAULT_CHUNK_SIZE), {
          includeUsage: view.includeUsage
        })
        const faultAt = reply.fault === "drop_mid_response" || reply.fault === "malformed" || reply.fault === "stream_error"
          ? faultIndex(frames, reply.fault_after)
          : -1
        rec.status = 200
        res.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
          connection: "keep-alive",
          ...headers
        })
        res.flushHeaders()
        const chunkDelay = millisOf(reply.chunk_delay)
        let deltas = 0
        for (let i = 0; i < frames.length; i++) {
          const f = frames[i]!
          if (f.delta && deltas++ > 0 && chunkDelay > 0) yield* Effect.sleep(chunkDelay)
          if (i === faultAt && reply.fault === "drop_mid_response") {
            // Let what was written reach the client before the connection goes.
            yield* Effect.sleep(10)
            return yield* drop(res, rec)
          }
          if (i === faultAt && reply.fault === "stream_error") {
            res.end(sse(wire.errorEvent(reply.error ?? statusMessage(529), i)))
            return
          }
          res.write(sse(i === faultAt ? { ...f, data: f.data.slice(0, Math.max(1, Math.floor(f.data.length / 2))) } : f))
        }
        res.end()
      })

    const handle = (req: IncomingMessage, res: ServerResponse) =>
      Effect.gen(function*() {
        const time = new Date()
        const raw = yield* readBody(req)
        const url = new URL(req.url ?? "/", "http://mock")
        const endpoint = routeOf(req.method ?? "GET", url.pathname)
        let body: unknown = undefined
        let json = true
        if (raw !== "") {
          try {
            body = JSON.parse(raw)
          } catch {
            body = raw
            json = false
          }
        }
        const view = endpoint === "models" || endpoint === "unknown" ? undefined : viewRequest(endpoint, body)
        const rec: Mutable<RecordedRequest> = {
          index: log.length,
          time,
          method: req.method ?? "GET",
          path: url.pathname,
          url: req.url ?? "/",
          endpoint,
          provider: view?.provider,
          model: view?.model ?? "",
          stream: view?.stream ?? false,
          headers: headersOf(req),
          body,
          system: view?.system ?? "",
          lastUser: view?.lastUser ?? "",
          served: undefined,
          status: undefined,
          outcome: "pending"
        }
        log.push(rec)
        const finish = Effect.sync(() => {
          if (rec.outcome === "pending") rec.outcome = res.writableFinished ? "completed" : "client_closed"
        })

        if (endpoint === "models") {
          options.onRequest?.({ ...rec })
          return yield* sendJson(res, rec, 200, modelsList()).pipe(Effect.zipRight(finish))
        }
        if (view === undefined) {
          options.onRequest?.({ ...rec })
          const error = { error: { message: `mock-llm: no endpoint ${rec.method} ${rec.path}`, type: "invalid_request_error", param: null, code: "not_found" } }
          return yield* sendJson(res, rec, 404, error).pipe(Effect.zipRight(finish))
        }
        if (!json) {
          options.onRequest?.({ ...rec })
          return yield* sendJson(res, rec, 400, wireOf[view.endpoint].errorBody(400, "mock-llm: the request body is not valid JSON")).pipe(
            Effect.zipRight(finish)
          )
        }
        served++
        const chosen = choose(view)
        rec.served = chosen.served
        options.onRequest?.({ ...rec })
        yield* Effect.raceFirst(serveReply(res, rec, view, chosen.reply), closed(res)).pipe(Effect.ensuring(finish))
      }).pipe(
        // A bug here must not take the server down: answer 500 if still possible, else hang up.
        Effect.catchAllCause((cause) =>
          Effect.sync(() => {
            if (!res.headersSent) {
              res.writeHead(500, { "content-type": "text/plain" })
              res.end(`mock-llm: internal error\n${String(cause)}`)
            } else res.destroy()
          })
        )
      )

    const run = yield* FiberSet.makeRuntime<never, void, never>()
    // Real sockets, real time: a TestClock in the caller's context must not freeze the delays.
    const clock = Clock.make()
    const server = createServer((req, res) => void run(Effect.withClock(handle(req, res), clock)))
    const host = options.host ?? "127.0.0.1"
    yield* Effect.acquireRelease(
      Effect.async<void, MockLlmServerError>((resume) => {
        const onError = (e: NodeJS.ErrnoException) =>
          resume(Effect.fail(new MockLlmServerError({ reason: `cannot listen on ${host}:${options.port ?? 0}: ${e.code ?? e.message}` })))
        server.once("error", onError)
        server.listen(options.port ?? 0, host, () => {
          server.off("error", onError)
          resume(Effect.void)
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          server.close(() => resume(Effect.void))
          // Keep-alive and streaming connections would hold close() open forever.
          server.closeAllConnections()
        })
    )
    const port = (server.address() as AddressInfo).port
    const origin = `http://${host.includes(":") ? `[${host}]` : host}:${port}`
    return {
      url: origin,
      openAiUrl: `${origin}/v1`,
      port,
      requests: () => log.map((r) => ({ ...r })),
      reset: (next) =>
        Effect.gen(function*() {
          if (next !== undefined) script = yield* toScript(next)
          remaining = fresh(script)
          log = []
        })
    }
  })

  static readonly layer = (options?: MockLlmServer.Options): Layer.Layer<MockLlmServer, MockLlmServerError | MockScriptError> =>
    Layer.scoped(MockLlmServer, MockLlmServer.make(options))
}

/**
 * Where in the stream a fault strikes: before the text event number `after` (default: half of
 * them, rounded up, so some text has gone through), or after the last one.
 */
const faultIndex = (frames: ReadonlyArray<Frame>, after: number | undefined): number => {
  const deltaIndexes = frames.flatMap((f, i) => (f.delta ? [i] : []))
  if (deltaIndexes.length === 0) return Math.floor(frames.length / 2)
  const n = after ?? Math.ceil(deltaIndexes.length / 2)
  return n < deltaIndexes.length ? deltaIndexes[n]! : deltaIndexes[deltaIndexes.length - 1]! + 1
}
