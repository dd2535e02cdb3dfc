/**
 * The outbox: the only place envelopes are written. Handlers return replies; the outbox
 * decides where they go (forward extends the chain, respond prunes it, broadcast fans out),
 * enforces peers and loop detection, writes from / to / thread itself, and puts the
 * envelope in the inbox — where it is checked like any message from outside.
 */
import { Either } from "effect"
import { writeEnvelope } from "../../domain/Envelope.js"
import type { Listener } from "../../domain/Listener.js"
import { specOf, typeOfValue } from "../../domain/Payload.js"
import { GuardTripped, HandlerFailed, MessageRejected, MessageSent } from "../../domain/PumpEvent.js"
import { type PayloadValue, RawPayload, type Reply } from "../../domain/Reply.js"
import { SystemError, SystemErrors } from "../../domain/SystemPayloads.js"
import type { RootThread, ThreadNode } from "../../services/ThreadRegistry.js"
import type { ListenerEntry } from "../Router.js"
import { clip, type DeadLetter, type Encoded, type Job, type Permit, payloadXmlOf, type PumpCore, SYSTEM } from "./Core.js"

export interface RejectionSeen {
  readonly from?: string | undefined
  readonly to?: string | undefined
  readonly thread?: string | undefined
  readonly payloadType?: string | undefined
}

