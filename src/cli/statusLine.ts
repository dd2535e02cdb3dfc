/**
 * `organism run` on a terminal: one status line at the bottom of standard error while work
 * is under way — the handlers running (agents by name, with how long they have been at it)
 * and the model calls in flight or waiting — so a three-second model call is not silence.
 * It is erased before anything else is written to the terminal and drawn again on the next
 * tick, so event lines and logs print as usual above it. Never shown into a pipe or a file.
 */
import { Clock, Duration, Effect, Queue, Schedule } from "effect"
import type { PumpEvent } from "../domain/PumpEvent.js"
import type { Pump } from "../pipeline/Pump.js"
import type { Events } from "../services/Events.js"
import type { LlmRouter } from "../services/LlmRouter.js"

const ERASE = "\r\x1b[K"

export interface StatusInput {
  /** Handlers running now (the pump's counter). */
  readonly running: number
  /** Agents running now and since when (epoch ms). */
  readonly agents: ReadonlyArray<{ readonly name: string; readonly since: number }>
  readonly modelCalls: { readonly inFlight: number; readonly waiting: number }
  readonly now: number
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

/** The line, or undefined when nothing is under way. */
export const renderStatus = (s: StatusInput): string | undefined => {
  if (s.running === 0 && s.modelCalls.inFlight === 0 && s.modelCalls.waiting === 0) return undefined
  const parts: Array<string> = []
  if (s.running > 0) {
    const agents = [...s.agents]
      .sort((a, b) => a.since - b.since)
      .map((a) => `${a.name} ${((s.now - a.since) / 1000).toFixed(1)}s`)
    parts.push(`${plural(s.running, "handler")} running${agents.length > 0 ? ` (${agents.join(", ")})` : ""}`)
  }
  if (s.modelCalls.inFlight + s.modelCalls.waiting > 0) {
    parts.push(
      `${plural(s.modelCalls.inFlight, "model call")} in flight` +
        (s.modelCalls.waiting > 0 ? `, ${s.modelCalls.waiting} waiting` : "")
    )
  }
  return `⋯ ${parts.join(" · ")}`
}

/**
 * Runs the status line for the rest of the scope (`organism run` checks that standard error
 * is a terminal first). The streams' `write` is wrapped to erase the line before other output.
 */
export const statusLine = (pump: Pump.Service, models: LlmRouter.Service, events: Events.Service) =>
  Effect.gen(function*() {
    const err = process.stderr
    const writeErr = err.write.bind(err)
    let shown = false
    const erase = () => {
      if (shown) {
        shown = false
        writeErr(ERASE)
      }
    }
    const streams = [process.stdout, process.stderr]
    const originals = streams.map((s) => s.write)
    for (const s of streams) {
      const original = s.write.bind(s)
      s.write = ((...args: Parameters<typeof s.write>) => {
        erase()
        return original(...args)
      }) as typeof s.write
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        erase()
        streams.forEach((s, i) => (s.write = originals[i]!))
      })
    )

    // Which agents run, from their state events (keyed by thread: one agent may run in several).
    const agents = new Map<string, { readonly name: string; readonly since: number }>()
    const queue = yield* events.subscribe
    const note = (e: PumpEvent) => {
      if (e._tag !== "AgentState") return
      const key = `${e.thread}\u0000${e.listener}`
      if (e.state === "running") agents.set(key, { name: e.listener, since: e.time })
      else agents.delete(key)
    }
    const tick = Effect.gen(function*() {
      for (const e of yield* Queue.takeAll(queue)) note(e)
      const backends = models.backends()
      const line = renderStatus({
        running: pump.counters().running,
        agents: [...agents.values()],
        modelCalls: {
          inFlight: backends.reduce((n, b) => n + b.inFlight, 0),
          waiting: backends.reduce((n, b) => n + b.waiting, 0)
        },
        now: yield* Clock.currentTimeMillis
      })
      erase()
      if (line !== undefined) {
        // A pseudo-terminal without a size reports 0 columns.
        const width = Math.max(20, (err.columns !== undefined && err.columns > 0 ? err.columns : 80) - 1)
        writeErr(line.length > width ? `${line.slice(0, width - 1)}…` : line)
        shown = true
      }
    })
    yield* Effect.forkScoped(Effect.repeat(tick, Schedule.spaced(Duration.millis(200))))
  })
