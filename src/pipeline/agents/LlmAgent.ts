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
import type { BudgetWarning } from "../../domain/BudgetPayloads.js"
import type { ThreadId } from "../../domain/Ids.js"
import type { LlmMessage } from "../../domain/Llm.js"
import type { HandlerMetadata, Listener, LlmAgentOptions, SystemPayload } from "../../domain/Listener.js"
import { Reply } from "../../domain/Reply.js"
import { SystemError, systemError, TextOutput } from "../../domain/SystemPayloads.js"
import { type AgentAction, type OutputVocabulary, parseAgentOutput } from "./AgentOutput.js"
import type { ContextBuffer, ContextSlot } from "../../services/ContextBuffer.js"
import { LlmRouter } from "../../services/LlmRouter.js"
import type { PromptRegistry } from "../../services/PromptRegistry.js"
import type { XmlEngine } from "../../services/XmlEngine.js"

/** What the pump gives an LLM agent besides a handler's usual powers. */
export interface AgentSupport {
  readonly engine: XmlEngine.Service
  readonly context: ContextBuffer.Service
  readonly prompts: () => PromptRegistry.Service
  /** Payload tag (lowercase) → peers that accept it, for this agent. */
  readonly vocabulary: (agent: string) => OutputVocabulary
  /** Sends the pump's own message (a BudgetWarning) to `agent` on `thread`. */
  readonly notify: (agent: string, thread: ThreadId, payload: BudgetWarning) => void
  /** Records a guard trip (an exhausted budget) as an event. */
  readonly guard: (agent: string, thread: ThreadId, guard: string, detail: string) => void
  /** Runs `hook` when the conversation `root` completes (state cleanup). */
  readonly onRootComplete: (root: ThreadId, hook: () => void) => void
}

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

/** Handler and onSystem for an LLM agent listener. */
/** The turn that tells a model its answer was cut (finish reason `length`). */
export const CUT_AT_LIMIT = "Your answer was cut at the output limit, so nothing was sent. Answer again, shorter, following \"How to answer\"."

export const llmAgentHandlers = (listener: Listener, options: LlmAgentOptions, support: AgentSupport) => {
  const name = listener.name
  const outputRetries = options.outputRetries ?? 2
  const errorRetries = options.errorRetries ?? 3
  // SystemError-driven invocations per conversation, to give up after a few.
  const errorTurns = new Map<string, number>()

  const invoke = (meta: HandlerMetadata) =>
    Effect.gen(function*() {
      const router = yield* LlmRouter
      const prompt = yield* support.prompts().promptFor(name)
      const instructions = Option.isSome(prompt) ? prompt.value.system : listener.prompt ?? ""
      const system = `${instructions}\n\n${OUTPUT_FORMAT}`
      const vocabulary = support.vocabulary(name)
      const peers = new Set(vocabulary.peers.map((p) => p.toLowerCase()))
      const messages = conversationFor(
        name,
        yield* support.context.query(meta.root, { involving: name }),
        meta.nudge,
        (n) => peers.has(n.toLowerCase())
      )
      for (let attempt = 0;; attempt++) {
        const response = yield* router.complete({
          agent: name,
          root: meta.root,
          system,
          messages,
          model: options.model,
          maxOutputTokens: options.maxOutputTokens
        })
        for (const warning of response.warnings) support.notify(name, meta.thread, warning)
        // Cut at the output limit: not an answer, whatever it parses to. Nothing is sent; the
        // model is told and asked again (the output retries), then the caller hears why.
        if (response.finishReason === "length") {
          if (attempt >= outputRetries) return Reply.respond(systemError("failed", `${name}'s answer was cut at the output limit every time: nothing was sent`))
          messages.push({ role: "assistant", content: response.text }, { role: "user", content: CUT_AT_LIMIT })
          continue
        }
        const parsed = parseAgentOutput(support.engine, response.text, vocabulary)
        if (parsed.text !== undefined) {
          return parsed.text === "" ? Reply.none : Reply.respond(new TextOutput({ text: parsed.text, status: "ok" }))
        }
        if (parsed.problems.length === 0 || attempt >= outputRetries) {
          if (parsed.actions.length > 0) return toReply(parsed.actions)
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
      Effect.catchTag("BudgetExhausted", (e) =>
        Effect.sync(() => {
          support.guard(name, meta.thread, "token-budget", e.message)
          return Reply.respond(systemError("budget", `The token budget of this conversation is used up (${e.message}).`, false))
        }))
    )

  const handler = (_payload: unknown, meta: HandlerMetadata) => invoke(meta)

  const onSystem = (payload: SystemPayload, meta: HandlerMetadata) => {
    // Budget warnings and todo replies are history: the next real turn shows them to the model.
    if (!(payload instanceof SystemError)) return Effect.succeed(Reply.none)
    const turns = (errorTurns.get(meta.root) ?? 0) + 1
    if (turns === 1) support.onRootComplete(meta.root, () => errorTurns.delete(meta.root))
    errorTurns.set(meta.root, turns)
    if (turns > errorRetries) return Effect.succeed(Reply.none)
    return invoke(meta)
  }

  return { handler, onSystem }
}
