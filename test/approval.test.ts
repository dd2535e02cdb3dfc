/**
 * Human approval in the embedded mode: a message to a listener with `approval: required`
 * waits, once checked, for a person; approve → delivered as it would have been, deny → the
 * sender hears why; decisions for another envelope, or for nothing pending, are refused;
 * cancel and drain end what waits, and the books add up all along.
 */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Exit, FastCheck as fc, Fiber, Layer, TestClock } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { SystemError } from "../src/domain/SystemPayloads.js"
import { Pump } from "../src/pipeline/Pump.js"
import { ApprovalMismatch, ApprovalNotPending, Approvals, approvalId } from "../src/services/Approvals.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { loadOrganism } from "./support/files.js"
import { expectBalanced, Note, Ping, Pong, withPump } from "./support/pump.js"

/** A clerk that forwards each note to `payments` (which needs approval) and keeps what comes back. */
const organismOf = (paid: Array<number>, heard: Array<SystemError>, paymentsHandler?: (p: Ping) => Reply | void) =>
  Organism.make({
    listeners: [
      Listener.make({
        name: "clerk",
        payload: Note,
        accepts: [Pong],
        handler: (p) => (p instanceof Note ? Reply.forward("payments", new Ping({ n: p.text.length })) : Reply.none),
        onSystem: (p) => void (p instanceof SystemError && heard.push(p))
      }),
      Listener.make({
        name: "payments",
        payload: Ping,
        approval: "required",
        handler: paymentsHandler ?? ((p) => {
          paid.push(p.n)
          return Reply.respond(new Pong({ n: p.n }))
        })
      })
    ]
  })

/** The counters say every hop is booked: settled ones plus the ones waiting for people. */
/**
 * Waits until the pump has counted more than `before` injected messages: `awaitIdle` says
 * nothing about a message a forked producer has not handed to the pump yet (the boot message
 * may settle before it arrives).
 */
const injectedPast = (pump: Pump.Service, before: number) =>
  Effect.yieldNow().pipe(Effect.repeat({ until: () => pump.counters().injected > before }))

const expectBooked = (pump: Pump.Service) => {
  const c = pump.counters()
  expect(c.injected).toBe(c.delivered + c.rejected + c.guardStopped + c.pendingApprovals)
  expect(c.inFlight).toBe(c.pendingApprovals)
}

