/**
 * The server of `organism serve`: the HTTP API (ServeApi.ts) with its OpenAPI document and
 * docs page, live events over Server-Sent Events and WebSocket, and the dashboard's static
 * files — one Node HTTP server, every request through the guard (Guard.ts).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiScalar from "@effect/platform/HttpApiScalar"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, Effect, Layer, Stream } from "effect"
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { errorResponse, guard } from "./Guard.js"
import { makeInjectLane } from "./internal/InjectLane.js"
import { LaneHttpServer } from "./internal/LaneHttpServer.js"
import { ServeApi } from "./ServeApi.js"
import { handlersLayer, ServeContext, type ServeState } from "./ServeHandlers.js"

export interface ServeOptions {
  readonly host: string
  readonly port: number
  readonly token: string | undefined
  /** Request bodies larger than this are refused with 413 (default 1 MiB). */
  readonly maxBodyBytes?: number
  /** More routes on the same router and guard (the MCP endpoint of `serve --mcp`). */
  readonly routes?: Layer.Layer<never> | undefined
  /**
   * Injections answered by the injection lane (internal/InjectLane.ts) rather than the API's
   * general path — the same answers, for less CPU. On by default; off, every request takes
   * the API's path (the lane's tests compare the two).
   */
  readonly injectLane?: boolean
}

export const DEFAULT_MAX_BODY = 1024 * 1024

/** Hosts that only this machine can reach: the only ones `serve` binds without a token. */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host)

/** A live stream says so first, once its subscription is in place (a client may then send). */
const LIVE = JSON.stringify({ type: "Live", thread: null })

const encoder = new TextEncoder()

/** An idle SSE connection's heartbeat (LiveEvents.HEARTBEAT_MS): a comment, which clients ignore. */
const PING = encoder.encode(": ping\n\n")

const conversationParam = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const q = request.url.indexOf("?")
  if (q === -1) return undefined
  const value = new URLSearchParams(request.url.slice(q + 1)).get("thread")
  return value === null || value === "" ? undefined : value
}

/**
 * Live-event clients at once, at most: each holds a bounded buffer, and this bounds their
 * number, so the memory live events can take has a ceiling.
 */
export const MAX_LIVE_CLIENTS = 1000

const tooManyClients = () =>
  errorResponse(503, "TooManyClients", `already ${MAX_LIVE_CLIENTS} live-event clients; retry later`, { "retry-after": "5" })

const sse = ({ live }: ServeState) => Effect.gen(function*() {
  if (live.connected >= MAX_LIVE_CLIENTS) return tooManyClients()
  const request = yield* HttpServerRequest.HttpServerRequest
  const hello = encoder.encode(`: live\ndata: ${LIVE}\n\n`)
  const events = live.stream(conversationParam(request)).pipe(
    Stream.mapConcat((batch) => (batch.idle ? [PING] : batch.runs.length === 0 && batch.skipped === 0 ? [hello] : live.sseParts(batch)))
  )
  return HttpServerResponse.stream(events, {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
  })
})

const websocket = ({ live }: ServeState) => Effect.gen(function*() {
  if (live.connected >= MAX_LIVE_CLIENTS) return tooManyClients()
  const request = yield* HttpServerRequest.HttpServerRequest
  const thread = conversationParam(request)
  const socket = yield* request.upgrade
  const write = yield* socket.writer
  // What a client writes is ignored; reading tells when it goes away.
  yield* live.stream(thread).pipe(
    Stream.runForEach((batch) =>
      batch.idle
        ? Effect.void
        : batch.runs.length === 0 && batch.skipped === 0
        ? write(LIVE)
        : Effect.forEach(live.jsonBatch(batch), write, { discard: true })
    ),
    Effect.raceFirst(socket.runRaw(() => {})),
    Effect.ignore
  )
  return HttpServerResponse.empty()
}).pipe(Effect.catchAll(() => Effect.succeed(HttpServerResponse.empty({ status: 400 }))))

/** The dashboard's files, read once at start: plain HTML, CSS and JavaScript, no build step. */
const dashboardFiles = () => {
  const dir = new URL("../../dashboard/", import.meta.url)
  const file = (name: string, contentType: string) => ({ body: readFileSync(new URL(name, dir), "utf8"), contentType })
  return {
    "/": file("index.html", "text/html; charset=utf-8"),
    "/app.js": file("app.js", "text/javascript; charset=utf-8"),
    "/style.css": file("style.css", "text/css; charset=utf-8")
  }
}

const routes = (state: ServeState) => HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const files = dashboardFiles()
    for (const [path, f] of Object.entries(files)) {
      yield* router.get(
        path as "/",
        Effect.succeed(
          HttpServerResponse.text(f.body, {
            contentType: f.contentType,
            headers: {
              "cache-control": "no-store",
              "content-security-policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:",
              "x-content-type-options": "nosniff"
            }
          })
        )
      )
    }
    yield* router.get("/api/events", sse(state))
    yield* router.get("/api/events/ws", websocket(state))
  })
)

/**
 * Starts the server for a running organism; it serves until the Scope closes. Returns the
 * address it listens on (a port of 0 picks a free one).
 */
export const startServer = (state: ServeState, options: ServeOptions) =>
  Effect.gen(function*() {
    const guardOptions = { token: options.token, maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY }
    const api = HttpApiBuilder.api(ServeApi).pipe(Layer.provide(handlersLayer))
    const app = HttpApiBuilder.serve(guard(guardOptions)).pipe(
      Layer.provide(HttpApiScalar.layer({ path: "/docs" })),
      Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/api/openapi.json" })),
      Layer.provide(routes(state)),
      Layer.provide(options.routes ?? Layer.empty),
      Layer.provide(api)
    )
    const http = options.injectLane === false ? createServer() : new LaneHttpServer(makeInjectLane(state, guardOptions))
    const server = NodeHttpServer.layer(() => http, { port: options.port, host: options.host })
    const context = yield* Layer.build(
      Layer.provideMerge(app, server).pipe(Layer.provide(Layer.succeed(ServeContext, state)))
    )
    // Runs before the server's own close, which waits for every connection to end: live
    // event streams never end by themselves.
    yield* Effect.addFinalizer(() => Effect.sync(() => http.closeAllConnections()))
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : options.port
    const host = options.host.includes(":") && !options.host.startsWith("[") ? `[${options.host}]` : options.host
    return { url: `http://${host}:${port}/`, port }
  })
