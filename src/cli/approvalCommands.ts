/**
 * Human approval at the console of `organism run`: `!approvals` lists what waits, `!approve
 * ID` and `!deny ID REASON` decide. An id may be shortened to any start that names one
 * pending approval (the console shows ids in full; typing 64 hex digits is no one's job).
 */
import { Effect } from "effect"
import type { Pump } from "../pipeline/Pump.js"
import type { PendingApproval } from "../services/Approvals.js"

export interface ConsoleAnswer {
  /** False: the line was a mistake (counted as bad input). */
  readonly ok: boolean
  readonly text: string
}

const describe = (p: PendingApproval) => `${p.id}  ${p.from} → ${p.to ?? "*"} (${p.listener}): ${p.payload}`

/** The console's answer to an approval command, or undefined when the line is not one. */
export const approvalCommand = (pump: Pump.Service, line: string, by: string): Effect.Effect<ConsoleAnswer> | undefined => {
  if (line === "!approvals") {
    return Effect.map(pump.approvals.pending, (pending) => ({
      ok: true,
      text: pending.length === 0 ? "nothing waits for approval" : `waiting for approval:\n  ${pending.map(describe).join("\n  ")}`
    }))
  }
  const command = /^!(approve|deny)\s+(\S+)(?:\s+(.*))?$/.exec(line)
  if (command === null) return undefined
  const [, verb, prefix, rest] = command as unknown as [string, "approve" | "deny", string, string | undefined]
  const reason = rest?.trim() ?? ""
  if (verb === "deny" && reason === "") return Effect.succeed({ ok: false, text: "!deny needs a reason: !deny ID REASON (the sender hears it)" })
  return Effect.gen(function*() {
    const matches = (yield* pump.approvals.pending).filter((p) => p.id.startsWith(prefix.toLowerCase()))
    if (matches.length === 0) return { ok: false, text: `no message waits for approval under ${prefix}` }
    if (matches.length > 1) return { ok: false, text: `${prefix} names ${matches.length} pending approvals: give more of the id` }
    const id = matches[0]!.id
    const decided = verb === "approve" ? pump.approvals.approve(id, { by }) : pump.approvals.deny(id, reason, { by })
    return yield* decided.pipe(
      Effect.map((p): ConsoleAnswer => ({ ok: true, text: `${verb === "approve" ? "approved" : "denied"} ${p.id.slice(0, 12)} (${p.from} → ${p.listener})` })),
      Effect.catchAll((e) => Effect.succeed({ ok: false, text: e.message }))
    )
  })
}
