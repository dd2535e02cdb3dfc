/** Readable output of `organism trace` and `organism replay`. */
import type { Difference } from "../journal/Compare.js"
import type { ReplayResult } from "../journal/Replay.js"
import type { Trace, TraceStep } from "../journal/Trace.js"

const at = (ms: number) => `+${ms.toFixed(1)} ms`

const renderStep = (s: TraceStep): string => {
  // The first receiver is flush left; replies back at the injector (depth 0) too.
  const indent = "  ".repeat(Math.max(0, s.depth - 1))
  switch (s.kind) {
    case "delivery":
      return `${indent}${s.from} → ${s.to}  ${s.payloadType}  (${at(s.at)}` +
        `${s.handlerMs !== undefined ? `, handler ${s.handlerMs.toFixed(1)} ms` : ""})`
    case "rejected":
      return `${indent}✗ ${s.from ?? "?"} → ${s.to ?? "*"}  ${s.payloadType ?? "?"}  rejected at ${s.stage} (${s.error}): ` +
        `${s.reason}  (${at(s.at)})`
    case "guard":
      return `${indent}⛔ ${s.guard} guard${s.listener !== null ? ` at ${s.listener}` : ""}: ${s.detail}  (${at(s.at)})`
    case "handler-failed":
      return `${indent}⚠ ${s.listener} ${s.reason}: ${s.detail}  (${at(s.at)})`
    case "pending":
      return `${indent}… ${s.from ?? "?"} → ${s.to ?? "*"}  ${s.payloadType ?? "?"}  never handled  (${at(s.at)})`
  }
}

export const renderTrace = (t: Trace): string => {
  const lines = [
    `conversation ${t.root}${t.organism !== null ? ` of ${t.organism}` : ""}, started by ${t.injector ?? "?"} at ${t.startedAt}`,
    ...t.steps.map(renderStep),
    t.completed === null
      ? t.stopped !== null ? `⏹ stopped before it completed: ${t.stopped}` : `… not completed when the journal ends`
      : t.completed.reason === "completed"
      ? `✓ completed: ${t.completed.invocations} handler invocation${t.completed.invocations === 1 ? "" : "s"}  (${at(t.completed.at)})`
      : `✗ ended (${t.completed.reason}): ${t.completed.detail}; ${t.completed.invocations} handler invocation${
        t.completed.invocations === 1 ? "" : "s"
      }  (${at(t.completed.at)})`
  ]
  return lines.join("\n")
}

const clip = (s: string, max = 240) => (s.length > max ? `${s.slice(0, max)}…` : s)

const renderDifference = (d: Difference): Array<string> => {
  switch (d.change) {
    case "changed":
      return [`      changed   recorded: ${clip(d.recorded ?? "")}`, `                replayed: ${clip(d.replayed ?? "")}`]
    case "missing":
      return [`      missing   recorded: ${clip(d.recorded ?? "")}`]
    case "extra":
      return [`      extra     replayed: ${clip(d.replayed ?? "")}`]
  }
}

/** The summary and the first `limit` differences, grouped by conversation and thread. */
export const renderReplay = (r: ReplayResult, limit: number): string => {
  const c = r.comparison
  const count = (s: { conversations: number; messages: number }) =>
    `${s.conversations} conversation${s.conversations === 1 ? "" : "s"}, ${s.messages} message${s.messages === 1 ? "" : "s"}`
  const lines = [
    `replayed ${r.inputs} input${r.inputs === 1 ? "" : "s"} (${r.boot} sent by the organism itself while starting)`,
    `recorded: ${count(c.recorded)}; replayed: ${count(c.replayed)}`
  ]
  if (c.identical) {
    lines.push("identical: the same thread trees and payloads")
    return lines.join("\n")
  }
  const shown = c.differences.slice(0, limit)
  lines.push(
    `differs: ${c.differences.length} difference${c.differences.length === 1 ? "" : "s"}` +
      (shown.length < c.differences.length ? ` (the first ${shown.length} shown)` : "")
  )
  let conversation: string | undefined
  let place: string | null | undefined
  for (const d of shown) {
    if (d.conversation !== conversation) {
      conversation = d.conversation
      place = undefined
      const ids = [
        d.recordedRoot !== null ? `recorded ${d.recordedRoot.slice(0, 8)}` : undefined,
        d.replayedRoot !== null ? `replayed ${d.replayedRoot.slice(0, 8)}` : undefined
      ].filter((x) => x !== undefined)
      lines.push(`  ${d.conversation}${ids.length > 0 ? ` · ${ids.join(", ")}` : ""}`)
    }
    if (d.at !== place) {
      place = d.at
      lines.push(d.at === null ? "    the conversation:" : `    at ${d.at}:`)
    }
    lines.push(...renderDifference(d))
  }
  return lines.join("\n")
}
