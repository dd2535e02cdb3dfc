/**
 * Delivery: what happens to a message once the ingress stages have judged it. A rejected one
 * is recorded and bounced to its sender; an accepted one finds its thread, passes the guards,
 * is recorded in the conversation's history, and becomes one job per receiving listener — or
 * answers a waiting request at its injector. Every message ends in exactly one outcome.
 */
import { Chunk, Duration, Either, Exit } from "effect"
import { type IngressError, InternalError } from "../../domain/IngressError.js"
import { GuardTripped, MessageReceived, ThreadCreated } from "../../domain/PumpEvent.js"
import { RequestFailed } from "../../domain/PumpError.js"
import { SystemError, SystemErrors } from "../../domain/SystemPayloads.js"
import type { ThreadNode } from "../../services/ThreadRegistry.js"
import { describeThrown, type IngressOutcome, type Rejected } from "../Ingress.js"
import type { ListenerEntry } from "../Router.js"
import type { RouteTarget } from "../stages/validatePayload.js"
import { type InboxItem, type PumpCore, TEXT_LIMIT } from "./Core.js"
import type { Dispatcher } from "./Dispatcher.js"
import type { Outbox } from "./Outbox.js"

const decoder = new TextDecoder()

export const makeDelivery = (core: PumpCore, outbox: Outbox, dispatcher: Dispatcher) => {
  const { counts, registry } = core
  let messageSeq = 0
  // What the item being processed still holds, for the safety net in `processChunk`: the
  // node it retained (until released) and whether it reached one of its outcomes.
  let holding: ThreadNode | undefined
  let settled = false

  const bounceFor = (error: IngressError): SystemError => {
    switch (error._tag) {
      case "PayloadInvalid":
      case "DecodeFailed": {
        // The sender (often a model) gets what was wrong and what was expected.
        const expected = core.router.types.get(error.payloadTag.toLowerCase())?.spec.example
        const detail = error.diagnostics.map(String).join("; ") || error.message
        return SystemErrors.invalid(expected === undefined ? detail : `${detail}\nExpected <${error.payloadTag}> like:\n${expected}`)
      }
      case "UnknownRoute":
        return SystemErrors.routing()
      default:
        return SystemErrors.invalid(error.message)
    }
  }

  const reject = (item: InboxItem, outcome: Rejected) => {
    const { error, seen } = outcome
    outbox.recordRejection(
      error.stage,
      error._tag,
      error.message,
      [...error.diagnostics.map(String), ...outcome.diagnostics.map(String)],
      { ...seen, payloadType: seen.payloadTag },
      outcome.canonical ??
        (typeof item.input === "string" ? item.input.slice(0, TEXT_LIMIT) : decoder.decode(item.input.subarray(0, TEXT_LIMIT))),
      item.origin?.node.root.id ?? null
    )
    const origin = item.origin
    if (origin !== undefined) {
      core.noteProblem(origin.node.root, error.message)
      // Bounce to the sending listener, unless the pump itself sent it.
      if (!origin.system && origin.senderNode !== undefined && origin.senderNode.parent !== undefined) {
        outbox.sendSystemError(origin.senderNode.name, origin.senderNode, bounceFor(error))
      }
      holding = undefined
      registry.release(origin.node)
    }
    settled = true
    core.permitDone(item.permit)
    counts.checkIdle()
  }

  const guardStop = (item: InboxItem, node: ThreadNode, guard: string, detail: string, listener: string | null) => {
    counts.guardStopped++
    if (core.observed()) {
      core.publish(new GuardTripped({ thread: node.id, root: node.root.id, time: core.now(), guard, listener, detail }, true))
    }
    core.noteProblem(node.root, `guard ${guard}: ${detail}`)
    const origin = item.origin
    if (origin !== undefined && !origin.system && origin.senderNode !== undefined && origin.senderNode.parent !== undefined) {
      outbox.sendSystemError(origin.senderNode.name, origin.senderNode, SystemErrors.guard(`Stopped by the ${guard} guard: ${detail}`))
    }
    holding = undefined
    registry.release(node)
    settled = true
    core.permitDone(item.permit)
    counts.checkIdle()
  }

  /** The guard a message trips, if any: chain depth, step caps, the conversation's age. */
  const guardFor = (
    node: ThreadNode,
    targets: ReadonlyArray<{ target: RouteTarget }>,
    broadcast: boolean,
    system: boolean
  ): [guard: string, detail: string] | undefined => {
    const guards = core.settings.guards
    const root = node.root
    // The depth of the hop being made.
    const depth = broadcast ? node.depth + 1 : node.depth
    if (depth > guards.maxChainDepth) return ["max-chain-depth", `chain depth ${depth} exceeds ${guards.maxChainDepth}`]
    // SystemErrors end branches rather than extend them: no step cap for them.
    if (system) return undefined
    let handlers = 0
    let agents = 0
    for (const t of targets) {
      const entry = t.target.entry as ListenerEntry | undefined
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
    if (handlers > 0 && Date.now() - root.createdAt > Duration.toMillis(guards.maxThreadDuration)) {
      return ["max-thread-duration", `the thread has run longer than ${Duration.format(guards.maxThreadDuration)}`]
    }
    return undefined
  }

  const deliver = (
    item: InboxItem,
    node: ThreadNode,
    from: string,
    targets: ReadonlyArray<{ target: RouteTarget; payload: unknown }>,
    broadcast: boolean,
    payloadTag: string,
    payloadXml: string,
    diagnostics: ReadonlyArray<string>,
    envelope: string
  ) => {
    const system = item.origin?.system === true
    const root = node.root
    const first = targets[0]!.target
    const tripped = guardFor(node, targets, broadcast, system)
    if (tripped !== undefined) return guardStop(item, node, tripped[0], tripped[1], first.name ?? null)
    // The conversation's history records each message once, whatever its fan-out.
    const appended = core.context.append({
      id: String(++messageSeq),
      root: root.id,
      thread: node.id,
      from,
      to: broadcast ? "" : first.name ?? "",
      payloadType: payloadTag,
      payload: targets[0]!.payload,
      xml: payloadXml
    })
    // A full history stops a message — except the pump's own SystemErrors, which must still
    // reach their listener (to say, for one, that its history is full).
    if (Either.isLeft(appended) && !system) return guardStop(item, node, "context-full", appended.left.message, first.name ?? null)
    core.todos.observe({ root: root.id, thread: node.id, from, payloadType: payloadTag })
    counts.delivered++
    for (const { payload, target } of targets) {
      const entry = target.entry as ListenerEntry | undefined
      const jobNode = broadcast && target.name !== undefined ? registry.extend(node, target.name) : node
      if (core.observed()) {
        core.publish(
          new MessageReceived({
            thread: jobNode.id,
            root: root.id,
            parent: jobNode.parent?.id ?? null,
            time: core.now(),
            from,
            to: target.name ?? "",
            payloadType: payloadTag,
            payload: payloadXml,
            diagnostics: [...diagnostics],
            envelope
          }, true)
        )
      }
      if (entry === undefined) {
        // Back at the injector: it answers a pending request, if any.
        const waiting = core.requests.get(root.id)
        if (waiting !== undefined) {
          core.requests.delete(root.id)
          waiting.resolve(
            payload instanceof SystemError
              ? Exit.fail(new RequestFailed({ thread: root.id, error: payload }))
              : Exit.succeed(payload)
          )
        }
        continue
      }
      // A payload every listener accepts implicitly (SystemError, BudgetWarning, todo
      // replies) that this one did not declare goes to its onSystem handler.
      const tag = payloadTag.toLowerCase()
      const isSystemPayload = !entry.types.has(tag) && entry.system.has(tag)
      if (isSystemPayload && entry.listener.onSystem === undefined) continue
      root.invocations++
      if (entry.listener.agent) root.agentSteps++
      registry.retain(jobNode)
      if (item.permit !== undefined) item.permit.pending++
      dispatcher.schedule({
        entry,
        payload,
        system: isSystemPayload,
        node: jobNode,
        from,
        permit: item.permit,
        gates: dispatcher.gatesFor(entry),
        settled: false,
        timer: undefined,
        fiber: undefined,
        startedAt: 0,
        replies: undefined
      })
    }
    holding = undefined
    registry.release(node)
    settled = true
    core.permitDone(item.permit)
    counts.checkIdle()
  }

  const processItem = (item: InboxItem, outcome: IngressOutcome) => {
    if (outcome._tag === "Rejected") return reject(item, outcome)
    const { envelope } = outcome
    const decoded = outcome.decoded!
    let node: ThreadNode
    if (item.origin !== undefined) {
      node = item.origin.node
      holding = node
    } else {
      const known = registry.lookup(outcome.thread.thread)
      const to = envelope.to
      if (known !== undefined) {
        node = to === undefined || known.name === to ? known : registry.extend(known, to)
      } else {
        // A broadcast from outside is delivered on hops below the sender's own node.
        node = registry.startRoot(envelope.from, to, outcome.thread.replaced ? undefined : outcome.thread.thread)
        if (core.observed()) {
          core.publish(new ThreadCreated({ thread: node.root.id, time: core.now(), injector: envelope.from, to: to ?? null }, true))
        }
      }
      registry.retain(node)
      holding = node
    }
    deliver(
      item,
      node,
      envelope.from,
      decoded.deliveries,
      envelope.to === undefined,
      envelope.payloadTag,
      envelope.payloadXml,
      outcome.diagnostics.length === 0 ? [] : outcome.diagnostics.map(String),
      outcome.canonical
    )
  }

  /**
   * The safety net: something threw while delivering (a registry Layer, a bug). The message
   * gets its outcome — an InternalError rejection, unless it had already reached one — and
   * gives back what it held, so the pump keeps going and the counters still add up.
   */
  const salvage = (item: InboxItem, outcome: IngressOutcome, thrown: unknown) => {
    const node = holding
    holding = undefined
    if (!settled) {
      const seen = outcome._tag === "Rejected"
        ? outcome.seen
        : { from: outcome.envelope.from, to: outcome.envelope.to, thread: outcome.thread.thread, payloadTag: outcome.envelope.payloadTag }
      const error = new InternalError({ diagnostics: [], stage: "dispatch", detail: describeThrown(thrown) })
      outbox.recordRejection(error.stage, error._tag, error.message, [], { ...seen, payloadType: seen.payloadTag }, outcome.canonical ?? "", node?.root.id ?? null)
      if (node !== undefined) core.noteProblem(node.root, error.message)
      core.permitDone(item.permit)
    }
    if (node !== undefined) registry.release(node)
    counts.checkIdle()
  }

  /** A chunk from the inbox: every ingress stage for the whole chunk, then delivery in order. */
  const processChunk = (chunk: Chunk.Chunk<InboxItem>) => {
    const items = Chunk.toReadonlyArray(chunk)
    const outcomes = core.ingress.runBatch(items.map((i) => i.input), core.router)
    for (let i = 0; i < items.length; i++) {
      holding = undefined
      settled = false
      try {
        processItem(items[i]!, outcomes[i]!)
      } catch (thrown) {
        salvage(items[i]!, outcomes[i]!, thrown)
      }
    }
  }

  return { processChunk }
}
