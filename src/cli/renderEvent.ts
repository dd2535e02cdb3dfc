import type { PumpEvent } from "../domain/PumpEvent.js"

const short = (thread: string | null) => (thread === null ? "--------" : thread.slice(0, 8))

const compact = (xml: string, max = 160) => {
  const s = xml.replace(/ xmlns=""/, "").replace(/\s+/g, " ")
  return s.length > max ? `${s.slice(0, max)}…` : s
}

/**
 * One readable line per event for `organism run` (undefined: not shown). Deliveries,
 * rejections, guards, failures and thread lifecycle are shown; with `verbose`, also every
 * envelope written and agent state changes.
 */
export const renderEvent = (e: PumpEvent, injector: string, verbose: boolean): string | undefined => {
  // Lines are labelled by conversation (root thread), so one exchange reads as one group.
  const t = short("root" in e ? e.root ?? e.thread : e.thread)
  switch (e._tag) {
    case "MessageReceived": {
      const arrow = e.to === injector ? "⇐" : "→"
      const notes = e.diagnostics.length > 0 ? `\n           ! ${e.diagnostics.join("\n           ! ")}` : ""
      return `${t} ${e.from} ${arrow} ${e.to}: ${compact(e.payload)}${notes}`
    }
    case "MessageSent":
      return verbose ? `${t} (sent) ${e.from} → ${e.to ?? "*"}: ${compact(e.payload)}` : undefined
    case "MessageRejected":
      return `${t} ✗ rejected at ${e.stage} (${e.kind}): ${e.reason}` +
        (e.from !== null ? ` [from ${e.from}${e.to !== null ? ` to ${e.to}` : ""}]` : "")
    case "GuardTripped":
      return `${t} ⛔ guard ${e.guard}${e.listener !== null ? ` at ${e.listener}` : ""}: ${e.detail}`
    case "HandlerFailed":
      return `${t} ⚠ ${e.listener} ${e.reason}: ${e.detail}`
    case "ThreadCreated":
      return verbose ? `${t} ○ thread started by ${e.injector}${e.to !== null ? ` for ${e.to}` : ""}` : undefined
    case "ThreadCompleted":
      return `${t} ✓ thread completed (${e.invocations} handler invocation${e.invocations === 1 ? "" : "s"})`
    case "AgentState":
      return verbose ? `${t} · ${e.listener} ${e.state}` : undefined
    case "HandlerCompleted":
      return verbose ? `${t} · ${e.listener} done in ${e.durationMs.toFixed(2)} ms${e.replies.length > 0 ? ` → ${e.replies.join(", ")}` : ""}` : undefined
    case "RawReceived":
      return verbose ? `${t} (raw) ${e.size} bytes received` : undefined
  }
}