describe("human approval", () => {
  it.effect("a message to a listener that requires approval waits; approved, it is delivered as it would have been", () =>
    Effect.gen(function*() {
      const paid: Array<number> = []
      const heard: Array<SystemError> = []
      yield* withPump(organismOf(paid, heard), ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* TestClock.adjust(Duration.seconds(42))
          const root = yield* pump.inject("clerk", new Note({ text: "pay 5" }))
          // awaitIdle does not wait for a person: it returns with the message held.
          yield* pump.awaitIdle
          expect(paid).toEqual([])
          expect(pump.counters().pendingApprovals).toBe(1)
          expectBooked(pump)
          const [pending] = yield* pump.approvals.pending
          expect(pending).toMatchObject({ listener: "payments", from: "clerk", to: "payments", root, payloadType: "Ping", requestedAt: 42_000 })
          expect(pending!.payload).toMatch(/^<Ping><n>5<\/n><\/Ping>$/i)
          // The id is the SHA-256 of the exact canonical envelope.
          expect(pending!.id).toBe(approvalId(pending!.envelope))
          expect(pending!.id).toMatch(/^[0-9a-f]{64}$/)
          expect(pending!.envelope).toContain(pending!.payload.replace("<Ping>", ""))
          const [requested] = yield* eventsOf("ApprovalRequested")
          expect(requested).toMatchObject({ id: pending!.id, listener: "payments", from: "clerk", to: "payments", envelope: pending!.envelope })

          const approved = yield* pump.approvals.approve(pending!.id, { by: "ada", envelope: pending!.envelope })
          expect(approved.id).toBe(pending!.id)
          yield* pump.awaitIdle
          expect(paid).toEqual([5])
          expect(heard).toEqual([])
          expect(yield* pump.approvals.pending).toEqual([])
          expect(yield* eventsOf("ApprovalDecided")).toMatchObject([{ id: pending!.id, decision: "approved", by: "ada", reason: "" }])
          // Delivered exactly once, with its reply back to the clerk.
          const received = yield* eventsOf("MessageReceived")
          expect(received.filter((e) => e.to === "payments")).toHaveLength(1)
          expect(received.some((e) => e.to === "clerk" && e.payloadType === "Pong")).toBe(true)
          expect(pump.counters()).toMatchObject({ rejected: 0, guardStopped: 0, pendingApprovals: 0 })
        }))
    }))

  it.effect("denied: the message is rejected at the approval stage and its sender hears the reason as a SystemError", () =>
    Effect.gen(function*() {
      const paid: Array<number> = []
      const heard: Array<SystemError> = []
      yield* withPump(organismOf(paid, heard), ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("clerk", new Note({ text: "pay 1000" }))
          yield* pump.awaitIdle
          const [pending] = yield* pump.approvals.pending
          yield* pump.approvals.deny(pending!.id, "over the monthly limit", { by: "grace" })
          yield* pump.awaitIdle
          expect(paid).toEqual([])
          expect(heard).toHaveLength(1)
          expect(heard[0]!.code).toBe("forbidden")
          expect(heard[0]!.message).toContain("over the monthly limit")
          expect(pump.counters().rejectedBy).toEqual({ "approval/ApprovalDenied": 1 })
          const [letter] = pump.deadLetters()
          expect(letter).toMatchObject({ stage: "approval", kind: "ApprovalDenied", from: "clerk", to: "payments" })
          expect(letter!.reason).toContain("over the monthly limit")
          expect(yield* eventsOf("ApprovalDecided")).toMatchObject([{ decision: "denied", by: "grace", reason: "over the monthly limit" }])
          expect(yield* eventsOf("MessageRejected")).toMatchObject([{ stage: "approval", kind: "ApprovalDenied" }])
        }))
    }))

  it.effect("a decision for nothing pending, or for another envelope than the one waiting, is refused", () =>
    Effect.gen(function*() {
      const paid: Array<number> = []
      yield* withPump(organismOf(paid, []), ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("clerk", new Note({ text: "pay 7" }))
          yield* pump.inject("clerk", new Note({ text: "pay 70" }))
          yield* pump.awaitIdle
          const [first, second] = yield* pump.approvals.pending
          expect(first!.id).not.toBe(second!.id)

          const unknown = yield* Effect.flip(pump.approvals.approve("0".repeat(64)))
          expect(unknown).toBeInstanceOf(ApprovalNotPending)
          expect(unknown.message).toContain("no message waits for approval")
          // The approver saw the second message but sends the first one's id: refused.
          const mismatch = yield* Effect.flip(pump.approvals.approve(first!.id, { envelope: second!.envelope }))
          expect(mismatch).toBeInstanceOf(ApprovalMismatch)
          expect(mismatch).toMatchObject({ id: first!.id, seen: second!.id })
          const denyMismatch = yield* Effect.flip(pump.approvals.deny(second!.id, "no", { envelope: first!.envelope }))
          expect(denyMismatch._tag).toBe("ApprovalMismatch")
          // Nothing was decided by the refusals.
          expect(paid).toEqual([])
          expect(yield* pump.approvals.pending).toHaveLength(2)

          yield* pump.approvals.approve(first!.id)
          // Decided once: a second decision on the same id is refused.
          expect((yield* Effect.flip(pump.approvals.deny(first!.id, "too late")))._tag).toBe("ApprovalNotPending")
          expect((yield* Effect.flip(pump.approvals.get(first!.id)))._tag).toBe("ApprovalNotPending")
          expect((yield* pump.approvals.get(second!.id)).payload).toMatch(/>6</)
          yield* pump.approvals.approve(second!.id)
          yield* pump.awaitIdle
          expect(paid.sort((a, b) => a - b)).toEqual([5, 6])
        }))
    }))

  it.effect("a request to a listener that requires approval is answered once a person approves it", () =>
    Effect.gen(function*() {
      const paid: Array<number> = []
      yield* withPump(organismOf(paid, []), ({ pump }) =>
        Effect.gen(function*() {
          const before = pump.counters().injected
          const answer = yield* Effect.fork(pump.request("payments", new Ping({ n: 3 })))
          yield* injectedPast(pump, before)
          yield* pump.awaitIdle
          const [pending] = yield* pump.approvals.pending
          expect(pending).toMatchObject({ from: "console", listener: "payments" })
          // awaitDecision waits for the end of one request.
          const decision = yield* Effect.fork(pump.approvals.awaitDecision(pending!.id))
          yield* Effect.yieldNow()
          yield* pump.approvals.approve(pending!.id)
          expect((yield* Fiber.join(decision))._tag).toBe("Approved")
          expect(yield* Fiber.join(answer)).toEqual(new Pong({ n: 3 }))
          expect(paid).toEqual([3])
        }))
    }))

  it.effect("a denied request fails with the approver's reason", () =>
    Effect.gen(function*() {
      yield* withPump(organismOf([], []), ({ pump }) =>
        Effect.gen(function*() {
          const before = pump.counters().injected
          const answer = yield* Effect.fork(pump.request("payments", new Ping({ n: 3 })))
          yield* injectedPast(pump, before)
          yield* pump.awaitIdle
          const [pending] = yield* pump.approvals.pending
          yield* pump.approvals.deny(pending!.id, "not today")
          const exit = yield* Fiber.await(answer)
          expect(Exit.isFailure(exit)).toBe(true)
          expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("not today")
        }))
    }))

  it.effect("cancelling the conversation stops what waits for approval (cancelled guard), and the rest of it", () =>
    Effect.gen(function*() {
      const paid: Array<number> = []
      const heard: Array<SystemError> = []
      yield* withPump(organismOf(paid, heard), ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          const root = yield* pump.inject("clerk", new Note({ text: "pay 2" }))
          const other = yield* pump.inject("clerk", new Note({ text: "pay 22" }))
          yield* pump.awaitIdle
          const pending = yield* pump.approvals.pending
          expect(pending).toHaveLength(2)
          const mine = pending.find((p) => p.root === root)!
          expect(yield* pump.cancel(root, { by: "ops" })).toBe(true)
          yield* pump.awaitIdle
          expect((yield* pump.approvals.pending).map((p) => p.root)).toEqual([other])
          // The held message, and the SystemError written to its sender: a cancelled
          // conversation delivers nothing more.
          expect(pump.counters()).toMatchObject({ guardStopped: 2, pendingApprovals: 1 })
          expectBooked(pump)
          expect(heard).toEqual([])
          const guards = yield* eventsOf("GuardTripped")
          expect(guards.map((g) => g.guard)).toEqual(["cancelled", "cancelled"])
          // The withdrawn id can no longer be decided.
          expect((yield* Effect.flip(pump.approvals.approve(mine.id)))._tag).toBe("ApprovalNotPending")
          const completed = (yield* eventsOf("ThreadCompleted")).find((e) => e.thread === root)
          expect(completed).toMatchObject({ reason: "cancelled" })
          expect(yield* eventsOf("ApprovalDecided")).toMatchObject([{ id: mine.id, decision: "withdrawn", by: "system" }])
          yield* pump.approvals.approve((yield* pump.approvals.pending)[0]!.id)
          yield* pump.awaitIdle
          expect(paid).toEqual([6])
        }))
    }))

  it.effect("a drain does not wait for a person: what waits is stopped by the unapproved guard, the sender hears it, and the books add up", () =>
    Effect.gen(function*() {
      const paid: Array<number> = []
      const heard: Array<SystemError> = []
      yield* withPump(organismOf(paid, heard), ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("clerk", new Note({ text: "a" }))
          yield* pump.inject("payments", new Ping({ n: 1 }))
          yield* pump.awaitIdle
          const pending = yield* pump.approvals.pending
          expect(pending).toHaveLength(2)
          // A one-minute deadline that never elapses on the TestClock: the drain ends at once.
          const drained = yield* pump.drain(Duration.minutes(1))
          expect(drained).toEqual({ finished: true, interrupted: 0 })
          expect(yield* pump.approvals.pending).toEqual([])
          // Delivered: the boot message, the note, the SystemError to the clerk.
          expect(pump.counters()).toMatchObject({ guardStopped: 2, pendingApprovals: 0, delivered: 3 })
          expectBalanced(pump)
          expect(paid).toEqual([])
          // The clerk (a listener) hears why; the console's own message has nobody to tell.
          expect(heard.map((e) => e.code)).toEqual(["guard"])
          expect(heard[0]!.message).toContain("waited for approval")
          expect((yield* eventsOf("GuardTripped")).map((g) => g.guard)).toEqual(["unapproved", "unapproved"])
          expect((yield* eventsOf("ApprovalDecided")).map((d) => d.decision)).toEqual(["withdrawn", "withdrawn"])
          // Once draining, nothing new is taken.
          expect((yield* Effect.flip(pump.inject("payments", new Ping({ n: 2 }))))._tag).toBe("PumpStopped")
          expect((yield* Effect.flip(pump.approvals.approve(pending[0]!.id)))._tag).toBe("ApprovalNotPending")
        }))
    }))

  it.effect("a reload leaves what waits waiting; approved, it is delivered on the version that judged it", () =>
    Effect.gen(function*() {
      const paid: Array<number> = []
      const paidAfter: Array<number> = []
      yield* withPump(organismOf(paid, []), ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("payments", new Ping({ n: 4 }))
          yield* pump.awaitIdle
          const [pending] = yield* pump.approvals.pending
          const diff = yield* pump.reload(organismOf(paidAfter, [], (p) => void paidAfter.push(p.n)))
          expect(diff.updated).toContain("payments")
          expect((yield* pump.approvals.pending).map((p) => p.id)).toEqual([pending!.id])
          yield* pump.approvals.approve(pending!.id)
          yield* pump.awaitIdle
          expect(paid).toEqual([4])
          expect(paidAfter).toEqual([])
          // New messages are judged by the new version (which still requires approval).
          yield* pump.inject("payments", new Ping({ n: 9 }))
          yield* pump.awaitIdle
          yield* pump.approvals.approve((yield* pump.approvals.pending)[0]!.id)
          yield* pump.awaitIdle
          expect(paidAfter).toEqual([9])
        }))
    }))

  it.effect("listeners without the option, and the pump's own SystemErrors, never wait", () =>
    Effect.gen(function*() {
      const heard: Array<SystemError> = []
      const organism = Organism.make({
        listeners: [
          Listener.make({ name: "open", payload: Note, handler: () => Reply.forward("ghost", new Ping({ n: 1 })) }),
          Listener.make({
            name: "gated",
            payload: Ping,
            approval: "required",
            // It sends to a listener that does not exist: the SystemError back to it is not held.
            handler: () => Reply.forward("nobody", new Note({ text: "x" })),
            onSystem: (e) => void heard.push(e as SystemError)
          })
        ]
      })
      yield* withPump(organism, ({ pump }) =>
        Effect.gen(function*() {
          yield* pump.inject("open", new Note({ text: "no approval" }))
          yield* pump.awaitIdle
          expect(yield* pump.approvals.pending).toEqual([])
          yield* pump.inject("gated", new Ping({ n: 1 }))
          yield* pump.awaitIdle
          yield* pump.approvals.approve((yield* pump.approvals.pending)[0]!.id)
          yield* pump.awaitIdle
          expect(heard.map((e) => e.code)).toEqual(["routing"])
          expect(yield* pump.approvals.pending).toEqual([])
        }))
    }))

  it.effect("the pump uses the Approvals service of its context when one is provided", () =>
    Effect.gen(function*() {
      const paid: Array<number> = []
      yield* withPump(organismOf(paid, []), ({ pump }) =>
        Effect.gen(function*() {
          const desk = yield* Approvals
          expect(pump.approvals).toBe(desk)
          yield* pump.inject("payments", new Ping({ n: 8 }))
          yield* pump.awaitIdle
          const [pending] = yield* desk.pending
          yield* desk.approve(pending!.id)
          yield* pump.awaitIdle
          expect(paid).toEqual([8])
        }))
    }).pipe(Effect.provide(Approvals.layerMemory)))

  it.effect("a pump that stops without a drain withdraws what it held from a service that outlives it", () =>
    Effect.gen(function*() {
      const desk = yield* Approvals
      const paid: Array<number> = []
      yield* Effect.scoped(Effect.gen(function*() {
        const pump = yield* Pump.make(organismOf(paid, []))
        yield* pump.inject("payments", new Ping({ n: 1 }))
        yield* pump.awaitIdle
        expect(yield* desk.pending).toHaveLength(1)
      }))
      expect(yield* desk.pending).toEqual([])
      expect(paid).toEqual([])
    }).pipe(Effect.provide(Layer.merge(Approvals.layerMemory, Pump.layerServices))))
})

