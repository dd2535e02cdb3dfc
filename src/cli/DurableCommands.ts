/**
 * Durable organisms on Postgres (DESIGN.md §11, README "Durable organisms"):
 *   organism runner FILE --database URL [--port P]   runs a runner
 *   organism send FILE --database URL --send 'listener=<Payload>…</Payload>' [--wait]
 *   organism status --database URL
 *   organism approvals --database URL                 what waits for a person
 *   organism approve ID --database URL                delivers it
 *   organism deny ID --reason R --database URL        rejects it; its sender hears R
 * Every one takes --json, logs to standard error, and names the database's URL (without its
 * password) when it cannot be reached.
 */
import { Args, Command, Options } from "@effect/cli"
import type { SqlClient } from "@effect/sql/SqlClient"
import { Console, Context, Effect, Either, Layer, Option } from "effect"
import { randomUUID } from "node:crypto"
import { readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { layerForOrganism } from "../config/layerForOrganism.js"
import { loadOrganism, parsePayloadXml } from "../config/loadOrganism.js"
import { escapeText } from "../domain/xml/escape.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { reportConfigError, reportConfigWarnings, reportLlmConfigError } from "./configErrors.js"
import { ExitWith, UsageError } from "./Exit.js"

const file = Args.text({ name: "organism.yaml" }).pipe(Args.withDescription("the organism"))
const database = Options.text("database").pipe(
  Options.withDescription("the Postgres URL (postgres://user@host:port/db), shared by every runner and client")
)
const json = Options.boolean("json").pipe(Options.withDescription("print JSON lines"))

/** Loaded lazily: the cluster's modules cost the other commands nothing. */
const cluster = () =>
  Effect.promise(async () => ({
    Database: await import("../cluster/Database.js"),
    Layers: await import("../cluster/ClusterLayers.js"),
    Workflow: await import("../cluster/ConversationWorkflow.js"),
    Reset: await import("../cluster/retryWhileReset.js"),
    Runner: await import("../cluster/DurableRunner.js"),
    Store: await import("../cluster/DurableStore.js"),
    Status: await import("../cluster/Status.js"),
    Shared: await import("../cluster/SharedLimitsSql.js"),
    Approvals: await import("../cluster/DurableApprovals.js")
  }))

type DatabaseError = { readonly _tag: "DatabaseUnreachable"; readonly url: string; readonly message: string } | {
  readonly _tag: "SchemaVersionMismatch"
  readonly url: string
  readonly found: number
  readonly expected: number
}

/** The database's problems, said plainly, naming its URL; exit 1. */
const reportDatabaseError = (e: DatabaseError) =>
  Console.error(
    e._tag === "DatabaseUnreachable"
      ? `organism: cannot reach the database at ${e.url}: ${e.message}\n` +
        `organism: start Postgres (README "Durable organisms") or check --database`
      : `organism: the database at ${e.url} holds organism schema version ${e.found}; this organism needs version ${e.expected}. ` +
        `Nothing was changed. Use another database, or drop its organism_* and cluster_* tables.`
  ).pipe(Effect.zipRight(Effect.fail(new ExitWith({ code: 1 }))))

/**
 * Connects, checks (or creates) the organism's schema and, for runners and clients, the
 * cluster's tables; the pool lives in the caller's scope.
 */
const connect = (url: string, options: { readonly cluster: boolean }) =>
  Effect.gen(function*() {
    const { Database, Layers } = yield* cluster()
    const pg = yield* Layer.build(Database.layerPg(url))
    yield* Database.ensureSchema(url).pipe(Effect.provide(pg))
    if (options.cluster) {
      yield* Layers.ensureClusterTables.pipe(
        Effect.provide(pg),
        Effect.catchTag("SqlError", (e) => Effect.fail(Database.unreachable(url)(e)))
      )
    }
    return pg as Context.Context<SqlClient>
  })

const freePort = (host: string) =>
  Effect.async<number, UsageError>((resume) => {
    const server = createServer()
    server.once("error", (e) => resume(Effect.fail(new UsageError({ message: `--host ${host}: ${e.message}` }))))
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resume(Effect.succeed(port)))
    })
  })

// --- runner ----------------------------------------------------------------------------

const port = Options.integer("port").pipe(
  Options.withDescription("the port other runners reach this one on (0: a free one)"),
  Options.withDefault(34431)
)
const host = Options.text("host").pipe(
  Options.withDescription("the address other runners reach this one at"),
  Options.withDefault("127.0.0.1")
)

