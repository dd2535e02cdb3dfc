/**
 * The handler of an LLM agent (`agent: true` with a `prompt` and no handler module): the
 * platform builds the conversation — system prompt and usage instructions, the
 * conversation's history as this agent saw it, todo nudges, the incoming payload — calls the
 * router, and turns the model's answer into payloads for peers or a reply to the caller.
 *
 * What goes wrong is told to the model, not swallowed: output that cannot be read or names
 * nobody is put back to it (a bounded number of times); a payload that fails validation on its
 * way comes back from the pipeline as a SystemError quoting the error and the expected schema,
 * which the agent answers with another model call (bounded too).
 */
import { Effect, Option } from "effect"
import type { AgentLimits } from "../../domain/AgentLimits.js"
import type { LlmMessage } from "../../domain/Llm.js"
import {
  type AgentContextOptions,
  type HandlerMetadata,
  Listener,
  type ListenerOptions,
  type LlmAgentOptions,
  type SystemPayload,
  type TypesOf
} from "../../domain/Listener.js"
import type { PayloadType } from "../../domain/Payload.js"
import { Reply } from "../../domain/Reply.js"
import { SystemError, systemError, TextOutput } from "../../domain/SystemPayloads.js"
import type { ContextSlot } from "../../services/ContextBuffer.js"
import { LlmRouter } from "../../services/LlmRouter.js"
import { Conversation } from "../Conversation.js"
import { makeAgentLimits } from "./AgentLimits.js"
import { type AgentAction, parseAgentOutput } from "./AgentOutput.js"
import { makeAgentContext } from "./ContextFit.js"
import { makeReasoningBudget } from "./ReasoningBudget.js"
import { toolAgentHandlers } from "./ToolAgent.js"

export const OUTPUT_FORMAT = `# How to answer

- To call a peer, write its payload element exactly as in the peer's example. If two peers accept the same payload type, wrap it to say which: <Send to="peer-name">…payload…</Send>.
- To respond to whoever called you, wrap your payload in <Respond>…</Respond>. An answer without any payload element is sent to your caller as plain text.
- Several payload elements in one answer are sent at the same time.
- Text outside payload elements is ignored: think in prose if you like, but write no XML you do not mean to send.`

/**
 * The conversation as this agent saw it, with roles alternating (as providers require): what
 * it received is the user's turn, what it sent its own — written the way it would write it
 * again (a peer call, or a Respond).
 */
export const conversationFor = (
  agent: string,
  slots: ReadonlyArray<ContextSlot>,
  nudge: string | undefined,
  isPeer: (name: string) => boolean
) => {
  const messages: Array<LlmMessage> = []
  const push = (role: LlmMessage["role"], content: string) => {
    const last = messages[messages.length - 1]
    if (last !== undefined && last.role === role) messages[messages.length - 1] = { role, content: `${last.content}\n\n${content}` }
    else messages.push({ role, content })
  }
  for (const s of slots) {
    if (s.from === agent && s.to !== agent) {
      push("assistant", s.to === "" || isPeer(s.to) ? s.xml : `<Respond>${s.xml}</Respond>`)
    }
    else push("user", `From ${s.from}:\n${s.xml}`)
  }
  // A conversation must start with the user (Anthropic insists).
  if (messages[0]?.role === "assistant") messages.unshift({ role: "user", content: "(conversation start)" })
  if (nudge !== undefined) push("user", nudge)
  return messages
}

const toReply = (actions: ReadonlyArray<AgentAction>): Reply =>
  Reply.all(...actions.map((a) => (a._tag === "Forward" ? Reply.forward(a.to, a.payload) : Reply.respond(a.payload))))

/** The turn that tells a model its answer was cut (finish reason `length`). */
export const CUT_AT_LIMIT = "Your answer was cut at the output limit, so nothing was sent. Answer again, shorter, following \"How to answer\"."

/**
 * Handler and onSystem for an LLM agent listener: Effects that ask the model through the
 * LlmRouter and learn everything else about their job from the Conversation.
 */
