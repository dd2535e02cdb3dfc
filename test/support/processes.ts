/**
 * Real processes for the command-line tests: the `organism` binary, npm, node. A process a
 * test starts with `spawnForTest` is killed when that test finishes, passed or failed:
 * without it, an assertion that fails before a test's own `kill` leaves the process running
 * (a mock model server listens forever) after vitest is done.
 */
import { onTestFinished } from "@effect/vitest"
import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process"
import { join } from "node:path"

export const root = join(__dirname, "..", "..")
export const bin = join(root, "bin", "organism.js")

export interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

export interface ExecOptions {
  readonly cwd?: string
  readonly env?: NodeJS.ProcessEnv
  readonly input?: string
}

/** Runs a command (in the repository by default), feeding it `input`, and collects what it printed. */
export const exec = (command: string, args: ReadonlyArray<string>, options: ExecOptions = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? root,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(options.input ?? "")
  })

/** The `organism` command of this checkout. */
export const organism = (args: ReadonlyArray<string>, options: ExecOptions = {}): Promise<Run> =>
  exec(process.execPath, [bin, ...args], options)

/** What a failed run printed, for an assertion's message. */
export const output = (r: Run): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`

/** `spawn`, with the child killed (SIGKILL) at the end of the current test if still running. */
export const spawnForTest = (command: string, args: ReadonlyArray<string>, options: SpawnOptions): ChildProcess => {
  const child = spawn(command, args, options)
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  })
  return child
}

/** Resolves with the exit code, or rejects after `ms` (a wait on a broken child fails fast). */
export const exitOf = (child: ChildProcess, ms: number): Promise<number | null> =>
  new Promise((resolve, reject) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} still running after ${ms} ms`)), ms)
    child.once("close", (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })

/** The `RunnerReady` line an `organism runner --json` prints once it takes work (rejects if it exits first). */
export const readyLine = (child: ChildProcess, ms: number) =>
  new Promise<string>((resolve, reject) => {
    let out = ""
    let err = ""
    const timer = setTimeout(() => reject(new Error(`runner not ready within ${ms} ms\n${out}\n${err}`)), ms)
    child.stderr!.on("data", (d) => (err += d))
    child.stdout!.on("data", (d) => {
      out += d
      const line = out.split("\n").find((l) => l.includes("RunnerReady"))
      if (line !== undefined) {
        clearTimeout(timer)
        resolve(line)
      }
    })
    child.once("close", (code) => reject(new Error(`runner exited (${code}) before it was ready\n${out}\n${err}`)))
  })
