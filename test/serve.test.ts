/**
 * `organism serve` through a real HTTP client (fetch) against the real server process: the
 * API, its typed 4xx answers, live events over SSE and WebSocket, the token, reload and the
 * inbox's 429.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Socket from "@effect/platform/Socket"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Queue } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { type AddressInfo, createServer } from "node:net"
import { join } from "node:path"
import { organism } from "./support/processes.js"
import { copyOrganism, eventually, getJson, postJson, type Served, sseReader, startServe } from "./support/serve.js"

const HELLO = "examples/hello/organism.yaml"

const completed = (url: string, thread: string) =>
  eventually(async () => {
    const { body, status } = await getJson(`${url}api/conversations/${thread}`)
    return status === 200 && body.state === "completed" ? body : undefined
  }, 10_000, `conversation ${thread} to complete`)

describe("organism serve: the API", () => {
  let served: Served
  beforeAll(async () => {
    served = await startServe(HELLO)
  })
  afterAll(async () => {
    // Stopped by a signal: it drains, then exits like an interrupted command.
    const code = await served?.stop()
    expect(code).toBe(130)
  })

  it("describes the organism, its payload types (XSD, example) and its counters", async () => {
    const info = await getJson(`${served.url}api/organism`)
    expect(info.status).toBe(200)
    expect(info.body.name).toBe("hello")
    expect(info.body.listeners.map((l: any) => l.name)).toEqual(["greeter", "shouter", "response-handler"])
    const payloads = await getJson(`${served.url}api/payloads`)
    const greeting = payloads.body.find((p: any) => p.tag === "Greeting")
    expect(greeting.listeners).toEqual(["greeter"])
    expect(greeting.xsd).toContain(`name="Greeting"`)
    expect(greeting.example).toMatch(/^<Greeting>/)
    expect(payloads.body.find((p: any) => p.tag === "TextInput").listeners).toEqual(["greeter"])
    const counters = await getJson(`${served.url}api/counters`)
    expect(counters.body.injected).toBe(counters.body.delivered + counters.body.rejected + counters.body.guardStopped + counters.body.inFlight)
    expect(counters.body.models.requests).toBe(0)
    expect((await getJson(`${served.url}api/prompts`)).body).toEqual([])
  })

  it("injects XML and shows the conversation as its tree of three messages with their payloads", async () => {
    const sent = await postJson(`${served.url}api/inject`, { xml: "<Greeting><Name>Ada</Name></Greeting>" })
    expect(sent.status).toBe(202)
    const c = await completed(served.url, sent.body.thread)
    expect(c.to).toBe("greeter")
    expect(c.injector).toBe("console")
    expect(c.invocations).toBe(3)
    expect(c.tree.map((m: any) => [m.from, m.to, m.payloadType, m.depth])).toEqual([
      ["console", "greeter", "Greeting", 0],
      ["greeter", "shouter", "GreetingResponse", 1],
      ["shouter", "response-handler", "ShoutedResponse", 2]
    ])
    expect(c.tree[2].payload).toBe("<ShoutedResponse><Message>HELLO, ADA!</Message></ShoutedResponse>")
    expect(c.events.at(-1).type).toBe("ThreadCompleted")
    const list = await getJson(`${served.url}api/conversations`)
    expect(list.body[0].thread).toBe(sent.body.thread)
  })

  it("injects JSON fields, decoded by the payload type's Schema, to the listener of that type", async () => {
    const sent = await postJson(`${served.url}api/inject`, { type: "Greeting", fields: { name: "Bo" } })
    expect(sent.status).toBe(202)
    const c = await completed(served.url, sent.body.thread)
    expect(c.tree[0].payload).toBe("<Greeting><Name>Bo</Name></Greeting>")
  })

  it("injects raw envelope bytes; a bad envelope ends as a dead letter", async () => {
    const thread = "550e8400-e29b-41d4-a716-446655440000"
    const envelope = `<message xmlns="https://xml-pipeline.org/ns/envelope/v1"><meta><from>api</from><to>greeter</to>` +
      `<thread>${thread}</thread></meta><Greeting xmlns=""><Name>Raw</Name></Greeting></message>`
    const ok = await fetch(`${served.url}api/inject/raw`, { method: "POST", headers: { "content-type": "text/xml" }, body: envelope })
    expect(ok.status).toBe(202)
    expect(await ok.json()).toEqual({ accepted: true, size: Buffer.byteLength(envelope) })
    const bad = await fetch(`${served.url}api/inject/raw`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: "<message><meta><from>api</from></meta></message>"
    })
    expect(bad.status).toBe(202)
    const dead = await eventually(async () => {
      const { body } = await getJson(`${served.url}api/dead-letters`)
      return body.find((d: any) => d.text.includes("<from>api</from></meta></message>"))
    })
    expect(dead.stage).not.toBe("")
  })

  it("answers every bad request with a 4xx and the typed error as JSON", async () => {
    const cases: Array<[RequestInit & { path: string }, number, string]> = [
      [{ path: "api/inject", method: "POST", headers: { "content-type": "application/json" }, body: "{not json" }, 400, "BadJson"],
      [{ path: "api/inject", method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ xml: "<Greeting>" }) }, 400, "BadRequest"],
      [{ path: "api/inject", method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "Greting", fields: {} }) }, 400, "BadRequest"],
      [{ path: "api/inject", method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ type: "Greeting", fields: { name: 3 } }) }, 400, "BadRequest"],
      [{ path: "api/inject", method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ to: "greter", xml: "<Greeting><Name>x</Name></Greeting>" }) }, 400, "BadRequest"],
      [{ path: "api/inject", method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ to: 42 }) }, 400, "HttpApiDecodeError"],
      [{ path: "api/inject", method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ xml: "x".repeat(2 * 1024 * 1024) }) }, 413, "PayloadTooLarge"],
      [{ path: "api/inject/raw", method: "POST", headers: { "content-type": "application/xml" }, body: "" }, 400, "BadRequest"],
      [{ path: "api/conversations/nope" }, 404, "NotFound"],
      [{ path: "api/conversations?limit=0" }, 400, "HttpApiDecodeError"],
      [{ path: "api/nothing-here" }, 404, "NotFound"]
    ]
    for (const [{ path, ...init }, status, tag] of cases) {
      const res = await fetch(`${served.url}${path}`, init)
      const text = await res.text()
      expect({ path, status: res.status, tag: JSON.parse(text || "{}")._tag }).toEqual({ path, status, tag })
    }
    const typo = await postJson(`${served.url}api/inject`, { type: "Greting", fields: {} })
    expect(typo.body.message).toContain("did you mean Greeting?")
    const unknown = await postJson(`${served.url}api/inject`, { to: "greter", xml: "<Greeting><Name>x</Name></Greeting>" })
    expect(unknown.body.message).toContain("did you mean greeter?")
    // Still serving.
    expect((await getJson(`${served.url}api/counters`)).status).toBe(200)
  })

  it("serves its OpenAPI document and a docs page", async () => {
    const doc = await getJson(`${served.url}api/openapi.json`)
    expect(doc.body.info.title).toBe("organism serve")
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(["/api/inject", "/api/request", "/api/conversations/{thread}", "/api/reload"]))
    const docs = await fetch(`${served.url}docs`)
    expect(docs.status).toBe(200)
    const page = await docs.text()
    expect(page.slice(0, 200)).toContain("<title>organism serve</title>")
  })

  it("streams live events over SSE in the --json shape", async () => {
    const all = await fetch(`${served.url}api/events`)
    expect(all.headers.get("content-type")).toContain("text/event-stream")
    const events = sseReader(all)
    expect((await events.next()).type).toBe("Live")
    const sent = await postJson(`${served.url}api/inject`, { xml: "<Greeting><Name>Sse</Name></Greeting>" })
    const thread = sent.body.thread
    const first = await events.until((e) => e.type === "MessageSent" && e.root === thread)
    expect(Object.keys(first).slice(0, 6)).toEqual(["type", "thread", "from", "to", "payloadType", "payload"])
    expect(first.payload).toBe("<Greeting><Name>Sse</Name></Greeting>")
    await events.until((e) => e.type === "ThreadCompleted" && e.thread === thread)
    await events.cancel()
  })

  it.live("streams the same events over WebSocket", () =>
    Effect.gen(function*() {
      const received = yield* Queue.unbounded<any>()
      const socket = yield* Socket.makeWebSocket(`${served.url.replace("http", "ws")}api/events/ws`)
      yield* Effect.forkScoped(socket.runRaw((data) => Queue.offer(received, JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data)))))
      expect((yield* Queue.take(received)).type).toBe("Live")
      const sent = yield* Effect.promise(() => postJson(`${served.url}api/inject`, { xml: "<Greeting><Name>Ws</Name></Greeting>" }))
      const types: Array<string> = []
      for (;;) {
        const e = yield* Queue.take(received)
        if (e.thread === sent.body.thread || e.root === sent.body.thread) types.push(e.type)
        if (e.type === "ThreadCompleted" && e.thread === sent.body.thread) break
      }
      expect(types.filter((t) => t === "MessageSent")).toHaveLength(3)
      expect(types[0]).toBe("ThreadCreated")
    }).pipe(Effect.scoped, Effect.provide(NodeSocket.layerWebSocketConstructor), Effect.timeout("10 seconds")))

  it("reloads the organism from its file", async () => {
    const reloaded = await postJson(`${served.url}api/reload`, {})
    expect(reloaded.status).toBe(200)
    expect(reloaded.body).toEqual({ added: [], removed: [], updated: [], details: [] })
  })
})

describe("organism serve: requests, reloads, the inbox", () => {
  it("answers a request with the payload that came back, and says when nothing does", async () => {
    const served = await startServe("test/fixtures/echo.yaml")
    try {
      const answer = await postJson(`${served.url}api/request`, { type: "TextInput", fields: { text: "hi", source: "api", user: "" } })
      expect(answer.status).toBe(200)
      expect(answer.body.payloadType).toBe("TextOutput")
      expect(answer.body.payload).toContain("hi")
    } finally {
      await served.stop()
    }
    const hello = await startServe(HELLO)
    try {
      const none = await postJson(`${hello.url}api/request`, { xml: "<Greeting><Name>Q</Name></Greeting>", timeoutMs: 5000 })
      expect(none.status).toBe(502)
      expect(none.body._tag).toBe("NoAnswer")
    } finally {
      await hello.stop()
    }
  })

  it("refuses a reload whose file does not load, and applies one that does", async () => {
    const copy = copyOrganism("hello")
    const served = await startServe(copy.file)
    try {
      const original = readFileSync(copy.file, "utf8")
      writeFileSync(copy.file, original.replace("handler: ./handlers.ts#receive", "handler: ./handlers.ts#recieve"))
      const refused = await postJson(`${served.url}api/reload`, {})
      expect(refused.status).toBe(422)
      expect(refused.body._tag).toBe("ReloadFailed")
      expect(refused.body.problems.join("\n")).toContain("recieve")
      writeFileSync(copy.file, original.replace("\nboot:", "\n  - name: echo2\n    payload: TextOutput\n    handler: ./handlers.ts#receive\n\nboot:"))
      const applied = await postJson(`${served.url}api/reload`, {})
      expect(applied.status, JSON.stringify(applied.body)).toBe(200)
      expect(applied.body.added).toEqual(["echo2"])
      expect((await getJson(`${served.url}api/organism`)).body.listeners.map((l: any) => l.name)).toContain("echo2")
    } finally {
      await served.stop()
      copy.remove()
    }
  })
})

describe("organism serve: a slow organism", () => {
  // Its one listener takes 2 s per message; at most 2 external messages are in flight.
  let served: Served
  let copy: ReturnType<typeof copyOrganism>
  beforeAll(async () => {
    copy = copyOrganism("hello")
    writeFileSync(
      join(copy.dir, "slow.ts"),
      `import { Effect } from "effect"\nimport { Reply } from "../../src/index.js"\nexport const work = () => Effect.as(Effect.sleep("2 seconds"), Reply.none)\n`
    )
    writeFileSync(
      copy.file,
      `organism:\n  name: slow\n  inbox_capacity: 2\nlisteners:\n  - name: worker\n    payload: ./payloads.ts#Greeting\n    handler: ./slow.ts#work\n`
    )
    served = await startServe(copy.file)
  })
  afterAll(async () => {
    await served?.stop()
    copy?.remove()
  })

  it("streams one conversation's events to a client that asks for that conversation only", async () => {
    const a = await postJson(`${served.url}api/inject`, { xml: "<Greeting><Name>A</Name></Greeting>" })
    const filtered = sseReader(await fetch(`${served.url}api/events?thread=${a.body.thread}`))
    expect((await filtered.next()).type).toBe("Live")
    const b = await postJson(`${served.url}api/inject`, { xml: "<Greeting><Name>B</Name></Greeting>" })
    expect(b.status).toBe(202)
    const seen: Array<any> = []
    await filtered.until((e) => {
      seen.push(e)
      return e.type === "ThreadCompleted"
    })
    expect(seen.map((e) => e.type)).toContain("HandlerCompleted")
    expect(seen.every((e) => e.thread === a.body.thread || e.root === a.body.thread)).toBe(true)
    await completed(served.url, b.body.thread)
    await filtered.cancel()
  })

  it("answers 429 with Retry-After when the inbox's permits stay taken", async () => {
    const held = await Promise.all([1, 2].map((n) => postJson(`${served.url}api/inject`, { xml: `<Greeting><Name>${n}</Name></Greeting>` })))
    expect(held.map((r) => r.status)).toEqual([202, 202])
    const refused = await postJson(`${served.url}api/inject`, { xml: "<Greeting><Name>3</Name></Greeting>" })
    expect(refused.status).toBe(429)
    expect(refused.headers.get("retry-after")).toBe("1")
    expect(refused.body._tag).toBe("Busy")
    // Once the permits come back, injections are taken again.
    await Promise.all(held.map((r) => completed(served.url, r.body.thread)))
    expect((await postJson(`${served.url}api/inject`, { xml: "<Greeting><Name>4</Name></Greeting>" })).status).toBe(202)
  })
})

describe("organism serve: the token", () => {
  it("refuses to bind beyond loopback without a token", async () => {
    const run = await organism(["serve", HELLO, "--host", "0.0.0.0", "--port", "0"])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("give --token")
  })

  it("says so when its port is taken (exit 2)", async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    try {
      const port = (taken.address() as AddressInfo).port
      const run = await organism(["serve", HELLO, "--port", String(port)])
      expect(run.code).toBe(2)
      expect(run.stderr).toContain(`cannot listen on 127.0.0.1:${port}`)
    } finally {
      taken.close()
    }
  })

  it("requires the bearer token of every request when given one", async () => {
    const token = "s3cret-token-of-the-test"
    const served = await startServe(HELLO, ["--token", token])
    try {
      expect((await fetch(`${served.url}api/counters`)).status).toBe(401)
      const wrong = await getJson(`${served.url}api/counters`, { headers: { authorization: "Bearer s3cret-token-of-the-tesT" } })
      expect(wrong.status).toBe(401)
      expect(wrong.body._tag).toBe("Unauthorized")
      expect((await fetch(`${served.url}`)).status).toBe(401)
      expect((await fetch(`${served.url}api/counters`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200)
      expect((await fetch(`${served.url}?access_token=${token}`)).status).toBe(200)
      const sent = await postJson(`${served.url}api/inject`, { xml: "<Greeting><Name>T</Name></Greeting>" }, { authorization: `Bearer ${token}` })
      expect(sent.status).toBe(202)
    } finally {
      await served.stop()
    }
  })
})
