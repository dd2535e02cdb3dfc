/**
 * The outbox: what a handler's reply becomes. Forward extends the chain, respond prunes it,
 * broadcast fans out; the outbox enforces peers and loop detection, runs the organism's
 * `before-reply` stages, and hands each payload to the lifecycle, which writes the envelope
 * (from / to / thread are the pump's) and puts it in the inbox — where it is checked like any
 * message from outside. A reply the outbox refuses is a hop of its own, settled on the spot.
 */
import { Duration, Either } from "effect"
import { type IngressError, PeerViolation, UnknownRoute } from "../../domain/IngressError.js"
import type { Listener } from "../../domain/Listener.js"
import { specOf, typeOfValue, type WireMode } from "../../domain/Payload.js"
import type { Struct } from "../../domain/payload/Shape.js"
import { makeEvent, HandlerFailed } from "../../domain/PumpEvent.js"
import { type PayloadValue, RawPayload, type Reply } from "../../domain/Reply.js"
import { SystemErrors } from "../../domain/SystemPayloads.js"
import type { RootThread, ThreadNode } from "../../services/ThreadRegistry.js"
import type { ListenerEntry, Router } from "../Router.js"
import { type Encoded, payloadXmlOf, type PumpCore } from "./Core.js"
import { runStages } from "./CustomStages.js"
import { Outcome } from "./Hop.js"
import { type Job, makeJob } from "./Job.js"
import type { Lifecycle } from "./Lifecycle.js"

/**
 * Whether a spec writes canonical XML: always in the xmlify form (free-form XML travels as
 * text); in the native form unless a free-form XML field is written as given.
 */
const writesCanonical = (shape: Struct): boolean =>
  shape.fields.every((f) => f.shape._tag !== "Xml" && (f.shape._tag !== "Struct" || writesCanonical(f.shape)))

const canonicalSpecs = new WeakMap<object, boolean>()

/** Encodes a payload value in a wire form; Left with a readable reason when it cannot be written. */
export const encodePayload = (value: PayloadValue, wire: WireMode): Either.Either<Encoded, string> => {
  if (value instanceof RawPayload) return Either.right({ tag: value.tag, inner: value.inner, canonical: false })
  const type = typeOfValue(value)
  if (type === undefined) {
    return Either.left(`${String((value as object)?.constructor?.name ?? value)} is not a payload (declare it with Payload.Class)`)
  }
  try {
    const spec = specOf(type, wire)
    // By spec: a type may fix its own wire form, whatever the organism's.
    let canonical = canonicalSpecs.get(spec)
    if (canonical === undefined) canonicalSpecs.set(spec, canonical = spec.wire === "xmlify" || writesCanonical(spec.shape))
    return Either.right({ tag: spec.tag, inner: spec.encodeInner(value), canonical })
  } catch (e) {
    return Either.left(e instanceof Error ? e.message : String(e))
  }
}

/**
 * Makes a reply's payload type known to the route table, so that an injector receives it
 * typed. A type that cannot be known (its XSD does not compile, its tag is taken) is reported.
 */
const learnType = (routes: Router, value: PayloadValue): Either.Either<void, string> => {
  if (value instanceof RawPayload) return Either.void
  const type = typeOfValue(value)
  if (type === undefined) return Either.void // encoding says why
  const learned = routes.learn(type)
  return Either.isLeft(learned) ? Either.left(learned.left.message) : Either.void
}

