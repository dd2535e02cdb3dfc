/**
 * The Postgres of the durable-mode tests: `scripts/test-postgres.sh` (run by `npm test`'s
 * pretest) starts it on loopback and writes its URL to `.cache/postgres-url`. A test that
 * needs it fails — never skips — when it is not there. Each test gets a database of its own.
 */
import { expect } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { output, root, type Run } from "./processes.js"

const urlFile = join(root, ".cache", "postgres-url")

/** The server's admin URL (database `postgres`). */
export const postgresUrl = (): string => {
  const fromEnv = process.env.ORGANISM_TEST_DATABASE_URL
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv
  if (!existsSync(urlFile)) {
    throw new Error(`no Postgres for the durable tests: ${urlFile} is missing. Run scripts/test-postgres.sh (as root it installs Debian's postgresql), or set ORGANISM_TEST_DATABASE_URL`)
  }
  return readFileSync(urlFile, "utf8").trim()
}

const psql = (url: string, sql: string) => execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qc", sql], { stdio: "pipe" })

/** A fresh, empty database; its URL. Dropped (with its connections) by `drop`. */
export const freshDatabase = (name: string): { readonly url: string; readonly drop: () => void } => {
  const admin = postgresUrl()
  const db = `${name}_${process.pid}_${Math.floor(Math.random() * 1e6)}`.toLowerCase().replace(/[^a-z0-9_]/g, "_")
  psql(admin, `CREATE DATABASE ${db}`)
  const url = admin.replace(/\/[^/]*$/, `/${db}`)
  return { url, drop: () => void psql(admin, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`) }
}

/** One SQL statement's rows, as JSON (psql does the work: no client library in the test). */
export const query = <A>(url: string, sql: string): Array<A> => {
  const out = execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-qAtc", `SELECT coalesce(json_agg(t), '[]') FROM (${sql}) t`], {
    encoding: "utf8"
  })
  return JSON.parse(out.trim()) as Array<A>
}

/** A database URL nothing answers at, with a password the commands must never print. */
export const UNREACHABLE_URL = "postgres://someone:secret@127.0.0.1:1/nowhere"

/** How every durable command refuses `UNREACHABLE_URL`: exit 1, the URL named, its password hidden. */
export const expectUnreachable = (runs: ReadonlyArray<Run>) => {
  for (const r of runs) {
    expect(r.code, output(r)).toBe(1)
    expect(r.stderr).toContain("cannot reach the database at postgres://someone:***@127.0.0.1:1/nowhere")
    expect(r.stderr).not.toContain("secret")
    expect(r.stdout).toBe("")
  }
}
