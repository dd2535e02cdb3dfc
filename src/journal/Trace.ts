/**
 * A conversation as a trace: its hops in the order they happened, each at the depth of its
 * thread in the chain, with times relative to the start — and the same as a tree of threads
 * (for JSON). Built from `analyse`.
 */
import { Either } from "effect"
import { type Conversation, depthOf, type Entry, type Run, startTimeOf } from "./Conversations.js"
import type { ThreadEndReason } from "../domain/PumpEvent.js"

export type TraceStep =
  | {
    readonly kind: "delivery"
    readonly at: number
    readonly thread: string | null
    readonly depth: number
    readonly from: string
    readonly to: string
    readonly payloadType: string
    readonly payload: string
    /** Milliseconds the handler took (absent: no handler ran, or it failed). */
    readonly handlerMs?: number
    readonly replies?: ReadonlyArray<string>
  }
  | {
    readonly kind: "rejected"
    readonly at: number
    readonly thread: string | null
    readonly depth: number
    readonly from: string | null
    readonly to: string | null
    readonly payloadType: string | null
    readonly stage: string
    readonly error: string
    readonly reason: string
  }
  | {
    readonly kind: "guard"
    readonly at: number
    readonly thread: string | null
    readonly depth: number
    readonly guard: string
    readonly listener: string | null
    readonly detail: string
  }
  | {
    readonly kind: "handler-failed"
    readonly at: number
    readonly thread: string | null
    readonly depth: number
    readonly listener: string
    readonly reason: string
    readonly detail: string
  }
  | {
    readonly kind: "pending"
    readonly at: number
    readonly thread: string | null
    readonly depth: number
    readonly from: string | null
    readonly to: string | null
    readonly payloadType: string | null
  }

export interface TraceThread {
  readonly thread: string
  readonly name: string
  readonly depth: number
  readonly steps: ReadonlyArray<TraceStep>
  readonly children: ReadonlyArray<TraceThread>
}

export interface Trace {
  readonly root: string
  readonly organism: string | null
  readonly injector: string | null
  /** ISO time the conversation started. */
  readonly startedAt: string
  readonly steps: ReadonlyArray<TraceStep>
  /** Null when the journal ends before the conversation completed. */
  readonly completed: {
    readonly at: number
    readonly invocations: number
    /** Why it ended (completed, guard, budget, timeout, cancelled, failed) and what happened. */
    readonly reason: ThreadEndReason
    readonly detail: string
  } | null
  /** When it did not complete because the run was stopped with work in flight: why. */
  readonly stopped: string | null
  /** The chain tree: the injector's thread at the top (the root thread when it is unknown). */
  readonly tree: TraceThread | null
}

/** Milliseconds rounded to µs, so JSON does not carry float noise. */
const ms = (x: number) => Math.round(x * 1000) / 1000

const stepOf = (run: Run, start: number, e: Entry): TraceStep => {
  const at = ms(timeOf(e) - start)
  switch (e._tag) {
    case "Delivery": {
      const r = e.delivery.record
      const handler = e.delivery.handler
      return {
        kind: "delivery",
        at,
        thread: r.thread,
        depth: depthOf(run, r.thread),
        from: r.from,
        to: r.to,
        payloadType: r.payloadType,
        payload: r.payload,
        ...(handler !== undefined ? { handlerMs: ms(handler.durationMs), replies: handler.replies } : {})
      }
    }
    case "Rejected":
      return {
        kind: "rejected",
        at,
        thread: e.hop.thread,
        depth: depthOf(run, e.hop.thread),
        from: e.hop.from,
        to: e.hop.to,
        payloadType: e.hop.payloadType,
        stage: e.record.stage,
        error: e.record.kind,
        reason: e.record.reason
      }
    case "Stopped":
      return {
        kind: "guard",
        at,
        thread: e.record.thread,
        depth: depthOf(run, e.record.thread),
        guard: e.record.guard,
        listener: e.record.listener,
        detail: e.record.detail
      }
    case "HandlerFailed":
      return {
        kind: "handler-failed",
        at,
        thread: e.record.thread,
        depth: depthOf(run, e.record.thread),
        listener: e.record.listener,
        reason: e.record.reason,
        detail: e.record.detail
      }
    case "Pending":
      return {
        kind: "pending",
        at,
        thread: e.hop.thread,
        depth: depthOf(run, e.hop.thread),
        from: e.hop.from,
        to: e.hop.to,
        payloadType: e.hop.payloadType
      }
  }
}

const timeOf = (e: Entry): number => {
  switch (e._tag) {
    case "Delivery":
      return e.delivery.record.time
    case "Pending":
      return e.hop.time
    default:
      return e.record.time
  }
}

const treeOf = (run: Run, c: Conversation, steps: ReadonlyArray<TraceStep>): TraceThread | null => {
  const ids = [...run.rootOf].filter(([, root]) => root === c.root).map(([id]) => id)
  const children = new Map<string | null, Array<string>>()
  for (const id of ids) {
    const parent = run.threads.get(id)?.parent ?? null
    const key = parent !== null && ids.includes(parent) ? parent : null
    const list = children.get(key)
    if (list === undefined) children.set(key, [id])
    else list.push(id)
  }
  const build = (id: string): TraceThread => ({
    thread: id,
    name: run.threads.get(id)?.name ?? c.started?.injector ?? "?",
    depth: depthOf(run, id),
    steps: steps.filter((s) => s.thread === id),
    children: (children.get(id) ?? []).map(build)
  })
  const tops = children.get(null) ?? []
  return tops.length === 0 ? null : build(tops[0]!)
}

export const traceOf = (run: Run, c: Conversation): Trace => {
  const start = startTimeOf(c)
  const steps = c.entries.map((e) => stepOf(run, start, e))
  return {
    root: c.root,
    organism: run.header?.organism ?? null,
    injector: c.started?.injector ?? c.hops[0]?.from ?? null,
    startedAt: new Date(start).toISOString(),
    steps,
    completed: c.ended === undefined
      ? null
      : { at: ms(c.ended.time - start), invocations: c.ended.invocations, reason: c.ended.reason, detail: c.ended.detail },
    stopped: c.ended === undefined ? run.stopped ?? null : null,
    tree: treeOf(run, c, steps)
  }
}

/**
 * The conversation a thread id belongs to: a root id, or any hop's thread id; a unique
 * prefix of at least 8 characters will do. Left: why none was found.
 */
export const findConversation = (run: Run, query: string): Either.Either<Conversation, string> => {
  const q = query.trim().toLowerCase()
  if (q.length < 8) return Either.left(`a thread id or a prefix of at least 8 characters is needed, got "${query}"`)
  const roots = new Set<string>()
  for (const [thread, root] of run.rootOf) if (thread.startsWith(q)) roots.add(root)
  const found = [...roots].map((root) => run.conversations.find((c) => c.root === root)).filter((c) => c !== undefined)
  if (found.length === 1) return Either.right(found[0]!)
  if (found.length === 0) return Either.left(`no thread ${query} in this journal`)
  return Either.left(
    `${query} is ambiguous: it starts threads of ${found.length} conversations (${found.map((c) => c.root.slice(0, 13)).join(", ")})`
  )
}
