/**
 * The server's bounded state: the conversation index forgets the oldest conversations past
 * its limits, and a live-event client that does not read skips events (and is told how
 * many) instead of holding them all.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream } from "effect"
import { HandlerCompleted, MessageRejected, MessageSent, type PumpEvent, ThreadCompleted, ThreadCreated } from "../src/domain/PumpEvent.js"
import { ConversationIndex } from "../src/server/ConversationIndex.js"
import { batchEvents, FLUSH_MS, LiveEvents } from "../src/server/LiveEvents.js"

const sent = (root: string, thread: string, parent: string | null, payload = "<Ping><N>1</N></Ping>") =>
  new MessageSent({
    thread,
    root,
    parent,
    time: 1,
    from: "a",
    to: "b",
    payloadType: "Ping",
    payload,
    origin: parent === null ? "injected" : "reply",
    envelope: `<message>${payload}</message>`
  })

const conversation = (root: string): Array<PumpEvent> => [
  new ThreadCreated({ thread: root, time: 0, injector: "console", to: "a" }),
  sent(root, `${root}-1`, null),
  new HandlerCompleted({ thread: `${root}-1`, root, time: 2, listener: "a", replies: ["Ping"], durationMs: 1 }),
  sent(root, `${root}-2`, `${root}-1`),
  new MessageRejected({
    thread: `${root}-2`,
    root,
    time: 3,
    stage: "route",
    kind: "UnknownRoute",
    reason: "no listener",
    diagnostics: [],
    from: "a",
    to: "b",
    payloadType: "Ping",
    payload: null
  }),
  new ThreadCompleted({ thread: root, time: 4, invocations: 1 })
]

describe("ConversationIndex", () => {
  it("summarises a conversation and rebuilds its tree from parent links", () => {
    const index = new ConversationIndex()
    for (const e of conversation("c1")) index.record(e)
    const c = index.get("c1")!
    expect(c).toMatchObject({ state: "completed", injector: "console", to: "a", messages: 2, rejections: 1, invocations: 1, endedAt: 4 })
    expect(c.tree.map((m) => m.depth)).toEqual([0, 1])
    expect(c.events.map((e) => e.type)).toEqual(["ThreadCreated", "MessageSent", "HandlerCompleted", "MessageSent", "MessageRejected", "ThreadCompleted"])
  })

  it("keeps the most recent conversations only", () => {
    const index = new ConversationIndex({ maxConversations: 10, maxEventsPerConversation: 100, maxChars: 1e9 })
    for (let i = 0; i < 1000; i++) for (const e of conversation(`c${i}`)) index.record(e)
    expect(index.size).toBe(10)
    expect(index.list().map((c) => c.thread)).toEqual(Array.from({ length: 10 }, (_, i) => `c${999 - i}`))
    expect(index.get("c0")).toBeUndefined()
  })

  it("keeps a bounded number of events per conversation, and counts the others", () => {
    const index = new ConversationIndex({ maxConversations: 10, maxEventsPerConversation: 5, maxChars: 1e9 })
    for (let i = 0; i < 100; i++) index.record(sent("c", `t${i}`, null))
    const c = index.get("c")!
    expect(c.events).toHaveLength(5)
    expect(c.droppedEvents).toBe(95)
    expect(c.messages).toBe(100)
  })

  it("forgets old conversations when their text passes the character budget", () => {
    const index = new ConversationIndex({ maxConversations: 1000, maxEventsPerConversation: 100, maxChars: 100_000 })
    const big = `<Ping><N>${"x".repeat(10_000)}</N></Ping>`
    for (let i = 0; i < 100; i++) index.record(sent(`c${i}`, `c${i}-1`, null, big))
    // Each message keeps its payload and envelope: about 20 000 characters.
    expect(index.size).toBeLessThanOrEqual(5)
    expect(index.get("c99")).toBeDefined()
  })

  it("reads a ThreadCompleted reason and model-call usage when the pump publishes them", () => {
    const index = new ConversationIndex()
    index.record(new ThreadCreated({ thread: "c", time: 0, injector: "console", to: "a" }))
    // Events of other parts of the framework, read by name.
    index.record({ _tag: "LlmCallCompleted", thread: "c-1", root: "c", time: 1, promptTokens: 10, completionTokens: 5, costUsd: 0.25 } as any)
    index.record({ _tag: "ThreadCompleted", thread: "c", time: 2, invocations: 1, reason: { kind: "guard", guard: "loop" } } as any)
    expect(index.get("c")).toMatchObject({ modelCalls: 1, tokens: 15, costUsd: 0.25, reason: { kind: "guard", guard: "loop" } })
  })
})

describe("LiveEvents", () => {
  // Live: clients are woken by a real timer (every FLUSH_MS).
  it.live("a client that does not read keeps at most its buffer, then hears how many events it missed", () =>
    Effect.gen(function*() {
      const live = new LiveEvents()
      const batches = yield* Stream.runCollect(Stream.take(live.stream(undefined, 3), 1))
      expect(Chunk.toReadonlyArray(batches)[0]).toEqual({ skipped: 0, runs: [] })

      // A subscriber that takes its first (empty) batch and then stops reading for a while.
      yield* Effect.scoped(Effect.gen(function*() {
        const pull = yield* Stream.toPull(live.stream(undefined, 3))
        expect(Chunk.toReadonlyArray(yield* pull)).toEqual([{ skipped: 0, runs: [] }])
        const first = conversation("c1").slice(0, 2)
        const later = conversation("c1").slice(2).concat(conversation("c2"))
        // Two runs: what is published within one flush interval is sealed together.
        for (const e of first) live.publish(e)
        yield* Effect.sleep(FLUSH_MS * 3)
        for (const e of later) live.publish(e)
        yield* Effect.sleep(FLUSH_MS * 3)
        const [second] = Chunk.toReadonlyArray(yield* pull)
        // The first run fitted in its buffer of 3; the second did not and was skipped whole.
        expect(batchEvents(second!)).toEqual(first)
        expect(second!.skipped).toBe(later.length)
        const texts = live.jsonBatch(second!)
        expect(texts[0]).toBe(JSON.stringify({ type: "Skipped", thread: null, count: later.length }))
        expect(texts.slice(1).map((t) => JSON.parse(t).type)).toEqual(first.map((e) => e._tag))
      }))
      // The client's buffer goes with its stream.
      expect(live.connected).toBe(0)
    }))

  it.live("a client that keeps up gets a run larger than its buffer whole (a busy organism skips nobody who reads)", () =>
    Effect.gen(function*() {
      const live = new LiveEvents()
      const events = conversation("c1").concat(conversation("c2"))
      const fiber = yield* Effect.fork(Stream.runCollect(Stream.take(live.stream(undefined, 2), 2)))
      while (live.connected === 0) yield* Effect.yieldNow()
      // More events within one flush interval than the client's buffer holds.
      for (const e of events) live.publish(e)
      const [, batch] = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(batch!.skipped).toBe(0)
      expect(batchEvents(batch!)).toEqual(events)
    }))

  it.live("every client that takes all events is sent the same bytes, encoded once", () =>
    Effect.gen(function*() {
      const live = new LiveEvents()
      const clients = yield* Effect.forkAll([1, 2, 3].map(() => Stream.runCollect(Stream.take(live.stream(undefined), 2))))
      while (live.connected < 3) yield* Effect.yieldNow()
      const events = conversation("c1")
      for (const e of events) live.publish(e)
      const seconds = (yield* Fiber.join(clients)).map((c) => Chunk.toReadonlyArray(c)[1]!)
      const parts = seconds.map((b) => live.sseParts(b))
      expect(parts[0]).toHaveLength(1)
      expect(parts[1]![0]).toBe(parts[0]![0])
      expect(parts[2]![0]).toBe(parts[0]![0])
      const text = new TextDecoder().decode(parts[0]![0])
      expect(text.split("\n\n").filter((s) => s !== "").map((s) => JSON.parse(s.slice("data: ".length)).type)).toEqual(
        events.map((e) => e._tag)
      )
    }))

  it.live("an idle client is woken with a heartbeat every interval; a client that was sent events in it is not", () =>
    Effect.scoped(Effect.gen(function*() {
      const live = new LiveEvents(80)
      const pull = yield* Stream.toPull(live.stream(undefined))
      expect(Chunk.toReadonlyArray(yield* pull)).toEqual([{ skipped: 0, runs: [] }])
      // Nothing happens: the next batch is a heartbeat.
      expect(Chunk.toReadonlyArray(yield* pull)).toEqual([{ skipped: 0, runs: [], idle: true }])
      // Busy for four intervals: events, never a heartbeat.
      const events = conversation("c1")
      const publisher = yield* Effect.fork(Effect.forever(Effect.zipRight(Effect.sync(() => events.forEach(live.publish)), Effect.sleep(10))))
      const busy: Array<{ readonly idle?: true }> = []
      const until = Date.now() + 320
      while (Date.now() < until) busy.push(...Chunk.toReadonlyArray(yield* pull))
      yield* Fiber.interrupt(publisher)
      expect(busy.length).toBeGreaterThan(4)
      expect(busy.filter((b) => b.idle)).toEqual([])
    })))

  it.live("a client of one conversation gets only its events", () =>
    Effect.gen(function*() {
      const live = new LiveEvents()
      const fiber = yield* Effect.fork(Stream.runCollect(Stream.take(live.stream("c2"), 2)))
      while (live.connected === 0) yield* Effect.yieldNow()
      for (const e of conversation("c1").concat(conversation("c2"))) live.publish(e)
      const [, batch] = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(batchEvents(batch!)).toEqual(conversation("c2").map((e) => expect.objectContaining({ _tag: e._tag })))
      expect(batchEvents(batch!).every((e) => (e as any).root === "c2" || e.thread === "c2")).toBe(true)
    }))
})
