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
import type { RecordedRequest } from "./mock/RecordedRequest.js"
import { refuseOverWindow } from "./mock/contextWindow.js"
import { type RequestView, viewRequest } from "./mock/requestView.js"
import { requestProblem } from "./mock/validate.js"
import { AnthropicMessages } from "./mock/wire/AnthropicMessages.js"
import { estimateTokens } from "./mock/wire/Wire.js"
import { type LogEntry, respond, sendJson, wireOf } from "./mock/respond.js"
import {
  decodeMockScript,
  type Endpoint,
  type MockEntry,
  type MockMatch,
  MockReply,
  MockScript,
  type MockScriptError,
  type MockScriptInput
} from "./MockScript.js"

export type { RecordedRequest, RequestOutcome } from "./mock/RecordedRequest.js"

/** The server could not start (port taken, address not available…). */
export class MockLlmServerError extends Schema.TaggedError<MockLlmServerError>()("MockLlmServerError", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
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

/** `/v1/chat/completions` and `/chat/completions` alike: base URLs are given both ways. */
const routeOf = (method: string, path: string): Endpoint | "models" | "count_tokens" | "unknown" => {
  const p = path.replace(/^\/v1(?=\/)/, "").replace(/\/+$/, "")
  if (method === "GET" && p === "/models") return "models"
  if (method !== "POST") return "unknown"
  if (p === "/messages/count_tokens") return "count_tokens"
  return p === "/chat/completions" ? "chat" : p === "/responses" ? "responses" : p === "/messages" ? "messages" : "unknown"
}

const matches = (match: MockMatch | undefined, view: RequestView): boolean =>
  match === undefined || (
    (match.model === undefined || match.model.test(view.model)) &&
    (match.provider === undefined || match.provider === view.provider) &&
    (match.endpoint === undefined || match.endpoint === view.endpoint) &&
    (match.stream === undefined || match.stream === view.stream) &&
    (match.user === undefined || match.user.test(view.lastUser)) &&
    (match.system === undefined || match.system.test(view.system)) &&
    (match.tool_result === undefined || (view.toolResults !== undefined && match.tool_result.test(view.toolResults))) &&
    (match.tool === undefined || view.tools.includes(match.tool))
  )

const toScript = (script: MockScript | MockScriptInput | undefined): Either.Either<MockScript, MockScriptError> =>
  script === undefined
    ? Either.right(new MockScript({}))
    : script instanceof MockScript
    ? Either.right(script)
    : decodeMockScript(script)

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
    let log: Array<LogEntry> = []
    // Numbers the replies; ids stay unique across resets, like a real provider's.
    let sequence = 0

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

    const modelsList = (now: number) => {
      const ids = script.models ?? ["mock-llm"]
      const created = Math.floor(now / 1000)
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

    const handle = (req: IncomingMessage, res: ServerResponse) =>
      Effect.gen(function*() {
        const time = new Date(yield* Clock.currentTimeMillis)
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
        const view = endpoint === "models" || endpoint === "unknown" || endpoint === "count_tokens"
          ? undefined
          : viewRequest(endpoint, body)
        const rec: LogEntry = {
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
          promptTokens: view === undefined ? 0 : estimateTokens(view.promptText),
          maxOutputTokens: view?.maxOutputTokens,
          served: undefined,
          status: undefined,
          outcome: "pending"
        }
        log.push(rec)
        const finish = Effect.sync(() => {
          if (rec.outcome === "pending") rec.outcome = res.writableFinished ? "completed" : "client_closed"
        })

        // Not a model call: answered at once, the script is not consulted.
        const answer = (status: number, body: unknown) => {
          options.onRequest?.({ ...rec })
          return sendJson(res, rec, status, body).pipe(Effect.zipRight(finish))
        }
        if (endpoint === "models") return yield* answer(200, modelsList(time.getTime()))
        if (endpoint === "count_tokens") {
          // Anthropic's token counter: the same checks as a message, and the prompt's estimate.
          const problem = json ? requestProblem("count_tokens", body) : "the request body is not valid JSON"
          if (problem !== undefined) return yield* answer(400, AnthropicMessages.errorBody(400, problem))
          return yield* answer(200, { input_tokens: estimateTokens(viewRequest("messages", body).promptText) })
        }
        if (view === undefined) {
          const message = `mock-llm: no endpoint ${rec.method} ${rec.path}`
          return yield* answer(404, { error: { message, type: "invalid_request_error", param: null, code: "not_found" } })
        }
        if (!json) return yield* answer(400, wireOf[view.endpoint].errorBody(400, "mock-llm: the request body is not valid JSON"))
        // What the provider would refuse, the mock refuses: its 400, in its error shape.
        const problem = requestProblem(view.endpoint, body)
        if (problem !== undefined) return yield* answer(400, wireOf[view.endpoint].errorBody(400, problem))
        // Over the model's window: refused before the script is consulted, as a real API would.
        const refusal = script.context_window === undefined
          ? undefined
          : refuseOverWindow(view.endpoint, script.context_window, rec.promptTokens, view.maxOutputTokens)
        if (refusal !== undefined) return yield* answer(refusal.status, refusal.body)

        sequence++
        const chosen = choose(view)
        rec.served = chosen.served
        options.onRequest?.({ ...rec })
        yield* Effect.raceFirst(respond(res, rec, view, chosen.reply, sequence), closed(res)).pipe(Effect.ensuring(finish))
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