/** `organism runner FILE --database URL`: takes conversations from the cluster until stopped. */
export const runnerCommand = Command.make("runner", { file, database, port, host, json }, (opts) =>
  Effect.gen(function*() {
    if (opts.port < 0 || opts.port > 65535) return yield* new UsageError({ message: `--port: ${opts.port} is not a port number` })
    const loaded = yield* loadOrganism(opts.file).pipe(Effect.catchTag("OrganismConfigError", reportConfigError(2)))
    yield* reportConfigWarnings(loaded.warnings)
    const { Approvals, Database, Layers, Runner, Shared, Status, Store } = yield* cluster()
    const pg = yield* connect(opts.database, { cluster: true })
    const runnerPort = opts.port === 0 ? yield* freePort(opts.host) : opts.port
    const address = `${opts.host}:${runnerPort}`
    const other = yield* Status.liveRunnerAt(address).pipe(
      Effect.provide(pg),
      Effect.catchTag("SqlError", (e) => Effect.fail(Database.unreachable(opts.database)(e)))
    )
    if (other !== undefined) {
      return yield* new UsageError({
        message: `a runner is already at ${address} (pid ${other.pid}, seen ${Math.round(other.age_ms)} ms ago): give this one another --port`
      })
    }
    const name = loaded.organism.settings.name
    const layer = Runner.DurableRunner.layer(loaded.organism, { maxOutputTokens: loaded.llm?.max_output_tokens ?? 4096 }).pipe(
      // People may decide through the runner's own pump too (pump.approvals).
      Layer.provide(Approvals.DurableApprovalDesk.layer),
      Layer.provideMerge(Layer.mergeAll(
        // The model router keeps each backend's limits with the other runners' (Postgres).
        layerForOrganism(loaded).pipe(Layer.provide(Shared.layerSharedLimitsSql(address))),
        Store.DurableStore.layerSql(address, name),
        Layers.layerRunner(opts.host, runnerPort)
      )),
      Layer.provide(Layer.succeedContext(pg))
    )
    yield* Layer.build(layer).pipe(
      Effect.catchTag("LlmConfigError", reportLlmConfigError(opts.file)),
      Effect.catchTag("SocketServerError", (e) =>
        Effect.fail(new UsageError({ message: `cannot listen on ${address} (another runner there?): ${String(e.cause ?? e.reason)}` }))),
      Effect.catchTag("ConfigError", (e) => Effect.fail(new UsageError({ message: `cluster settings: ${String(e)}` })))
    )
    const database = Database.displayUrl(opts.database)
    yield* opts.json
      ? Console.log(JSON.stringify({ type: "RunnerReady", organism: name, address, pid: process.pid, database }))
      : Console.log(`organism runner: ${name} at ${address} (database ${database}); Ctrl-C stops`)
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.catchTags({ DatabaseUnreachable: reportDatabaseError, SchemaVersionMismatch: reportDatabaseError }),
    Effect.provide(XmlEngine.layer)
  )).pipe(Command.withDescription("Run a runner of a durable organism: it takes conversations from the cluster in Postgres"))

// --- send ------------------------------------------------------------------------------

const send = Options.text("send").pipe(
  Options.withDescription("send 'listener=<Payload>…</Payload>' (or 'listener=some text' for TextInput; repeatable)"),
  Options.repeated
)
const wait = Options.boolean("wait").pipe(
  Options.withDescription("wait for each conversation's end and print it; exit 0 only when all completed")
)
const id = Options.text("id").pipe(
  Options.withDescription("the envelope id (one --send only): sending the same id again is the same conversation"),
  Options.optional
)

/** `listener=payload` as the workflow's payload: the XML, checked well-formed here. */
const parseSend = (engine: XmlEngine.Service, spec: string) => {
  const eq = spec.indexOf("=")
  if (eq <= 0) return Either.left(`--send expects listener=<Payload>…</Payload>, got ${JSON.stringify(spec)}`)
  const to = spec.slice(0, eq)
  const body = spec.slice(eq + 1).trim()
  if (!body.startsWith("<")) return Either.right({ to, xml: `<TextInput><Text>${escapeText(body)}</Text></TextInput>` })
  return Either.map(
    Either.mapLeft(parsePayloadXml(engine, body), (e) => `--send ${to}: ${e}`),
    () => ({ to, xml: body })
  )
}

/** `organism send FILE --database URL --send …`: injects as a client of the cluster. */
export const sendCommand = Command.make("send", { file, database, send, wait, id, json }, (opts) =>
  Effect.gen(function*() {
    const engine = yield* XmlEngine
    if (opts.send.length === 0) return yield* new UsageError({ message: "give at least one --send 'listener=<Payload>…</Payload>'" })
    if (Option.isSome(opts.id) && opts.send.length > 1) return yield* new UsageError({ message: "--id names one envelope: give one --send" })
    const sends = opts.send.map((s) => parseSend(engine, s))
    for (const s of sends) if (Either.isLeft(s)) return yield* new UsageError({ message: s.left })
    const loaded = yield* loadOrganism(opts.file).pipe(Effect.catchTag("OrganismConfigError", reportConfigError(2)))
    const listeners = new Set(loaded.organism.listeners.map((l) => l.name))
    for (const s of sends) {
      if (Either.isRight(s) && !listeners.has(s.right.to)) {
        return yield* new UsageError({ message: `--send: ${loaded.file} has no listener "${s.right.to}" (it has ${[...listeners].join(", ")})` })
      }
    }
    const { Layers, Reset, Workflow } = yield* cluster()
    const pg = yield* connect(opts.database, { cluster: true })
    const client = yield* Layer.build(Layers.layerClient.pipe(Layer.provide(Layer.succeedContext(pg)))).pipe(
      Effect.catchTag("ConfigError", (e) => Effect.fail(new UsageError({ message: `cluster settings: ${String(e)}` })))
    )
    const from = loaded.organism.settings.injector
    let incomplete = 0
    // Every conversation at once: each waits for its own end, printed as it comes.
    yield* Effect.forEach(sends.flatMap((s) => (Either.isRight(s) ? [s.right] : [])), (s) =>
      Effect.gen(function*() {
        const payload = { id: Option.getOrElse(opts.id, () => randomUUID()), to: s.to, from, payload: s.xml }
        const conversation = yield* Workflow.ConversationWorkflow.executionId(payload)
        if (!opts.wait) {
          yield* Reset.retryWhileReset(Workflow.ConversationWorkflow.execute(payload, { discard: true })).pipe(Effect.provide(client))
          return yield* opts.json
            ? Console.log(JSON.stringify({ type: "Sent", id: payload.id, conversation, to: payload.to }))
            : Console.log(`sent ${payload.id} to ${payload.to}: conversation ${conversation}`)
        }
        const end = yield* Reset.retryWhileReset(Workflow.ConversationWorkflow.execute(payload)).pipe(Effect.provide(client))
        if (end.reason !== "completed") incomplete++
        yield* opts.json
          ? Console.log(JSON.stringify({ type: "ConversationEnded", id: payload.id, conversation, ...end }))
          : Console.log(
            `conversation ${conversation} (${payload.id}): ${end.reason}${end.detail === "" ? "" : ` — ${end.detail}`}` +
              end.replies.map((r) => `\n  ${r.xml}`).join("")
          )
      }), { concurrency: "unbounded", discard: true })
    if (incomplete > 0) return yield* new ExitWith({ code: 1 })
  }).pipe(
    Effect.scoped,
    Effect.catchTags({ DatabaseUnreachable: reportDatabaseError, SchemaVersionMismatch: reportDatabaseError }),
    Effect.provide(XmlEngine.layer)
  )).pipe(Command.withDescription("Send payloads to a durable organism as a client; --wait for each conversation's end"))

// --- trace -----------------------------------------------------------------------------

/**
 * Writes a durable conversation's journal (by conversation or envelope id) to `file`, as
 * `organism run --journal` writes one: `organism trace` and `replay` read it.
 */
export const exportDurableJournal = (url: string, id: string, file: string) =>
  Effect.gen(function*() {
    const { Database, Status } = yield* cluster()
    const pg = yield* connect(url, { cluster: false })
    const found = yield* Status.conversationJournal(id).pipe(
      Effect.provide(pg),
      Effect.catchTag("SqlError", (e) => Effect.fail(Database.unreachable(url)(e)))
    )
    if (found === undefined) {
      yield* Console.error(`organism: no durable conversation ${id} in the database at ${Database.displayUrl(url)}`)
      return yield* new ExitWith({ code: 1 })
    }
    if (found.journal === undefined) {
      yield* Console.error(`organism: conversation ${found.id} has not ended (${found.state}): its journal is stored at its end`)
      return yield* new ExitWith({ code: 1 })
    }
    writeFileSync(file, found.journal)
  }).pipe(
    Effect.scoped,
    Effect.catchTags({ DatabaseUnreachable: reportDatabaseError, SchemaVersionMismatch: reportDatabaseError })
  )

// --- status ----------------------------------------------------------------------------

/** `organism status --database URL`: runners, conversations by state, counters summed. */
export const statusCommand = Command.make("status", { database, json }, (opts) =>
  Effect.gen(function*() {
    const { Database, Status } = yield* cluster()
    const pg = yield* connect(opts.database, { cluster: false })
    const status = yield* Status.readStatus.pipe(
      Effect.provide(pg),
      Effect.catchTag("SqlError", (e) => Effect.fail(Database.unreachable(opts.database)(e)))
    )
    if (opts.json) return yield* Console.log(JSON.stringify({ type: "Status", ...status }))
    const c = status.conversations
    const lines = [
      `runners: ${status.runners.filter((r) => r.alive).length} alive of ${status.runners.length}`,
      ...status.runners.map((r) =>
        `  ${r.address}  ${r.organism}  pid ${r.pid}  ${r.alive ? "alive" : "gone"} (seen ${(r.seenMsAgo / 1000).toFixed(1)} s ago)`
      ),
      `conversations: ${c.running} running, ${c.waitingForApproval} waiting for approval, ${c.completed} completed, ${c.failed} failed`,
      `counters (summed over runners): ${Object.entries(status.counters).map(([k, v]) => `${k} ${v}`).join(", ") || "none yet"}`,
      `usage: ${status.usage.requests} model calls, ${status.usage.promptTokens} prompt + ${status.usage.completionTokens} completion tokens, $${
        status.usage.costUsd.toFixed(4)
      }`
    ]
    yield* Console.log(lines.join("\n"))
  }).pipe(
    Effect.scoped,
    Effect.catchTags({ DatabaseUnreachable: reportDatabaseError, SchemaVersionMismatch: reportDatabaseError })
  )).pipe(Command.withDescription("Show a durable organism's runners, conversations by state and counters summed over runners"))

// --- approvals -------------------------------------------------------------------------

/** One waiting message, as the listing prints it. */
const describePending = (p: { readonly id: string; readonly conversation: string; readonly from: string; readonly listener: string; readonly to: string | null; readonly payload: string }) =>
  `${p.id}  ${p.from} → ${p.to ?? "*"} (${p.listener}, conversation ${p.conversation}): ${p.payload}`

/** `organism approvals --database URL`: the messages of durable conversations waiting for a person. */
export const approvalsCommand = Command.make("approvals", { database, json }, (opts) =>
  Effect.gen(function*() {
    const { Approvals, Database } = yield* cluster()
    const pg = yield* connect(opts.database, { cluster: false })
    const pending = yield* Approvals.listPending.pipe(
      Effect.provide(pg),
      Effect.catchTag("SqlError", (e) => Effect.fail(Database.unreachable(opts.database)(e)))
    )
    if (opts.json) {
      for (const p of pending) yield* Console.log(JSON.stringify({ type: "ApprovalPending", ...p }))
      return
    }
    yield* Console.log(
      pending.length === 0 ? "nothing waits for approval" : `waiting for approval:\n  ${pending.map(describePending).join("\n  ")}`
    )
  }).pipe(
    Effect.scoped,
    Effect.catchTags({ DatabaseUnreachable: reportDatabaseError, SchemaVersionMismatch: reportDatabaseError })
  )).pipe(Command.withDescription("List the messages of a durable organism waiting for a person's approval, oldest first"))

const approvalId = Args.text({ name: "ID" }).pipe(
  Args.withDescription("the approval's id (the SHA-256 of the envelope; any start that names one waiting message)")
)
const by = Options.text("by").pipe(Options.withDescription("who decides (recorded, shown in events)"), Options.withDefault("cli"))
const envelopeFile = Options.file("envelope", { exists: "yes" }).pipe(
  Options.withDescription("the envelope you were shown (a file): the decision is refused unless its SHA-256 is ID"),
  Options.optional
)
const reason = Options.text("reason").pipe(Options.withDescription("why (the sender hears it as a SystemError)"))

/** Approves or denies one waiting message of a durable organism, as a client of its cluster. */
const decide = (
  verb: "approve" | "deny",
  opts: {
    readonly id: string
    readonly database: string
    readonly by: string
    readonly envelope: Option.Option<string>
    readonly reason: string
    readonly json: boolean
  }
) =>
  Effect.gen(function*() {
    const { Approvals, Database, Layers } = yield* cluster()
    if (verb === "deny" && opts.reason.trim() === "") return yield* new UsageError({ message: "--reason must not be blank: the sender hears it" })
    const envelope = Option.isSome(opts.envelope) ? readFileSync(opts.envelope.value, "utf8") : undefined
    const pg = yield* connect(opts.database, { cluster: true })
    const sqlFailed = (e: { readonly _tag: "SqlError" }) => Effect.fail(Database.unreachable(opts.database)(e as never))
    /** Refused: said plainly on stderr (and as JSON on stdout with --json); exit 1. */
    const refuse = (error: string, message: string) =>
      Console.error(`organism: ${error}: ${message}`).pipe(
        Effect.zipRight(opts.json ? Console.log(JSON.stringify({ type: "ApprovalRefused", id: opts.id, error, message })) : Effect.void),
        Effect.zipRight(Effect.fail(new ExitWith({ code: 1 })))
      )
    // An id may be shortened to any start that names one waiting message.
    const known = yield* Approvals.approvalsStartingWith(opts.id).pipe(Effect.provide(pg), Effect.catchTag("SqlError", sqlFailed))
    const waiting = [...new Set(known.filter((k) => k.state === "pending").map((k) => k.id))]
    if (waiting.length > 1) {
      return yield* new UsageError({ message: `${opts.id} names ${waiting.length} waiting messages: give more of the id` })
    }
    if (waiting.length === 0) {
      const decided = known.find((k) => k.id === opts.id.toLowerCase()) ?? (known.length === 1 ? known[0] : undefined)
      return yield* refuse(
        "ApprovalNotPending",
        decided === undefined
          ? `no message waits for approval under ${opts.id} (no such id in the database at ${Database.displayUrl(opts.database)})`
          : `${decided.id} was already decided: ${decided.state}${decided.decided_by === null ? "" : ` by ${decided.decided_by}`}${
            decided.reason === null || decided.reason === "" ? "" : ` (${decided.reason})`
          }`
      )
    }
    const id = waiting[0]!
    const client = yield* Layer.build(Layers.layerClient.pipe(Layer.provide(Layer.succeedContext(pg)))).pipe(
      Effect.catchTag("ConfigError", (e) => Effect.fail(new UsageError({ message: `cluster settings: ${String(e)}` })))
    )
    const desk = yield* Effect.provide(Approvals.DurableApprovalDesk, Approvals.DurableApprovalDesk.layer.pipe(Layer.provide(Layer.succeedContext(Context.merge(pg, client)))))
    const decided = yield* (verb === "approve"
      ? desk.approve(id, { by: opts.by, envelope })
      : desk.deny(id, opts.reason, { by: opts.by, envelope })).pipe(
        Effect.catchTags({
          SqlError: sqlFailed,
          ApprovalNotPending: (e) => refuse(e._tag, e.message),
          ApprovalMismatch: (e) => refuse(e._tag, e.message)
        })
      )
    const decision = verb === "approve" ? "approved" : "denied"
    yield* opts.json
      ? Console.log(JSON.stringify({
        type: "ApprovalDecided",
        id,
        decision,
        by: opts.by,
        reason: verb === "deny" ? opts.reason : "",
        conversation: decided.conversation,
        listener: decided.listener,
        from: decided.from,
        to: decided.to
      }))
      : Console.log(
        `${decision} ${id.slice(0, 12)} (${decided.from} → ${decided.listener}, conversation ${decided.conversation}): ` +
          (verb === "approve" ? "it is delivered when the conversation resumes" : "its sender hears the reason")
      )
  }).pipe(
    Effect.scoped,
    Effect.catchTags({ DatabaseUnreachable: reportDatabaseError, SchemaVersionMismatch: reportDatabaseError })
  )

/** `organism approve ID --database URL`: the message is delivered; its conversation resumes on a runner. */
export const approveCommand = Command.make("approve", { id: approvalId, database, by, envelope: envelopeFile, json }, (opts) =>
  decide("approve", { ...opts, reason: "" })).pipe(
    Command.withDescription("Approve a message of a durable organism waiting for a person: it is delivered, its conversation resumes")
  )

/** `organism deny ID --reason R --database URL`: the message is rejected; its sender hears R. */
export const denyCommand = Command.make("deny", { id: approvalId, database, reason, by, envelope: envelopeFile, json }, (opts) =>
  decide("deny", opts)).pipe(
    Command.withDescription("Deny a message of a durable organism waiting for a person: it is rejected and its sender hears the reason")
  )
