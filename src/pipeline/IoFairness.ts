/**
 * Whether the pump shares the event loop with I/O while it works (internal/IoSlice.ts says
 * how and why). Off by default: a pump embedded in a program that does its I/O around it
 * runs its conversations straight through. The hosts that serve network I/O while the pump
 * works — `organism serve` and `organism runner` — turn it on, so HTTP requests, live-event
 * writes and the cluster's traffic get their turn at least once per slice.
 *
 *     Pump.make(organism).pipe(Effect.provideService(IoFairness, { sliceMs: 1 }))
 */
import { Context } from "effect"

export class IoFairness extends Context.Reference<IoFairness>()("xml-organism/IoFairness", {
  defaultValue: (): { readonly sliceMs: number | undefined } => ({ sliceMs: undefined })
}) {
  /** What the server and the runner use: I/O gets its turn at least every millisecond. */
  static readonly serving: { readonly sliceMs: number | undefined } = { sliceMs: 1 }
}
