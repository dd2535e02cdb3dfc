import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Schedule, TestClock } from "effect"
import { isThreadId } from "../src/domain/Ids.js"
import { ConcurrencyClass, type HandlerMetadata, Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { RawPayload, Reply } from "../src/domain/Reply.js"
import { SystemError, TextInput } from "../src/domain/SystemPayloads.js"
import { expectBalanced, Note, Ping, Pong, Task, withPump } from "./support/pump.js"

const tasks = (n: number) => Array.from({ length: n }, (_, id) => new Task({ id }))

describe("delivery and threads", () => {
  it.effect("delivers the typed payload with thread id and sender", () =>
    Effect.gen(function*() {
      const seen: Array<{ payload: unknown; meta: HandlerMetadata }> = []
      const organism = Organism.make({
        listeners: [Listener.make({ name: "echo", payload: Note, handler: (payload, meta) => void seen.push({ payload, meta }) })]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          const thread = yield* pump.inject("echo", new Note({ text: "hi <&>" }))
          yield* pump.awaitIdle
          expect(seen).toHaveLength(1)
          expect(seen[0]!.payload).toBeInstanceOf(Note)
          expect((seen[0]!.payload as Note).text).toBe("hi <&>")
          expect(seen[0]!.meta).toEqual({ thread, from: "console", self: "echo", isSelfCall: false, root: thread, diagnostics: [] })
          expect(isThreadId(thread)).toBe(true)
        }))
    }))

  it.effect("a two-hop chain, then respond prunes to the previous hop", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      let middleThread: string | undefined
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "first",
            payload: Note,
            accepts: [Pong],
            handler: (p, meta) => {
              calls.push(`first:${p.constructor.name}:${meta.from}`)
              if (p instanceof Note) {
                middleThread = meta.thread
                return Reply.forward("second", new Ping({ n: 1 }))
              }
              expect(meta.thread).toBe(middleThread) // the reply comes back on first's own thread
              return Reply.none
            }
          }),
          Listener.make({
            name: "second",
            payload: Ping,
            handler: (p, meta) => {
              calls.push(`second:${meta.from}`)
              expect(meta.thread).not.toBe(middleThread)
              return Reply.respond(new Pong({ n: p.n + 1 }))
            }
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          const root = yield* pump.inject("first", new Note({ text: "go" }))
          yield* pump.awaitIdle
          expect(calls).toEqual(["first:Note:console", "second:first", "first:Pong:second"])
          const completed = yield* eventsOf("ThreadCompleted")
          expect(completed.map((e) => e.thread)).toContain(root)
          expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
        }))
    }))

  it.effect("responding from the first hop reaches the injector", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        listeners: [Listener.make({ name: "doubler", payload: Ping, handler: (p) => Reply.respond(new Pong({ n: p.n * 2 })) })]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("doubler", new Ping({ n: 21 }))
          expect(reply).toBeInstanceOf(Pong)
          expect((reply as Pong).n).toBe(42)
          const received = yield* eventsOf("MessageReceived")
          expect(received.at(-1)).toMatchObject({ from: "doubler", to: "console", payloadType: "Pong" })
          // A named injector gets its own replies.
          const again = yield* pump.request("doubler", new Ping({ n: 1 }), { from: "api" })
          expect((again as Pong).n).toBe(2)
          expect((yield* eventsOf("MessageReceived")).at(-1)).toMatchObject({ to: "api" })
        }))
    }))

  it.effect("no reply ends the branch and completes the thread", () =>
    Effect.gen(function*() {
      const organism = Organism.make({ listeners: [Listener.make({ name: "sink", payload: Note, handler: () => Reply.none })] })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          const thread = yield* pump.inject("sink", new Note({ text: "x" }))
          yield* pump.awaitIdle
          const done = yield* eventsOf("ThreadCompleted")
          expect(done.find((e) => e.thread === thread)).toMatchObject({ invocations: 1 })
          const failure = yield* Effect.exit(pump.request("sink", new Note({ text: "y" })))
          expect(Exit.isFailure(failure) && failure.cause._tag === "Fail" && failure.cause.error._tag).toBe("NoReply")
        }))
    }))

  it.effect("dotted listener names route and respond (chains are lists, not dot-split)", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "search.google",
            payload: Note,
            accepts: [Pong],
            handler: (p) => (p instanceof Note ? Reply.forward("search.google.v2", new Ping({ n: 7 })) : Reply.respond(p))
          }),
          Listener.make({ name: "search.google.v2", payload: Ping, handler: (p) => Reply.respond(new Pong({ n: p.n })) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("search.google", new Note({ text: "q" }))
          expect((reply as Pong).n).toBe(7)
        }))
    }))

  it.effect("routing ignores case in listener names and payload tags", () =>
    Effect.gen(function*() {
      const organism = Organism.make({ listeners: [Listener.make({ name: "Echo", payload: Ping, handler: (p) => Reply.respond(p) })] })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("echo", new RawPayload({ tag: "ping", inner: "<N>3</N>" }))
          expect(reply).toBeInstanceOf(RawPayload) // "ping" is not a tag the injector knows; kept raw
        }).pipe(Effect.catchAll((e) => Effect.sync(() => expect(e._tag).toBe("NoReply")))))
    }))
})

