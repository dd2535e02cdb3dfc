/**
 * Every conversation ends with a reason (ThreadCompleted.reason): completed, guard (which
 * guard, which edge looped), budget, timeout, cancelled, failed. And a conversation can be
 * cancelled: its suspended handlers are interrupted, the books still add up.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, TestClock } from "effect"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { Note, Ping, Pong, Task, withPump } from "./support/pump.js"

const endingsOf = (events: ReadonlyArray<{ readonly _tag: string }>) =>
  events.flatMap((e) => (e._tag === "ThreadCompleted" ? [e as unknown as { thread: string; reason: string; detail: string }] : []))

/** Lets the pump's fibers run until `done` holds. */
const until = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000 && !done(); i++) yield* Effect.yieldNow()
    expect(done()).toBe(true)
  })

describe("why a conversation ended", () => {
  it.effect("completed, guard, timeout and failed, each with what happened", () => {
    const organism = Organism.make({
      settings: { guards: { maxInvocationsPerThread: 6 } },
      listeners: [
        Listener.make({ name: "fine", payload: Ping, handler: () => Reply.respond(new Note({ text: "ok" })) }),
        Listener.make({ name: "ping", payload: Pong, handler: (p) => Reply.forward("pong", new Ping({ n: p.n + 1 })) }),
        Listener.make({ name: "pong", payload: Ping, handler: (p) => Reply.forward("ping", new Pong({ n: p.n + 1 })) }),
        Listener.make({ name: "slow", payload: Note, timeout: Duration.seconds(1), handler: () => Effect.as(Effect.sleep("1 hour"), Reply.none) }),
        Listener.make({ name: "broken", payload: Task, handler: () => Effect.die("bug") })
      ]
    })
    return withPump(organism, ({ events, pump }) =>
      Effect.gen(function*() {
        const fine = yield* pump.inject("fine", new Ping({ n: 1 }))
        const looping = yield* pump.inject("ping", new Pong({ n: 0 }))
        const slow = yield* pump.inject("slow", new Note({ text: "zzz" }))
        const broken = yield* pump.inject("broken", new Task({ id: 1 }))
        yield* until(() => pump.counters().running === 1)
        yield* TestClock.adjust("2 seconds")
        yield* pump.awaitIdle
        const ended = new Map(endingsOf(yield* events()).map((e) => [e.thread, e]))
        expect(ended.get(fine)).toMatchObject({ reason: "completed", detail: "" })
        expect(ended.get(looping)).toMatchObject({ reason: "guard" })
        expect(ended.get(looping)!.detail).toMatch(/^max-invocations: 6 handler invocations/)
        expect(ended.get(slow)).toMatchObject({ reason: "timeout" })
        expect(ended.get(slow)!.detail).toMatch(/^slow timed-out/)
        expect(ended.get(broken)).toMatchObject({ reason: "failed" })
      }))
  })

  it.effect("the loop guard names the edge that looped", () => {
    const organism = Organism.make({
      listeners: [
        Listener.make({ name: "agent", agent: true, peers: ["tool"], payload: Ping, accepts: [Pong], handler: () => Reply.forward("tool", new Ping({ n: 0 })) }),
        Listener.make({ name: "tool", payload: Ping, handler: () => Reply.respond(new Pong({ n: 0 })) })
      ]
    })
    return withPump(organism, ({ events, pump }) =>
      Effect.gen(function*() {
        const root = yield* pump.inject("agent", new Ping({ n: 0 }))
        yield* pump.awaitIdle
        const ended = endingsOf(yield* events()).find((e) => e.thread === root)!
        expect(ended.reason).toBe("guard")
        expect(ended.detail).toMatch(/^loop \(agent → tool\): agent sent the same <Ping> to tool 3 times in a row/)
      }))
  })
})

describe("cancelling a conversation", () => {
  it.effect("interrupts its suspended handlers, stops the rest, and ends it as cancelled; the books add up", () => {
    const organism = Organism.make({
      listeners: [
        Listener.make({
          name: "worker",
          payload: Ping,
          timeout: Duration.hours(1),
          handler: (p) => Effect.as(Effect.sleep("10 seconds"), Reply.respond(new Pong({ n: p.n })))
        })
      ]
    })
    return withPump(organism, ({ eventsOf, pump }) =>
      Effect.gen(function*() {
        const answer = yield* Effect.fork(pump.request("worker", new Ping({ n: 1 })))
        const other = yield* Effect.fork(pump.request("worker", new Ping({ n: 2 })))
        yield* until(() => pump.counters().running === 2)
        const root = (yield* eventsOf("ThreadCreated")).find((e) => e.to === "worker")!.thread!
        expect(yield* pump.cancel(root.slice(0, 8))).toBe(true)
        expect(Exit.isFailure(yield* Fiber.await(answer))).toBe(true)
        expect(pump.counters().running).toBe(1)
        const failed = yield* eventsOf("HandlerFailed")
        expect(failed.map((e) => [e.reason, e.detail])).toEqual([["cancelled", "cancelled by console"]])
        const ended = (yield* eventsOf("ThreadCompleted")).find((e) => e.thread === root)!
        expect(ended).toMatchObject({ reason: "cancelled", detail: "cancelled by console" })
        // The other conversation is untouched.
        yield* TestClock.adjust("10 seconds")
        expect(((yield* Fiber.join(other)) as Pong).n).toBe(2)
        // Cancelling what is not running says so.
        expect(yield* pump.cancel(root)).toBe(false)
        expect(yield* pump.cancel("00000000")).toBe(false)
      }))
  })
})

describe("organism run", () => {
  it.live("!cancel ID at the console cancels a conversation", () =>
    Effect.promise(async () => {
      const child = spawn(process.execPath, [join(import.meta.dirname, "..", "bin", "organism.js"), "run", join(import.meta.dirname, "fixtures", "journal", "organism.yaml"), "--json"], {
        stdio: ["pipe", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      child.stdout.on("data", (d) => (stdout += d))
      child.stderr.on("data", (d) => (stderr += d))
      child.stdin.write("@nap <Nap><Ms>600000</Ms></Nap>\n")
      const root = await new Promise<string>((resolve) => {
        const check = setInterval(() => {
          const created = stdout.split("\n").filter((l) => l.includes("\"ThreadCreated\"") && l.includes("\"nap\""))
          if (created.length > 0) {
            clearInterval(check)
            resolve(JSON.parse(created[0]!).thread)
          }
        }, 20)
      })
      child.stdin.write(`!cancel ${root.slice(0, 8)}\n`)
      child.stdin.end()
      const code = await new Promise<number | null>((resolve) => child.on("close", resolve))
      expect(stderr).toContain(`organism: cancelling ${root.slice(0, 8)}`)
      const ended = stdout.split("\n").filter((l) => l.includes("\"ThreadCompleted\"")).map((l) => JSON.parse(l))
      expect(ended.find((e) => e.thread === root)).toMatchObject({ reason: "cancelled" })
      expect(code).toBe(0)
    }), 30_000)
})
