/**
 * The listeners the platform supplies: the orchestration primitives (sequence, buffer, todos)
 * and the handlers of LLM agents. Both need a little more than a handler's usual powers —
 * branch-end notifications, replying outside an invocation, the conversation's history — and
 * get it here, from the running pump.
 */
import { Either } from "effect"
import type { Listener } from "../../domain/Listener.js"
import { GuardTripped, type PumpEvent, type ThreadEndReason } from "../../domain/PumpEvent.js"
import type { PayloadValue, Reply } from "../../domain/Reply.js"
import type { ContextBuffer } from "../../services/ContextBuffer.js"
import type { RootThread, ThreadNode, ThreadRegistry } from "../../services/ThreadRegistry.js"
import type { TodoRegistry } from "../../services/TodoRegistry.js"
import type { XmlEngine } from "../../services/XmlEngine.js"
import { type AgentSupport, llmAgentHandlers } from "../agents/LlmAgent.js"
import type { PrimitiveContext } from "../primitives/PrimitiveContext.js"
import { primitiveListeners, withPrimitives } from "../primitives/withPrimitives.js"
import type { ListenerEntry } from "../Router.js"
import { type Encoded, payloadXmlOf, type PumpCore } from "./Core.js"
import { encodePayload } from "./Outbox.js"
import type { Version } from "./Version.js"

/** What the built-ins need of the pump; the last three reach the running pump. */
export interface BuiltInDeps {
  readonly registry: ThreadRegistry.Service
  readonly engine: XmlEngine.Service
  readonly context: ContextBuffer.Service
  readonly todos: TodoRegistry.Service
  readonly now: () => number
  readonly observed: () => boolean
  readonly publish: (event: PumpEvent) => void
  readonly noteProblem: PumpCore["noteProblem"]
  readonly noteEnding: (root: RootThread | undefined, reason: ThreadEndReason, detail: string) => void
  readonly onRootComplete: PumpCore["onRootComplete"]
  readonly version: () => Version
  readonly emitSystem: (to: string, node: ThreadNode, payload: Encoded) => void
  readonly replyAs: (entry: ListenerEntry, node: ThreadNode, reply: Reply) => void
}

export const makeBuiltIns = (core: BuiltInDeps) => {
  const { registry } = core

  const primitives: PrimitiveContext = {
    onBranchEnd: (thread, hook) => {
      const node = registry.unsafeLookup(thread)
      if (node !== undefined) registry.unsafeOnBranchEnd(node, hook)
    },
    reply: (listener, thread, reply) => {
      const node = registry.unsafeLookup(thread)
      const entry = core.version().routes.listenerNamed(listener)
      if (node !== undefined && entry !== undefined) core.replyAs(entry, node, reply)
    },
    xmlOf: (payload) => {
      const encoded = encodePayload(payload as PayloadValue, core.version().settings.wire)
      return Either.isRight(encoded) ? payloadXmlOf(encoded.right.tag, encoded.right.inner) : String(payload)
    },
    onRootComplete: core.onRootComplete,
    rootOf: (thread) => registry.unsafeLookup(thread)?.root.id,
    callerThread: (thread) => registry.unsafeLookup(thread)?.parent?.id
  }
  const builtIn = primitiveListeners(primitives, core.todos)

  const support: AgentSupport = {
    engine: core.engine,
    context: core.context,
    prompts: () => core.version().prompts,
    vocabulary: (agent) => core.version().vocabulary(agent),
    notify: (agent, thread, payload) => {
      const node = registry.unsafeLookup(thread)
      const encoded = encodePayload(payload, core.version().settings.wire)
      if (node !== undefined && Either.isRight(encoded)) core.emitSystem(agent, node, encoded.right)
    },
    guard: (agent, thread, guard, detail) => {
      const node = registry.unsafeLookup(thread)
      core.noteProblem(node?.root, `guard ${guard}: ${detail}`)
      core.noteEnding(node?.root, guard === "token-budget" ? "budget" : "guard", `${guard}: ${detail}`)
      if (core.observed()) {
        core.publish(new GuardTripped({ thread, root: node?.root.id ?? null, time: core.now(), guard, listener: agent, detail }, true))
      }
    },
    onRootComplete: core.onRootComplete
  }

  /** An organism version's listeners as the pump runs them: built-ins added, LLM agents bound. */
  const prepare = (listeners: ReadonlyArray<Listener>): ReadonlyArray<Listener> =>
    withPrimitives(listeners, builtIn).map((l) => {
      if (l.llm === undefined) return l
      const { handler, onSystem } = llmAgentHandlers(l, l.llm, support)
      return { ...l, handler, onSystem }
    })

  return { prepare }
}
