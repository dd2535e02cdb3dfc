/**
 * The durable mode's Postgres: one connection pool per process (`PgClient`), and the
 * organism's own tables beside the cluster's (`cluster_*`, created by @effect/cluster).
 *
 * The organism's tables carry a schema version. A database written by another version of
 * this code is refused before anything is created — neither our tables nor the cluster's —
 * so a wrong version leaves no partial state behind.
 *
 *   organism_schema         the version (one row)
 *   organism_runners        one row per runner: address, pid, last heartbeat, counters
 *   organism_conversations  one row per durable conversation: state, runner, reason, replies
 *   organism_llm_sends      how many times each durable model call was sent to a model
 *   organism_usage          the shared usage and cost ledger, one row per answered call
 *   organism_rate           per-backend requests and tokens per minute, shared by the runners
 *   organism_slots          per-backend concurrency slots, leased by the runners
 *   organism_approvals      messages waiting for (or decided by) a person: DurableApprovals.ts
 */
import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Layer, Redacted, Schema } from "effect"

/** Bumped whenever the organism's tables change shape. */
export const SCHEMA_VERSION = 2

/** The database cannot be reached, or refused us: every command reports it naming the URL. */
export class DatabaseUnreachable extends Schema.TaggedError<DatabaseUnreachable>()("DatabaseUnreachable", {
  url: Schema.String,
  message: Schema.String
}) {}

/** The database holds the tables of another version of the organism's schema. */
export class SchemaVersionMismatch extends Schema.TaggedError<SchemaVersionMismatch>()("SchemaVersionMismatch", {
  url: Schema.String,
  found: Schema.Number,
  expected: Schema.Number
}) {}

export type DatabaseError = DatabaseUnreachable | SchemaVersionMismatch

/** The URL as it may be shown: without its password. */
export const displayUrl = (url: string): string => {
  try {
    const u = new URL(url)
    if (u.password !== "") u.password = "***"
    return u.toString()
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@")
  }
}

const causeText = (e: SqlError): string => {
  const cause = e.cause as { message?: unknown; code?: unknown } | undefined
  const detail = cause !== undefined && typeof cause.message === "string" && cause.message !== "" ? cause.message : String(e.cause)
  return `${e.message}: ${detail}`
}

export const unreachable = (url: string) => (e: SqlError) =>
  new DatabaseUnreachable({ url: displayUrl(url), message: causeText(e) })

/**
 * The pool for `url`. Fails with DatabaseUnreachable (naming the URL) when no connection
 * can be made within five seconds.
 */
export const layerPg = (url: string, options: { readonly maxConnections?: number } = {}): Layer.Layer<
  PgClient.PgClient | SqlClient.SqlClient,
  DatabaseUnreachable
> =>
  PgClient.layer({
    url: Redacted.make(url),
    connectTimeout: Duration.seconds(5),
    maxConnections: options.maxConnections ?? 10,
    applicationName: "xml-organism"
  }).pipe(Layer.mapError((e) => (e._tag === "SqlError" ? unreachable(url)(e) : new DatabaseUnreachable({ url: displayUrl(url), message: String(e) }))))

/**
 * Creates the organism's tables (once: an advisory lock serialises runners starting
 * together) or checks their version. Fails with SchemaVersionMismatch, having changed
 * nothing, when the database holds another version.
 */
export const ensureSchema = (url: string): Effect.Effect<void, DatabaseError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const migrate = Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(4242013)`
      const exists = yield* sql<{ readonly present: boolean }>`SELECT to_regclass('organism_schema') IS NOT NULL AS present`
      if (exists[0]?.present === true) {
        const rows = yield* sql<{ readonly version: number }>`SELECT version FROM organism_schema`
        const found = rows[0]?.version ?? 0
        if (found !== SCHEMA_VERSION) {
          return yield* new SchemaVersionMismatch({ url: displayUrl(url), found, expected: SCHEMA_VERSION })
        }
        return
      }
      yield* sql`CREATE TABLE organism_schema (version integer NOT NULL)`
      yield* sql`INSERT INTO organism_schema (version) VALUES (${SCHEMA_VERSION})`
      yield* sql`CREATE TABLE organism_runners (
        address text PRIMARY KEY,
        organism text NOT NULL,
        pid integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        seen_at timestamptz NOT NULL DEFAULT now(),
        stopped boolean NOT NULL DEFAULT false,
        counters jsonb NOT NULL DEFAULT '{}'::jsonb
      )`
      yield* sql`CREATE TABLE organism_conversations (
        id text PRIMARY KEY,
        envelope_id text NOT NULL,
        listener text NOT NULL,
        state text NOT NULL,
        runner text,
        runs integer NOT NULL DEFAULT 0,
        reason text,
        detail text,
        replies jsonb,
        journal text,
        started_at timestamptz NOT NULL DEFAULT now(),
        resumed_at timestamptz,
        ended_at timestamptz
      )`
      yield* sql`CREATE TABLE organism_llm_sends (
        conversation text NOT NULL,
        call text NOT NULL,
        sends integer NOT NULL,
        PRIMARY KEY (conversation, call)
      )`
      yield* sql`CREATE TABLE organism_usage (
        id bigserial PRIMARY KEY,
        conversation text NOT NULL,
        agent text NOT NULL,
        model text NOT NULL,
        backend text NOT NULL,
        prompt_tokens integer NOT NULL,
        completion_tokens integer NOT NULL,
        cost_usd double precision NOT NULL,
        runner text NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
      )`
      yield* sql`CREATE TABLE organism_rate (
        backend text NOT NULL,
        minute bigint NOT NULL,
        requests integer NOT NULL,
        tokens bigint NOT NULL,
        PRIMARY KEY (backend, minute)
      )`
      yield* sql`CREATE TABLE organism_slots (
        backend text NOT NULL,
        slot integer NOT NULL,
        holder text NOT NULL,
        until timestamptz NOT NULL,
        PRIMARY KEY (backend, slot)
      )`
      // One row per held message of a durable conversation: its id is the SHA-256 of the
      // envelope a person is shown; (conversation, deferred) names the DurableDeferred that
      // the conversation's workflow waits on (the same for every run of the conversation).
      yield* sql`CREATE TABLE organism_approvals (
        id text NOT NULL,
        conversation text NOT NULL,
        deferred text NOT NULL,
        listener text NOT NULL,
        thread text NOT NULL,
        root text NOT NULL,
        sender text NOT NULL,
        addressee text,
        payload_type text NOT NULL,
        payload text NOT NULL,
        envelope text NOT NULL,
        requested_at bigint NOT NULL,
        state text NOT NULL,
        decided_by text,
        reason text,
        decided_at timestamptz,
        PRIMARY KEY (conversation, deferred)
      )`
      yield* sql`CREATE INDEX organism_approvals_id ON organism_approvals (id)`
    })
    yield* sql.withTransaction(migrate).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unreachable(url)(e))))
  })
