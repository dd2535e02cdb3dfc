/**
 * The injection lane (src/server/internal/InjectLane.ts) answers POST /api/inject and
 * /api/inject/raw without the HTTP API's general path. A user relies on it answering exactly
 * as the API does, so every request here goes, over real sockets, to three servers on one
 * organism: the API alone (`injectLane: false`), the lane alone (a request it declines gets
 * 599), and `organism serve`'s server (both). Status, content type, Retry-After and body must
 * be the API's for each, and the lane must take the requests it is meant to take.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Either, Schema } from "effect"
import { request as httpRequest, createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import * as Payload from "../src/domain/Payload.js"
import { Reply } from "../src/domain/Reply.js"
import { Pump } from "../src/pipeline/Pump.js"
import { parseJsonBody } from "../src/server/Guard.js"
import { makeInjectLane } from "../src/server/internal/InjectLane.js"
import { makeServeState, observeForServer } from "../src/server/serveOrganism.js"
import { startServer } from "../src/server/Server.js"
import { LlmRouter } from "../src/services/LlmRouter.js"

class Note extends Payload.Class<Note>("Note")({ text: Schema.String, count: Schema.optional(Schema.Int) }) {}

const MAX_BODY = 4096
const TOKEN = "lane-token-of-the-test"

interface Sent {
  readonly path: string
  readonly method?: string
  readonly headers?: Record<string, string>
  readonly body?: string
  /** Sent with `Transfer-Encoding: chunked` (no length). */
  readonly chunked?: boolean
}

interface Answer {
  readonly status: number
  readonly contentType: string | undefined
  readonly retryAfter: string | undefined
  readonly body: unknown
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** One request over a fresh connection; the thread id of a 202 is replaced by its shape. */
const send = (base: string, sent: Sent): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base)
    const req = httpRequest({ host: hostname, port, path: sent.path, method: sent.method ?? "POST", headers: sent.headers ?? {}, agent: false }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (d: string) => (text += d))
      res.on("end", () => {
        let body: unknown = text
        try {
          body = JSON.parse(text)
        } catch {
          // not JSON: compared as text
        }
        if (typeof body === "object" && body !== null && typeof (body as any).thread === "string" && UUID.test((body as any).thread)) {
          body = { ...body, thread: "<uuid>" }
        }
        resolve({ status: res.statusCode!, contentType: res.headers["content-type"], retryAfter: res.headers["retry-after"] as string | undefined, body })
      })
    })
    req.on("error", reject)
    if (sent.body !== undefined && !sent.chunked) req.setHeader("content-length", Buffer.byteLength(sent.body))
    if (sent.chunked && sent.body !== undefined) {
      const half = Math.floor(sent.body.length / 2)
      req.write(sent.body.slice(0, half))
      req.end(sent.body.slice(half))
    } else req.end(sent.body)
  })

const json = (path: string, body: unknown, headers: Record<string, string> = {}): Sent => ({
  path,
  headers: { "content-type": "application/json", ...headers },
  body: typeof body === "string" ? body : JSON.stringify(body)
})

const envelope = (to: string, inner: string) =>
  `<message xmlns="https://xml-pipeline.org/ns/envelope/v1"><meta><from>api</from><to>${to}</to>` +
  `<thread>550e8400-e29b-41d4-a716-446655440000</thread></meta>${inner}</message>`

/** Requests the lane answers itself. */
const taken: ReadonlyArray<Sent> = [
  json("/api/inject", { type: "Note", fields: { text: "hello" } }),
  json("/api/inject", { to: "echo", type: "note", fields: { text: "hi", count: 2 }, from: "tester" }),
  json("/api/inject", { xml: "<Note><Text>by xml</Text></Note>" }),
  json("/api/inject", { xml: "<Note><Text>x</Text></Note>", to: "ech" }),
  json("/api/inject", { type: "Nte", fields: {} }),
  json("/api/inject", { type: "Note", fields: { text: 3 } }),
  json("/api/inject", { type: "Note", fields: { text: "x", extra: true } }),
  json("/api/inject", { type: "Note", xml: "<Note/>" }),
  json("/api/inject", { xml: "<Note><Text>unclosed</Note>" }),
  json("/api/inject", {}),
  json("/api/inject", { to: 42 }),
  json("/api/inject", "null"),
  json("/api/inject", "[]"),
  json("/api/inject", ""),
  json("/api/inject", "   "),
  json("/api/inject", "{not json"),
  json("/api/inject", "{\"type\":\"Note\",\"fields\":{\"text\":\"ünïcødé ✓\"}}"),
  { path: "/api/inject", headers: {}, body: JSON.stringify({ type: "Note", fields: { text: "no content type" } }) },
  { path: "/api/inject/raw", headers: { "content-type": "application/xml" }, body: envelope("echo", `<Note xmlns=""><Text>raw</Text></Note>`) },
  { path: "/api/inject/raw", headers: { "content-type": "text/plain" }, body: "<not an envelope" },
  { path: "/api/inject/raw", headers: { "content-type": "application/octet-stream" }, body: "" }
]

