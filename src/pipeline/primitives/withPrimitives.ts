import type { Listener } from "../../domain/Listener.js"
import { bufferListeners } from "./Buffer.js"
import { sequenceListener } from "./Sequence.js"
import { TODO, TODO_COMPLETE, todoListeners } from "./Todo.js"

/**
 * The built-in listeners, built once per pump (they keep run state). They learn about their
 * jobs from the Conversation the pump provides.
 */
export const primitiveListeners = (): ReadonlyArray<Listener> => [
  sequenceListener(),
  ...bufferListeners(),
  ...todoListeners()
]

/** Listeners every agent may forward to without listing them: its todos. */
export const agentBuiltInPeers: ReadonlyArray<string> = [TODO, TODO_COMPLETE]

/**
 * The organism's listeners plus the built-in ones it does not define itself; agents get the
 * todo listeners as peers (so the peer check lets their requests through and their prompts
 * explain them).
 */
export const withPrimitives = (
  listeners: ReadonlyArray<Listener>,
  builtIn: ReadonlyArray<Listener>
): ReadonlyArray<Listener> => {
  const taken = new Set(listeners.map((l) => l.name.toLowerCase()))
  const own = listeners.map((l) => {
    if (!l.agent) return l
    const peers = l.peers ?? []
    const missing = agentBuiltInPeers.filter((p) => !peers.some((q) => q.toLowerCase() === p))
    return missing.length === 0 ? l : { ...l, peers: [...peers, ...missing] }
  })
  return [...own, ...builtIn.filter((l) => !taken.has(l.name.toLowerCase()))]
}
