/**
 * The listeners the platform supplies: the orchestration primitives (sequence, buffer, todos)
 * and the handlers of LLM agents. Both need a little more than a handler's usual powers —
 * branch-end notifications, replying outside an invocation, the conversation's history — and
 * get it here, from the pump's core.
 */
import { Either } from "effect"
import type { Listener } from "../../domain/Listener.js"
import type { PayloadValue } from "../../domain/Reply.js"
import { GuardTripped } from "../../domain/PumpEvent.js"
import type { OutputVocabulary } from "../agents/AgentOutput.js"
import { type AgentSupport, llmAgentHandlers } from "../agents/LlmAgent.js"
import type { PrimitiveContext } from "../primitives/PrimitiveContext.js"
import { primitiveListeners, withPrimitives } from "../primitives/withPrimitives.js"
import { payloadXmlOf, type PumpCore } from "./Core.js"
import type { Outbox } from "./Outbox.js"

export const makeBuiltIns = (core: PumpCore, outbox: Outbox) => {
  const { registry } = core

  const primitives: PrimitiveContext = {
    onBranchEnd: (thread, hook) => {
      const node = registry.lookup(thread)
      if (node !== undefined) registry.onBranchEnd(node, hook)
    },
    reply: (listener, thread, reply) => {
      const node = registry.lookup(thread)
      const entry = core.router.listenerNamed(listener)
      if (node !== undefined && entry !== undefined) outbox.replyAs(entry, node, reply)
    },
    xmlOf: (payload) => {
      const encoded = outbox.encodePayload(payload as PayloadValue)
      return Either.isRight(encoded) ? payloadXmlOf(encoded.right.tag, encoded.right.inner) : String(payload)
    },
    onRootComplete: core.onRootComplete,
    rootOf: (thread) => registry.lookup(thread)?.root.id,
    callerThread: (thread) => registry.lookup(thread)?.parent?.id
  }
  const builtIn = primitiveListeners(primitives, core.todos)

  // What each agent can address (peer payload tags), per route table.
  let vocabularies = new Map<string, OutputVocabulary>()
  const vocabulary = (agent: string): OutputVocabulary => {
    const key = agent.toLowerCase()
    let v = vocabularies.get(key)
    if (v === undefined) {
      const peersByTag = new Map<string, Array<string>>()
      const peers: Array<string> = []
      for (const name of core.router.listenerNamed(agent)?.listener.peers ?? []) {
        const peer = core.router.listenerNamed(name)
        if (peer === undefined) continue
        peers.push(peer.listener.name)
        for (const tag of peer.types.keys()) peersByTag.set(tag, [...(peersByTag.get(tag) ?? []), peer.listener.name])
      }
      vocabularies.set(key, v = { peers, peersByTag })
    }
    return v
  }

  const support: AgentSupport = {
    engine: core.engine,
    context: core.context,
    prompts: () => core.prompts,
    vocabulary,
    notify: (agent, thread, payload) => {
      const node = registry.lookup(thread)
      const encoded = outbox.encodePayload(payload)
      if (node !== undefined && Either.isRight(encoded)) outbox.sendSystem(agent, node, encoded.right)
    },
    guard: (agent, thread, guard, detail) => {
      const node = registry.lookup(thread)
      core.noteProblem(node?.root, `guard ${guard}: ${detail}`)
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

  return {
    prepare,
    /** A new route table: vocabularies are recomputed on demand. */
    resetVocabularies: () => {
      vocabularies = new Map()
    }
  }
}
