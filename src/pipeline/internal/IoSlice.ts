/**
 * Lets the event loop's I/O in between two of the pump's chunks, once per slice of real time.
 *
 * Why it exists: the pump and the handlers it forks run on Effect's scheduler, which drains
 * fibers in microtasks, and Node runs no I/O callback while microtasks remain. A message's
 * handler, its reply, the next chunk, the next handler… follow one another in microtasks, so a
 * conversation can run to its end before Node reads the next HTTP request or writes to a live
 * client. A server then admits one conversation at a time, and each runs alone, in chunks of
 * one message — the costliest way to run the pump (measured under `organism serve`: every
 * chunk held exactly one message; with a slice, chunks of ≈ 250 and overlapping
 * conversations). Yielding to a macrotask once a slice has passed lets whatever arrived
 * meanwhile in, so conversations overlap and chunks grow.
 *
 * Real time on purpose (`performance.now`, not the Effect `Clock`): the slice is about how
 * long this thread kept the event loop from I/O, which a `TestClock` does not change. Checking
 * costs one clock read per chunk; the yield itself (a `setImmediate`) happens at most once per
 * slice, so work that runs in big chunks or never waits on I/O pays nothing noticeable.
 */
import { Effect } from "effect"

/** One turn of the event loop: completes once the I/O callbacks waiting now have run. */
export const toEventLoop: Effect.Effect<void> = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * An Effect to run after each chunk: it completes at once while the current slice lasts,
 * and otherwise yields to the event loop first (the slice starts again after it).
 */
export const makeIoSlice = (sliceMs: number | undefined): Effect.Effect<void> => {
  if (sliceMs === undefined) return Effect.void
  let sliceStart = performance.now()
  const restart = Effect.sync(() => {
    sliceStart = performance.now()
  })
  const yieldThenRestart = Effect.zipRight(toEventLoop, restart)
  return Effect.suspend(() => (performance.now() - sliceStart < sliceMs ? Effect.void : yieldThenRestart))
}
