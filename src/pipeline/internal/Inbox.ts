import { Effect } from "effect"

/**
 * The pump's inbox: an unbounded FIFO with one reader that takes everything waiting, up to
 * a batch size, at once. Offering is a plain call (the outbox offers from synchronous pump
 * code). An Effect `Queue` read as a `Stream` did the same with a Chunk, a reversed copy and
 * queue nodes per message — about an eighth of all the pump allocated per hop.
 */
export class Inbox<A> {
  private items: Array<A> = []
  private head = 0
  private wake: (() => void) | undefined

  constructor(private readonly batch: number) {}

  get size(): number {
    return this.items.length - this.head
  }

  offer(item: A): void {
    this.items.push(item)
    const wake = this.wake
    if (wake !== undefined) {
      this.wake = undefined
      wake()
    }
  }

  /** The next batch, oldest first; waits while the inbox is empty. */
  readonly take: Effect.Effect<ReadonlyArray<A>> = Effect.suspend(() =>
    this.size > 0
      ? Effect.succeed(this.next())
      : Effect.async<ReadonlyArray<A>>((resume) => {
        this.wake = () => resume(Effect.sync(() => this.next()))
        return Effect.sync(() => {
          this.wake = undefined
        })
      })
  )

  private next(): ReadonlyArray<A> {
    if (this.head === 0 && this.items.length <= this.batch) {
      // The common case: hand over the whole array and start a new one.
      const all = this.items
      this.items = []
      return all
    }
    const end = Math.min(this.items.length, this.head + this.batch)
    const out = this.items.slice(this.head, end)
    this.head = end
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      // Compact once most of the array has been taken.
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return out
  }
}