describe("fan-out", () => {
  it.effect("a broadcast reaches every listener of the payload type", () =>
    Effect.gen(function*() {
      const got: Array<string> = []
      const hear = (name: string) => Listener.make({ name, payload: Note, broadcast: true, handler: () => void got.push(name) })
      const organism = Organism.make({
        listeners: [
          hear("a"),
          hear("b"),
          hear("c"),
          Listener.make({ name: "quiet", payload: Note, handler: () => void got.push("quiet") }),
          Listener.make({ name: "announcer", payload: Ping, handler: () => Reply.broadcast(new Note({ text: "all" })) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("announcer", new Ping({ n: 0 }))
          yield* pump.awaitIdle
          expect(got.sort()).toEqual(["a", "b", "c"])
          // An envelope without <to> from outside is a broadcast too.
          got.length = 0
          yield* pump.injectRaw(
            `<message xmlns="https://xml-pipeline.org/ns/envelope/v1"><meta><from>outside</from>` +
              `<thread>not-a-uuid</thread></meta><Note xmlns=""><Text>hey</Text></Note></message>`
          )
          yield* pump.awaitIdle
          expect(got.sort()).toEqual(["a", "b", "c"])
        }))
    }))

  it.effect("a reply with several payloads delivers all of them", () =>
    Effect.gen(function*() {
      const got: Array<number> = []
      const organism = Organism.make({
        listeners: [
          Listener.make({ name: "splitter", payload: Ping, handler: () => Reply.forward("worker", ...tasks(5)) }),
          Listener.make({ name: "worker", payload: Task, handler: (t) => void got.push(t.id) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("splitter", new Ping({ n: 0 }))
          yield* pump.awaitIdle
          expect(got.sort()).toEqual([0, 1, 2, 3, 4])
          expect(pump.counters().invocations).toBe(1 + 1 + 5) // boot, splitter, 5 workers
        }))
    }))
})

describe("peers", () => {
  it.effect("a forward outside the peers never reaches the target; the agent gets a SystemError", () =>
    Effect.gen(function*() {
      const invoked: Array<string> = []
      const errors: Array<SystemError> = []
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "agent",
            agent: true,
            peers: ["allowed"],
            payload: Note,
            handler: () => Reply.all(Reply.forward("allowed", new Ping({ n: 1 })), Reply.forward("secret", new Ping({ n: 2 }))),
            onSystem: (e) => void (e instanceof SystemError && errors.push(e))
          }),
          Listener.make({ name: "allowed", payload: Ping, handler: () => void invoked.push("allowed") }),
          Listener.make({ name: "secret", payload: Ping, handler: () => void invoked.push("secret") })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("agent", new Note({ text: "x" }))
          yield* pump.awaitIdle
          expect(invoked).toEqual(["allowed"])
          // The refusal, then — as `allowed` answered nobody — that its branch ended without a reply.
          expect(errors.map((e) => e.code)).toEqual(["forbidden", "failed"])
          expect(errors[1]!.message).toBe("Your message to allowed ended without a reply: allowed answered nobody.")
          expect(errors[0]!.code).toBe("forbidden")
          // The text is generic; the details are in the event.
          expect(errors[0]!.message).not.toContain("secret")
          const rejected = yield* eventsOf("MessageRejected")
          expect(rejected).toHaveLength(1)
          expect(rejected[0]).toMatchObject({ kind: "PeerViolation", from: "agent", to: "secret" })
          expect(rejected[0]!.reason).toContain("secret")
        }))
    }))

  it.effect("an agent with an empty peer list may forward to nobody", () =>
    Effect.gen(function*() {
      const invoked: Array<string> = []
      let errors = 0
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "loner",
            agent: true,
            peers: [],
            payload: Note,
            handler: () => Reply.forward("other", new Ping({ n: 1 })),
            onSystem: () => void errors++
          }),
          Listener.make({ name: "other", payload: Ping, handler: () => void invoked.push("other") })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("loner", new Note({ text: "x" }))
          yield* pump.awaitIdle
          expect(invoked).toEqual([])
          expect(errors).toBe(1)
          expect(pump.counters().rejectedBy).toEqual({ "outbox/PeerViolation": 1 })
        }))
    }))
})