export const makeOutbox = (core: PumpCore, lifecycle: Lifecycle) => {
  /** A handler's reply the pump cannot send: an event and a note on its conversation. */
  const reportInvalidReply = (job: Job, detail: string) => {
    if (core.observed()) {
      core.publish(
        makeEvent(HandlerFailed, {
          thread: job.node.id,
          root: job.node.root.id,
          time: core.now(),
          listener: job.entry.listener.name,
          reason: "invalid-reply",
          detail
        })
      )
    }
    core.noteProblem(job.node.root, detail)
  }

  /** A reply refused before it was written: a hop of its own, rejected, and the listener hears why. */
  const refuse = (job: Job, to: string, tag: string, error: IngressError) => {
    const hop = lifecycle.open("", { node: job.node, senderNode: job.node, system: false }, undefined)
    lifecycle.settle(
      hop,
      Outcome.Rejected({
        rejection: {
          error,
          seen: { from: job.entry.listener.name, to, thread: job.node.id, payloadTag: tag },
          text: "",
          diagnostics: []
        }
      })
    )
  }

  /** The payload as it will be written, after the `before-reply` stages; undefined if refused. */
  const prepare = (job: Job, to: string, value: PayloadValue): Encoded | undefined => {
    const version = core.version
    const stages = version.stages["before-reply"]
    let payload = value
    if (stages.length > 0) {
      const tag = value instanceof RawPayload ? value.tag : typeOfValue(value) === undefined ? "?" : specOf(typeOfValue(value)!).tag
      const staged = runStages(stages, { from: job.entry.listener.name, to: [to], thread: job.node.id, payloadType: tag, payload: value }, "outbox")
      if (Either.isLeft(staged)) {
        refuse(job, to, tag, staged.left)
        return undefined
      }
      payload = staged.right as PayloadValue
    }
    const learned = learnType(version.routes, payload)
    const encoded = Either.isLeft(learned) ? Either.left(learned.left) : encodePayload(payload, version.settings.wire)
    if (Either.isRight(encoded)) return encoded.right
    reportInvalidReply(job, encoded.left)
    // The listener hears what was wrong (a model can correct itself).
    lifecycle.emitSystemError(job.entry.listener.name, job.node, SystemErrors.invalid(encoded.left))
    return undefined
  }

  const peerAllowed = (listener: Listener, to: string) =>
    listener.peers === undefined || listener.peers.some((p) => p.toLowerCase() === to.toLowerCase())

  // Loop detection: what each agent last sent to each target in a conversation, and how many
  // times in a row. Kept per root, dropped with it.
  const lastSends = new WeakMap<RootThread, Map<string, { xml: string; count: number }>>()

  /** True (and the send is stopped by the loop guard) when an agent repeats itself to a target. */
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
    if (count < core.version.settings.guards.loopThreshold) return false
    // Accounted like any message: a hop of its own, stopped by the guard.
    const hop = lifecycle.open(xml, { node: job.node, senderNode: job.node, system: false }, undefined)
    lifecycle.settle(
      hop,
      Outcome.GuardStopped({
        guard: "loop",
        detail: `${job.entry.listener.name} sent the same <${encoded.tag}> to ${to} ${count} times in a row`,
        listener: job.entry.listener.name,
        edge: `${job.entry.listener.name} → ${to}`,
        notice: `You sent the same <${encoded.tag}> to ${to} ${count} times in a row; it was not sent again. Try something different.`
      })
    )
    return true
  }

  /**
   * An agent's forward is watched: if its branch ends with nothing delivered back to the
   * agent, the agent hears at once who did not answer and why (pump/Branches.ts).
   */
  const watch = (job: Job, branch: ThreadNode) =>
    core.registry.unsafeOnBranchEnd(branch, () => {
      const root = branch.root
      if (core.branches.wasAnswered(branch) || root.completed || core.halting !== undefined || core.endings.cancelled(root)) return
      // Past the conversation's caps the notice could only pass by the guards' one grace:
      // an agent past its step cap is not asked to think again.
      const guards = core.version.settings.guards
      if (
        root.agentSteps >= guards.maxAgentSteps || root.invocations >= guards.maxInvocationsPerThread ||
        core.now() - root.createdAt >= Duration.toMillis(guards.maxThreadDuration)
      ) return
      lifecycle.emitSystemError(job.entry.listener.name, job.node, SystemErrors.noReply(branch.name, core.branches.why(branch)))
    })

  const forward = (job: Job, to: string, encoded: Encoded) => {
    const branch = core.registry.unsafeExtend(job.node, to)
    if (job.entry.listener.agent) watch(job, branch)
    lifecycle.emit(job.entry.listener.name, to, branch, encoded, job.node, false, job.permit, job)
  }

  /** Writes what a handler returned (a Reply the dispatcher has already checked). */
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
          const encoded = prepare(job, reply.to, value)
          if (encoded === undefined) continue
          if (!peerAllowed(listener, reply.to)) {
            refuse(job, reply.to, encoded.tag, new PeerViolation({ diagnostics: [], listener: name, target: reply.to }))
            continue
          }
          if (listener.agent && looping(job, reply.to, encoded)) continue
          forward(job, reply.to, encoded)
        }
        return
      }
      case "Respond": {
        const parent = job.node.parent
        if (parent === undefined) return
        for (const value of reply.payloads) {
          const encoded = prepare(job, parent.name, value)
          if (encoded !== undefined) lifecycle.emit(name, parent.name, parent, encoded, job.node, false, job.permit, job)
        }
        return
      }
      case "Broadcast": {
        for (const value of reply.payloads) {
          const encoded = prepare(job, "*", value)
          if (encoded === undefined) continue
          const targets = core.version.routes.broadcastTargets(encoded.tag).filter((t) => peerAllowed(listener, t.name!))
          if (targets.length === 0) {
            refuse(job, "*", encoded.tag, new UnknownRoute({ diagnostics: [], stage: "outbox", routeKey: encoded.tag.toLowerCase() }))
            continue
          }
          for (const t of targets) {
            if (listener.agent && looping(job, t.name!, encoded)) continue
            forward(job, t.name!, encoded)
          }
        }
        return
      }
    }
  }

  /** Sends a reply on behalf of a listener outside one of its invocations (primitives). */
  const replyAs = (entry: ListenerEntry, node: ThreadNode, reply: Reply) => {
    const job = makeJob(entry, core.version, undefined, false, node, entry.listener.name, [], undefined, [])
    job.done = true
    sendReply(job, reply)
  }

  return { sendReply, replyAs, reportInvalidReply }
}

export type Outbox = ReturnType<typeof makeOutbox>
