/**
 * Delivery: the pipeline from a chunk of hops to their outcomes. The ingress stages judge the
 * whole chunk (Ingress.ts); then, in order, each accepted message finds its thread, passes
 * the organism's `after-decode` stages and the guards, its `before-dispatch` stages, is
 * recorded in the conversation's history, and becomes one job per receiving listener — or
 * answers a waiting request at its injector.
 *
 * `judge` decides; it never books. Each hop is then settled exactly once, right here, with
 * what `judge` decided — or, when judging threw (a registry Layer of yours, a bug), as an
 * InternalError rejection — and the jobs of a delivered hop are scheduled.
 *
 * One exception: a message to a listener with `approval: required` that has passed every
 * check is handed, with the rest of its delivery, to the approval desk (pump/ApprovalDesk.ts),
 * which settles it once a person decides.
 */
import { Duration, Either } from "effect"
import type { CustomStage } from "../../domain/CustomStage.js"
import { type IngressError, InternalError } from "../../domain/IngressError.js"
import { makeEvent, messageReceived, ThreadCreated } from "../../domain/PumpEvent.js"
import type { RootThread, ThreadNode } from "../../services/ThreadRegistry.js"
import { type Accepted, describeThrown, type IngressOutcome, type Rejected, type Seen } from "../Ingress.js"
import type { Delivery } from "../stages/decode.js"
import { payloadXmlOf, type PumpCore, TEXT_LIMIT } from "./Core.js"
import type { ApprovalDesk, Held } from "./ApprovalDesk.js"
import { runStages } from "./CustomStages.js"
import type { Dispatcher } from "./Dispatcher.js"
import { type Answer, type Hop, Outcome } from "./Hop.js"
import { type Job, makeJob } from "./Job.js"
import type { Lifecycle } from "./Lifecycle.js"
import { encodePayload } from "./Outbox.js"
import type { Version } from "./Version.js"

const decoder = new TextDecoder()
const noDiagnostics: ReadonlyArray<string> = []

const textOf = (hop: Hop, canonical: string | undefined) =>
  canonical ?? (typeof hop.input === "string" ? hop.input.slice(0, TEXT_LIMIT) : decoder.decode(hop.input.subarray(0, TEXT_LIMIT)))

const seenOf = (accepted: Accepted): Seen => ({
  from: accepted.envelope.from,
  to: accepted.envelope.to,
  thread: accepted.thread.thread,
  payloadTag: accepted.envelope.payloadTag
})

