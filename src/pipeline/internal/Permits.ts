import { Effect } from "effect"

/**
 * An external producer's hold on one of the pump's permits: the number of hops and jobs its
 * message still has in flight. The permit goes back when it drops to 0.
 */
export interface Permit {
  pending: number
}

/**
 * A counting semaphore whose release is a plain function call: permits are returned from
 * synchronous pump code when a message settles, where running an Effect would cost more
 * than the bookkeeping. Waiters are served first come, first served; an interrupted waiter
 * leaves the queue.
 */
export class Permits {
  private readonly waiters: Array<() => void> = []

  constructor(private capacity: number) {
    this.available = capacity
  }

  private available: number

  /** Takes a permit if one is free now; never waits. */
  tryAcquire(): boolean {
    if (this.available <= 0) return false
    this.available--
    return true
  }

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

  /**
   * A new number of permits (a reload changed the inbox capacity). Permits held now stay
   * held; with fewer permits, producers wait until enough are given back.
   */
  resize(capacity: number): void {
    this.available += capacity - this.capacity
    this.capacity = capacity
    while (this.available > 0 && this.waiters.length > 0) {
      this.available--
      this.waiters.shift()!()
    }
  }

  release(): void {
    // After a resize to fewer permits, `available` may be negative: waiters wait until the
    // permits held are back under the new capacity.
    this.available++
    while (this.available > 0 && this.waiters.length > 0) {
      this.available--
      this.waiters.shift()!()
    }
  }
}