export const llmAgentHandlers = (name: string, prompt: string | undefined, options: LlmAgentOptions) => {
  if (options.protocol === "tools") return toolAgentHandlers(name, prompt, options)
  const outputRetries = options.outputRetries ?? 2
  const errorRetries = options.errorRetries ?? 3
  // SystemError-driven invocations per conversation, to give up after a few.
  const errorTurns = new Map<string, number>()
  // Stop conditions, loop detection, peer ceilings (AgentLimits.ts): every answer passes them.
  const limits = makeAgentLimits(name, options.limits)
  // Context fitting (ContextFit.ts) and the reasoning budget, with their per-conversation state.
  const context = makeAgentContext(name, options)
  const reasoning = makeReasoningBudget(name, options.maxReasoningTokens)
  const tracked = new Set<string>()

  const invoke = Effect.gen(function*() {
    const router = yield* LlmRouter
    const conversation = yield* Conversation
    if (limits.stopped(conversation.root)) return Reply.none
    const instructions = Option.getOrElse(yield* conversation.instructions, () => prompt ?? "")
    const system = `${instructions}\n\n${OUTPUT_FORMAT}`
    const vocabulary = yield* conversation.vocabulary
    const peers = new Set(vocabulary.peers.map((p) => p.toLowerCase()))
    if (!tracked.has(conversation.root)) {
      tracked.add(conversation.root)
      const root = conversation.root
      yield* conversation.onComplete(() => {
        tracked.delete(root)
        context.forget(root)
        reasoning.forget(root)
      })
    }
    const messages = conversationFor(
      name,
      yield* context.prepare(router, yield* conversation.history({ involving: name })),
      Option.getOrUndefined(yield* conversation.nudge),
      (n) => peers.has(n.toLowerCase())
    )
    for (let attempt = 0;; attempt++) {
      const over = reasoning.exceeded(conversation.root)
      if (over !== undefined) {
        yield* conversation.guardTripped("reasoning-budget", over)
        return Reply.respond(systemError("budget", `${over}: it makes no more model calls here.`, false))
      }
      const fitted = yield* context.fit(router, conversation.root, system, messages)
      const response = yield* router.complete({
        agent: name,
        root: conversation.root,
        thread: conversation.thread,
        system,
        messages: fitted.messages,
        model: options.model,
        maxOutputTokens: fitted.maxOutputTokens,
        stream: options.stream
      })
      reasoning.charge(conversation.root, response)
      for (const warning of response.warnings) yield* conversation.notify(warning)
      yield* limits.charge(conversation, response.usage)
      // Cut at the output limit: not an answer, whatever it parses to. Nothing is sent; the
      // model is told and asked again (the output retries), then the caller hears why.
      if (response.finishReason === "length") {
        if (attempt >= outputRetries) {
          return Reply.respond(systemError("failed", `${name}'s answer was cut at the output limit every time: nothing was sent`))
        }
        messages.push({ role: "assistant", content: response.text }, { role: "user", content: CUT_AT_LIMIT })
        continue
      }
      const parsed = parseAgentOutput(conversation.xml, response.text, vocabulary)
      if (parsed.text !== undefined) {
        return yield* limits.apply(
          conversation,
          response.text,
          parsed.text === "" ? Reply.none : Reply.respond(new TextOutput({ text: parsed.text, status: "ok" }))
        )
      }
      if (parsed.problems.length === 0 || attempt >= outputRetries) {
        if (parsed.actions.length > 0) return yield* limits.apply(conversation, response.text, toReply(parsed.actions))
        return Reply.respond(systemError("invalid", `${name} could not produce a usable answer: ${parsed.problems.join("; ")}`))
      }
      // Tell the model what was wrong and ask again; what was fine is sent with the fix.
      messages.push({ role: "assistant", content: response.text })
      messages.push({
        role: "user",
        content: `Nothing was sent. Problems:\n- ${parsed.problems.join("\n- ")}\nAnswer again following "How to answer".`
      })
    }
  }).pipe(
    Effect.catchTag("ContextTooSmall", (e) =>
      Effect.succeed(Reply.respond(systemError("failed", `${name} cannot call its model: ${e.message}`, false)))),
    Effect.catchTag("BudgetExhausted", (e) =>
      Effect.flatMap(Conversation, (conversation) =>
        Effect.as(
          conversation.guardTripped("token-budget", e.message),
          Reply.respond(systemError("budget", `The token budget of this conversation is used up (${e.message}).`, false))
        )))
  )

  const handler = (_payload: unknown, _meta: HandlerMetadata) => invoke

  const onSystem = (payload: SystemPayload, meta: HandlerMetadata) =>
    Effect.gen(function*() {
      // Budget warnings and todo replies are history: the next real turn shows them to the model.
      if (!(payload instanceof SystemError)) return Reply.none
      const turns = (errorTurns.get(meta.root) ?? 0) + 1
      if (turns === 1) yield* Effect.flatMap(Conversation, (c) => c.onComplete(() => errorTurns.delete(meta.root)))
      errorTurns.set(meta.root, turns)
      if (turns > errorRetries) return Reply.none
      return yield* invoke
    })

  return { handler, onSystem }
}

