/**
 * Human approval in a durable organism, with real runner processes and a real Postgres
 * (scripts/test-postgres.sh): a clerk asks `payments` (approval: required) and tells the
 * client what came of it. Two conversations wait for a person; both runners are stopped
 * (SIGTERM) and two new ones started; what waits survives. Then approve → delivered, the
 * conversation completes; deny → the clerk hears the reason (a SystemError) and tells the
 * client. An approval for a different envelope, an unknown id and an id already decided are
 * refused with a typed error and exit 1.
 */
import { describe, expect, it } from "@effect/vitest"
import { onTestFinished } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { expectUnreachable, freshDatabase, query, UNREACHABLE_URL } from "./support/postgres.js"
import { bin, exitOf, organism, output, readyLine, type Run, spawnForTest } from "./support/processes.js"

const gated = join(__dirname, "fixtures", "cli", "durable-approval.yaml")
const dir = mkdtempSync(join(tmpdir(), "organism-durable-approval-"))

interface Listed {
  readonly type: string
  readonly id: string
  readonly conversation: string
  readonly listener: string
  readonly from: string
  readonly to: string | null
  readonly payloadType: string
  readonly payload: string
  readonly envelope: string
  readonly requestedAt: number
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex")

/** Two runners of the gated organism on `url`; resolves once both take work. */
const twoRunners = (url: string) =>
  Effect.promise(async () => {
    const runners = [0, 1].map(() =>
      spawnForTest(process.execPath, [bin, "runner", gated, "--database", url, "--port", "0", "--json"], { stdio: ["ignore", "pipe", "pipe"] })
    )
    await Promise.all(runners.map((r) => readyLine(r, 60_000)))
    return runners
  })

const stop = (runners: ReadonlyArray<ReturnType<typeof spawnForTest>>) =>
  Effect.promise(async () => {
    for (const r of runners) r.kill("SIGTERM")
    return Promise.all(runners.map((r) => exitOf(r, 30_000)))
  })

/** A command's run, kept running in the background: its result when it exits. */
const background = (args: ReadonlyArray<string>) => {
  const child = spawnForTest(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (d) => (stdout += d))
  child.stderr!.on("data", (d) => (stderr += d))
  return () => Effect.promise(async (): Promise<Run> => ({ code: await exitOf(child, 90_000), stdout, stderr }))
}

const listed = (url: string) =>
  Effect.promise(async () => {
    const r = await organism(["approvals", "--database", url, "--json"])
    expect(r.code, output(r)).toBe(0)
    return r.stdout.trim() === "" ? [] : r.stdout.trim().split("\n").map((l) => JSON.parse(l) as Listed)
  })

/** Lists until `n` messages wait (the conversations reach their held message). */
const untilWaiting = (url: string, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 120; i++) {
      const pending = yield* listed(url)
      if (pending.length >= n) return pending
      yield* Effect.sleep("250 millis")
    }
    return yield* Effect.dieMessage(`fewer than ${n} messages waited for approval within 30 s`)
  })

const status = (url: string) =>
  Effect.promise(async () => {
    const r = await organism(["status", "--database", url, "--json"])
    expect(r.code, output(r)).toBe(0)
    return JSON.parse(r.stdout)
  })

