/**
 * Why each conversation ends. Whatever stops or spoils a conversation on the way is noted
 * here — a guard, its budget, a handler timing out or failing, a cancellation — and the
 * gravest note is its reason when it completes (ThreadCompleted.reason); a conversation with
 * no note completed.
 */
import type { ThreadEndReason } from "../../domain/PumpEvent.js"
import type { RootThread } from "../../services/ThreadRegistry.js"

const gravity: Record<ThreadEndReason, number> = { completed: 0, stopped: 1, failed: 2, timeout: 3, budget: 4, guard: 5, cancelled: 6 }

/**
 * The ending a guard trip notes: an agent's own stop condition is a deliberate end
 * (`stopped`), one that could not be evaluated a failure, a token budget `budget`.
 */
export const endingOfGuard = (guard: string): ThreadEndReason =>
  guard === "token-budget" ? "budget" : guard === "stop-when" ? "stopped" : guard === "stop-when-failed" ? "failed" : "guard"

export interface Ending {
  readonly reason: ThreadEndReason
  readonly detail: string
}

const completed: Ending = { reason: "completed", detail: "" }

export const makeEndings = () => {
  const endings = new WeakMap<RootThread, Ending>()
  return {
    /** Notes what happened to a conversation; the first of the gravest notes is kept. */
    note: (root: RootThread | undefined, reason: ThreadEndReason, detail: string) => {
      if (root === undefined) return
      const known = endings.get(root)
      if (known === undefined || gravity[reason] > gravity[known.reason]) endings.set(root, { reason, detail })
    },
    of: (root: RootThread): Ending => endings.get(root) ?? completed,
    cancelled: (root: RootThread): boolean => endings.get(root)?.reason === "cancelled"
  }
}

export type Endings = ReturnType<typeof makeEndings>
