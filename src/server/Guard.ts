/**
 * What every request to `organism serve` goes through before its route: the bearer token
 * (compared in constant time), the body size limit, a body that must be JSON being JSON —
 * each refused with a 4xx whose body is the error as JSON. It also turns the platform's
 * own failures on bad input (an unreadable body, an unknown route) into such answers, so no
 * input reaches the client as a 500 or takes the server down.
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Either, Option } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"

export interface GuardOptions {
  /** Required of every request when set: `Authorization: Bearer T`, or `?access_token=T`. */
  readonly token: string | undefined
  /** Request bodies larger than this are refused (413). */
  readonly maxBodyBytes: number
}

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest()

/**
 * Compares in constant time: both sides are hashed first, so neither the length nor the
 * first differing byte of the token shows in the time taken.
 */
export const tokenMatches = (expected: string, given: string | undefined): boolean =>
  given !== undefined && timingSafeEqual(digest(expected), digest(given))

export const errorResponse = (status: number, tag: string, message: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson({ _tag: tag, message }, { status, headers })

/** The token a request gives: its `Authorization: Bearer` header, or else `?access_token=`. */
export const bearerOf = (authorization: string | undefined, url: string): string | undefined => {
  if (authorization !== undefined) {
    const m = /^Bearer\s+(.+)$/i.exec(authorization)
    return m === null ? undefined : m[1]!.trim()
  }
  const q = url.indexOf("?")
  if (q === -1) return undefined
  return new URLSearchParams(url.slice(q + 1)).get("access_token") ?? undefined
}

/** What a 429 tells the client: come back in a second. */
export const RETRY_AFTER = "1"

export const INTERNAL_ERROR = "the server failed to answer this request"

/**
 * A JSON body's value, or why it is not JSON. An empty body is `null`, as the platform's
 * reader takes it (the route's schema then says what it expected); only blank space is not.
 */
export const parseJsonBody = (text: string): Either.Either<unknown, string> => {
  if (text === "") return Either.right(null)
  try {
    return Either.right(JSON.parse(text))
  } catch (e) {
    return Either.left(`the request body is not JSON: ${(e as Error).message}`)
  }
}

const hasBody = (method: string) => method !== "GET" && method !== "HEAD" && method !== "OPTIONS"

/** The raw-envelope route takes bytes whatever their text content type says. */
const RAW_PATH = "/api/inject/raw"

/** Every refusal says why in JSON; a 429 says when to come back. */
const finish = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse,
  options: GuardOptions
): HttpServerResponse.HttpServerResponse => {
  if (response.status === 429) return HttpServerResponse.setHeader(response, "retry-after", RETRY_AFTER)
  if (response.status < 400 || response.body._tag !== "Empty") return response
  const path = request.url.split("?")[0]
  switch (response.status) {
    case 404:
      return errorResponse(404, "NotFound", `no route ${request.method} ${path}`)
    case 405:
      return errorResponse(405, "MethodNotAllowed", `${request.method} is not allowed on ${path}`)
    case 413:
      return errorResponse(413, "PayloadTooLarge", `the request body is larger than ${options.maxBodyBytes} bytes`)
    default:
      return response.status < 500
        ? errorResponse(response.status, "BadBody", `the request body could not be read (at most ${options.maxBodyBytes} bytes)`)
        : errorResponse(response.status, "InternalError", INTERNAL_ERROR)
  }
}

export const guard = (options: GuardOptions) => <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<never, R> =>
  Effect.gen(function*() {
    let request = yield* HttpServerRequest.HttpServerRequest
    if (options.token !== undefined && !tokenMatches(options.token, bearerOf(request.headers["authorization"], request.url))) {
      return errorResponse(401, "Unauthorized", "a bearer token is required (Authorization: Bearer TOKEN, or ?access_token=TOKEN)", {
        "www-authenticate": "Bearer"
      })
    }
    if (hasBody(request.method)) {
      const declared = Number(request.headers["content-length"] ?? "0")
      if (Number.isFinite(declared) && declared > options.maxBodyBytes) {
        return errorResponse(413, "PayloadTooLarge", `the request body is larger than ${options.maxBodyBytes} bytes`)
      }
      const contentType = (request.headers["content-type"] ?? "application/json").toLowerCase()
      const path = request.url.split("?")[0]
      if (path === RAW_PATH) {
        // Read as bytes by the route (HttpApi reads text/* bodies as strings).
        if (!contentType.includes("application/json")) {
          request = request.modify({ headers: Headers.set(request.headers, "content-type", "application/octet-stream") })
        }
      } else if (contentType.includes("application/json") || contentType.startsWith("text/")) {
        // Read once here (the request caches it), so a body past the limit or not JSON is
        // a 4xx, where the API's own reader would make it a defect.
        const text = yield* Effect.either(request.text)
        if (text._tag === "Left") {
          return errorResponse(413, "PayloadTooLarge", `the request body could not be read within ${options.maxBodyBytes} bytes`)
        }
        if (contentType.includes("application/json")) {
          const json = parseJsonBody(text.right)
          if (Either.isLeft(json)) return errorResponse(400, "BadJson", json.left)
        }
      }
    }
    // Applied to every response, also those the platform writes for a failure (an error of
    // the API, a body it could not read, an unknown route) — which are written before a
    // middleware sees the failure.
    yield* HttpApp.appendPreResponseHandler((req, response) => Effect.succeed(finish(req, response, options)))
    return yield* app.pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, request))
  }).pipe(HttpIncomingMessage.withMaxBodySize(Option.some(options.maxBodyBytes))) as HttpApp.Default<never, R>
