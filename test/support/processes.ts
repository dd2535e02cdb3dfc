/**
 * Child processes in tests: each one is killed when the test that started it finishes,
 * passed or failed. Without this, an assertion that fails before a test's own `kill`
 * leaves the process running (a mock model server listens forever) after vitest is done.
 */
import { onTestFinished } from "@effect/vitest"
import { type ChildProcess, spawn, type SpawnOptions } from "node:child_process"

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