describe("failures are contained", () => {
  const caller = (received: Array<SystemError>) =>
    Listener.make({
      name: "caller",
      payload: Note,
      accepts: [Pong],
      handler: (p) => (p instanceof Note ? Reply.forward("callee", new Ping({ n: 1 })) : Reply.none),
      onSystem: (e) => void (e instanceof SystemError && received.push(e))
    })

  for (
    const [name, handler, reason, code] of [
      ["a failure", () => Effect.fail("boom"), "failed", "failed"],
      ["a defect", () => Effect.die(new Error("kaput")), "died", "failed"],
      ["a thrown exception", () => {
        throw new Error("thrown")
      }, "died", "failed"],
      ["a rejected promise", () => Promise.reject(new Error("nope")), "failed", "failed"]
    ] as const
  ) {
    it.effect(`${name}: event, SystemError to the caller, pump keeps running`, () =>
      Effect.gen(function*() {
        const received: Array<SystemError> = []
        const organism = Organism.make({
          listeners: [caller(received), Listener.make({ name: "callee", payload: Ping, handler: handler as any })]
        })
        yield* withPump(organism, ({ eventsOf, pump }) =>
          Effect.gen(function*() {
            yield* pump.inject("caller", new Note({ text: "x" }))
            yield* pump.awaitIdle
            expect(received.map((e) => e.code)).toEqual([code])
            const failed = yield* eventsOf("HandlerFailed")
            expect(failed).toHaveLength(1)
            expect(failed[0]).toMatchObject({ listener: "callee", reason })
            // Still running: the next message goes through.
            yield* pump.inject("caller", new Note({ text: "again" }))
            yield* pump.awaitIdle
            expect(received).toHaveLength(2)
          }))
      }))
  }

  it.effect("a handler past its timeout is interrupted and its caller hears so", () =>
    Effect.gen(function*() {
      const received: Array<SystemError> = []
      let interrupted = false
      const organism = Organism.make({
        listeners: [
          caller(received),
          Listener.make({
            name: "callee",
            payload: Ping,
            timeout: Duration.seconds(5),
            handler: () => Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => void (interrupted = true))))
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("caller", new Note({ text: "x" }))
          yield* Effect.yieldNow()
          yield* TestClock.adjust("4 seconds")
          expect(received).toHaveLength(0)
          yield* TestClock.adjust("2 seconds")
          yield* pump.awaitIdle
          expect(received.map((e) => e.code)).toEqual(["timeout"])
          expect((yield* eventsOf("HandlerFailed"))[0]).toMatchObject({ listener: "callee", reason: "timed-out" })
          expect(interrupted).toBe(true)
          // The worker that was interrupted has been replaced: work still flows.
          yield* pump.inject("caller", new Note({ text: "again" }))
          yield* Effect.yieldNow()
          yield* TestClock.adjust("6 seconds")
          yield* pump.awaitIdle
          expect(received).toHaveLength(2)
        }))
    }))

  it.effect("a retry policy re-runs a failing handler", () =>
    Effect.gen(function*() {
      let attempts = 0
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "flaky",
            payload: Ping,
            retry: Schedule.recurs(3),
            handler: (p) =>
              Effect.suspend(() => (++attempts < 3 ? Effect.fail("not yet") : Effect.succeed(Reply.respond(new Pong({ n: p.n })))))
          })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          const reply = yield* pump.request("flaky", new Ping({ n: 5 }))
          expect((reply as Pong).n).toBe(5)
          expect(attempts).toBe(3)
        }))
    }))

  it.effect("a retry policy does not re-run a handler that died or timed out", () =>
    Effect.gen(function*() {
      let defects = 0
      let slow = 0
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "buggy",
            payload: Ping,
            retry: Schedule.recurs(3),
            handler: () => Effect.suspend(() => Effect.die(new Error(`bug ${++defects}`)))
          }),
          Listener.make({
            name: "slow",
            payload: Note,
            retry: Schedule.recurs(3),
            timeout: Duration.seconds(1),
            handler: () => Effect.suspend(() => Effect.as(Effect.sleep("2 seconds"), Reply.none).pipe(Effect.tap(() => void slow++)))
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("buggy", new Ping({ n: 1 }))
          yield* pump.inject("slow", new Note({ text: "x" }))
          yield* Effect.yieldNow()
          yield* TestClock.adjust("10 seconds")
          yield* pump.awaitIdle
          expect(defects).toBe(1)
          expect(slow).toBe(0)
          const failures = (yield* eventsOf("HandlerFailed")).map((e) => [e.listener, e.reason])
          expect(failures.sort()).toEqual([["buggy", "died"], ["slow", "timed-out"]])
        }))
    }))

  it.effect("drain waits for in-flight work up to its deadline, and says whether it all finished", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "worker",
            payload: Ping,
            timeout: Duration.minutes(5),
            handler: (p) => Effect.as(Effect.sleep(Duration.seconds(p.n)), Reply.none)
          })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("worker", new Ping({ n: 3 }))
          yield* Effect.yieldNow()
          const quick = yield* Effect.fork(pump.drain("5 seconds"))
          yield* TestClock.adjust("4 seconds")
          expect(yield* Fiber.join(quick)).toEqual({ finished: true, interrupted: 0 })
          expect(pump.counters().inFlight).toBe(0)
        }))
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("worker", new Ping({ n: 10 }))
          yield* Effect.yieldNow()
          const late = yield* Effect.fork(pump.drain("5 seconds"))
          yield* TestClock.adjust("6 seconds")
          expect(yield* Fiber.join(late)).toEqual({ finished: false, interrupted: 1 })
          // Past the deadline, what was left was stopped and booked: the running handler was
          // interrupted with the reason, and nothing is in flight.
          const books = pump.counters()
          expect(books).toMatchObject({ running: 0, inFlight: 0 })
          expect(books.injected).toBe(books.delivered + books.rejected + books.guardStopped)
          // Its caller's SystemError came after the deadline: the shutdown guard stopped it.
          expect((yield* eventsOf("GuardTripped")).map((e) => e.guard)).toEqual(["shutdown"])
          const failed = yield* eventsOf("HandlerFailed")
          expect(failed).toHaveLength(1)
          expect(failed[0]).toMatchObject({ listener: "worker", reason: "cancelled", detail: "not finished within 5s" })
          // Draining stopped external input: a new message is refused.
          expect(Exit.isFailure(yield* Effect.exit(pump.inject("worker", new Ping({ n: 1 }))))).toBe(true)
        }))
    }))

  it.effect("an agent's state is reported while it works and when it is idle again", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "thinker",
            agent: true,
            payload: Note,
            handler: () => Effect.as(Effect.sleep("1 second"), Reply.respond(new Note({ text: "thought" })))
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("thinker", new Note({ text: "think" }))
          yield* Effect.yieldNow()
          yield* TestClock.adjust("2 seconds")
          yield* pump.awaitIdle
          const states = (yield* eventsOf("AgentState")).map((e) => [e.listener, e.state])
          expect(states).toEqual([["thinker", "running"], ["thinker", "idle"]])
        }))
    }))

  it.effect("a rejected reply bounces to its sender as a SystemError quoting the problem", () =>
    Effect.gen(function*() {
      const received: Array<SystemError> = []
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "sender",
            payload: Note,
            handler: () =>
              Reply.all(
                Reply.forward("typed", new RawPayload({ tag: "Ping", inner: "<N>not a number</N>" })),
                Reply.forward("nobody", new Ping({ n: 1 }))
              ),
            onSystem: (e) => void (e instanceof SystemError && received.push(e))
          }),
          Listener.make({ name: "typed", payload: Ping, handler: () => Reply.none })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("sender", new Note({ text: "x" }))
          yield* pump.awaitIdle
          const byCode = Object.fromEntries(received.map((e) => [e.code, e.message]))
          expect(byCode.invalid).toMatch(/not a valid value of the atomic type 'xs:integer'/)
          expect(byCode.routing).toBe("Message could not be delivered. Please verify your target and try again.")
          expect(pump.counters().rejectedBy).toEqual({
            "payload/PayloadInvalid": 1,
            "route/UnknownRoute": 1
          })
          expect(pump.deadLetters().map((d) => d.kind).sort()).toEqual(["PayloadInvalid", "UnknownRoute"])
        }))
    }))

  it.effect("a reply that is not a payload is reported, not lost", () =>
    Effect.gen(function*() {
      const received: Array<SystemError> = []
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "bad",
            payload: Note,
            handler: () => Reply.respond({ not: "a payload" }),
            onSystem: (e) => void (e instanceof SystemError && received.push(e))
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("bad", new Note({ text: "x" }))
          yield* pump.awaitIdle
          expect((yield* eventsOf("HandlerFailed"))[0]).toMatchObject({ reason: "invalid-reply" })
          expect(received.map((e) => e.code)).toEqual(["invalid"])
        }))
    }))
})