/** Requests the lane leaves to the API. */
const declined: ReadonlyArray<Sent> = [
  json("/api/inject?debug=1", { type: "Note", fields: { text: "query" } }),
  { path: "/api/inject", headers: { "content-type": "text/plain" }, body: JSON.stringify({ type: "Note", fields: { text: "t" } }) },
  { ...json("/api/inject", { type: "Note", fields: { text: "chunked" } }), chunked: true },
  json("/api/inject", { xml: "x".repeat(MAX_BODY * 2) }),
  json("/api/inject/raw", { not: "bytes" }),
  { path: "/api/inject", method: "GET" },
  { path: "/api/inject/", headers: { "content-type": "application/json" }, body: "{}" },
  json("/api/counters", {})
]

const organismOf = (gate: Deferred.Deferred<void> | undefined, inboxCapacity: number) =>
  Organism.make({
    name: "lane",
    settings: { inboxCapacity },
    listeners: [
      Listener.make({
        name: "echo",
        payload: Note,
        handler: () => (gate === undefined ? Reply.none : Effect.as(Deferred.await(gate), Reply.none))
      })
    ]
  })

const listen = (server: Server) =>
  Effect.acquireRelease(
    Effect.async<string>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)))
    }),
    () => Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
  )

/** The three servers on one running organism. */
const servers = (options: { readonly gate?: Deferred.Deferred<void>; readonly inboxCapacity?: number; readonly admissionWait?: Duration.Duration; readonly token?: string }) =>
  Effect.gen(function*() {
    const observed = yield* observeForServer
    const pump = yield* Pump.make(organismOf(options.gate, options.inboxCapacity ?? 100))
    const state = yield* makeServeState(pump, observed, { file: "(test)", admissionWait: options.admissionWait })
    const { index } = observed
    const serverOptions = { host: "127.0.0.1", port: 0, token: options.token, maxBodyBytes: MAX_BODY }
    const api = (yield* startServer(state, { ...serverOptions, injectLane: false })).url
    const both = (yield* startServer(state, serverOptions)).url
    const lane = makeInjectLane(state, { token: options.token, maxBodyBytes: MAX_BODY })
    const laneOnly = yield* listen(createServer((req, res) => {
      if (!lane(req, res)) {
        req.resume()
        res.writeHead(599).end()
      }
    }))
    return { pump, index, api, both, laneOnly }
  })

const run = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(
    Effect.scoped,
    Effect.provide(LlmRouter.layerNone("no models in this test")),
    Effect.provide(Pump.layerServices)
  )

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

