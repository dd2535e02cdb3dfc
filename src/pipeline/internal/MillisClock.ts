import { Clock } from "effect"

/** The class of Effect's default Clock (the one a runtime has unless a test swaps it). */
const DefaultClock = (Clock.make() as object).constructor

/**
 * Milliseconds with a sub-millisecond fraction on `clock`, as the pump stamps its events and
 * measures its handlers: `unsafeCurrentTimeNanos() / 10⁶`.
 *
 * Why a shortcut: the default Clock reads `process.hrtime.bigint()` and adds a BigInt origin,
 * two BigInts allocated per read, and the pump reads the time several times a hop (more with
 * an event subscriber: every event has its time). On the default Clock the same figure is
 * `performance.now()` — the same monotonic clock as hrtime — plus a fixed offset taken from
 * the Clock once, a plain number. Any other Clock (`TestClock`) is read as it is.
 */
export const millisOf = (clock: Clock.Clock): (() => number) => {
  const exact = () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
  if (clock.constructor !== DefaultClock) return exact
  const offset = exact() - performance.now()
  return () => offset + performance.now()
}