describe("concurrency", () => {
  const gauge = () => {
    let now = 0
    let max = 0
    const track = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.acquireUseRelease(
        Effect.sync(() => {
          now++
          max = Math.max(max, now)
        }),
        () => effect,
        () => Effect.sync(() => void now--)
      )
    return { track, max: () => max }
  }

  it.live("never more than the global limit of handlers at once", () =>
    Effect.gen(function*() {
      const g = gauge()
      const organism = Organism.make({
        settings: { maxConcurrentHandlers: 3 },
        listeners: [
          Listener.make({ name: "fan", payload: Ping, handler: () => Reply.forward("work", ...tasks(20)) }),
          Listener.make({ name: "work", payload: Task, handler: () => g.track(Effect.sleep("5 millis")) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("fan", new Ping({ n: 0 }))
          yield* pump.awaitIdle
          expect(g.max()).toBe(3)
        }))
    }))

  it.live("an exclusive listener never overlaps itself; safe ones do", () =>
    Effect.gen(function*() {
      const exclusive = gauge()
      const safe = gauge()
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "fan",
            payload: Ping,
            handler: () => Reply.all(Reply.forward("solo", ...tasks(8)), Reply.forward("many", ...tasks(8)))
          }),
          Listener.make({
            name: "solo",
            payload: Task,
            concurrency: ConcurrencyClass.exclusive,
            handler: () => exclusive.track(Effect.sleep("3 millis"))
          }),
          Listener.make({ name: "many", payload: Task, handler: () => safe.track(Effect.sleep("3 millis")) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("fan", new Ping({ n: 0 }))
          yield* pump.awaitIdle
          expect(exclusive.max()).toBe(1)
          expect(safe.max()).toBeGreaterThan(1)
        }))
    }))

  it.live("members of a category never overlap each other", () =>
    Effect.gen(function*() {
      const g = gauge()
      const member = (name: string) =>
        Listener.make({ name, payload: Task, concurrency: ConcurrencyClass.category("db"), handler: () => g.track(Effect.sleep("2 millis")) })
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "fan",
            payload: Ping,
            handler: () => Reply.all(Reply.forward("db.read", ...tasks(6)), Reply.forward("db.write", ...tasks(6)))
          }),
          member("db.read"),
          member("db.write")
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("fan", new Ping({ n: 0 }))
          yield* pump.awaitIdle
          expect(g.max()).toBe(1)
          expect(pump.counters().invocations).toBe(1 + 1 + 12)
        }))
    }))

  it.live("an agent runs at most its per-agent limit at once", () =>
    Effect.gen(function*() {
      const g = gauge()
      const organism = Organism.make({
        settings: { maxConcurrentPerAgent: 2 },
        listeners: [
          Listener.make({ name: "fan", payload: Ping, handler: () => Reply.forward("agent", ...tasks(8)) }),
          Listener.make({ name: "agent", agent: true, payload: Task, handler: () => g.track(Effect.sleep("2 millis")) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("fan", new Ping({ n: 0 }))
          yield* pump.awaitIdle
          expect(g.max()).toBe(2)
        }))
    }))

  it.live("external producers wait when the inbox capacity is in use (backpressure)", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const organism = Organism.make({
        settings: { inboxCapacity: 2 },
        listeners: [Listener.make({ name: "slow", payload: Task, handler: () => Deferred.await(gate) })]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("slow", new Task({ id: 1 }))
          yield* pump.inject("slow", new Task({ id: 2 }))
          const third = yield* Effect.fork(pump.inject("slow", new Task({ id: 3 })))
          yield* Effect.sleep("20 millis")
          expect(third.unsafePoll()).toBeNull() // still waiting for a permit
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.join(third)
        }))
    }))

  it.effect("an injection with maxWait takes a free permit at once, and is refused with InboxFull past its wait", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const organism = Organism.make({
        settings: { inboxCapacity: 1 },
        listeners: [Listener.make({ name: "slow", payload: Task, handler: () => Deferred.await(gate) })]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.awaitIdle
          // Free: admitted without waiting (no clock time passes).
          yield* pump.inject("slow", new Task({ id: 1 }), { maxWait: "1 second" })
          const refused = yield* Effect.fork(Effect.flip(pump.inject("slow", new Task({ id: 2 }), { maxWait: "1 second" })))
          const raw = yield* Effect.fork(Effect.flip(pump.injectRaw("<x/>", { maxWait: "1 second" })))
          yield* TestClock.adjust("999 millis")
          expect(refused.unsafePoll()).toBeNull() // still waiting
          yield* TestClock.adjust("1 millis")
          const error = yield* Fiber.join(refused)
          expect(error._tag).toBe("InboxFull")
          expect(error.message).toContain("1000 ms")
          expect((yield* Fiber.join(raw))._tag).toBe("InboxFull")
          // Refused injections hold nothing: once the first settles, a permit is free again.
          yield* Deferred.succeed(gate, undefined)
          yield* pump.awaitIdle
          yield* pump.inject("slow", new Task({ id: 3 }), { maxWait: "1 second" })
          expect(pump.counters().injected).toBe(pump.counters().delivered + pump.counters().rejected + pump.counters().inFlight)
        }))
    }))
})

