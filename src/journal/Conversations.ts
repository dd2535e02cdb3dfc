/**
 * Conversations rebuilt from journal records: for each root thread, its chain tree (every
 * thread with its parent and name), its hops (an envelope and its outcome) and a
 * chronological list of entries for traces. Trace, replay and their comparison read this.
 *
 * How records are tied together:
 * - A hop's outcome: the pump handles its inbox strictly in order and publishes the outcome
 *   of a message while handling it, so outcomes (dispatched, rejected, stopped) come in the
 *   order envelopes were received. The one exception is a reply refused before it was
 *   written (stage `outbox`): it is a hop of its own. A raw envelope without `to` reaches
 *   every broadcast listener: several `dispatched` records with the same envelope.
 * - A handler's outcome (acknowledged, failed) belongs to a delivery on the same thread to
 *   the same listener; when several are open at once, the oldest (a SystemError to a
 *   listener without `on_system` starts no handler, so it is matched last).
 */
import type {
  Dispatched,
  GuardStop,
  HandlerFailure,
  Header,
  JournalRecord,
  Received,
  Rejected,
  ThreadEnded,
  ThreadStarted
} from "../domain/JournalRecord.js"

export interface Delivery {
  readonly record: Dispatched
  /** The handler's result, once it finished. */
  handler: { readonly durationMs: number; readonly replies: ReadonlyArray<string> } | undefined
  failure: HandlerFailure | undefined
}

export type Outcome =
  | { readonly _tag: "Pending" }
  | { readonly _tag: "Delivered"; readonly deliveries: Array<Delivery> }
  | { readonly _tag: "Rejected"; readonly record: Rejected }
  | { readonly _tag: "Stopped"; readonly record: GuardStop }

/** One envelope: received (or a reply refused before it was written) and what became of it. */
export interface Hop {
  readonly seq: number
  readonly time: number
  readonly origin: Received["origin"]
  /** The thread it travels on; null until a raw envelope is placed, or when it never was. */
  thread: string | null
  root: string | null
  from: string | null
  /** null: a broadcast (a raw envelope without `to`). */
  to: string | null
  payloadType: string | null
  /** The payload element as XML, when known. */
  payload: string | null
  /** The envelope as received (raw text for raw input); "" for a refused reply. */
  readonly envelope: string
  readonly size: number
  outcome: Outcome
  /** Seq of the record that settled it. */
  settledAt: number | undefined
}

export type Entry =
  | { readonly _tag: "Delivery"; readonly seq: number; readonly hop: Hop; readonly delivery: Delivery }
  | { readonly _tag: "Rejected"; readonly seq: number; readonly hop: Hop; readonly record: Rejected }
  | { readonly _tag: "Stopped"; readonly seq: number; readonly hop: Hop; readonly record: GuardStop }
  | { readonly _tag: "HandlerFailed"; readonly seq: number; readonly record: HandlerFailure }
  | { readonly _tag: "Pending"; readonly seq: number; readonly hop: Hop }

export interface Conversation {
  readonly root: string
  readonly firstSeq: number
  started: ThreadStarted | undefined
  ended: ThreadEnded | undefined
  /** In the order received; the first is the input that started it (when recorded). */
  readonly hops: Array<Hop>
  /** Chronological: deliveries, rejections, guard stops, handler failures, unsettled hops. */
  readonly entries: Array<Entry>
  readonly failures: Array<HandlerFailure>
}

export interface ThreadInfo {
  readonly id: string
  /** null at the injector's own thread; undefined when no record said. */
  parent: string | null | undefined
  /** The last name of its chain (the listener or injector it addresses). */
  name: string | undefined
}

export interface Run {
  readonly header: Header | undefined
  /** Seq of the `booted` record: inputs before it were the organism's own. */
  readonly booted: number | undefined
  readonly complete: boolean
  /** Why the run was stopped with work in flight (the `closed` record says), if it was. */
  readonly stopped: string | undefined
  /** In the order they started. */
  readonly conversations: ReadonlyArray<Conversation>
  /** Raw input that never reached a conversation (rejected before, or never handled). */
  readonly rootless: ReadonlyArray<Hop>
  /** Input (origin `injected` or `raw`), in the order received. */
  readonly inputs: ReadonlyArray<Hop>
  readonly threads: ReadonlyMap<string, ThreadInfo>
  /** Thread id → root id, for every thread seen. */
  readonly rootOf: ReadonlyMap<string, string>
}

/** Does a canonical envelope name a receiver? (Without one it is a broadcast.) */
const namesReceiver = (envelope: string) => {
  const end = envelope.search(/<\/([\w.-]+:)?meta>/)
  return /<([\w.-]+:)?to>/.test(end === -1 ? envelope : envelope.slice(0, end))
}

