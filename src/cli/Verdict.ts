import type { IngressOutcome } from "../pipeline/Ingress.js"

/** What `organism inspect --json` prints: one object per envelope. */
export interface Verdict {
  readonly accepted: boolean
  readonly stage: string
  readonly kind: string | null
  readonly diagnostics: ReadonlyArray<string>
  readonly from: string | null
  readonly to: string | null
  readonly thread: string | null
  readonly payloadTag: string | null
  readonly canonical?: string | null
}

export const verdictOf = (outcome: IngressOutcome, withCanonical: boolean): Verdict => {
  const c14n = withCanonical ? { canonical: outcome.canonical ?? null } : {}
  if (outcome._tag === "Accepted") {
    return {
      accepted: true,
      stage: outcome.stage,
      kind: null,
      diagnostics: outcome.diagnostics.map(String),
      from: outcome.envelope.from,
      to: outcome.envelope.to ?? null,
      thread: outcome.thread.thread,
      payloadTag: outcome.envelope.payloadTag,
      ...c14n
    }
  }
  const { error, seen } = outcome
  return {
    accepted: false,
    stage: error.stage,
    kind: error._tag,
    diagnostics: [error.message, ...outcome.diagnostics.map(String)],
    from: seen.from ?? null,
    to: seen.to ?? null,
    thread: seen.thread ?? null,
    payloadTag: seen.payloadTag ?? null,
    ...c14n
  }
}

export const renderVerdict = (v: Verdict): string => {
  const lines = [v.accepted ? `accepted (through ${v.stage})` : `rejected at ${v.stage}: ${v.kind}`]
  const field = (name: string, value: string | null) => {
    if (value !== null) lines.push(`  ${name.padEnd(8)} ${value}`)
  }
  field("from", v.from)
  field("to", v.to)
  field("thread", v.thread)
  field("payload", v.payloadTag)
  if (v.diagnostics.length > 0) {
    lines.push("  diagnostics:")
    for (const d of v.diagnostics) lines.push(`    - ${d}`)
  }
  if (v.canonical !== undefined && v.canonical !== null) lines.push("  canonical form:", v.canonical)
  return lines.join("\n")
}
