/**
 * The wall clock of a conversation (the `max-thread-duration` guard) interrupts: when a
 * conversation has run for its limit, its suspended handlers and model calls are interrupted
 * at once — not only its later deliveries stopped — and it ends with the guard as its reason.
 *
 * A conversation gets its timer when one of its handlers first suspends (a conversation whose
 * handlers all finish at once has nothing to interrupt: the delivery guard stops it), from
 * the timer wheel, so the Effect clock drives it (TestClock in tests). The timer goes when
 * the conversation completes.
 */
import { Duration } from "effect"
import { GuardTripped, makeEvent } from "../../domain/PumpEvent.js"
import type { RootThread } from "../../services/ThreadRegistry.js"
import type { Timer, TimeoutWheel } from "../internal/TimeoutWheel.js"
import type { PumpCore } from "./Core.js"

export const WALL_CLOCK_GUARD = "max-thread-duration"

export const makeWallClock = (
  core: PumpCore,
  wheel: TimeoutWheel,
  /** Ends every suspended job of the conversation, each caller hearing `detail`. */
  interrupt: (root: RootThread, detail: string) => void
) => {
  const timers = new Map<RootThread, Timer>()
  // Conversations past their limit, with what a job that would start now is told.
  const over = new WeakMap<RootThread, string>()

  core.registry.unsafeOnComplete((root) => {
    const timer = timers.get(root)
    if (timer === undefined) return
    timers.delete(root)
    wheel.disarm(timer)
  })

  const expire = (root: RootThread, limit: Duration.Duration) => {
    timers.delete(root)
    if (root.completed || core.halting !== undefined || core.endings.cancelled(root)) return
    const format = Duration.format(limit)
    const told = `the conversation's wall-clock limit (${format}) was reached`
    const detail = `the conversation ran for ${format}: its running handlers and model calls were interrupted`
    over.set(root, told)
    core.noteProblem(root, `guard ${WALL_CLOCK_GUARD}: ${detail}`)
    core.endings.note(root, "guard", `${WALL_CLOCK_GUARD}: ${detail}`)
    if (core.observed()) {
      core.publish(
        makeEvent(GuardTripped, { thread: root.id, root: root.id, time: core.now(), guard: WALL_CLOCK_GUARD, listener: null, detail })
      )
    }
    interrupt(root, told)
  }

  return {
    /** A handler of `root` suspended: its conversation's timer runs from now on. */
    arm: (root: RootThread) => {
      if (timers.has(root) || root.completed || over.has(root)) return
      const limit = core.version.settings.guards.maxThreadDuration
      const ms = Duration.toMillis(limit)
      if (Number.isFinite(ms)) timers.set(root, wheel.arm(root.createdAt + ms, () => expire(root, limit)))
    },
    /** Why a job of `root` may not start: its wall clock has run out. */
    expired: (root: RootThread): string | undefined => over.get(root)
  }
}