describe("guards", () => {
  it.effect("a ping-pong with no natural end stops at the invocation cap", () =>
    Effect.gen(function*() {
      const errors: Array<SystemError> = []
      const organism = Organism.make({
        settings: { guards: { maxInvocationsPerThread: 20 } },
        listeners: [
          Listener.make({
            name: "ping",
            payload: Pong,
            handler: (p) => Reply.forward("pong", new Ping({ n: p.n + 1 })),
            onSystem: (e) => void (e instanceof SystemError && errors.push(e))
          }),
          Listener.make({
            name: "pong",
            payload: Ping,
            handler: (p) => Reply.forward("ping", new Pong({ n: p.n + 1 })),
            onSystem: (e) => void (e instanceof SystemError && errors.push(e))
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("ping", new Pong({ n: 0 }))
          yield* pump.awaitIdle
          const tripped = yield* eventsOf("GuardTripped")
          expect(tripped).toHaveLength(1)
          expect(tripped[0]).toMatchObject({ guard: "max-invocations" })
          expect(pump.counters().guardStopped).toBe(1)
          expect(errors.map((e) => e.code)).toEqual(["guard"])
          // 20 handler invocations on the ping-pong thread + 1 for the SystemError.
          const done = (yield* eventsOf("ThreadCompleted")).filter((e) => e.invocations > 1)
          expect(done[0]!.invocations).toBe(21)
        }))
    }))

  it.effect("a chain deeper than the limit is stopped", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        settings: { guards: { maxChainDepth: 5 } },
        listeners: [
          // Self-calls extend the chain by one hop each time.
          Listener.make({ name: "deep", payload: Ping, handler: (p) => Reply.forward("deep", new Ping({ n: p.n + 1 })) })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("deep", new Ping({ n: 0 }))
          yield* pump.awaitIdle
          const tripped = yield* eventsOf("GuardTripped")
          expect(tripped[0]).toMatchObject({ guard: "max-chain-depth", listener: "deep" })
          expect(pump.counters().invocations).toBe(1 + 5) // boot + depths 1..5
        }))
    }))
})