/** The options of an LLM agent listener: a listener's, less its handler, plus the model's. */
export interface LlmAgentListenerOptions<A, Accepts extends ReadonlyArray<PayloadType<any>>>
  extends Omit<ListenerOptions<A, Accepts, never>, "handler" | "onSystem" | "agent">
{
  readonly prompt: string
  readonly model?: string | undefined
  readonly maxOutputTokens?: number | undefined
  readonly outputRetries?: number | undefined
  readonly errorRetries?: number | undefined
  /** When the agent's loop stops in a conversation (see AgentLimits). */
  readonly stopWhen?: AgentLimits["stopWhen"]
  /** Repeated answers: warn the agent, or stop it. */
  readonly loopDetection?: AgentLimits["loopDetection"]
  /** Peer name → the most calls to it per conversation. */
  readonly peerLimits?: AgentLimits["peerLimits"]
  readonly stream?: boolean | undefined
  readonly maxReasoningTokens?: number | undefined
  readonly context?: AgentContextOptions | undefined
  readonly protocol?: "xml" | "tools" | undefined
  readonly maxToolCalls?: number | undefined
}

/**
 * An agent whose handler is a model. Its handler is a real one, needing `LlmRouter |
 * Conversation`: the organism's context gives the router, and the pump provides the
 * Conversation to every job — so what the listener asks of the organism is the router.
 */
export const llmAgent = <A, const Accepts extends ReadonlyArray<PayloadType<any>> = []>(
  options: LlmAgentListenerOptions<A, Accepts>
): Listener<A | TypesOf<Accepts>, LlmRouter> => {
  const llm: LlmAgentOptions = {
    model: options.model,
    maxOutputTokens: options.maxOutputTokens,
    outputRetries: options.outputRetries,
    errorRetries: options.errorRetries,
    limits: options.stopWhen === undefined && options.loopDetection === undefined && options.peerLimits === undefined
      ? undefined
      : { stopWhen: options.stopWhen, loopDetection: options.loopDetection, peerLimits: options.peerLimits },
    ...(options.stream !== undefined ? { stream: options.stream } : {}),
    ...(options.maxReasoningTokens !== undefined ? { maxReasoningTokens: options.maxReasoningTokens } : {}),
    ...(options.context !== undefined ? { context: options.context } : {}),
    protocol: options.protocol,
    maxToolCalls: options.maxToolCalls
  }
  const { handler, onSystem } = llmAgentHandlers(options.name, options.prompt, llm)
  const listener = Listener.make<A, Accepts, LlmRouter | Conversation>({ ...options, agent: true, handler, onSystem })
  // The Conversation is the pump's to provide (Dispatcher.withConversation), never the organism's.
  return { ...(listener as Listener<A | TypesOf<Accepts>, LlmRouter>), llm }
}
