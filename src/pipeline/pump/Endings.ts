/**
 * Why each conversation ends. Whatever stops or spoils a conversation on the way is noted
 * here — a guard, its budget, a handler timing out or failing, a cancellation — and the
 * gravest note is its reason when it completes (ThreadCompleted.reason); a conversation with
 * no note completed.
 */
import type { ThreadEndReason } from "../../domain/PumpEvent.js"
import type { RootThread } from "../../services/ThreadRegistry.js"

const gravity: Record<ThreadEndReason, number> = { completed: 0, failed: 1, timeout: 2, budget: 3, guard: 4, cancelled: 5 }

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