describe("boot and the console", () => {
  it.effect("system.boot hears Boot at start; boot messages go out from the injector", () =>
    Effect.gen(function*() {
      const got: Array<unknown> = []
      const organism = Organism.make({
        name: "booted",
        listeners: [Listener.make({ name: "greeter", payload: Note, accepts: [TextInput], handler: (p, m) => void got.push([p, m.from]) })],
        boot: [{ to: "greeter", payload: new Note({ text: "hello" }) }]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.awaitIdle
          const received = yield* eventsOf("MessageReceived")
          expect(received[0]).toMatchObject({ from: "system", to: "system.boot", payloadType: "Boot" })
          expect(received[0]!.payload).toContain("<OrganismName>booted</OrganismName>")
          expect(got).toEqual([[new Note({ text: "hello" }), "console"]])
        }))
    }))

  it.effect("the accounting adds up under a mix of everything", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        listeners: [
          Listener.make({ name: "a", payload: Ping, handler: (p) => (p.n % 3 === 0 ? Reply.forward("b", new Pong({ n: p.n })) : Reply.none) }),
          Listener.make({ name: "b", payload: Pong, handler: (p) => (p.n % 2 === 0 ? Effect.fail("even") : Reply.respond(new Note({ text: "odd" }))) })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          for (let n = 0; n < 30; n++) yield* pump.inject(n % 5 === 0 ? "nobody" : "a", new Ping({ n }))
          yield* pump.injectRaw("garbage")
          yield* pump.injectRaw(new Uint8Array([0xff, 0xfe, 0x00]))
          yield* pump.awaitIdle
          expectBalanced(pump)
          expect(pump.counters().rejected).toBeGreaterThan(0)
        }))
    }))
})