export const makeDelivery = (core: PumpCore, lifecycle: Lifecycle, dispatcher: Dispatcher, desk: ApprovalDesk) => {
  const { registry } = core
  let messageSeq = 0

  const rejected = (hop: Hop, r: Rejected): Outcome =>
    Outcome.Rejected({
      rejection: {
        error: r.error,
        seen: r.seen,
        text: textOf(hop, r.canonical),
        diagnostics: [...r.error.diagnostics.map(String), ...r.diagnostics.map(String)]
      }
    })

  const refused = (accepted: Accepted, error: IngressError): Outcome =>
    Outcome.Rejected({
      rejection: { error, seen: seenOf(accepted), text: accepted.canonical, diagnostics: error.diagnostics.map(String) }
    })

  const guardStop = (guard: string, detail: string, listener: string | null): Outcome =>
    Outcome.GuardStopped({ guard, detail, listener, notice: undefined })

  // Conversations whose one SystemError past the limits was delivered (see `guardFor`).
  const graced = new WeakSet<RootThread>()

  /**
   * The guard a message trips, if any: chain depth, step caps, the conversation's age. Every
   * delivery of a conversation passes them — SystemErrors too, so that a handler answering
   * its own errors cannot loop past them. So that a sender still hears why it was stopped,
   * one SystemError per conversation is delivered past the limits; nothing after it is.
   */
  const guardFor = (
    version: Version,
    node: ThreadNode,
    deliveries: ReadonlyArray<Delivery>,
    broadcast: boolean,
    system: boolean
  ): [guard: string, detail: string] | undefined => {
    const tripped = limitFor(version, node, deliveries, broadcast)
    if (tripped === undefined || !system || graced.has(node.root)) return tripped
    graced.add(node.root)
    return undefined
  }

  const limitFor = (
    version: Version,
    node: ThreadNode,
    deliveries: ReadonlyArray<Delivery>,
    broadcast: boolean
  ): [guard: string, detail: string] | undefined => {
    const guards = version.settings.guards
    const root = node.root
    // The depth of the hop being made.
    const depth = broadcast ? node.depth + 1 : node.depth
    if (depth > guards.maxChainDepth) return ["max-chain-depth", `chain depth ${depth} exceeds ${guards.maxChainDepth}`]
    let handlers = 0
    let agents = 0
    for (const d of deliveries) {
      const entry = d.target.listener
      if (entry === undefined) continue
      handlers++
      if (entry.listener.agent) agents++
    }
    if (handlers > 0 && root.invocations + handlers > guards.maxInvocationsPerThread) {
      return ["max-invocations", `${guards.maxInvocationsPerThread} handler invocations reached on this thread`]
    }
    if (agents > 0 && root.agentSteps + agents > guards.maxAgentSteps) {
      return ["max-agent-steps", `${guards.maxAgentSteps} agent steps reached on this thread`]
    }
    // At the limit itself, too: the wall clock (pump/WallClock.ts) has stopped it there.
    if (handlers > 0 && core.now() - root.createdAt >= Duration.toMillis(guards.maxThreadDuration)) {
      return ["max-thread-duration", `the thread has run longer than ${Duration.format(guards.maxThreadDuration)}`]
    }
    return undefined
  }

  /** The node an accepted message travels on; a message from outside is held on it from now. */
  const nodeOf = (hop: Hop, accepted: Accepted): ThreadNode => {
    if (hop.origin !== undefined) return hop.origin.node
    const { envelope, thread } = accepted
    const known = registry.unsafeLookup(thread.thread)
    const to = envelope.to
    let node: ThreadNode
    if (known !== undefined) {
      node = to === undefined || known.name === to ? known : registry.unsafeExtend(known, to)
    } else {
      // A broadcast from outside is delivered on hops below the sender's own node.
      node = registry.unsafeStartRoot(envelope.from, to, thread.replaced ? undefined : thread.thread)
      lifecycle.hold(hop, node)
      core.liveRoots.set(node.root.id, node.root)
      if (core.observed()) {
        core.publish(makeEvent(ThreadCreated, { thread: node.root.id, time: core.now(), injector: envelope.from, to: to ?? null }))
      }
    }
    lifecycle.hold(hop, node)
    return node
  }

  /** Runs the organism's stages at one point; the payload they leave, or why they refused. */
  const staged = (
    stages: ReadonlyArray<CustomStage>,
    node: ThreadNode,
    accepted: Accepted,
    deliveries: ReadonlyArray<Delivery>
  ): Either.Either<ReadonlyArray<Delivery>, IngressError> => {
    if (stages.length === 0) return Either.right(deliveries)
    const original = deliveries[0]!.payload
    const result = runStages(stages, {
      from: accepted.envelope.from,
      to: deliveries.map((d) => d.target.name ?? ""),
      thread: node.id,
      payloadType: accepted.envelope.payloadTag,
      payload: original
    }, "stage")
    if (Either.isLeft(result)) return Either.left(result.left)
    const payload = result.right
    return Either.right(payload === original ? deliveries : deliveries.map((d) => (d.payload === original ? { ...d, payload } : d)))
  }

  /**
   * Decides the outcome of an accepted message. It books nothing: its caller settles — or,
   * for a message that needs a person's approval, hands it to the desk (`Held`).
   */
  const judge = (hop: Hop, accepted: Accepted, version: Version): Outcome | Held => {
    const { envelope } = accepted
    const node = nodeOf(hop, accepted)
    if (core.halting !== undefined) return guardStop("shutdown", core.halting, null)
    if (core.endings.cancelled(node.root)) return guardStop("cancelled", core.endings.of(node.root).detail, null)
    const broadcast = envelope.to === undefined
    let deliveries = accepted.decoded!.deliveries
    const first = deliveries[0]!.target

    const afterDecode = staged(version.stages["after-decode"], node, accepted, deliveries)
    if (Either.isLeft(afterDecode)) return refused(accepted, afterDecode.left)
    deliveries = afterDecode.right

    const system = hop.origin?.system === true
    const tripped = guardFor(version, node, deliveries, broadcast, system)
    if (tripped !== undefined) return guardStop(tripped[0], tripped[1], first.name ?? null)

    const beforeDispatch = staged(version.stages["before-dispatch"], node, accepted, deliveries)
    if (Either.isLeft(beforeDispatch)) return refused(accepted, beforeDispatch.left)
    deliveries = beforeDispatch.right

    // A stage that replaced the payload (a redaction) changes what is recorded, too.
    const payload = deliveries[0]!.payload
    let payloadXml = envelope.payloadXml
    if (payload !== accepted.decoded!.deliveries[0]!.payload) {
      const encoded = encodePayload(payload as object, version.settings.wire)
      if (Either.isLeft(encoded)) {
        return refused(accepted, new InternalError({ diagnostics: [], stage: "stage", detail: encoded.left }))
      }
      payloadXml = payloadXmlOf(encoded.right.tag, encoded.right.inner)
    }

    // A listener that requires approval: the rest waits for a person (the pump's own
    // SystemErrors never do).
    const approver = system ? undefined : deliveries.find((d) => d.target.listener?.listener.approval === "required")
    if (approver !== undefined) {
      const dispatch = () => dispatchOn(hop, accepted, node, deliveries, payloadXml, system, broadcast, version)
      return {
        _tag: "Held",
        hop,
        node,
        listener: approver.target.name ?? "",
        seen: seenOf(accepted),
        payload: payloadXml,
        envelope: accepted.canonical,
        dispatch
      }
    }
    return dispatchOn(hop, accepted, node, deliveries, payloadXml, system, broadcast, version)
  }

  /** The end of `judge` for a message that may go: recorded, then one job per listener. */
  const dispatchOn = (
    hop: Hop,
    accepted: Accepted,
    node: ThreadNode,
    deliveries: ReadonlyArray<Delivery>,
    payloadXml: string,
    system: boolean,
    broadcast: boolean,
    version: Version
  ): Outcome => {
    const { envelope } = accepted
    const from = envelope.from
    const first = deliveries[0]!.target
    const payload = deliveries[0]!.payload
    const root = node.root
    // The conversation's history records each message once, whatever its fan-out.
    const appended = core.context.unsafeAppend({
      // Numbered by the pump: new by construction, so the buffer skips its duplicate check.
      id: String(++messageSeq),
      unique: true,
      root: root.id,
      thread: node.id,
      from,
      to: broadcast ? "" : first.name ?? "",
      payloadType: envelope.payloadTag,
      payload,
      xml: payloadXml
    })
    // A full history stops a message — except the pump's own SystemErrors, which must still
    // reach their listener (to say, for one, that its history is full).
    if (Either.isLeft(appended) && !system) return guardStop("context-full", appended.left.message, first.name ?? null)
    core.todos.unsafeObserve({ root: root.id, thread: node.id, from, payloadType: envelope.payloadTag })

    const jobs: Array<Job> = []
    let answer: Answer | undefined
    const diagnostics = accepted.diagnostics.length > 0 ? accepted.diagnostics.map(String) : noDiagnostics
    const tag = envelope.payloadTag.toLowerCase()
    for (const { payload, target } of deliveries) {
      const entry = target.listener
      const jobNode = broadcast && target.name !== undefined ? registry.unsafeExtend(node, target.name) : node
      if (core.observed()) {
        core.publish(
          messageReceived({
            thread: jobNode.id,
            root: root.id,
            parent: jobNode.parent?.id ?? null,
            time: core.now(),
            from,
            to: target.name ?? "",
            payloadType: envelope.payloadTag,
            payload: payloadXml,
            diagnostics,
            envelope: accepted.canonical
          })
        )
      }
      if (entry === undefined) {
        // Back at the injector: it answers a pending request, if any.
        answer = { root, payload }
        continue
      }
      // A payload every listener accepts implicitly (SystemError, BudgetWarning, todo
      // replies) that this one did not declare goes to its onSystem handler.
      const isSystemPayload = !entry.types.has(tag) && entry.system.has(tag)
      if (isSystemPayload && entry.listener.onSystem === undefined) continue
      root.invocations++
      if (entry.listener.agent) root.agentSteps++
      jobs.push(
        makeJob(entry, version, payload, isSystemPayload, jobNode, from, diagnostics, hop.lease.permit, version.gates.get(entry) ?? [], hop.origin?.senderNode)
      )
    }
    return Outcome.Delivered({ jobs, answer })
  }

  /** One hop of the chunk, from its ingress outcome to its settlement. */
  const deliver = (hop: Hop, ingress: IngressOutcome, version: Version) => {
    let outcome: Outcome | Held
    try {
      outcome = ingress._tag === "Rejected" ? rejected(hop, ingress) : judge(hop, ingress, version)
    } catch (thrown) {
      const error = new InternalError({ diagnostics: [], stage: "dispatch", detail: describeThrown(thrown) })
      outcome = ingress._tag === "Rejected"
        ? rejected(hop, ingress)
        : Outcome.Rejected({ rejection: { error, seen: seenOf(ingress), text: ingress.canonical, diagnostics: [] } })
    }
    if (outcome._tag === "Held") return desk.hold(outcome)
    lifecycle.settle(hop, outcome)
    if (outcome._tag === "Delivered") for (const job of outcome.jobs) dispatcher.schedule(job)
  }

  /** A chunk from the inbox: every ingress stage for the whole chunk, then delivery in order. */
  const processChunk = (hops: ReadonlyArray<Hop>) => {
    // The whole chunk is judged by one version: a reload lands between two chunks.
    const version = core.version
    const outcomes = version.ingress.runBatch(hops.map((h) => h.input), version.routes, hops.map((h) => h.canonical))
    deliverJudged(hops, outcomes, version)
  }

  /** A chunk whose ingress outcomes are known (judged by `version`): delivery in order. */
  const deliverJudged = (hops: ReadonlyArray<Hop>, outcomes: ReadonlyArray<IngressOutcome>, version: Version) => {
    for (let i = 0; i < hops.length; i++) {
      try {
        deliver(hops[i]!, outcomes[i]!, version)
      } catch {
        // Settling itself threw (a registry Layer of yours failing while a lease is given
        // back): that hop's books may be off, but the pump goes on with the next hop rather
        // than stopping for good.
      }
    }
  }

  return { processChunk, deliverJudged }
}
