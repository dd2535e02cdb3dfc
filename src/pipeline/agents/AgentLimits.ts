/**
 * An LLM agent's loop control, per conversation (domain/AgentLimits.ts): every answer of its
 * model passes here before it is sent.
 *
 * - Loop detection: the answer is compared with the agent's previous answers in the
 *   conversation (as sent: each payload's target and canonical XML, order aside). The same
 *   answer `repeats` times in a row — or the same cycle of up to `maxPeriod` answers
 *   (A B A B A B) — is a loop. The answer that completes it is not sent; with `warn` the agent
 *   gets a SystemError saying so (its next answer may differ), with `stop` it is done.
 * - Peer ceilings: forwards to a limited peer past its count are taken out of the answer;
 *   the agent gets a SystemError naming the peer and the limit.
 * - Stop conditions: after each answer (what it sends, the step, the tokens so far). When one
 *   holds, the answer is sent and the agent is done in this conversation: what reaches it
 *   later is not answered. A stop handler that fails stops the agent too, with nothing sent.
 *
 * A stop or a refusal is a GuardTripped event (`stop-when`, `stop-when-failed`,
 * `agent-loop`, `peer-limit`) and the conversation's ending (`stopped`, `failed`, `guard`).
 * Whoever waits for the stopped agent hears it as any branch that ends without a reply.
 */
import { Cause, Effect } from "effect"
import type { AgentLimits, AgentOutput, StopCondition, StopContext, StopWhenBuiltIn } from "../../domain/AgentLimits.js"
import { StopConditionFailed } from "../../domain/AgentLimits.js"
import type { LlmUsage } from "../../domain/Llm.js"
import { RawPayload, Reply } from "../../domain/Reply.js"
import { systemError } from "../../domain/SystemPayloads.js"
import type { Conversation } from "../Conversation.js"

interface State {
  steps: number
  promptTokens: number
  completionTokens: number
  /** The signatures of the last answers, oldest first (as many as a loop needs). */
  readonly answers: Array<string>
  /** Forwards sent per peer (lowercase). */
  readonly calls: Map<string, number>
  /** Why the agent stopped, once it has. */
  stopped: string | undefined
}

const tagOf = (payload: object, xml: string) =>
  payload instanceof RawPayload ? payload.tag : /^<([^\s>/]+)/.exec(xml)?.[1] ?? "?"

/** What a reply sends, payload by payload. */
export const outputsOf = (reply: Reply, xmlOf: (payload: unknown) => string): Array<AgentOutput> => {
  const out: Array<AgentOutput> = []
  const walk = (r: Reply) => {
    switch (r._tag) {
      case "All":
        return r.replies.forEach(walk)
      case "None":
        return
      default:
        for (const p of r.payloads) {
          const xml = xmlOf(p)
          out.push({ payloadType: tagOf(p, xml), to: r._tag === "Forward" ? r.to : r._tag === "Respond" ? "caller" : "*", xml })
        }
    }
  }
  walk(reply)
  return out
}

/** An answer as loop detection compares it: what goes where, in no particular order. */
const signatureOf = (outputs: ReadonlyArray<AgentOutput>) =>
  outputs.map((o) => `${o.to.toLowerCase()}\u0000${o.xml}`).sort().join("\u0001")

/** The period of the loop the latest answer completes, if it completes one. */
export const loopPeriod = (answers: ReadonlyArray<string>, repeats: number, maxPeriod: number): number | undefined => {
  const n = answers.length
  for (let p = 1; p <= maxPeriod; p++) {
    if (n < repeats * p) break
    let same = true
    for (let i = 0; i < (repeats - 1) * p && same; i++) same = answers[n - 1 - i] === answers[n - 1 - i - p]
    // A cycle of one answer repeated is period 1, found first.
    if (same) return p
  }
  return undefined
}

const producedTag = (t: string | { readonly payloadTag: string }) => (typeof t === "string" ? t : t.payloadTag).toLowerCase()

