/**
 * The pump's side of human approval. A hop addressed to a listener with `approval: required`
 * that has passed every check is held here — still holding its lease (its thread stays
 * alive, its producer's permit stays taken, the books count it in flight) — and filed with
 * the Approvals service. It is settled, exactly once, by whichever comes first:
 * - a person approves: it is delivered as it would have been (on the version that judged it);
 * - a person denies: it is rejected at the `approval` stage, its sender hears the reason;
 * - its conversation is cancelled: stopped by the `cancelled` guard (like every message of
 *   a cancelled conversation — the SystemError to its sender too);
 * - the organism drains: stopped by the `unapproved` guard — a drain never waits for a
 *   person — and its sender hears why (a SystemError, delivered while the drain lets the
 *   work in flight finish). A message that would be held once a drain has begun is stopped
 *   the same way at once; past the drain's deadline, by the `shutdown` guard like any other.
 *
 * `awaitIdle` does not wait for people: the books call the pump idle when all that is left
 * in flight is held here (`Books.held`).
 */
import { Effect, type Fiber } from "effect"
import { ApprovalDenied, InternalError } from "../../domain/IngressError.js"
import { ApprovalDecided, ApprovalRequested, makeEvent } from "../../domain/PumpEvent.js"
import { approvalId, type Approvals, type Decision, type PendingApproval } from "../../services/Approvals.js"
import type { RootThread, ThreadNode } from "../../services/ThreadRegistry.js"
import { describeThrown, type Seen } from "../Ingress.js"
import type { PumpCore } from "./Core.js"
import type { Dispatcher } from "./Dispatcher.js"
import { type Hop, Outcome } from "./Hop.js"
import type { Lifecycle } from "./Lifecycle.js"

/** What Delivery hands over instead of an outcome: a checked hop and how to deliver it. */
export interface Held {
  readonly _tag: "Held"
  readonly hop: Hop
  readonly node: ThreadNode
  /** The listener that requires the approval. */
  readonly listener: string
  readonly seen: Seen
  readonly payload: string
  /** The canonical envelope: what the approval id hashes. */
  readonly envelope: string
  /** Delivers it: what `judge` would have decided had no approval been needed. */
  readonly dispatch: () => Outcome
}

const DRAINING = "the organism is draining and no one decided in time"

