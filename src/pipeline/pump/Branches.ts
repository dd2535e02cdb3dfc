/**
 * No silent abandonment: when a branch an agent forwarded ends without anything coming back
 * to the agent, the agent hears it at once — a SystemError naming the peer and why — instead
 * of the conversation ending in silence.
 *
 * A branch is the subtree of the thread tree below a forward (ThreadRegistry). It *was
 * answered* when a message from its top node to its parent was delivered: the peer's reply,
 * or the pump's own SystemError about it (the peer failed or timed out, the forward itself
 * was refused). A watched branch is held live by the message that answers it until that
 * message settles (Lifecycle.emit), so "answered" is known before the branch can end, and an
 * answer that is itself refused on its way (the agent's step cap, a payload it does not
 * accept) counts as no answer.
 *
 * Why a branch ended is the last problem noted anywhere in it — a rejection, a guard, a
 * handler that failed — or, with none, that the peer answered nobody.
 */
import type { ThreadNode } from "../../services/ThreadRegistry.js"

export const makeBranches = () => {
  const answered = new WeakSet<ThreadNode>()
  const problems = new WeakMap<ThreadNode, string>()
  return {
    /** A problem on a node: the last one of its branch, and of every branch above it. */
    note: (node: ThreadNode | undefined, why: string) => {
      for (let n = node; n !== undefined; n = n.parent) problems.set(n, why)
    },
    answered: (node: ThreadNode) => void answered.add(node),
    wasAnswered: (node: ThreadNode) => answered.has(node),
    /** Why a branch ended without an answer, in words an agent can act on. */
    why: (node: ThreadNode): string => problems.get(node) ?? `${node.name} answered nobody`
  }
}

export type Branches = ReturnType<typeof makeBranches>