/** Which built-in condition holds, in words; undefined when none does. */
const builtInHolds = (c: StopWhenBuiltIn, ctx: StopContext): string | undefined => {
  if (c.produced !== undefined) {
    const wanted = (Array.isArray(c.produced) ? c.produced : [c.produced]).map(producedTag)
    const hit = ctx.lastOutputs.find((o) => wanted.includes(o.payloadType.toLowerCase()))
    if (hit !== undefined) return `produced <${hit.payloadType}>`
  }
  if (c.steps !== undefined && ctx.step >= c.steps) return `${ctx.step} step${ctx.step === 1 ? "" : "s"} (limit ${c.steps})`
  if (c.tokens !== undefined && ctx.usage.totalTokens >= c.tokens) return `${ctx.usage.totalTokens} tokens (limit ${c.tokens})`
  return undefined
}

/** Runs a stop handler: a throw, a failure, a defect or a non-boolean is a StopConditionFailed. */
const runHandler = (agent: string, handler: (ctx: StopContext) => unknown, ctx: StopContext) =>
  Effect.suspend(() => {
    const result = handler(ctx)
    return Effect.isEffect(result) ? (result as Effect.Effect<unknown, unknown>) : Effect.succeed(result)
  }).pipe(
    Effect.flatMap((held) =>
      typeof held === "boolean" ? Effect.succeed(held) : Effect.fail(`it returned ${held === null ? "null" : typeof held}, not true or false`)
    ),
    Effect.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Effect.failCause(cause as Cause.Cause<never>)
        : Effect.fail(
          new StopConditionFailed({
            agent,
            detail: Cause.isFailType(cause) && typeof cause.error === "string"
              ? cause.error
              : Cause.pretty(cause).split("\n")[0] ?? "it failed"
          })
        )
    )
  )

/** Which condition holds (in words), or undefined. */
const evaluate = (agent: string, conditions: ReadonlyArray<StopCondition>, ctx: StopContext) =>
  Effect.gen(function*() {
    for (const c of conditions) {
      if (typeof c === "function") {
        if (yield* runHandler(agent, c, ctx)) return "its stop condition held"
      } else {
        const held = builtInHolds(c, ctx)
        if (held !== undefined) return held
      }
    }
    return undefined
  })