describe("organism serve: the injection lane", () => {
  it.live("answers every injection it takes as the API does, and leaves the rest to the API", () =>
    run(Effect.gen(function*() {
      const { api, both, laneOnly, pump } = yield* servers({})
      for (const sent of taken) {
        const expected = yield* promise(() => send(api, sent))
        expect(expected.status, `${sent.path} ${sent.body}`).not.toBe(599)
        expect(yield* promise(() => send(laneOnly, sent)), `lane: ${sent.path} ${sent.body}`).toEqual(expected)
        expect(yield* promise(() => send(both, sent)), `serve: ${sent.path} ${sent.body}`).toEqual(expected)
      }
      for (const sent of declined) {
        const expected = yield* promise(() => send(api, sent))
        expect((yield* promise(() => send(laneOnly, sent))).status, `declined: ${sent.method ?? "POST"} ${sent.path}`).toBe(599)
        expect(yield* promise(() => send(both, sent)), `serve: ${sent.path}`).toEqual(expected)
      }
      // What a user sees of some of them: an injection is a conversation, a refusal says why.
      const ok = yield* promise(() => send(both, taken[0]!))
      expect(ok).toEqual({ status: 202, contentType: "application/json", retryAfter: undefined, body: { thread: "<uuid>" } })
      expect((yield* promise(() => send(both, json("/api/inject", "   ")))).body).toMatchObject({ _tag: "BadJson" })
      expect((yield* promise(() => send(both, json("/api/inject", { to: 42 })))).body).toMatchObject({ _tag: "HttpApiDecodeError" })
      expect((yield* promise(() => send(both, taken[4]!))).body).toMatchObject({ _tag: "BadRequest", message: expect.stringContaining("did you mean Note?") })
      // The books add up over everything the three servers took.
      yield* pump.awaitIdle
      const c = pump.counters()
      expect(c.injected).toBe(c.delivered + c.rejected + c.guardStopped)
    })))

  it.live("with a token: takes what carries it in the header, leaves every other request to the API's refusals", () =>
    run(Effect.gen(function*() {
      const { api, both, laneOnly } = yield* servers({ token: TOKEN })
      const body = { type: "Note", fields: { text: "t" } }
      const good = json("/api/inject", body, { authorization: `Bearer ${TOKEN}` })
      expect(yield* promise(() => send(laneOnly, good))).toEqual(yield* promise(() => send(api, good)))
      expect((yield* promise(() => send(both, good))).status).toBe(202)
      for (const sent of [json("/api/inject", body), json("/api/inject", body, { authorization: `Bearer ${TOKEN}x` }), json(`/api/inject?access_token=${TOKEN}`, body)]) {
        const expected = yield* promise(() => send(api, sent))
        expect((yield* promise(() => send(laneOnly, sent))).status).toBe(599)
        expect(yield* promise(() => send(both, sent))).toEqual(expected)
      }
      expect((yield* promise(() => send(both, json("/api/inject", body)))).status).toBe(401)
      expect((yield* promise(() => send(both, json(`/api/inject?access_token=${TOKEN}`, body)))).status).toBe(202)
    })))

  it.live("a full inbox is 429 Busy with Retry-After, and a stopped organism 503, from the lane as from the API", () =>
    run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { api, both, laneOnly, pump } = yield* servers({ gate, inboxCapacity: 1, admissionWait: Duration.millis(30) })
      const hold = json("/api/inject", { type: "Note", fields: { text: "holds the permit" } })
      expect((yield* promise(() => send(laneOnly, hold))).status).toBe(202)
      const more = json("/api/inject", { type: "Note", fields: { text: "no room" } })
      const raw: Sent = { path: "/api/inject/raw", headers: { "content-type": "application/xml" }, body: envelope("echo", `<Note xmlns=""><Text>r</Text></Note>`) }
      for (const sent of [more, raw]) {
        const expected = yield* promise(() => send(api, sent))
        expect(expected).toMatchObject({ status: 429, retryAfter: "1", body: { _tag: "Busy", retryAfterSeconds: 1 } })
        expect(yield* promise(() => send(laneOnly, sent))).toEqual(expected)
        expect(yield* promise(() => send(both, sent))).toEqual(expected)
      }
      yield* Deferred.succeed(gate, undefined)
      yield* pump.awaitIdle
      yield* pump.drain(Duration.seconds(1))
      const expected = yield* promise(() => send(api, more))
      expect(expected).toMatchObject({ status: 503, body: { _tag: "Stopping" } })
      expect(yield* promise(() => send(laneOnly, more))).toEqual(expected)
      expect(yield* promise(() => send(both, more))).toEqual(expected)
    })))

  it.live("a client that goes away while its injection waits for a permit injects nothing", () =>
    run(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { index, laneOnly, pump } = yield* servers({ gate, inboxCapacity: 1, admissionWait: Duration.seconds(30) })
      expect((yield* promise(() => send(laneOnly, json("/api/inject", { type: "Note", fields: { text: "holds" } })))).status).toBe(202)
      // This one waits for the permit; its client gives up.
      const { hostname, port } = new URL(laneOnly)
      const body = JSON.stringify({ type: "Note", fields: { text: "abandoned" } })
      const abandoned = httpRequest({ host: hostname, port, path: "/api/inject", method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } })
      abandoned.on("error", () => {})
      abandoned.end(body)
      yield* Effect.sleep(Duration.millis(200))
      abandoned.destroy()
      yield* Effect.sleep(Duration.millis(100))
      yield* Deferred.succeed(gate, undefined)
      yield* pump.awaitIdle
      // Only the first became a conversation; the permit it held is free again.
      const echoes = () => index.list(100).filter((c) => c.to === "echo").length
      expect(echoes()).toBe(1)
      expect((yield* promise(() => send(laneOnly, json("/api/inject", { type: "Note", fields: { text: "after" } })))).status).toBe(202)
      yield* pump.awaitIdle
      expect(echoes()).toBe(2)
    })))
})

// Both lanes read a JSON body the same way: the guard's reader, shared.
describe("parseJsonBody", () => {
  it("takes an empty body as null and refuses blank space", () => {
    expect(parseJsonBody("")).toEqual(Either.right(null))
    expect(parseJsonBody(" {\"a\":1} ")).toEqual(Either.right({ a: 1 }))
    expect(Either.isLeft(parseJsonBody("  "))).toBe(true)
  })
})
