/**
 * Handler deadlines without a timer per invocation. `Effect.timeout` forks a racing fiber
 * and a timer for every call (≈20 µs here — more than the libxml2 work of a hop); the wheel
 * costs a list insertion to arm and an unlink to disarm, and one sweep per tick fires what
 * expired. Disarming unlinks at once, so nothing of a finished job stays reachable. Time
 * comes from Effect's Clock, so TestClock drives it in tests.
 */
export interface Timer {
  fire: (() => void) | undefined
  prev: Timer | undefined
  next: Timer | undefined
  bucket: number
}

export class TimeoutWheel {
  /** bucket index → head of a doubly linked list of timers */
  private readonly buckets = new Map<number, Timer>()
  private swept: number
  private armed = 0

  constructor(readonly resolutionMs: number, now: number) {
    this.swept = Math.floor(now / resolutionMs)
  }

  get size(): number {
    return this.armed
  }

  arm(deadline: number, fire: () => void): Timer {
    const bucket = Math.max(Math.ceil(deadline / this.resolutionMs), this.swept + 1)
    const head = this.buckets.get(bucket)
    const timer: Timer = { fire, prev: undefined, next: head, bucket }
    if (head !== undefined) head.prev = timer
    this.buckets.set(bucket, timer)
    this.armed++
    return timer
  }

  disarm(timer: Timer): void {
    if (timer.fire === undefined) return
    timer.fire = undefined
    this.armed--
    if (timer.prev !== undefined) timer.prev.next = timer.next
    else if (timer.next !== undefined) this.buckets.set(timer.bucket, timer.next)
    else this.buckets.delete(timer.bucket)
    if (timer.next !== undefined) timer.next.prev = timer.prev
    timer.prev = timer.next = undefined
  }

  /** Fires every armed timer whose deadline is at or before `now`. */
  sweep(now: number): void {
    const until = Math.floor(now / this.resolutionMs)
    if (this.armed === 0) {
      this.swept = Math.max(this.swept, until)
      return
    }
    const due: Array<number> = []
    if (until - this.swept > this.buckets.size) {
      // A long pause (or a TestClock jump): visit the buckets, not every tick in between.
      for (const key of this.buckets.keys()) if (key <= until) due.push(key)
    } else {
      for (let key = this.swept + 1; key <= until; key++) if (this.buckets.has(key)) due.push(key)
    }
    this.swept = Math.max(this.swept, until)
    for (const key of due) {
      let t = this.buckets.get(key)
      this.buckets.delete(key)
      while (t !== undefined) {
        const next = t.next
        const fire = t.fire
        if (fire !== undefined) {
          t.fire = undefined
          t.prev = t.next = undefined
          this.armed--
          fire()
        }
        t = next
      }
    }
  }
}
