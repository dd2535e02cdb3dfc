/**
 * Concurrency gates for the dispatcher: a counter and a FIFO of parked jobs. Synchronous on
 * purpose — a job that cannot enter waits in the gate's queue instead of occupying one of
 * the global handler slots, so a busy exclusive listener never stalls the others.
 */
export class Gate {
  active = 0
  private readonly parked: Array<() => void> = []
  private head = 0

  /** Mutable: a hot reload may change a listener's limit while jobs are in the gate. */
  constructor(readonly name: string, public capacity: number) {}

  tryEnter(): boolean {
    if (this.active >= this.capacity) return false
    this.active++
    return true
  }

  /**
   * A new capacity (a reload): jobs parked here are woken for every place the new capacity
   * frees at once, instead of one at a time as others leave.
   */
  resize(capacity: number): void {
    this.capacity = capacity
    for (let free = capacity - this.active; free > 0 && this.head < this.parked.length; free--) this.wakeNext()
  }

  /** Waits for a free place: `wake` runs when one might be free (it must try again). */
  park(wake: () => void): void {
    this.parked.push(wake)
  }

  leave(): void {
    this.active--
    if (this.head < this.parked.length) this.wakeNext()
  }

  private wakeNext(): void {
    const wake = this.parked[this.head]!
    this.parked[this.head++] = undefined as never
    if (this.head > 1024 && this.head * 2 > this.parked.length) {
      this.parked.splice(0, this.head)
      this.head = 0
    }
    wake()
  }

  get waiting(): number {
    return this.parked.length - this.head
  }
}

/** Enters every gate or none; parks on the first full one and retries when woken. */
export const enterAll = (gates: ReadonlyArray<Gate>, onEntered: () => void): void => {
  const attempt = (): void => {
    for (let i = 0; i < gates.length; i++) {
      const g = gates[i]!
      if (!g.tryEnter()) {
        for (let j = 0; j < i; j++) gates[j]!.leave()
        g.park(attempt)
        return
      }
    }
    onEntered()
  }
  attempt()
}

export const leaveAll = (gates: ReadonlyArray<Gate>): void => {
  for (const g of gates) g.leave()
}