export const makeApprovalDesk = (
  core: PumpCore,
  lifecycle: Lifecycle,
  dispatcher: Dispatcher,
  approvals: Approvals.Service,
  run: (effect: Effect.Effect<void>) => Fiber.RuntimeFiber<void>
) => {
  const { books } = core
  // Held hops by approval id: identical envelopes share an id, and a decision.
  const held = new Map<string, Array<Held>>()

  const settle = (entry: Held, outcome: Outcome) => {
    books.held--
    try {
      lifecycle.settle(entry.hop, outcome)
      if (outcome._tag === "Delivered") for (const job of outcome.jobs) dispatcher.schedule(job)
    } catch {
      // As in Delivery: a registry Layer that throws while a lease is given back must not
      // stop the decision from being taken for the other hops.
    }
  }

  const decidedEvent = (id: string, entry: Held, decision: Decision["_tag"], reason: string, by: string) => {
    if (!core.observed()) return
    core.publish(
      makeEvent(ApprovalDecided, {
        thread: entry.node.id,
        root: entry.node.root.id,
        time: core.now(),
        id,
        listener: entry.listener,
        decision: decision === "Approved" ? "approved" : decision === "Denied" ? "denied" : "withdrawn",
        reason,
        by
      })
    )
  }

  /** A person decided (the Approvals service calls back): every hop under the id is settled. */
  const decided = (id: string, decision: Decision) => {
    const entries = held.get(id)
    if (entries === undefined) return
    held.delete(id)
    decidedEvent(
      id,
      entries[0]!,
      decision._tag,
      decision._tag === "Approved" ? "" : decision.reason,
      decision._tag === "Withdrawn" ? "system" : decision.by
    )
    for (const entry of entries) {
      switch (decision._tag) {
        case "Approved": {
          let outcome: Outcome
          try {
            outcome = entry.dispatch()
          } catch (thrown) {
            const error = new InternalError({ diagnostics: [], stage: "dispatch", detail: describeThrown(thrown) })
            outcome = Outcome.Rejected({ rejection: { error, seen: entry.seen, text: entry.envelope, diagnostics: [] } })
          }
          settle(entry, outcome)
          break
        }
        case "Denied":
        case "Withdrawn": {
          const error = new ApprovalDenied({ diagnostics: [], id, reason: decision.reason })
          settle(entry, Outcome.Rejected({ rejection: { error, seen: entry.seen, text: entry.envelope, diagnostics: [] } }))
          break
        }
      }
    }
  }

  const stopped = (entry: Held, guard: string, detail: string) =>
    Outcome.GuardStopped({
      guard,
      detail,
      listener: entry.listener,
      notice: `Your message to ${entry.listener} waited for approval and was stopped (${guard}): ${detail}`
    })

  /** Holds a checked hop until a decision — or stops it at once when the organism drains. */
  const hold = (entry: Held) => {
    if (core.halting !== undefined) return lifecycle.settle(entry.hop, stopped(entry, "shutdown", core.halting))
    if (core.stopped) return lifecycle.settle(entry.hop, stopped(entry, "unapproved", DRAINING))
    const id = approvalId(entry.envelope)
    books.held++
    const same = held.get(id)
    if (same !== undefined) {
      same.push(entry)
      return books.checkIdle()
    }
    held.set(id, [entry])
    const node = entry.node
    const pending: PendingApproval = {
      id,
      listener: entry.listener,
      thread: node.id,
      root: node.root.id,
      from: entry.seen.from ?? "",
      to: entry.seen.to ?? null,
      payloadType: entry.seen.payloadTag ?? "",
      payload: entry.payload,
      envelope: entry.envelope,
      requestedAt: Math.floor(core.now())
    }
    if (core.observed()) {
      core.publish(
        makeEvent(ApprovalRequested, {
          thread: node.id,
          root: node.root.id,
          time: core.now(),
          id,
          listener: entry.listener,
          from: pending.from,
          to: pending.to,
          payloadType: pending.payloadType,
          payload: pending.payload,
          envelope: pending.envelope
        })
      )
    }
    run(approvals.request(pending, (decision) => Effect.sync(() => decided(id, decision))))
    // What is left in flight may now be only what waits for people: that is idle.
    books.checkIdle()
  }

  /** Stops the held hops `which` selects, by `guard`; ids left with none are withdrawn. */
  const withdraw = (which: (entry: Held) => boolean, guard: string, detail: (entry: Held) => string) => {
    for (const [id, entries] of [...held]) {
      const leaving = entries.filter(which)
      if (leaving.length === 0) continue
      const staying = entries.filter((e) => !which(e))
      if (staying.length > 0) held.set(id, staying)
      else {
        held.delete(id)
        decidedEvent(id, leaving[0]!, "Withdrawn", detail(leaving[0]!), "system")
        run(approvals.withdraw(id, `${guard}: ${detail(leaving[0]!)}`))
      }
      for (const entry of leaving) settle(entry, stopped(entry, guard, detail(entry)))
    }
  }

  return {
    hold,
    /** A cancelled conversation: its held messages are stopped by the `cancelled` guard. */
    cancel: (root: RootThread) => withdraw((e) => e.node.root === root, "cancelled", () => core.endings.of(root).detail),
    /** A drain: every held message is stopped by the `unapproved` guard. */
    drain: () => withdraw(() => true, "unapproved", () => DRAINING),
    /**
     * The pump is gone (its scope closed without a drain): what it held is withdrawn from the
     * service — which may outlive it — so that no decision reaches a pump that is no more.
     */
    close: Effect.suspend(() => {
      const ids = [...held.keys()]
      held.clear()
      return Effect.forEach(ids, (id) => approvals.withdraw(id, "the organism stopped"), { discard: true })
    })
  }
}

export type ApprovalDesk = ReturnType<typeof makeApprovalDesk>
