/**
 * The message lifecycle, and the pump's books with it. A hop is opened (`open`, counted as
 * injected), travels, and is settled exactly once (`settle`): settle alone books the outcome,
 * gives back what the hop held (its thread node, its producer's permit), keeps the dead
 * letter, publishes the outcome, tells the sender of a refused message why, and answers a
 * waiting `request`. A delivered hop hands its lease to its jobs, which give it back when they
 * finish (`finish`). Nothing else in the pump touches the books or the leases.
 */
import { Exit } from "effect"
import { writeEnvelope } from "../../domain/Envelope.js"
import { specOf } from "../../domain/Payload.js"
import type { IngressError } from "../../domain/IngressError.js"
import { makeEvent, GuardTripped, MessageRejected, messageSent } from "../../domain/PumpEvent.js"
import { RequestFailed } from "../../domain/PumpError.js"
import { SystemError, SystemErrors } from "../../domain/SystemPayloads.js"
import type { ThreadNode } from "../../services/ThreadRegistry.js"
import { clip, type DeadLetter, type Encoded, payloadXmlOf, type PumpCore, SYSTEM } from "./Core.js"
import type { Hop, Origin, Outcome, Permit } from "./Hop.js"
import type { Job } from "./Job.js"

export const makeLifecycle = (core: PumpCore) => {
  const { books, registry } = core

  const permitDone = (permit: Permit | undefined) => {
    if (permit !== undefined && --permit.pending === 0) core.permits.release()
  }

  /** A new hop, counted as injected. One the pump wrote holds its node from now on. */
  const open = (input: Uint8Array | string, origin: Origin | undefined, permit: Permit | undefined, canonical = false): Hop => {
    books.injected++
    if (origin !== undefined) registry.unsafeRetain(origin.node)
    if (permit !== undefined) permit.pending++
    return { input, canonical, origin, lease: { node: origin?.node, permit } }
  }

  /** A message from outside found its thread: the hop holds that node until it settles. */
  const hold = (hop: Hop, node: ThreadNode) => {
    if (hop.lease.node !== undefined) return
    registry.unsafeRetain(node)
    hop.lease.node = node
  }

  /**
   * Writes an envelope and puts its hop in the inbox. The pump writes `from`, `to` and
   * `thread` itself: handlers never do.
   */
  const emit = (
    from: string,
    to: string,
    node: ThreadNode,
    payload: Encoded,
    senderNode: ThreadNode | undefined,
    system: boolean,
    permit: Permit | undefined,
    job: Job | undefined
  ) => {
    const xml = writeEnvelope({ from, to, thread: node.id, payloadTag: payload.tag, payloadInner: payload.inner })
    const hop = open(xml, { node, senderNode, system }, permit, payload.canonical)
    // An answer to a watched branch holds it until it settles (pump/Branches.ts).
    if (senderNode !== undefined && senderNode.parent === node && senderNode.branchEnd !== undefined) {
      registry.unsafeRetain(senderNode)
      hop.lease.branch = senderNode
    }
    if (core.observed()) {
      job?.replies?.push(payload.tag)
      core.publish(
        messageSent({
          thread: node.id,
          root: node.root.id,
          parent: node.parent?.id ?? null,
          time: core.now(),
          from,
          to,
          payloadType: payload.tag,
          payload: payloadXmlOf(payload.tag, payload.inner),
          origin: system ? "system" : job === undefined ? "injected" : "reply",
          envelope: xml
        })
      )
    }
    core.inbox.unsafeOffer(hop)
  }

  /**
   * A message from the pump itself (SystemError, BudgetWarning): never bounced if refused.
   * `about`: the branch below `node` it reports on (a failed peer, a refused forward) — it
   * answers that branch.
   */
  const emitSystem = (to: string, node: ThreadNode, payload: Encoded, about?: ThreadNode) =>
    emit(SYSTEM, to, node, payload, about, true, undefined, undefined)

  const emitSystemError = (to: string, node: ThreadNode, error: SystemError, about?: ThreadNode) => {
    const spec = specOf(SystemError, core.version.settings.wire)
    let inner: string
    try {
      inner = spec.encodeInner(error)
    } catch {
      // Its text quoted something XML cannot carry (a control character in a reason): the
      // listener still hears that something was wrong, in words the pump can write.
      inner = spec.encodeInner(SystemErrors.invalid("the message was refused; its reason cannot be written as XML"))
    }
    emitSystem(to, node, { tag: "SystemError", inner, canonical: true }, about)
  }

  /** What the sender of a refused message hears: what was wrong, never the organism's topology. */
  const bounceFor = (error: IngressError): SystemError => {
    switch (error._tag) {
      case "PayloadInvalid":
      case "DecodeFailed": {
        // The sender (often a model) gets what was wrong and what was expected.
        const expected = core.version.routes.types.get(error.payloadTag.toLowerCase())?.spec.example
        const detail = error.diagnostics.map(String).join("; ") || error.message
        return SystemErrors.invalid(expected === undefined ? detail : `${detail}\nExpected <${error.payloadTag}> like:\n${expected}`)
      }
      case "UnknownRoute":
        return SystemErrors.routing()
      case "PeerViolation":
        return SystemErrors.forbidden()
      case "ApprovalDenied":
        return SystemErrors.denied(error.reason)
      default:
        return SystemErrors.invalid(error.message)
    }
  }

  /** The sender of a refused message, if a listener of this organism sent it. */
  const senderOf = (hop: Hop): ThreadNode | undefined => {
    const origin = hop.origin
    if (origin === undefined || origin.system) return undefined
    const sender = origin.senderNode
    return sender !== undefined && sender.parent !== undefined ? sender : undefined
  }

  /** A refused forward's own branch: the bounce to its sender answers it. */
  const aboutOf = (hop: Hop, sender: ThreadNode): ThreadNode | undefined => {
    const node = hop.origin?.node
    return node !== undefined && node.parent === sender ? node : undefined
  }

  const bookRejection = (hop: Hop, outcome: Extract<Outcome, { _tag: "Rejected" }>) => {
    const { error, seen, text, diagnostics } = outcome.rejection
    books.rejected++
    const key = `${error.stage}/${error._tag}`
    books.rejectedBy[key] = (books.rejectedBy[key] ?? 0) + 1
    const letter: DeadLetter = {
      time: core.now(),
      stage: error.stage,
      kind: error._tag,
      reason: error.message,
      diagnostics,
      from: seen.from ?? null,
      to: seen.to ?? null,
      thread: seen.thread ?? null,
      payloadType: seen.payloadTag ?? null,
      text: clip(text)
    }
    books.addDeadLetter(letter, core.version.settings.deadLetterCapacity)
    const root = hop.lease.node?.root
    if (core.observed()) {
      core.publish(
        makeEvent(MessageRejected, {
          thread: letter.thread,
          root: root?.id ?? null,
          time: letter.time,
          stage: letter.stage,
          kind: letter.kind,
          reason: letter.reason,
          diagnostics: [...diagnostics],
          from: letter.from,
          to: letter.to,
          payloadType: letter.payloadType,
          payload: letter.text
        })
      )
    }
    core.noteProblem(root, error.message)
    core.branches.note(hop.lease.branch ?? hop.lease.node, `a message on its branch was rejected (${error._tag})`)
    const sender = senderOf(hop)
    if (sender !== undefined) emitSystemError(sender.name, sender, bounceFor(error), aboutOf(hop, sender))
  }

  const bookGuard = (hop: Hop, outcome: Extract<Outcome, { _tag: "GuardStopped" }>) => {
    books.guardStopped++
    const node = hop.lease.node
    if (core.observed()) {
      core.publish(
        makeEvent(GuardTripped, {
          thread: node?.id ?? null,
          root: node?.root.id ?? null,
          time: core.now(),
          guard: outcome.guard,
          listener: outcome.listener,
          detail: outcome.detail
        })
      )
    }
    core.noteProblem(node?.root, `guard ${outcome.guard}: ${outcome.detail}`)
    const cancelled = outcome.guard === "shutdown" || outcome.guard === "cancelled"
    core.endings.note(
      node?.root,
      cancelled ? "cancelled" : "guard",
      `${outcome.guard}${outcome.edge === undefined ? "" : ` (${outcome.edge})`}: ${outcome.detail}`
    )
    core.branches.note(hop.lease.branch ?? node, `stopped by the ${outcome.guard} guard`)
    const sender = senderOf(hop)
    if (sender !== undefined) {
      emitSystemError(
        sender.name,
        sender,
        SystemErrors.guard(outcome.notice ?? `Stopped by the ${outcome.guard} guard: ${outcome.detail}`),
        aboutOf(hop, sender)
      )
    }
  }

  const answer = (root: string, payload: unknown) => {
    const waiting = core.requests.get(root)
    if (waiting === undefined) return
    core.requests.delete(root)
    waiting.resolve(
      payload instanceof SystemError
        ? Exit.fail(new RequestFailed({ thread: root as never, error: payload }))
        : Exit.succeed(payload)
    )
  }

  /** Ends a hop with its outcome: the one place that books it and gives its lease back. */
  const settle = (hop: Hop, outcome: Outcome) => {
    switch (outcome._tag) {
      case "Delivered": {
        books.delivered++
        // The jobs take over the hop's hold on the thread and the producer's permit.
        for (const job of outcome.jobs) {
          registry.unsafeRetain(job.node)
          if (job.permit !== undefined) job.permit.pending++
          books.jobsOpen++
        }
        if (outcome.answer !== undefined) answer(outcome.answer.root.id, outcome.answer.payload)
        break
      }
      case "Rejected":
        bookRejection(hop, outcome)
        break
      case "GuardStopped":
        bookGuard(hop, outcome)
        break
    }
    const branch = hop.lease.branch
    if (branch !== undefined) {
      hop.lease.branch = undefined
      if (outcome._tag === "Delivered") core.branches.answered(branch)
      registry.unsafeRelease(branch)
    }
    const node = hop.lease.node
    hop.lease.node = undefined
    if (node !== undefined) registry.unsafeRelease(node)
    permitDone(hop.lease.permit)
    books.checkIdle()
  }

  /** A job starts running its handler. */
  const start = () => {
    books.running++
    books.invocations++
  }

  /** A job that started is finished: it gives back its lease (node and permit). */
  const finish = (job: Job) => {
    books.running--
    books.jobsOpen--
    registry.unsafeRelease(job.node)
    permitDone(job.permit)
    books.checkIdle()
  }

  return { open, hold, emit, emitSystem, emitSystemError, settle, start, finish, permitDone }
}

export type Lifecycle = ReturnType<typeof makeLifecycle>