// --- as a property: whatever happens around them, held messages are settled exactly once ---

/** `gate` (approval required) and `free` forward to each other a few times; some suspend. */
const pingPong = (gateSuspends: number, required: boolean) =>
  Organism.make({
    listeners: [
      Listener.make({
        name: "gate",
        payload: Ping,
        approval: required ? "required" : "none",
        timeout: Duration.seconds(2),
        handler: (p) => {
          const next = p.n > 4 ? Reply.none : Reply.forward("free", new Ping({ n: p.n + 1 }))
          return gateSuspends > 0 ? Effect.as(Effect.sleep(Duration.seconds(gateSuspends)), next) : next
        },
        onSystem: () => Reply.none
      }),
      Listener.make({
        name: "free",
        payload: Ping,
        handler: (p) => (p.n > 4 ? Reply.respond(new Pong({ n: p.n })) : Reply.forward("gate", new Ping({ n: p.n + 1 }))),
        onSystem: () => Reply.none
      })
    ]
  })

type Step =
  | { readonly _tag: "inject"; readonly to: "gate" | "free"; readonly n: number }
  | { readonly _tag: "approve" | "deny" | "cancel"; readonly k: number }
  | { readonly _tag: "reload"; readonly suspends: number; readonly required: boolean }
  | { readonly _tag: "tick"; readonly seconds: number }

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ _tag: fc.constant("inject" as const), to: fc.constantFrom("gate" as const, "free" as const), n: fc.integer({ min: 0, max: 5 }) }) },
  { weight: 3, arbitrary: fc.record({ _tag: fc.constantFrom("approve" as const, "deny" as const), k: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("cancel" as const), k: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("reload" as const), suspends: fc.integer({ min: 0, max: 1 }), required: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("tick" as const), seconds: fc.integer({ min: 0, max: 2 }) }) }
)

