/**
 * An LLM agent on native tool calls (`protocol: tools`). Its peers' payload types are offered
 * as tools (AgentTools.ts); the model's answer is either tool calls or text.
 *
 * - **A tool call is an envelope.** Its arguments are written as the payload's XML and sent
 *   to the peer offering that type, like any forward: the pipeline judges it (the XSD decides)
 *   and a rejection comes back to the agent as a SystemError — which becomes that call's
 *   result, marked as an error.
 * - **Several calls in one answer are the parallel fan-out**, at most `maxToolCalls` (default
 *   8); calls past the limit are not sent and their results say so.
 * - **Results return in call order.** The agent keeps the answer's calls as a turn of the job's
 *   thread; each reply (or SystemError) arriving on that thread resolves one call; when every
 *   call is resolved, the next model call carries one tool result per call, in call order.
 *   A peer that ends its branch without replying is noticed when the thread's branch ends
 *   (nothing live below it): its call's result is an error saying so.
 * - **What goes wrong is told to the model**: a tool that was not offered, arguments that are
 *   not a JSON object or cannot be written as the payload, tool calls the client could not
 *   read at all (the router's `toolCallProblem`), text written alongside tool calls (it
 *   reaches nobody; the calls are sent) — each an error tool result or a note, never a crash.
 * - **Text is the answer to the caller**: plain text is a TextOutput; a payload wrapped in
 *   `<Respond>…</Respond>` answers with that payload.
 *
 * The conversation the model sees is kept per conversation (root) by the agent: the messages
 * it received, its tool calls and their results, its answers. The pipeline's own record (the
 * ContextBuffer, journal, trace) holds every call and reply as the envelopes they are.
 */
import { Effect, Option } from "effect"
import type { BudgetExhausted } from "../../domain/BudgetPayloads.js"
import type { LlmMessage, LlmToolCall, LlmToolResult } from "../../domain/Llm.js"
import type { HandlerMetadata, LlmAgentOptions, SystemPayload } from "../../domain/Listener.js"
import { RawPayload, Reply } from "../../domain/Reply.js"
import { SystemError, systemError, TextOutput } from "../../domain/SystemPayloads.js"
import { LlmRouter } from "../../services/LlmRouter.js"
import { Conversation } from "../Conversation.js"
import { type OutputVocabulary, parseAgentOutput } from "./AgentOutput.js"
import { type AgentTool, agentTools, argumentsToXml } from "./AgentTools.js"

export const DEFAULT_MAX_TOOL_CALLS = 8

export const toolsOutputFormat = (maxCalls: number) =>
  `# How to answer

- To send a payload to a peer, call the tool named after it, with the payload's fields as arguments (in JSON, named as in the tool's schema). The XML shown above is how payloads travel: you never write it for a call. Each call's result is that peer's reply, or the error that stopped the payload.
- Several tool calls in one answer are sent at the same time (at most ${maxCalls}); their results come back together, in the order of the calls.
- To answer whoever called you, write your answer as text, without tool calls. To answer with a payload, wrap it in <Respond>…</Respond>.
- Text written alongside tool calls reaches nobody.`

/** The SystemError the agent sends itself when a turn's branch ends with calls unanswered. */
const BRANCH_ENDED = "tool calls ended"

interface PendingCall {
  readonly call: LlmToolCall
  readonly target: AgentTool | undefined
  result: LlmToolResult | undefined
}

/** One answer's tool calls, waiting for their results on the thread that made them. */
interface Turn {
  /** The conversation: a turn still open when it ends (cancelled, stopped) is dropped with it. */
  readonly root: string
  readonly assistant: LlmMessage
  readonly calls: ReadonlyArray<PendingCall>
  /** Told to the model with the results (text alongside the calls, unexpected messages). */
  readonly notes: Array<string>
  done: boolean
}

const NO_PEERS: OutputVocabulary = { peers: [], peersByTag: new Map() }

const errorResult = (call: LlmToolCall, content: string): LlmToolResult => ({ id: call.id, name: call.name, content, isError: true })