export const makeOutbox = (core: PumpCore) => {
  const { counts, registry } = core

  /** Encodes a payload value; Left with a readable reason when it cannot be written. */
  const encodePayload = (value: PayloadValue): Either.Either<Encoded, string> => {
    if (value instanceof RawPayload) return Either.right({ tag: value.tag, inner: value.inner })
    const type = typeOfValue(value)
    if (type === undefined) {
      return Either.left(`${String((value as object)?.constructor?.name ?? value)} is not a payload (declare it with Payload.Class)`)
    }
    const spec = specOf(type, core.settings.wire)
    core.router.learn(type)
    try {
      return Either.right({ tag: spec.tag, inner: spec.encodeInner(value) })
    } catch (e) {
      return Either.left(e instanceof Error ? e.message : String(e))
    }
  }

  /** Writes an envelope and puts it in the inbox; its node is held live until it settles. */
  const send = (
    from: string,
    to: string,
    node: ThreadNode,
    payload: Encoded,
    senderNode: ThreadNode | undefined,
    system: boolean,
    permit?: Permit,
    job?: Job
  ) => {
    const xml = writeEnvelope({ from, to, thread: node.id, payloadTag: payload.tag, payloadInner: payload.inner })
    registry.retain(node)
    counts.injected++
    if (permit !== undefined) permit.pending++
    if (core.observed()) {
      job?.replies?.push(payload.tag)
      core.publish(
        new MessageSent({
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
        }, true)
      )
    }
    core.inbox.unsafeOffer({ input: xml, origin: { node, senderNode, system }, permit })
  }

  /** A message from the pump itself (SystemError, BudgetWarning): never bounced if it fails. */
  const sendSystem = (to: string, node: ThreadNode, payload: Encoded) => send(SYSTEM, to, node, payload, undefined, true)

  const sendSystemError = (to: string, node: ThreadNode, error: SystemError) =>
    sendSystem(to, node, { tag: "SystemError", inner: specOf(SystemError, core.settings.wire).encodeInner(error) })

  /** A rejection: counted by stage and kind, kept as a dead letter, published. */
  const recordRejection = (
    stage: string,
    kind: string,
    reason: string,
    diagnostics: ReadonlyArray<string>,
    seen: RejectionSeen,
    text: string,
    rootId: string | null
  ) => {
    counts.rejected++
    const key = `${stage}/${kind}`
    counts.rejectedBy[key] = (counts.rejectedBy[key] ?? 0) + 1
    const letter: DeadLetter = {
      time: core.now(),
      stage,
      kind,
      reason,
      diagnostics,
      from: seen.from ?? null,
      to: seen.to ?? null,
      thread: seen.thread ?? null,
      payloadType: seen.payloadType ?? null,
      text: clip(text)
    }
    counts.addDeadLetter(letter, core.settings.deadLetterCapacity)
    if (core.observed()) {
      core.publish(
        new MessageRejected({
          thread: letter.thread,
          root: rootId,
          time: letter.time,
          stage,
          kind,
          reason,
          diagnostics: [...diagnostics],
          from: letter.from,
          to: letter.to,
          payloadType: letter.payloadType,
          payload: letter.text
        }, true)
      )
    }
  }

  const peerAllowed = (listener: Listener, to: string) =>
    listener.peers === undefined || listener.peers.some((p) => p.toLowerCase() === to.toLowerCase())

  const refuse = (job: Job, to: string, tag: string, kind: string, reason: string, error: SystemError) => {
    // The reply is counted as injected and rejected, so it is accounted for like any message.
    counts.injected++
    recordRejection("route", kind, reason, [], { from: job.entry.listener.name, to, thread: job.node.id, payloadType: tag }, "", job.node.root.id)
    core.noteProblem(job.node.root, reason)
    sendSystemError(job.entry.listener.name, job.node, error)
  }

  /** A handler's reply the pump cannot send: an event and a note on its conversation. */
  const reportInvalidReply = (job: Job, detail: string) => {
    if (core.observed()) {
      core.publish(
        new HandlerFailed({
          thread: job.node.id,
          root: job.node.root.id,
          time: core.now(),
          listener: job.entry.listener.name,
          reason: "invalid-reply",
          detail
        }, true)
      )
    }
    core.noteProblem(job.node.root, detail)
  }

  const encodeOrReport = (job: Job, value: PayloadValue): Encoded | undefined => {
    const encoded = encodePayload(value)
    if (Either.isRight(encoded)) return encoded.right
    reportInvalidReply(job, encoded.left)
    // The listener hears what was wrong (a model can correct itself).
    sendSystemError(job.entry.listener.name, job.node, SystemErrors.invalid(encoded.left))
    return undefined
  }

  // Loop detection: what each agent last sent to each target in a conversation, and how many
  // times in a row. Kept per root, dropped with it.
  const lastSends = new WeakMap<RootThread, Map<string, { xml: string; count: number }>>()

  /** True (and the send is stopped) when an agent repeats itself to the same target. */
  const looping = (job: Job, to: string, encoded: Encoded): boolean => {
    const root = job.node.root
    let memory = lastSends.get(root)
    if (memory === undefined) lastSends.set(root, memory = new Map())
    const key = `${job.entry.listener.name}\u0000${to.toLowerCase()}`
    const xml = payloadXmlOf(encoded.tag, encoded.inner)
    // One invocation fanning out identical items is not a loop: count it once.
    const seenKey = `${key}\u0000${xml}`
    if (job.loopSeen?.has(seenKey)) return false
    ;(job.loopSeen ??= new Set()).add(seenKey)
    const last = memory.get(key)
    const count = last !== undefined && last.xml === xml ? last.count + 1 : 1
    memory.set(key, { xml, count })
    if (count < core.settings.guards.loopThreshold) return false
    // Accounted like any message: written (injected), then stopped by a guard.
    counts.injected++
    counts.guardStopped++
    const detail = `${job.entry.listener.name} sent the same <${encoded.tag}> to ${to} ${count} times in a row`
    if (core.observed()) {
      core.publish(
        new GuardTripped({ thread: job.node.id, root: root.id, time: core.now(), guard: "loop", listener: job.entry.listener.name, detail }, true)
      )
    }
    core.noteProblem(root, `guard loop: ${detail}`)
    sendSystemError(
      job.entry.listener.name,
      job.node,
      SystemErrors.guard(`You sent the same <${encoded.tag}> to ${to} ${count} times in a row; it was not sent again. Try something different.`)
    )
    return true
  }

  /** Writes what a handler returned. */
  const sendReply = (job: Job, reply: Reply): void => {
    const listener = job.entry.listener
    const name = listener.name
    switch (reply._tag) {
      case "None":
        return
      case "All":
        for (const r of reply.replies) sendReply(job, r)
        return
      case "Forward": {
        for (const value of reply.payloads) {
          const encoded = encodeOrReport(job, value)
          if (encoded === undefined) continue
          if (!peerAllowed(listener, reply.to)) {
            refuse(job, reply.to, encoded.tag, "PeerViolation", `${name} may not send to ${reply.to} (not a peer)`, SystemErrors.forbidden())
            continue
          }
          if (listener.agent && looping(job, reply.to, encoded)) continue
          send(name, reply.to, registry.extend(job.node, reply.to), encoded, job.node, false, job.permit, job)
        }
        return
      }
      case "Respond": {
        const parent = job.node.parent
        if (parent === undefined) return
        for (const value of reply.payloads) {
          const encoded = encodeOrReport(job, value)
          if (encoded !== undefined) send(name, parent.name, parent, encoded, job.node, false, job.permit, job)
        }
        return
      }
      case "Broadcast": {
        for (const value of reply.payloads) {
          const encoded = encodeOrReport(job, value)
          if (encoded === undefined) continue
          const targets = core.router.broadcastTargets(encoded.tag).filter((t) => peerAllowed(listener, t.name!))
          if (targets.length === 0) {
            refuse(job, "*", encoded.tag, "UnknownRoute", `no broadcast listener for ${encoded.tag} that ${name} may reach`, SystemErrors.routing())
            continue
          }
          for (const t of targets) {
            if (listener.agent && looping(job, t.name!, encoded)) continue
            send(name, t.name!, registry.extend(job.node, t.name!), encoded, job.node, false, job.permit, job)
          }
        }
        return
      }
    }
  }

  /** Sends a reply on behalf of a listener outside one of its invocations (primitives). */
  const replyAs = (entry: ListenerEntry, node: ThreadNode, reply: Reply) =>
    sendReply({
      entry,
      payload: undefined,
      system: false,
      node,
      from: entry.listener.name,
      permit: undefined,
      gates: [],
      settled: true,
      timer: undefined,
      fiber: undefined,
      startedAt: core.now(),
      replies: undefined
    }, reply)

  return { encodePayload, send, sendSystem, sendSystemError, recordRejection, reportInvalidReply, sendReply, replyAs }
}

export type Outbox = ReturnType<typeof makeOutbox>