export const makeAgentLimits = (agent: string, limits: AgentLimits | undefined) => {
  const conditions: ReadonlyArray<StopCondition> = limits?.stopWhen === undefined
    ? []
    : Array.isArray(limits.stopWhen)
    ? limits.stopWhen
    : [limits.stopWhen as StopCondition]
  const loop = limits?.loopDetection
  const repeats = Math.max(2, loop?.repeats ?? 3)
  const maxPeriod = Math.max(1, loop?.maxPeriod ?? 2)
  const peerLimits = new Map(Object.entries(limits?.peerLimits ?? {}).map(([peer, n]) => [peer.toLowerCase(), n]))
  const states = new Map<string, State>()

  const stateOf = (conversation: Conversation.Service) =>
    Effect.suspend(() => {
      const known = states.get(conversation.root)
      if (known !== undefined) return Effect.succeed(known)
      const state: State = { steps: 0, promptTokens: 0, completionTokens: 0, answers: [], calls: new Map(), stopped: undefined }
      states.set(conversation.root, state)
      return Effect.as(conversation.onComplete(() => states.delete(conversation.root)), state)
    })

  /** Forwards past a peer's ceiling taken out; `refused` gets the peers refused. */
  const withinCeilings = (reply: Reply, calls: Map<string, number>, refused: Map<string, number>): Reply => {
    switch (reply._tag) {
      case "All":
        return Reply.all(...reply.replies.map((r) => withinCeilings(r, calls, refused)))
      case "Forward": {
        const peer = reply.to.toLowerCase()
        const limit = peerLimits.get(peer)
        if (limit === undefined) return reply
        const kept = reply.payloads.filter(() => {
          const used = calls.get(peer) ?? 0
          if (used >= limit) return (refused.set(reply.to, (refused.get(reply.to) ?? 0) + 1), false)
          calls.set(peer, used + 1)
          return true
        })
        return kept.length === reply.payloads.length ? reply : kept.length === 0 ? Reply.none : Reply.forward(reply.to, ...kept)
      }
      default:
        return reply
    }
  }

  const stop = (conversation: Conversation.Service, state: State, guard: string, detail: string) =>
    Effect.suspend(() => {
      state.stopped = detail
      return conversation.guardTripped(guard, `${agent}: ${detail}`)
    })

  return {
    /** The agent has stopped in this conversation: it answers nothing more. */
    stopped: (root: string): boolean => states.get(root)?.stopped !== undefined,

    /** A model call's usage, for `tokens` and a stop handler's `usage`. */
    charge: (conversation: Conversation.Service, usage: LlmUsage) =>
      Effect.map(stateOf(conversation), (state) => {
        state.promptTokens += usage.promptTokens
        state.completionTokens += usage.completionTokens
      }),

    /** What of an answer is sent, given the limits (the model's `text`, and the reply it makes). */
    apply: (conversation: Conversation.Service, text: string, reply: Reply) =>
      Effect.gen(function*() {
        const state = yield* stateOf(conversation)
        if (state.stopped !== undefined) return Reply.none
        state.steps++
        const produced = outputsOf(reply, conversation.xmlOf)

        if (loop !== undefined) {
          state.answers.push(signatureOf(produced))
          if (state.answers.length > repeats * maxPeriod) state.answers.shift()
          const period = loopPeriod(state.answers, repeats, maxPeriod)
          if (period !== undefined) {
            const what = period === 1
              ? `the same answer ${repeats} times in a row`
              : `the same ${period} answers in turn, ${repeats} times over`
            if (loop.action === "stop") {
              yield* stop(conversation, state, "agent-loop", `gave ${what}; stopped`)
              return Reply.none
            }
            yield* conversation.notify(systemError(
              "guard",
              `You gave ${what}, so your last answer was not sent. Do something different, or answer your caller.`,
              false
            ))
            return Reply.none
          }
        }

        const calls = new Map(state.calls)
        const refused = new Map<string, number>()
        const sent = peerLimits.size === 0 ? reply : withinCeilings(reply, calls, refused)
        const outputs = refused.size === 0 ? produced : outputsOf(sent, conversation.xmlOf)

        let held: string | undefined
        if (conditions.length > 0) {
          const context: StopContext = {
            agent,
            root: conversation.root,
            step: state.steps,
            usage: {
              promptTokens: state.promptTokens,
              completionTokens: state.completionTokens,
              totalTokens: state.promptTokens + state.completionTokens
            },
            lastOutputs: outputs,
            text
          }
          const result = yield* Effect.either(evaluate(agent, conditions, context))
          if (result._tag === "Left") {
            yield* stop(conversation, state, "stop-when-failed", result.left.message)
            return Reply.none
          }
          held = result.right
        }

        for (const [peer, n] of calls) state.calls.set(peer, n)
        for (const [peer, n] of refused) {
          const limit = peerLimits.get(peer.toLowerCase())!
          yield* conversation.guardTripped("peer-limit", `${agent} → ${peer}: ${n} call${n === 1 ? "" : "s"} past the limit of ${limit} not sent`)
          yield* conversation.notify(systemError(
            "guard",
            `You may call ${peer} at most ${limit} time${limit === 1 ? "" : "s"} in this conversation: ${n} more call${n === 1 ? " was" : "s were"} not sent.`,
            false
          ))
        }
        if (held !== undefined) yield* stop(conversation, state, "stop-when", held)
        return sent
      })
  }
}

export type AgentLimitsControl = ReturnType<typeof makeAgentLimits>
