/** Real processes for the command-line tests: the `organism` binary, npm, node. */
import { spawn } from "node:child_process"
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
