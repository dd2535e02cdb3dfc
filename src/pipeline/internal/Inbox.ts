import { Effect } from "effect"

/**
 * The pump's inbox: a FIFO of hops with one reader, the intake fiber.
 *
 * Why not an Effect `Queue`: producers offer from synchronous pump code (a reply written
 * while a chunk is delivered), and the reader finds the next chunk waiting almost every
 * time — with one conversation, every chunk is the one reply the last chunk's handler wrote.
 * Taking it through `Queue.takeBetween` ran ≈ 10 Effect operations and two Chunk copies per
 * chunk; here taking what is there is a plain call (`poll`), and only an empty inbox costs
 * an Effect (`take` suspends until a hop arrives).
 *
 * Shut down, it takes nothing more: offers are refused (false) and a waiting or later `take`
 * is interrupted, as with a shut-down `Queue`.
 */
export class Inbox<A> {
  private items: Array<A> = []
  private head = 0
  private waiter: (() => void) | undefined = undefined
  private closed = false

  /** Hops waiting. */
  get size(): number {
    return this.items.length - this.head
  }

  get isShutdown(): boolean {
    return this.closed
  }

  /** Adds an item; false once shut down. Wakes the reader if it waits. */
  unsafeOffer(item: A): boolean {
    if (this.closed) return false
    this.items.push(item)
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter()
    }
    return true
  }

  /** Up to `max` items, oldest first, taken now; undefined when there is none. */
  poll(max: number): ReadonlyArray<A> | undefined {
    const available = this.items.length - this.head
    if (available === 0) return undefined
    if (this.head === 0 && available <= max) {
      // The common case: everything waiting leaves at once, and the array goes with it.
      const all = this.items
      this.items = []
      return all
    }
    const n = Math.min(max, available)
    const taken = this.items.slice(this.head, this.head + n)
    this.head += n
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      // Compacts now and then, so taken items are not kept alive by the array.
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return taken
  }

  /**
   * Between 1 and `max` items: at once when some are waiting, else once one arrives. One
   * reader at a time; interrupted when the inbox is (or gets) shut down.
   */
  take(max: number): Effect.Effect<ReadonlyArray<A>> {
    return Effect.suspend(() => {
      const now = this.poll(max)
      if (now !== undefined) return Effect.succeed(now)
      if (this.closed) return Effect.interrupt
      return Effect.async<ReadonlyArray<A>>((resume) => {
        const waiter = () => resume(this.closed ? Effect.interrupt : Effect.suspend(() => this.take(max)))
        this.waiter = waiter
        return Effect.sync(() => {
          if (this.waiter === waiter) this.waiter = undefined
        })
      })
    })
  }

  /** Refuses further offers, drops what is waiting and interrupts a waiting reader. */
  readonly shutdown: Effect.Effect<void> = Effect.sync(() => {
    this.closed = true
    this.items = []
    this.head = 0
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter()
    }
  })
}