describe("durable approvals", () => {
  it.live("what waits survives a restart of every runner; approve → delivered, deny → the sender hears why; bad ids are refused", () =>
    Effect.gen(function*() {
      const db = freshDatabase("approvals")
      onTestFinished(db.drop)
      const url = db.url

      const first = yield* twoRunners(url)
      const sent = yield* Effect.promise(() =>
        Promise.all([
          organism(["send", gated, "--database", url, "--send", "clerk=<Ping><N>21</N></Ping>", "--id", "pay-21", "--json"]),
          organism(["send", gated, "--database", url, "--send", "clerk=<Ping><N>5</N></Ping>", "--id", "pay-5", "--json"])
        ])
      )
      for (const s of sent) expect(s.code, output(s)).toBe(0)
      const [c21, c5] = sent.map((s) => JSON.parse(s.stdout).conversation as string)

      const waiting = yield* untilWaiting(url, 2)
      expect(waiting).toHaveLength(2)
      const byConversation = new Map(waiting.map((w) => [w.conversation, w]))
      const w21 = byConversation.get(c21!)!
      const w5 = byConversation.get(c5!)!
      expect(w21).toMatchObject({ type: "ApprovalPending", listener: "payments", from: "clerk", to: "payments", payloadType: "Ping2", payload: "<Ping2><N>21</N></Ping2>" })
      expect(w5.payload).toBe("<Ping2><N>5</N></Ping2>")
      // Bound to the exact envelope: the id is its SHA-256.
      for (const w of waiting) expect(w.id).toBe(sha256(w.envelope))
      const human = yield* Effect.promise(() => organism(["approvals", "--database", url]))
      expect(human.stdout).toContain(`${w21.id}  clerk → payments (payments, conversation ${c21}): <Ping2><N>21</N></Ping2>`)

      const before = yield* status(url)
      expect(before.conversations).toMatchObject({ running: 0, waitingForApproval: 2, completed: 0 })
      const statusText = yield* Effect.promise(() => organism(["status", "--database", url]))
      expect(statusText.stdout).toContain("0 running, 2 waiting for approval, 0 completed, 0 failed")

      // Every runner stops; what waits is in Postgres, not in them.
      const codes = yield* stop(first)
      for (const code of codes) expect(code).not.toBeNull()
      expect((yield* listed(url)).map((w) => w.id).sort()).toEqual([w21.id, w5.id].sort())

      const second = yield* twoRunners(url)
      expect(second.map((r) => r.pid)).not.toContain(first[0]!.pid)
      // Clients waiting for both ends (the same envelope ids: the same conversations).
      const end21 = background(["send", gated, "--database", url, "--send", "clerk=<Ping><N>21</N></Ping>", "--id", "pay-21", "--wait", "--json"])
      const end5 = background(["send", gated, "--database", url, "--send", "clerk=<Ping><N>5</N></Ping>", "--id", "pay-5", "--wait", "--json"])

      // An approval for a different envelope (the other message's) is refused.
      const other = join(dir, "other-envelope.xml")
      writeFileSync(other, w5.envelope)
      const mismatch = yield* Effect.promise(() =>
        organism(["approve", w21.id, "--database", url, "--envelope", other, "--json"])
      )
      expect(mismatch.code, output(mismatch)).toBe(1)
      expect(mismatch.stderr).toContain(`organism: ApprovalMismatch: the envelope you saw (SHA-256 ${w5.id}) is not the one waiting under id ${w21.id}`)
      expect(JSON.parse(mismatch.stdout)).toMatchObject({ type: "ApprovalRefused", error: "ApprovalMismatch", id: w21.id })

      // Approve (with the envelope shown, and a start of the id); deny with a reason.
      const shown = join(dir, "envelope.xml")
      writeFileSync(shown, w21.envelope)
      const [approved, denied] = yield* Effect.promise(() =>
        Promise.all([
          organism(["approve", w21.id.slice(0, 12), "--database", url, "--envelope", shown, "--by", "ada", "--json"]),
          organism(["deny", w5.id, "--reason", "not on a Sunday", "--database", url])
        ])
      )
      expect(approved.code, output(approved)).toBe(0)
      expect(JSON.parse(approved.stdout)).toMatchObject({ type: "ApprovalDecided", id: w21.id, decision: "approved", by: "ada", conversation: c21 })
      expect(denied.code, output(denied)).toBe(0)
      expect(denied.stdout).toContain(`denied ${w5.id.slice(0, 12)} (clerk → payments, conversation ${c5}): its sender hears the reason`)

      const r21 = yield* end21()
      expect(r21.code, output(r21)).toBe(0)
      const e21 = JSON.parse(r21.stdout)
      expect(e21).toMatchObject({ type: "ConversationEnded", id: "pay-21", conversation: c21, reason: "completed" })
      expect(e21.replies).toEqual([{ type: "TextOutput", xml: "<TextOutput><Text>paid 42</Text><Status>ok</Status></TextOutput>" }])

      const r5 = yield* end5()
      const e5 = JSON.parse(r5.stdout)
      expect(e5).toMatchObject({ type: "ConversationEnded", id: "pay-5", conversation: c5, detail: "denied by an approver: not on a Sunday" })
      // The clerk heard the reason as a SystemError and told the client.
      expect(e5.replies).toHaveLength(1)
      expect(e5.replies[0].xml).toContain("payments refused: Message was denied by an approver: not on a Sunday")
      expect(e5.replies[0].xml).not.toContain("paid")

      // Decided ids, unknown ids: refused, saying which.
      const [again, unknown, blank] = yield* Effect.promise(() =>
        Promise.all([
          organism(["approve", w21.id, "--database", url]),
          organism(["deny", "ffffffffffff", "--reason", "no", "--database", url, "--json"]),
          organism(["deny", w5.id, "--reason", "  ", "--database", url])
        ])
      )
      expect(again.code, output(again)).toBe(1)
      expect(again.stderr).toContain(`organism: ApprovalNotPending: ${w21.id} was already decided: approved by ada`)
      expect(unknown.code, output(unknown)).toBe(1)
      expect(unknown.stderr).toContain("organism: ApprovalNotPending: no message waits for approval under ffffffffffff")
      expect(JSON.parse(unknown.stdout)).toMatchObject({ type: "ApprovalRefused", error: "ApprovalNotPending", id: "ffffffffffff" })
      expect(blank.code, output(blank)).toBe(2)
      expect(blank.stderr).toContain("--reason must not be blank")

      expect(yield* listed(url)).toEqual([])
      const after = yield* status(url)
      expect(after.conversations).toMatchObject({ running: 0, waitingForApproval: 0, completed: 2, failed: 0 })
      const rows = query<{ id: string; state: string; decided_by: string; reason: string }>(
        url,
        "SELECT id, state, decided_by, reason FROM organism_approvals ORDER BY state"
      )
      expect(rows).toEqual([
        { id: w21.id, state: "approved", decided_by: "ada", reason: "" },
        { id: w5.id, state: "denied", decided_by: "cli", reason: "not on a Sunday" }
      ])
      yield* stop(second)
    }), { timeout: 240_000 })

  it.live("an unreachable database: approvals, approve and deny say so, naming the URL, and exit 1", () =>
    Effect.gen(function*() {
      const url = UNREACHABLE_URL
      const runs = yield* Effect.promise(() =>
        Promise.all([
          organism(["approvals", "--database", url]),
          organism(["approve", "abc", "--database", url]),
          organism(["deny", "abc", "--reason", "no", "--database", url, "--json"])
        ])
      )
      expectUnreachable(runs)
    }), { timeout: 60_000 })
})
