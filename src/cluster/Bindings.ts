/**
 * Which local conversation (the pump's root thread) belongs to which durable one, and what
 * each local conversation is doing: the payloads that came back to the injector and how it
 * ended, read from the pump's events.
 *
 * Each conversation's journal records (`organism trace`) are kept here too while it runs,
 * and stored with its end: one write at the conversation's boundary, none per hop.
 *
 * The pump names a root thread when the payload is injected; the durable conversation binds
 * it right after. A model call or an ending that arrives for a root not yet bound waits for
 * its binding (an ending is kept), so nothing is lost to that ordering.
 */
import { type Context, Deferred, Effect, Option } from "effect"
import { type LifecycleRecord, recordOf } from "../domain/JournalRecord.js"
import type { PumpEvent } from "../domain/PumpEvent.js"
import type { WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import type { ConversationEnd, ReturnedPayload } from "./ConversationWorkflow.js"

/** A durable conversation as its runner sees it while it runs here. */
export interface Slot {
  /** The durable id (the workflow's execution id). */
  readonly conversation: string
  /** The workflow's context: model calls run as its activities. */
  readonly context: Context.Context<WorkflowEngine | WorkflowInstance>
  /** How many times each request (by hash) was made: the activity's name tells them apart. */
  readonly calls: Map<string, number>
  /** How many messages with each content key this run held for approval (ApprovalDeferred.ts). */
  readonly held: Map<string, number>
  /**
   * A held message waits for a person under the deferred `name`: this run of the
   * conversation stops and its workflow suspends until the decision (DurableRunner).
   */
  readonly park: (name: string) => Effect.Effect<void>
  /** The reasons of the denials this run applied: a conversation that ends quietly says them. */
  readonly denials: Array<string>
}

interface Watch {
  slot: Slot | undefined
  readonly bound: Deferred.Deferred<Slot>
  readonly replies: Array<ReturnedPayload>
  /** The conversation's journal records, numbered from 1 (a journal's header is 0). */
  readonly records: Array<LifecycleRecord>
  readonly ended: Deferred.Deferred<Ended>
}

/** How a local conversation ended, with its journal records. */
export interface Ended {
  readonly end: ConversationEnd
  readonly records: ReadonlyArray<LifecycleRecord>
}

/** The conversation an event belongs to (its root thread), when it says. */
const rootOf = (e: PumpEvent): string | null => {
  if (e._tag === "ThreadCreated" || e._tag === "ThreadCompleted") return e.thread
  return "root" in e ? e.root : null
}

/** Ended, never-bound roots kept at most (conversations the runner itself started: none expected). */
const KEEP_UNBOUND = 256

export interface Bindings {
  /** The pump's event observer: install it with `Events.observe`. */
  readonly observe: (event: PumpEvent) => void
  /**
   * Binds a local root to its durable conversation, now (call it as soon as the pump named
   * the root); the Effect returned waits for the conversation's end.
   */
  readonly bind: (root: string, slot: Slot) => Effect.Effect<Ended>
  /**
   * The durable conversation of a local root: undefined for a root that is not durable. While
   * an injection is under way (`injecting`), an unbound root waits for its binding.
   */
  readonly slotOf: (root: string) => Effect.Effect<Slot | undefined>
  /** Runs an injection: roots seen meanwhile may still be bound. */
  readonly injecting: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  readonly live: () => number
}

export const makeBindings = (injector: string): Bindings => {
  const watches = new Map<string, Watch>()
  const unboundEnded: Array<string> = []
  let pending = 0
  const watch = (root: string): Watch => {
    let w = watches.get(root)
    if (w === undefined) {
      w = {
        slot: undefined,
        bound: Deferred.unsafeMake(undefined as never),
        replies: [],
        records: [],
        ended: Deferred.unsafeMake(undefined as never)
      }
      watches.set(root, w)
    }
    return w
  }
  const observe = (e: PumpEvent) => {
    const root = rootOf(e)
    if (root !== null) {
      const w = watch(root)
      const r = recordOf(w.records.length + 1, e)
      if (r !== undefined) w.records.push(r)
    }
    if (e._tag === "MessageReceived") {
      if (e.to === injector && e.root !== null) watch(e.root).replies.push({ type: e.payloadType, xml: e.payload })
    } else if (e._tag === "ThreadCompleted" && e.thread !== null) {
      const w = watch(e.thread)
      Deferred.unsafeDone(w.ended, Effect.succeed({ end: { reason: e.reason, detail: e.detail, replies: w.replies }, records: w.records }))
      if (w.slot !== undefined) watches.delete(e.thread)
      else {
        unboundEnded.push(e.thread)
        if (unboundEnded.length > KEEP_UNBOUND) watches.delete(unboundEnded.shift()!)
      }
    }
  }
  return {
    observe,
    bind: (root, slot) => {
      const w = watch(root)
      w.slot = slot
      Deferred.unsafeDone(w.bound, Effect.succeed(slot))
      return Deferred.await(w.ended).pipe(Effect.ensuring(Effect.sync(() => void watches.delete(root))))
    },
    slotOf: (root) =>
      Effect.suspend(() => {
        const w = watches.get(root)
        if (w?.slot !== undefined) return Effect.succeed(w.slot)
        if (pending === 0) return Effect.succeed(undefined)
        return Deferred.await(watch(root).bound).pipe(
          Effect.timeoutOption("2 seconds"),
          Effect.map(Option.getOrUndefined)
        )
      }),
    injecting: (effect) =>
      Effect.acquireUseRelease(Effect.sync(() => void pending++), () => effect, () => Effect.sync(() => void pending--)),
    live: () => {
      let n = 0
      for (const w of watches.values()) if (w.slot !== undefined) n++
      return n
    }
  }
}
