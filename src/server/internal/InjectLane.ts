/**
 * The injection lane: POST /api/inject and /api/inject/raw answered straight from Node's
 * request event, without the HTTP API's per-request machinery (a fiber, a scope, a span, the
 * router, the middleware chain, response encoding through effects). Measured: that machinery
 * costs ≈ 0.4 ms of CPU per request on the benchmark machine, as much as a 10-hop
 * conversation; injecting is what a busy server does most.
 *
 * The lane answers alike, by construction: the same guard checks (Guard.ts), the same JSON
 * reading, the same body schema and decode error, the same injection (`injectSend` /
 * `injectBytes` of ServeHandlers.ts), the same typed errors encoded by their own schemas.
 * Whatever it is not sure of — a token it would refuse, a body without a length or past the
 * limit, a content type the route does not read as this lane does, a query string — it
 * declines before reading anything, and the request goes to the API, which answers it with
 * the full set of refusals. test/serve-inject-lane.test.ts holds both to the same answers.
 */
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Cause, Effect, Either, Exit, Option, Schema } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import { bearerOf, type GuardOptions, INTERNAL_ERROR, parseJsonBody, RETRY_AFTER, tokenMatches } from "../Guard.js"
import { BadRequest, Busy, Injected, InjectedRaw, SendBody, Stopping } from "../ServeApi.js"
import { injectBytes, injectSend, type ServeState } from "../ServeHandlers.js"

/** Takes a request and answers it (true), or leaves it untouched for the API (false). */
export type InjectLane = (request: IncomingMessage, response: ServerResponse) => boolean

const write = (response: ServerResponse, status: number, body: unknown, extra?: Record<string, string>) => {
  if (response.writableEnded || response.destroyed) return
  const text = JSON.stringify(body)
  response.writeHead(status, { ...extra, "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  response.end(text)
}

/** The API's own errors, each with the status its schema declares. */
const errorSchemas = [BadRequest, Busy, Stopping].map((schema) => ({
  schema,
  status: HttpApiSchema.getStatusError(schema),
  encode: Schema.encodeSync(schema as Schema.Schema<any, any>)
}))

const writeError = (response: ServerResponse, error: BadRequest | Busy | Stopping) => {
  const known = errorSchemas.find((e) => error instanceof e.schema)!
  write(response, known.status, known.encode(error), known.status === 429 ? { "retry-after": RETRY_AFTER } : undefined)
}

const writeRefusal = (response: ServerResponse, status: number, tag: string, message: string) =>
  write(response, status, { _tag: tag, message })

const encodeDecodeError = Schema.encodeSync(HttpApiError.HttpApiDecodeError)

/** Runs an injection and writes its answer; a client that goes away interrupts it. */
const answer = <A>(
  response: ServerResponse,
  injection: Effect.Effect<A, BadRequest | Busy | Stopping>,
  encode: (a: A) => unknown
) => {
  const fiber = Effect.runFork(injection)
  fiber.addObserver((exit) => {
    if (Exit.isSuccess(exit)) return write(response, 202, encode(exit.value))
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) return writeError(response, failure.value)
    if (!Cause.isInterruptedOnly(exit.cause)) writeRefusal(response, 500, "InternalError", INTERNAL_ERROR)
  })
  response.once("close", () => {
    if (!response.writableEnded) fiber.unsafeInterruptAsFork(fiber.id())
  })
}

/** Reads a body of a known length; a client that breaks off gets nothing. */
const readBody = (request: IncomingMessage, response: ServerResponse, then: (body: Buffer) => void) => {
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.once("end", () => then(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
  request.once("error", () => response.destroy())
}

export const makeInjectLane = (state: ServeState, guard: GuardOptions): InjectLane => {
  const decodeSend = Schema.decodeUnknownEither(SendBody)
  const encodeInjected = Schema.encodeSync(Injected)
  const encodeInjectedRaw = Schema.encodeSync(InjectedRaw)

  const inject = (body: Buffer, response: ServerResponse) => {
    const json = parseJsonBody(body.toString("utf8"))
    if (Either.isLeft(json)) return writeRefusal(response, 400, "BadJson", json.left)
    const send = decodeSend(json.right)
    if (Either.isLeft(send)) {
      return write(response, 400, encodeDecodeError(Effect.runSync(HttpApiError.HttpApiDecodeError.fromParseError(send.left))))
    }
    answer(response, injectSend(state, send.right), encodeInjected)
  }

  const raw = (body: Buffer, response: ServerResponse) => answer(response, injectBytes(state, body), encodeInjectedRaw)

  return (request, response) => {
    if (request.method !== "POST") return false
    const route = request.url === "/api/inject" ? inject : request.url === "/api/inject/raw" ? raw : undefined
    if (route === undefined) return false
    const headers = request.headers
    if (guard.token !== undefined && !tokenMatches(guard.token, bearerOf(headers.authorization, request.url!))) return false
    // A body of a stated length within the limit (a chunked one, or one past it, is the API's to refuse).
    const length = headers["content-length"]
    if (length === undefined || headers["transfer-encoding"] !== undefined) return false
    const declared = Number(length)
    if (!(declared <= guard.maxBodyBytes)) return false
    // As the guard and the API read them: JSON for /api/inject, anything else as bytes for /raw.
    const isJson = (headers["content-type"] ?? "application/json").toLowerCase().includes("application/json")
    if (isJson !== (route === inject)) return false
    readBody(request, response, (body) => route(body, response))
    return true
  }
}