describe("agent loop safety", () => {
  it.effect("an agent sending the same payload to the same target a third time in a row is stopped", () =>
    Effect.gen(function*() {
      const errors: Array<SystemError> = []
      const organism = Organism.make({
        listeners: [
          Listener.make({
            name: "agent",
            agent: true,
            peers: ["tool"],
            payload: Note,
            accepts: [Pong],
            // Keeps asking the tool the same question, however often it answers.
            handler: () => Reply.forward("tool", new Ping({ n: 7 })),
            onSystem: (e) => void (e instanceof SystemError && errors.push(e))
          }),
          Listener.make({ name: "tool", payload: Ping, handler: (p) => Reply.respond(new Pong({ n: p.n })) })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("agent", new Note({ text: "go" }))
          yield* pump.awaitIdle
          const tripped = yield* eventsOf("GuardTripped")
          expect(tripped).toHaveLength(1)
          expect(tripped[0]).toMatchObject({ guard: "loop", listener: "agent" })
          expect(tripped[0]!.detail).toBe("agent sent the same <Ping> to tool 3 times in a row")
          expect(errors.map((e) => e.code)).toEqual(["guard"])
          // The tool was asked twice; the third identical question never left.
          expect((yield* eventsOf("MessageReceived")).filter((e) => e.to === "tool")).toHaveLength(2)
          expect(pump.counters().guardStopped).toBe(1)
        }))
    }))

  it.effect("one invocation fanning out identical items is not a loop", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        listeners: [
          Listener.make({ name: "agent", agent: true, peers: ["tool"], payload: Note, handler: () => Reply.forward("tool", ...Array.from({ length: 5 }, () => new Ping({ n: 1 }))) }),
          Listener.make({ name: "tool", payload: Ping, handler: () => Reply.none })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("agent", new Note({ text: "go" }))
          yield* pump.awaitIdle
          expect(pump.counters().guardStopped).toBe(0)
          expect(pump.counters().invocations).toBe(1 + 1 + 5)
        }))
    }))

  it.effect("the agent step cap stops a conversation after N agent invocations", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        settings: { guards: { maxAgentSteps: 4 } },
        listeners: [
          Listener.make({
            name: "agent",
            agent: true,
            peers: ["agent"],
            payload: Ping,
            // A different payload each time: not a loop, just a conversation that never ends.
            handler: (p) => Reply.forward("agent", new Ping({ n: p.n + 1 }))
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("agent", new Ping({ n: 0 }))
          yield* pump.awaitIdle
          expect((yield* eventsOf("GuardTripped"))[0]).toMatchObject({ guard: "max-agent-steps" })
          expect(pump.counters().invocations).toBe(1 + 4)
        }))
    }))

  it.effect("the wall-clock limit of a thread stops deliveries after it, on the Effect clock", () =>
    Effect.gen(function*() {
      const organism = Organism.make({
        settings: { guards: { maxThreadDuration: Duration.seconds(50) } },
        listeners: [
          Listener.make({
            name: "slowpoke",
            payload: Ping,
            handler: (p) => Effect.as(Effect.sleep("20 seconds"), Reply.forward("slowpoke", new Ping({ n: p.n + 1 })))
          })
        ]
      })
      yield* withPump(organism, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("slowpoke", new Ping({ n: 0 }))
          // Deliveries at 0, 20 and 40 s are within the 50 s; the one at 60 s is stopped.
          for (let i = 0; i < 3; i++) {
            yield* TestClock.adjust("20 seconds")
            yield* Effect.yieldNow()
          }
          yield* pump.awaitIdle
          expect((yield* eventsOf("GuardTripped")).map((e) => e.guard)).toEqual(["max-thread-duration"])
          expect(pump.counters().invocations).toBe(1 + 3)
        }))
    }))
})
