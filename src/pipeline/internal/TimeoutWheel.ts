/**
 * Handler deadlines without a timer per invocation. `Effect.timeout` forks a racing fiber
 * and a timer for every call (≈20 µs here, as much as the libxml2 work of a hop); a wheel
 * costs an array push to arm and a flag to disarm, and one sweep per tick fires whatever
 * expired. Time comes from Effect's Clock, so TestClock drives it in tests.
 */
export interface Timer {
  active: boolean
  readonly fire: () => void
}

export class TimeoutWheel {
  private readonly buckets = new Map<number, Array<Timer>>()
  private swept: number

  constructor(readonly resolutionMs: number, now: number) {
    this.swept = Math.floor(now / resolutionMs)
  }

  arm(deadline: number, fire: () => void): Timer {
    const timer: Timer = { active: true, fire }
    const key = Math.max(Math.ceil(deadline / this.resolutionMs), this.swept + 1)
    const bucket = this.buckets.get(key)
    if (bucket === undefined) this.buckets.set(key, [timer])
    else bucket.push(timer)
    return timer
  }

  /** Fires every armed timer whose deadline is at or before `now`. */
  sweep(now: number): void {
    const until = Math.floor(now / this.resolutionMs)
    if (until - this.swept > this.buckets.size) {
      // A long pause (or a TestClock jump): visit the buckets, not every tick in between.
      for (const [key, bucket] of this.buckets) {
        if (key <= until) {
          this.buckets.delete(key)
          this.fire(bucket)
        }
      }
    } else {
      for (let key = this.swept + 1; key <= until; key++) {
        const bucket = this.buckets.get(key)
        if (bucket !== undefined) {
          this.buckets.delete(key)
          this.fire(bucket)
        }
      }
    }
    this.swept = Math.max(this.swept, until)
  }

  private fire(bucket: ReadonlyArray<Timer>) {
    for (const t of bucket) {
      if (t.active) {
        t.active = false
        t.fire()
      }
    }
  }
}