/** Lets the pump (and the test clock) run until `fiber` is done, at most `seconds`. */
const drive = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, seconds: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds && fiber.unsafePoll() === null; i++) {
      yield* TestClock.adjust("1 second")
      for (let j = 0; j < 20; j++) yield* Effect.yieldNow()
    }
    return fiber.unsafePoll()
  })

const settleScenario = (suspends: number, steps: ReadonlyArray<Step>, end: "approve" | "deny" | "drain") =>
  Effect.gen(function*() {
    const pump = yield* Pump.make(pingPong(suspends, true))
    const roots: Array<string> = []
    for (const s of steps) {
      const pending = yield* pump.approvals.pending
      switch (s._tag) {
        case "inject":
          roots.push(yield* pump.inject(s.to, new Ping({ n: s.n })))
          break
        case "approve":
        case "deny": {
          const p = pending[s.k % Math.max(1, pending.length)]
          if (p !== undefined) yield* s._tag === "approve" ? pump.approvals.approve(p.id) : pump.approvals.deny(p.id, "no")
          break
        }
        case "cancel":
          if (roots.length > 0) yield* pump.cancel(roots[s.k % roots.length]!)
          break
        case "reload":
          yield* pump.reload(pingPong(s.suspends, s.required))
          break
        case "tick":
          yield* TestClock.adjust(Duration.seconds(s.seconds))
          break
      }
      yield* Effect.yieldNow()
      // In motion: what waits is part of what is in flight.
      expect(pump.counters().pendingApprovals).toBeLessThanOrEqual(pump.counters().inFlight)
    }
    // Idle comes with messages still waiting: then they are decided (or drained) until none is left.
    for (let round = 0; round < 50; round++) {
      expect(yield* drive(yield* Effect.fork(pump.awaitIdle), 60)).toEqual(Exit.void)
      expectBooked(pump)
      const pending = yield* pump.approvals.pending
      expect(pending).toHaveLength(new Set(pending.map((p) => p.id)).size)
      if (pump.counters().pendingApprovals === 0) break
      if (end === "drain") {
        const drained = yield* Effect.fork(pump.drain(Duration.seconds(30)))
        expect(yield* drive(drained, 60)).not.toBeNull()
      } else {
        for (const p of pending) yield* end === "approve" ? pump.approvals.approve(p.id) : pump.approvals.deny(p.id, "no")
      }
    }
    expectBalanced(pump)
    expect(yield* pump.approvals.pending).toEqual([])
    expect(pump.threads()).toEqual({ roots: 0, nodes: 0 })
  }).pipe(Effect.scoped, Effect.provide(Pump.layerServices))

