import { Effect } from "effect"

/**
 * A counting semaphore whose release is a plain function call: permits are returned from
 * synchronous pump code when a message settles, where running an Effect would cost more
 * than the bookkeeping. Waiters are served first come, first served; an interrupted waiter
 * leaves the queue.
 */
export class Permits {
  private readonly waiters: Array<() => void> = []

  constructor(private available: number) {}

  readonly acquire: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.available > 0) {
      this.available--
      return resume(Effect.void)
    }
    const waiter = () => resume(Effect.void)
    this.waiters.push(waiter)
    return Effect.sync(() => {
      const i = this.waiters.indexOf(waiter)
      if (i !== -1) this.waiters.splice(i, 1)
      else this.release() // granted and interrupted in the same tick: give it back
    })
  })

  release(): void {
    const next = this.waiters.shift()
    if (next !== undefined) next()
    else this.available++
  }
}
