import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, FastCheck as fc, TestClock } from "effect"
import { makeThreadId, type ThreadId } from "../src/domain/Ids.js"
import {
  ContextBuffer,
  type ContextBufferConfig,
  ContextFull,
  type ContextMessage,
  makeContextBuffer
} from "../src/services/ContextBuffer.js"

const roots = Array.from({ length: 5 }, () => makeThreadId())
const hop = makeThreadId()

const message = (root: ThreadId, id: string, extra: Partial<ContextMessage> = {}): ContextMessage => ({
  id,
  root,
  thread: hop,
  from: "console",
  to: "greeter",
  payloadType: "Greeting",
  payload: { id },
  xml: `<Greeting><Name>${id}</Name></Greeting>`,
  ...extra
})

const appended = (r: ReturnType<ContextBuffer.Service["append"]>) => {
  const a = Either.getOrThrow(r)
  if (a._tag !== "Appended") throw new Error(`expected Appended, got ${a._tag}`)
  return a.slot
}

const ids = (buffer: ContextBuffer.Service, root: ThreadId) => buffer.slots(root).map((s) => s.id)

describe("ContextBuffer", () => {
  it.effect("records a delivered message with its hop, sender, target, type, value, XML, index and time", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000)
      const buffer = yield* ContextBuffer.make()
      const [root] = roots
      const slot = appended(buffer.append(message(root!, "m1")))
      expect(slot).toEqual({ ...message(root!, "m1"), index: 0, time: 1_000 })
      yield* TestClock.adjust(Duration.millis(5))
      expect(appended(buffer.append(message(root!, "m2"))).index).toBe(1)
      expect(buffer.slots(root!).map((s) => [s.index, s.time])).toEqual([[0, 1_000], [1, 1_005]])
      expect(buffer.info(root!)).toEqual({ root, slots: 2, firstIndex: 0, nextIndex: 2, createdAt: 1_000, completedAt: undefined })
    }))

  it("a message id already recorded is a no-op answered with Duplicate", () => {
    const buffer = makeContextBuffer()
    const root = roots[0]!
    appended(buffer.append(message(root, "m1")))
    expect(Either.getOrThrow(buffer.append(message(root, "m1", { from: "someone-else" })))).toEqual({ _tag: "Duplicate", id: "m1" })
    expect(ids(buffer, root)).toEqual(["m1"])
    expect(buffer.slots(root)[0]!.from).toBe("console")
    // The same id on another conversation is another message.
    appended(buffer.append(message(roots[1]!, "m1")))
    expect(buffer.stats()).toMatchObject({ appended: 2, duplicates: 1, slots: 2 })
  })

  it("a duplicate stays a duplicate after its slot was dropped", () => {
    const buffer = makeContextBuffer({ maxSlotsPerThread: 2, onFull: "drop-oldest" })
    const root = roots[0]!
    for (const id of ["a", "b", "c"]) appended(buffer.append(message(root, id)))
    expect(ids(buffer, root)).toEqual(["b", "c"])
    expect(Either.getOrThrow(buffer.append(message(root, "a")))._tag).toBe("Duplicate")
    expect(ids(buffer, root)).toEqual(["b", "c"])
  })

  it("reject policy: a full conversation refuses with ContextFull and is left unchanged", () => {
    const buffer = makeContextBuffer({ maxSlotsPerThread: 2, onFull: "reject" })
    const root = roots[0]!
    appended(buffer.append(message(root, "a")))
    appended(buffer.append(message(root, "b")))
    const refused = buffer.append(message(root, "c"))
    if (Either.isRight(refused)) throw new Error("expected ContextFull")
    const error = refused.left
    expect(error).toBeInstanceOf(ContextFull)
    expect(error).toMatchObject({ _tag: "ContextFull", root, maxSlots: 2 })
    expect(error.message).toContain("2 messages")
    expect(ids(buffer, root)).toEqual(["a", "b"])
    expect(buffer.stats()).toMatchObject({ rejected: 1, slots: 2, droppedSlots: 0 })
    // Not recorded, so it is not a duplicate either: once there is room it can be recorded.
    expect(Either.isLeft(buffer.append(message(root, "c")))).toBe(true)
  })

  it("drop-oldest policy: keeps the newest slots; indexes are never reused", () => {
    const buffer = makeContextBuffer({ maxSlotsPerThread: 3, onFull: "drop-oldest" })
    const root = roots[0]!
    for (let i = 0; i < 200; i++) appended(buffer.append(message(root, `m${i}`)))
    expect(ids(buffer, root)).toEqual(["m197", "m198", "m199"])
    expect(buffer.slots(root).map((s) => s.index)).toEqual([197, 198, 199])
    expect(buffer.get(root, 196)).toBeUndefined()
    expect(buffer.get(root, 198)!.id).toBe("m198")
    expect(buffer.info(root)).toMatchObject({ slots: 3, firstIndex: 197, nextIndex: 200 })
    expect(buffer.stats()).toMatchObject({ slots: 3, droppedSlots: 197, rejected: 0 })
  })

  it.effect("queries by type, sender, target, participant, hop, index range, time range and last N", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(0)
      const buffer = yield* ContextBuffer.make()
      const root = roots[0]!
      const other = makeThreadId()
      const log: Array<Partial<ContextMessage>> = [
        { from: "console", to: "writer", payloadType: "Task" },
        { from: "writer", to: "researcher", payloadType: "ResearchRequest", thread: other },
        { from: "researcher", to: "writer", payloadType: "ResearchResult" },
        { from: "writer", to: "researcher", payloadType: "ResearchRequest", thread: other },
        { from: "researcher", to: "writer", payloadType: "ResearchResult" },
        { from: "writer", to: "console", payloadType: "Article" }
      ]
      for (const [i, extra] of log.entries()) {
        appended(buffer.append(message(root, `m${i}`, extra)))
        yield* TestClock.adjust(Duration.millis(10))
      }
      const q = (query: Parameters<ContextBuffer.Service["query"]>[1]) => buffer.query(root, query).map((s) => s.id)
      expect(q({ payloadType: "researchresult" })).toEqual(["m2", "m4"])
      expect(q({ from: "WRITER" })).toEqual(["m1", "m3", "m5"])
      expect(q({ to: "writer" })).toEqual(["m0", "m2", "m4"])
      expect(q({ involving: "researcher" })).toEqual(["m1", "m2", "m3", "m4"])
      expect(q({ thread: other })).toEqual(["m1", "m3"])
      expect(q({ index: { from: 2, to: 4 } })).toEqual(["m2", "m3"])
      expect(q({ index: { from: 4 } })).toEqual(["m4", "m5"])
      expect(q({ index: { to: -3 } })).toEqual([])
      expect(q({ time: { from: 10, to: 30 } })).toEqual(["m1", "m2"])
      expect(q({ from: "writer", last: 2 })).toEqual(["m3", "m5"])
      expect(q({ payloadType: "ResearchRequest", from: "writer", index: { from: 2 } })).toEqual(["m3"])
      expect(q({})).toEqual(log.map((_, i) => `m${i}`))
      expect(buffer.query(makeThreadId(), {})).toEqual([])
    }))

  it("slots() is a snapshot: later appends do not change an array already handed out", () => {
    const buffer = makeContextBuffer()
    const root = roots[0]!
    appended(buffer.append(message(root, "a")))
    const before = buffer.slots(root)
    appended(buffer.append(message(root, "b")))
    expect(before.map((s) => s.id)).toEqual(["a"])
  })

  describe("conversations", () => {
    it("a new conversation evicts a completed one first, the longest completed", () => {
      const buffer = makeContextBuffer({ maxThreads: 3 })
      const [a, b, c, d, e] = roots as [ThreadId, ThreadId, ThreadId, ThreadId, ThreadId]
      for (const r of [a, b, c]) appended(buffer.append(message(r, "m")))
      buffer.complete(c)
      buffer.complete(b)
      appended(buffer.append(message(d, "m")))
      expect(buffer.info(c)).toBeUndefined() // completed first, so evicted first
      expect(buffer.info(b)).toBeDefined()
      expect(buffer.info(a)).toBeDefined() // live, older than b, but b is completed
      appended(buffer.append(message(e, "m")))
      expect(buffer.info(b)).toBeUndefined()
      expect(buffer.stats()).toMatchObject({ threads: 3, completed: 0, evictedThreads: 2 })
    })

    it("with no completed conversation, the oldest live one is evicted", () => {
      const buffer = makeContextBuffer({ maxThreads: 2 })
      const [a, b, c] = roots as [ThreadId, ThreadId, ThreadId]
      for (const r of [a, b]) appended(buffer.append(message(r, "m")))
      appended(buffer.append(message(a, "m2"))) // activity does not make it younger
      appended(buffer.append(message(c, "m")))
      expect(buffer.info(a)).toBeUndefined()
      expect(ids(buffer, b)).toEqual(["m"])
      expect(ids(buffer, c)).toEqual(["m"])
    })

    it("completed conversations stay queryable, at most retainCompleted of them", () => {
      const buffer = makeContextBuffer({ retainCompleted: 2 })
      const [a, b, c] = roots as [ThreadId, ThreadId, ThreadId]
      for (const r of [a, b, c]) appended(buffer.append(message(r, "m")))
      buffer.complete(a)
      buffer.complete(b)
      expect(ids(buffer, a)).toEqual(["m"])
      expect(buffer.info(a)!.completedAt).toBeTypeOf("number")
      buffer.complete(c)
      expect(buffer.info(a)).toBeUndefined()
      expect(ids(buffer, b)).toEqual(["m"])
      expect(ids(buffer, c)).toEqual(["m"])
      expect(buffer.stats()).toMatchObject({ threads: 2, completed: 2 })
    })

    it.effect("completed conversations expire after retainFor (TestClock)", () =>
      Effect.gen(function*() {
        const buffer = yield* ContextBuffer.make({ retainFor: Duration.minutes(5) })
        const [a, b] = roots as [ThreadId, ThreadId]
        appended(buffer.append(message(a, "m")))
        appended(buffer.append(message(b, "m")))
        buffer.complete(a)
        yield* TestClock.adjust(Duration.minutes(4))
        buffer.complete(b)
        expect(buffer.stats().completed).toBe(2)
        yield* TestClock.adjust(Duration.minutes(1))
        expect(buffer.slots(a)).toEqual([])
        expect(ids(buffer, b)).toEqual(["m"])
        yield* TestClock.adjust(Duration.minutes(4))
        expect(buffer.info(b)).toBeUndefined()
        expect(buffer.stats()).toMatchObject({ threads: 0, completed: 0, slots: 0, evictedThreads: 2 })
      }))

    it("retainCompleted 0 drops a conversation as it completes", () => {
      const buffer = makeContextBuffer({ retainCompleted: 0 })
      appended(buffer.append(message(roots[0]!, "m")))
      buffer.complete(roots[0]!)
      expect(buffer.info(roots[0]!)).toBeUndefined()
      expect(buffer.stats().slots).toBe(0)
    })

    it("a message on a completed conversation reopens it, history included", () => {
      const buffer = makeContextBuffer()
      const root = roots[0]!
      appended(buffer.append(message(root, "a")))
      buffer.complete(root)
      expect(buffer.stats().completed).toBe(1)
      appended(buffer.append(message(root, "b")))
      expect(ids(buffer, root)).toEqual(["a", "b"])
      expect(buffer.info(root)!.completedAt).toBeUndefined()
      expect(buffer.stats().completed).toBe(0)
    })

    it("cleanup forgets a conversation at once; unknown roots are ignored", () => {
      const buffer = makeContextBuffer()
      appended(buffer.append(message(roots[0]!, "a")))
      appended(buffer.append(message(roots[1]!, "a")))
      buffer.cleanup(roots[0]!)
      buffer.cleanup(makeThreadId())
      buffer.complete(makeThreadId())
      expect(buffer.info(roots[0]!)).toBeUndefined()
      expect(buffer.stats()).toMatchObject({ threads: 1, slots: 1, evictedThreads: 0 })
    })
  })

  describe("bounds under random appends, completions and cleanups", () => {
    type Op =
      | { readonly op: "append"; readonly root: number; readonly id: number }
      | { readonly op: "complete"; readonly root: number }
      | { readonly op: "cleanup"; readonly root: number }
      | { readonly op: "tick"; readonly ms: number }

    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 8, arbitrary: fc.record({ op: fc.constant("append" as const), root: fc.nat(4), id: fc.nat(15) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("complete" as const), root: fc.nat(4) }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant("cleanup" as const), root: fc.nat(4) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant("tick" as const), ms: fc.nat(400) }) }
    )

    const config: fc.Arbitrary<ContextBufferConfig> = fc.record({
      maxSlotsPerThread: fc.integer({ min: 1, max: 6 }),
      maxThreads: fc.integer({ min: 1, max: 4 }),
      onFull: fc.constantFrom("reject" as const, "drop-oldest" as const),
      retainCompleted: fc.integer({ min: 0, max: 3 }),
      retainFor: fc.oneof(fc.integer({ min: 1, max: 1000 }).map(Duration.millis), fc.constant(Duration.infinity))
    })

    /** The rules, written as plainly as possible: the implementation must agree step by step. */
    interface Model {
      created: number
      completed: number | undefined
      completedAt: number
      seen: Set<string>
      slots: Array<string>
    }

    it.prop("the buffer agrees with a plain model, and every bound holds after every step", [config, fc.array(op, { minLength: 10, maxLength: 120, size: "max" })], ([cfg, ops]) => {
      let t = 0
      const buffer = makeContextBuffer(cfg, () => t)
      const model = new Map<number, Model>()
      const retainMs = Duration.toMillis(cfg.retainFor)
      let seq = 0
      const expire = () => {
        for (const [r, m] of model) if (m.completed !== undefined && m.completedAt + retainMs <= t) model.delete(r)
      }
      const oldest = (pick: (m: Model) => number | undefined) => {
        let best: number | undefined
        let bestKey = Infinity
        for (const [r, m] of model) {
          const k = pick(m)
          if (k !== undefined && k < bestKey) [best, bestKey] = [r, k]
        }
        return best
      }
      for (const o of ops) {
        switch (o.op) {
          case "tick":
            t += o.ms
            break
          case "cleanup":
            buffer.cleanup(roots[o.root]!)
            model.delete(o.root)
            break
          case "complete": {
            buffer.complete(roots[o.root]!)
            expire()
            const m = model.get(o.root)
            if (m === undefined || m.completed !== undefined) break
            if (cfg.retainCompleted === 0) {
              model.delete(o.root)
              break
            }
            m.completed = seq++
            m.completedAt = t
            const done = [...model.values()].filter((x) => x.completed !== undefined).length
            if (done > cfg.retainCompleted) model.delete(oldest((x) => x.completed)!)
            break
          }
          case "append": {
            const id = `m${o.id}`
            const result = buffer.append(message(roots[o.root]!, id))
            expire()
            let m = model.get(o.root)
            if (m === undefined) {
              if (model.size >= cfg.maxThreads) model.delete(oldest((x) => x.completed) ?? oldest((x) => x.created)!)
              model.set(o.root, m = { created: seq++, completed: undefined, completedAt: 0, seen: new Set(), slots: [] })
            } else if (m.seen.has(id)) {
              expect(Either.getOrThrow(result)._tag).toBe("Duplicate")
              break
            } else if (m.slots.length >= cfg.maxSlotsPerThread && cfg.onFull === "reject") {
              expect(Either.isLeft(result)).toBe(true)
              break
            }
            expect(Either.getOrThrow(result)._tag).toBe("Appended")
            m.completed = undefined
            m.seen.add(id)
            m.slots.push(id)
            if (m.slots.length > cfg.maxSlotsPerThread) m.slots.shift()
            break
          }
        }
        expire() // queries expire too
        // Compared as one string per step (cheap); a difference fails with a readable diff.
        const stats = buffer.stats()
        const held = roots.map((r) => ids(buffer, r))
        const actual = {
          threads: stats.threads,
          completed: stats.completed,
          slots: stats.slots,
          held,
          bounded: stats.threads <= cfg.maxThreads && stats.completed <= cfg.retainCompleted &&
            held.every((h) => h.length <= cfg.maxSlotsPerThread && new Set(h).size === h.length)
        }
        const kept = roots.map((_, i) => model.get(i)?.slots ?? [])
        const expected = {
          threads: model.size,
          completed: [...model.values()].filter((m) => m.completed !== undefined).length,
          slots: kept.reduce((n, h) => n + h.length, 0),
          held: kept,
          bounded: true
        }
        if (JSON.stringify(actual) !== JSON.stringify(expected)) expect(actual).toEqual(expected)
      }
    }, { fastCheck: { numRuns: 200 } })
  })
})