describe("human approval, as a property", () => {
  it.effect.prop(
    "approvals, denials, cancels, reloads and drains settle every held message exactly once; the books add up",
    [fc.integer({ min: 0, max: 1 }), fc.array(step, { minLength: 1, maxLength: 20 }), fc.constantFrom("approve" as const, "deny" as const, "drain" as const)],
    ([suspends, steps, end]) => settleScenario(suspends, steps, end),
    { fastCheck: { numRuns: 40 } }
  )
})

describe("approval in an organism file", () => {
  const dir = mkdtempSync(join(tmpdir(), "organism-approval-"))
  const modules = relative(dir, join(__dirname, "fixtures", "modules.ts"))
  const file = (name: string, approval: string) => {
    const path = join(dir, name)
    writeFileSync(path, `organism:\n  name: gated\nlisteners:\n  - name: oracle\n    payload: ${modules}#Question\n    handler: ${modules}#answer\n    approval: ${approval}\n`)
    return path
  }

  it.effect("approval: required makes the listener wait for a person; none is the default", () =>
    Effect.gen(function*() {
      const required = yield* loadOrganism(file("required.yaml", "required"))
      expect(required.organism.listeners[0]!.approval).toBe("required")
      const none = yield* loadOrganism(file("none.yaml", "none"))
      expect(none.organism.listeners[0]!.approval).toBe("none")
    }).pipe(Effect.provide(XmlEngine.layer)))

  it.effect("a wrong value is a config error naming the file's line and key", () =>
    Effect.gen(function*() {
      const result = yield* Effect.either(loadOrganism(file("wrong.yaml", "always")))
      expect(Either.isLeft(result)).toBe(true)
      const problems = Either.isLeft(result) ? result.left.problems : []
      expect(problems).toHaveLength(1)
      expect(problems[0]).toMatchObject({ line: 7, key: `listeners[0] "oracle".approval` })
      expect(problems[0]!.message).toBe(`expected "required" or "none", got "always"`)
    }).pipe(Effect.provide(XmlEngine.layer)))
})