export const analyse = (records: ReadonlyArray<JournalRecord>): Run => {
  let header: Header | undefined
  let booted: number | undefined
  let complete = false
  let stopped: string | undefined
  const conversations = new Map<string, Conversation>()
  const threads = new Map<string, ThreadInfo>()
  const rootOf = new Map<string, string>()
  const inputs: Array<Hop> = []
  const rootless: Array<Hop> = []
  // Envelopes received and not yet settled, in order (the pump's inbox order).
  const inbox: Array<Hop> = []
  let inboxHead = 0
  // Deliveries whose handler has not reported yet, by thread and listener.
  const open = new Map<string, Array<Delivery>>()
  let lastDispatch: { hop: Hop; envelope: string } | undefined

  const conversation = (root: string, seq: number): Conversation => {
    let c = conversations.get(root)
    if (c === undefined) {
      c = { root, firstSeq: seq, started: undefined, ended: undefined, hops: [], entries: [], failures: [] }
      conversations.set(root, c)
    }
    return c
  }

  const noteThread = (id: string | null, parent: string | null | undefined, name: string | null | undefined, root: string | null) => {
    if (id === null) return
    let t = threads.get(id)
    if (t === undefined) threads.set(id, t = { id, parent: undefined, name: undefined })
    if (parent !== undefined && t.parent === undefined) t.parent = parent
    if (name !== undefined && name !== null && t.name === undefined) t.name = name
    if (root !== null && !rootOf.has(id)) rootOf.set(id, root)
    if (typeof parent === "string") noteThread(parent, undefined, undefined, root)
  }

  const place = (hop: Hop, root: string | null, seq: number) => {
    if (hop.root !== null || root === null) return
    hop.root = root
    conversation(root, seq).hops.push(hop)
  }

  /** The oldest unsettled envelope; a stand-in if the journal lacks it (started late). */
  const nextInInbox = (r: { seq: number; time: number; thread: string | null; root: string | null }): Hop => {
    if (inboxHead < inbox.length) {
      const hop = inbox[inboxHead]!
      inbox[inboxHead++] = undefined as never
      return hop
    }
    return {
      seq: r.seq,
      time: r.time,
      origin: "raw",
      thread: r.thread,
      root: null,
      from: null,
      to: null,
      payloadType: null,
      payload: null,
      envelope: "",
      size: 0,
      outcome: { _tag: "Pending" },
      settledAt: undefined
    }
  }

  const takeDelivery = (thread: string | null, listener: string): Delivery | undefined => {
    const list = open.get(`${thread}\u0000${listener}`)
    if (list === undefined || list.length === 0) return undefined
    let i = list.findIndex((d) => d.record.payloadType !== "SystemError")
    if (i === -1) i = 0
    return list.splice(i, 1)[0]
  }

  for (const r of records) {
    switch (r.type) {
      case "header":
        header = r
        break
      case "booted":
        booted = r.seq
        break
      case "closed":
        complete = true
        stopped = r.stopped
        break
      case "thread-created":
        conversation(r.thread, r.seq).started = r
        rootOf.set(r.thread, r.thread)
        break
      case "thread-completed":
        conversation(r.thread, r.seq).ended = r
        break
      case "received": {
        const hop: Hop = {
          seq: r.seq,
          time: r.time,
          origin: r.origin,
          thread: r.thread,
          root: null,
          from: r.from,
          to: r.to,
          payloadType: r.payloadType,
          payload: r.payload,
          envelope: r.envelope,
          size: r.size,
          outcome: { _tag: "Pending" },
          settledAt: undefined
        }
        inbox.push(hop)
        if (r.origin === "injected" || r.origin === "raw") inputs.push(hop)
        noteThread(r.thread, r.parent, r.to, r.root)
        place(hop, r.root, r.seq)
        break
      }
      case "dispatched": {
        // Further receivers of a broadcast: the same envelope, a listener not reached yet.
        const previous = lastDispatch
        const sameBroadcast = previous !== undefined && previous.hop.to === null && previous.envelope === r.envelope &&
          previous.hop.outcome._tag === "Delivered" && !previous.hop.outcome.deliveries.some((d) => d.record.to === r.to)
        const hop = sameBroadcast ? previous.hop : nextInInbox(r)
        if (hop.outcome._tag !== "Delivered") {
          hop.outcome = { _tag: "Delivered", deliveries: [] }
          hop.settledAt = r.seq
        }
        if (hop.root === null) {
          // Raw input, placed now: its facts come from the delivery.
          const broadcast = !namesReceiver(r.envelope)
          hop.from = r.from
          hop.to = broadcast ? null : r.to
          hop.payloadType = r.payloadType
          hop.payload = r.payload
          hop.thread = broadcast ? r.parent : r.thread
          place(hop, r.root, r.seq)
        }
        const delivery: Delivery = { record: r, handler: undefined, failure: undefined }
        hop.outcome.deliveries.push(delivery)
        noteThread(r.thread, r.parent, r.to, r.root)
        const key = `${r.thread}\u0000${r.to}`
        const list = open.get(key)
        if (list === undefined) open.set(key, [delivery])
        else list.push(delivery)
        if (r.root !== null) conversation(r.root, r.seq).entries.push({ _tag: "Delivery", seq: r.seq, hop, delivery })
        lastDispatch = { hop, envelope: r.envelope }
        break
      }
      case "acknowledged": {
        const d = takeDelivery(r.thread, r.listener)
        if (d !== undefined) d.handler = { durationMs: r.durationMs, replies: r.replies }
        break
      }
      case "failed": {
        if (r.failure === "handler") {
          // An invalid reply is reported while the handler completes; the others end it.
          if (r.reason !== "invalid-reply") {
            const d = takeDelivery(r.thread, r.listener)
            if (d !== undefined) d.failure = r
          }
          if (r.root !== null) {
            const c = conversation(r.root, r.seq)
            c.failures.push(r)
            c.entries.push({ _tag: "HandlerFailed", seq: r.seq, record: r })
          }
          break
        }
        if (r.failure === "rejected" && r.stage === "outbox") {
          // A reply refused before it was written: no envelope was received for it.
          const hop: Hop = {
            seq: r.seq,
            time: r.time,
            origin: "reply",
            thread: r.thread,
            root: null,
            from: r.from,
            to: r.to,
            payloadType: r.payloadType,
            payload: null,
            envelope: "",
            size: 0,
            outcome: { _tag: "Rejected", record: r },
            settledAt: r.seq
          }
          place(hop, r.root, r.seq)
          if (r.root !== null) conversation(r.root, r.seq).entries.push({ _tag: "Rejected", seq: r.seq, hop, record: r })
          break
        }
        const hop = nextInInbox(r)
        hop.settledAt = r.seq
        if (r.failure === "rejected") {
          hop.outcome = { _tag: "Rejected", record: r }
          hop.from ??= r.from
          hop.to ??= r.to
          hop.payloadType ??= r.payloadType
          hop.thread ??= r.thread
        } else {
          hop.outcome = { _tag: "Stopped", record: r }
          hop.thread ??= r.thread
        }
        place(hop, r.root, r.seq)
        if (hop.root === null) rootless.push(hop)
        else {
          conversation(hop.root, r.seq).entries.push(
            hop.outcome._tag === "Rejected"
              ? { _tag: "Rejected", seq: r.seq, hop, record: hop.outcome.record }
              : { _tag: "Stopped", seq: r.seq, hop, record: r as GuardStop }
          )
        }
        break
      }
    }
  }

  // Envelopes the journal saw arrive but never settle (the run stopped first).
  for (let i = inboxHead; i < inbox.length; i++) {
    const hop = inbox[i]!
    if (hop.root === null) rootless.push(hop)
    else conversation(hop.root, hop.seq).entries.push({ _tag: "Pending", seq: hop.seq, hop })
  }
  const ordered = [...conversations.values()]
  for (const c of ordered) c.entries.sort((a, b) => a.seq - b.seq)
  ordered.sort((a, b) => startOf(a) - startOf(b))
  return { header, booted, complete, stopped, conversations: ordered, rootless, inputs, threads, rootOf }
}

