import type { PumpEvent } from "../domain/PumpEvent.js"

const unescape = (s: string) =>
  s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&#xD;/g, "\r").replace(/&amp;/g, "&")

const short = (thread: string | null) => (thread === null ? "--------" : thread.slice(0, 8))

const compact = (xml: string, max = 160) => {
  const s = xml.replace(/ xmlns=""/, "").replace(/\s+/g, " ")
  return s.length > max ? `${s.slice(0, max)}…` : s
}

const money = (usd: number) => (usd > 0 ? `, $${usd.toFixed(4)}` : "")

/**
 * One readable line per event for `organism run` (undefined: not shown). Deliveries,
 * rejections, guards, failures, model answers and thread lifecycle are shown; with
 * `verbose`, also every envelope written, agent state changes, each model request sent and
 * each failed attempt that was retried.
 */
export const renderEvent = (e: PumpEvent, injector: string, verbose: boolean): string | undefined => {
  // Lines are labelled by conversation (root thread), so one exchange reads as one group.
  const t = short("root" in e ? e.root ?? e.thread : e.thread)
  switch (e._tag) {
    case "MessageReceived": {
      const arrow = e.to === injector ? "⇐" : "→"
      // Text for a human, arriving at the console: show the text itself.
      if (e.to === injector && e.payloadType === "TextOutput") {
        const text = /<Text>([\s\S]*?)<\/Text>/.exec(e.payload)?.[1] ?? ""
        const status = /<Status>([^<]*)<\/Status>/.exec(e.payload)?.[1]
        return `${t} ${e.from} ⇐ ${status !== undefined && status !== "ok" ? `[${status}] ` : ""}${unescape(text)}`
      }
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
      return e.reason === "completed"
        ? `${t} ✓ thread completed (${e.invocations} handler invocation${e.invocations === 1 ? "" : "s"})`
        : `${t} ✗ thread ended: ${e.reason} — ${e.detail} (${e.invocations} handler invocation${e.invocations === 1 ? "" : "s"})`
    case "AgentState":
      return verbose ? `${t} · ${e.listener} ${e.state}` : undefined
    case "HandlerCompleted":
      return verbose ? `${t} · ${e.listener} done in ${e.durationMs.toFixed(2)} ms${e.replies.length > 0 ? ` → ${e.replies.join(", ")}` : ""}` : undefined
    case "ReloadEvent":
      return e.outcome === "applied"
        ? `↻ reloaded: ${[
          e.added.length > 0 ? `added ${e.added.join(", ")}` : "",
          e.removed.length > 0 ? `removed ${e.removed.join(", ")}` : "",
          e.details.length > 0 ? `updated ${e.details.join("; ")}` : ""
        ].filter((x) => x !== "").join("; ") || "no listener changed"}`
        : `↻ reload rejected, still running the last good version:\n  ${e.problems.join("\n  ")}`
    case "ApprovalRequested":
      // The console takes any start of an id that names one pending approval.
      return `${t} ⏸ ${e.from} → ${e.to ?? "*"} waits for approval (${e.listener}): ${compact(e.payload)}\n` +
        `           approve: !approve ${e.id.slice(0, 12)}   deny: !deny ${e.id.slice(0, 12)} REASON`
    case "ApprovalDecided":
      return e.decision === "approved"
        ? `${t} ▶ approved by ${e.by}: ${e.id.slice(0, 12)} (${e.listener})`
        : `${t} ✗ ${e.decision === "denied" ? `denied by ${e.by}` : "withdrawn"}: ${e.id.slice(0, 12)} (${e.listener}): ${e.reason}`
    case "RawReceived":
      return verbose ? `${t} (raw) ${e.size} bytes received` : undefined
    case "LlmCallStarted":
      return verbose ? `${t} ⋯ ${e.agent} asks ${e.model} on ${e.backend} (${e.call}, attempt ${e.attempt})` : undefined
    case "LlmCallCompleted":
      return `${t} ◆ ${e.agent} ← ${e.model} on ${e.backend}: ${Math.round(e.latencyMs)} ms, ` +
        `${e.inputTokens} in + ${e.outputTokens} out tokens` +
        (e.reasoningTokens !== undefined && e.reasoningTokens > 0 ? ` (${e.reasoningTokens} reasoning)` : "") +
        money(e.costUsd) +
        (e.attempt > 1 ? `, attempt ${e.attempt}` : "") +
        (e.truncated ? `, ✂ cut at the output limit (finish reason ${e.finishReason})` : e.finishReason === "stop" ? "" : `, finish reason ${e.finishReason}`) +
        (e.toolCalls !== undefined && e.toolCalls.length > 0 ? `: ${e.toolCalls.map((c) => c.name).join(", ")}` : "") +
        (e.toolCallProblem !== undefined ? `, ⚠ tool calls unreadable: ${e.toolCallProblem}` : "")
    case "LlmOutputDelta":
      // Line by line output has no place for pieces of text; the completed call is shown.
      return undefined
    case "LlmCallFailed":
      return e.final
        ? `${t} ⚠ ${e.agent}: model call ${e.call} failed (${e.reason}) after ${e.attempt} attempt${e.attempt === 1 ? "" : "s"}: ${e.error}`
        : verbose
        ? `${t} · ${e.agent}: attempt ${e.attempt} on ${e.backend} failed${e.status !== null ? ` (${e.status})` : ""}: ${e.error}`
        : undefined
  }
}