/** A message appended to a conversation: consecutive user turns are one (providers alternate roles). */
const pushUser = (messages: Array<LlmMessage>, content: string) => {
  const last = messages[messages.length - 1]
  if (last !== undefined && last.role === "user") messages[messages.length - 1] = { role: "user", content: `${last.content}\n\n${content}` }
  else messages.push({ role: "user", content })
}

export const toolAgentHandlers = (name: string, prompt: string | undefined, options: LlmAgentOptions) => {
  const outputRetries = options.outputRetries ?? 2
  const errorRetries = options.errorRetries ?? 3
  const maxCalls = options.maxToolCalls ?? DEFAULT_MAX_TOOL_CALLS
  /** The model's view of each conversation (root), and the turns waiting for results (by thread). */
  const transcripts = new Map<string, Array<LlmMessage>>()
  const turns = new Map<string, Turn>()
  const errorTurns = new Map<string, number>()
  const toolsFor = new WeakMap<OutputVocabulary, ReadonlyMap<string, AgentTool>>()

  const transcriptOf = (conversation: Conversation.Service) =>
    Effect.gen(function*() {
      let transcript = transcripts.get(conversation.root)
      if (transcript === undefined) {
        transcripts.set(conversation.root, transcript = [])
        const root = conversation.root
        yield* conversation.onComplete(() => {
          transcripts.delete(root)
          errorTurns.delete(root)
          for (const [thread, turn] of turns) if (turn.root === root) turns.delete(thread)
        })
      }
      return transcript
    })

  /** Ask the model and act on its answer: send tool calls (a turn), or answer the caller. */
  const ask = (conversation: Conversation.Service, transcript: Array<LlmMessage>) =>
    Effect.gen(function*() {
      const router = yield* LlmRouter
      const instructions = Option.getOrElse(yield* conversation.instructions, () => prompt ?? "")
      const system = `${instructions}\n\n${toolsOutputFormat(maxCalls)}`
      const vocabulary = yield* conversation.vocabulary
      let tools = toolsFor.get(vocabulary)
      if (tools === undefined) toolsFor.set(vocabulary, tools = agentTools(vocabulary))
      const offered = [...tools.values()].map((t) => t.tool)
      const nudge = Option.getOrUndefined(yield* conversation.nudge)
      // What only this answer's attempts need (a complaint about an unusable answer) is not kept.
      const scratch: Array<LlmMessage> = []
      for (let attempt = 0;; attempt++) {
        const messages = [...transcript]
        if (nudge !== undefined) pushUser(messages, nudge)
        for (const m of scratch) m.role === "user" ? pushUser(messages, m.content) : messages.push(m)
        const response = yield* router.complete({
          agent: name,
          root: conversation.root,
          system,
          messages,
          tools: offered,
          model: options.model,
          maxOutputTokens: options.maxOutputTokens
        })
        for (const warning of response.warnings) yield* conversation.notify(warning)
        const retry = (said: LlmMessage | undefined, complaint: string) => {
          if (said !== undefined) scratch.push(said)
          scratch.push({ role: "user", content: complaint })
        }
        if (response.finishReason === "length") {
          if (attempt >= outputRetries) {
            return Reply.respond(systemError("failed", `${name}'s answer was cut at the output limit every time: nothing was sent`))
          }
          retry(
            response.text === "" ? undefined : { role: "assistant", content: response.text },
            "Your answer was cut at the output limit, so nothing was sent. Answer again, shorter."
          )
          continue
        }
        if (response.toolCallProblem !== undefined) {
          if (attempt >= outputRetries) {
            return Reply.respond(systemError("invalid", `${name}'s tool calls could not be read: ${response.toolCallProblem}`))
          }
          retry(
            undefined,
            `Your tool calls could not be read, so nothing was sent: ${response.toolCallProblem}\nCall only the tools you were given, with a JSON object of arguments.`
          )
          continue
        }
        const calls = response.toolCalls ?? []
        if (calls.length > 0) {
          const turn = startTurn(conversation.root, tools, response.text, calls)
          const sends = turn.calls.flatMap((p) => (p.result === undefined && p.target !== undefined ? [p] : []))
          if (sends.length === 0) {
            // Nothing could be sent: the results (all errors) go straight back to the model.
            if (attempt >= outputRetries) {
              return Reply.respond(systemError("invalid", `${name} could not make a usable tool call: ${turn.calls.map((p) => p.result?.content).join("; ")}`))
            }
            closeTurn(turn, transcript)
            continue
          }
          turns.set(conversation.thread, turn)
          // A peer may end its branch without replying: when nothing is live below this thread,
          // the calls still open are answered with an error, and the agent is woken.
          yield* conversation.onBranchEnd(() => {
            if (turn.done) return
            for (const p of turn.calls) {
              if (p.result === undefined) p.result = errorResult(p.call, `${p.target?.peer ?? "the peer"} ended without replying`)
            }
            Effect.runSync(conversation.notify(systemError("failed", BRANCH_ENDED)))
          })
          return Reply.all(...sends.map((p) => Reply.forward(p.target!.peer, payloadOf(p))))
        }
        // Text: the answer to the caller.
        const parsed = parseAgentOutput(conversation.xml, response.text, NO_PEERS)
        if (parsed.text !== undefined) {
          transcript.push({ role: "assistant", content: response.text })
          return parsed.text === "" ? Reply.none : Reply.respond(new TextOutput({ text: parsed.text, status: "ok" }))
        }
        const responds = parsed.actions.flatMap((a) => (a._tag === "Respond" ? [Reply.respond(a.payload)] : []))
        if (parsed.problems.length === 0 || attempt >= outputRetries) {
          if (responds.length > 0) {
            transcript.push({ role: "assistant", content: response.text })
            return Reply.all(...responds)
          }
          return Reply.respond(systemError("invalid", `${name} could not produce a usable answer: ${parsed.problems.join("; ")}`))
        }
        retry(
          { role: "assistant", content: response.text },
          `Nothing was sent. Problems:\n- ${parsed.problems.join("\n- ")}\nTo send to a peer, call its tool; to answer your caller, write text or <Respond>…</Respond>.`
        )
      }
    })

  /** The payload a call sends (its arguments were written as XML when the turn started). */
  const written = new WeakMap<PendingCall, RawPayload>()
  const payloadOf = (p: PendingCall) => written.get(p)!

  /** The answer's calls: each either to be sent, or already answered with an error. */
  const startTurn = (root: string, tools: ReadonlyMap<string, AgentTool>, text: string, calls: ReadonlyArray<LlmToolCall>): Turn => {
    const pending = calls.map((call, i): PendingCall => {
      const target = tools.get(call.name)
      if (i >= maxCalls) {
        return { call, target, result: errorResult(call, `not sent: at most ${maxCalls} tool calls per answer; call it again after these results`) }
      }
      if (target === undefined) {
        return { call, target, result: errorResult(call, `there is no tool named ${call.name}; the tools are ${[...tools.keys()].join(", ") || "none"}`) }
      }
      const tag = target.type.payloadTag
      const xml = argumentsToXml(target.type, call.arguments)
      if (xml._tag === "Left") return { call, target, result: errorResult(call, `not sent: the arguments cannot be written as <${tag}>: ${xml.left}`) }
      const p: PendingCall = { call, target, result: undefined }
      written.set(p, new RawPayload({ tag, inner: xml.right }))
      return p
    })
    const notes = text.trim() === ""
      ? []
      : [`The text you wrote alongside your tool calls reached nobody (only the calls were sent): "${text.trim().slice(0, 200)}"`]
    return { root, assistant: { role: "assistant", content: text, toolCalls: calls }, calls: pending, notes, done: false }
  }

  /**
   * Every call answered: the calls and their results, in call order, join the conversation.
   * Notes ride on the last result, so that the request still ends with the tool results (a
   * user message after them would be a turn of its own on OpenAI's wires).
   */
  const closeTurn = (turn: Turn, transcript: Array<LlmMessage>) => {
    turn.done = true
    const results = turn.calls.map((p) => p.result!)
    if (turn.notes.length > 0) {
      const last = results[results.length - 1]!
      results[results.length - 1] = { ...last, content: `${last.content}\n\n(${turn.notes.join(")\n\n(")})` }
    }
    transcript.push(turn.assistant, { role: "tool", content: results.map((r) => r.content).join("\n"), toolResults: results })
  }

  const resumeIfComplete = (conversation: Conversation.Service, turn: Turn) =>
    Effect.gen(function*() {
      if (turn.calls.some((p) => p.result === undefined)) return Reply.none
      turns.delete(conversation.thread)
      const transcript = yield* transcriptOf(conversation)
      closeTurn(turn, transcript)
      return yield* ask(conversation, transcript)
    })

  /** An exhausted budget ends the turn, as for an XML agent: a guard event, and the caller hears why. */
  const budgetUsedUp = (e: BudgetExhausted) =>
    Effect.flatMap(Conversation, (conversation) =>
      Effect.as(
        conversation.guardTripped("token-budget", e.message),
        Reply.respond(systemError("budget", `The token budget of this conversation is used up (${e.message}).`, false))
      ))

  /**
   * The open call a reply answers. The reply comes from the hop its call travelled on: the
   * conversation's record of that hop is the call as sent (peer and payload), which picks the
   * call exactly — several calls to one peer are told apart whatever order they finish in.
   * Without that record (history trimmed), the first open call to the replying peer.
   */
  const answeredCall = (conversation: Conversation.Service, turn: Turn, from: string) =>
    Effect.gen(function*() {
      const open = turn.calls.filter((p) => p.result === undefined && p.target?.peer.toLowerCase() === from.toLowerCase())
      if (open.length <= 1 || Option.isNone(conversation.senderThread)) return open[0]
      const [sent] = yield* conversation.history({ thread: conversation.senderThread.value, from: name })
      if (sent === undefined) return open[0]
      return open.find((p) => payloadOf(p).xml === sent.xml) ??
        open.find((p) => p.target!.type.payloadTag === sent.payloadType) ??
        open[0]
    })

  const handler = (payload: unknown, meta: HandlerMetadata) =>
    Effect.gen(function*() {
      const conversation = yield* Conversation
      const xml = conversation.xmlOf(payload)
      const turn = turns.get(conversation.thread)
      if (turn !== undefined && !turn.done) {
        const call = (yield* answeredCall(conversation, turn, meta.from))
        if (call !== undefined) call.result = { id: call.call.id, name: call.call.name, content: xml, isError: false }
        else turn.notes.push(`From ${meta.from}:\n${xml}`)
        return yield* resumeIfComplete(conversation, turn)
      }
      const transcript = yield* transcriptOf(conversation)
      pushUser(transcript, `From ${meta.from}:\n${xml}`)
      return yield* ask(conversation, transcript)
    }).pipe(Effect.catchTag("BudgetExhausted", budgetUsedUp))

  const onSystem = (payload: SystemPayload, meta: HandlerMetadata) =>
    Effect.gen(function*() {
      if (!(payload instanceof SystemError)) return Reply.none
      const conversation = yield* Conversation
      const turn = turns.get(conversation.thread)
      if (turn !== undefined && !turn.done) {
        // Which call it stops: the one whose payload it names (a validation error quotes the
        // expected element), else the first still open — calls are judged in the order sent.
        const open = turn.calls.filter((p) => p.result === undefined)
        const named = open.find((p) => p.target !== undefined && payload.message.includes(`<${p.target.type.payloadTag}>`))
        const call = named ?? open[0]
        if (call !== undefined) call.result = errorResult(call.call, payload.message)
        return yield* resumeIfComplete(conversation, turn)
      }
      if (payload.message === BRANCH_ENDED) return Reply.none
      const turnsSoFar = (errorTurns.get(meta.root) ?? 0) + 1
      errorTurns.set(meta.root, turnsSoFar)
      if (turnsSoFar > errorRetries) return Reply.none
      const transcript = yield* transcriptOf(conversation)
      pushUser(transcript, `From ${meta.from}:\n${conversation.xmlOf(payload)}`)
      return yield* ask(conversation, transcript)
    }).pipe(Effect.catchTag("BudgetExhausted", budgetUsedUp))

  return { handler, onSystem }
}