/** Seq at which a conversation started. */
export const startOf = (c: Conversation): number => Math.min(c.started?.seq ?? c.firstSeq, c.hops[0]?.seq ?? Infinity)

/** Time a conversation started. */
export const startTimeOf = (c: Conversation): number => c.started?.time ?? c.hops[0]?.time ?? 0

/** Hops from the injector: 0 at the injector's own thread, 1 at the first receiver. */
export const depthOf = (run: Run, thread: string | null): number => {
  let depth = 0
  let t = thread === null ? undefined : run.threads.get(thread)
  // Bounded: a malformed journal must not loop forever.
  while (t !== undefined && typeof t.parent === "string" && depth < 10_000) {
    depth++
    t = run.threads.get(t.parent)
  }
  return depth
}

/** The names along a thread's chain, injector first. */
export const chainOf = (run: Run, thread: string | null, injector: string | undefined): ReadonlyArray<string> => {
  const names: Array<string> = []
  let t = thread === null ? undefined : run.threads.get(thread)
  while (t !== undefined && names.length < 10_000) {
    names.push(t.name ?? (typeof t.parent === "string" ? "?" : injector ?? "?"))
    t = typeof t.parent === "string" ? run.threads.get(t.parent) : undefined
  }
  return names.reverse()
}

/** The conversation's first hop, when it is an input (what started it). */
export const inputOf = (c: Conversation): Hop | undefined => {
  const first = c.hops[0]
  return first !== undefined && (first.origin === "injected" || first.origin === "raw") ? first : undefined
}
