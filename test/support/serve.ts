/**
 * `organism serve` as a real process on a free loopback port, for the API, live-event and
 * browser tests: started with `startServe`, stopped (SIGKILL if it does not stop) by `stop`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { cpSync, mkdtempSync, rmSync } from "node:fs"
import { join } from "node:path"
import { bin, root } from "./processes.js"

export interface Served {
  readonly url: string
  readonly child: ChildProcess
  /** Everything the process printed so far. */
  readonly output: () => string
  readonly stop: () => Promise<number | null>
}

export const startServe = (file: string, args: ReadonlyArray<string> = [], env: NodeJS.ProcessEnv = process.env): Promise<Served> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "serve", file, "--port", "0", ...args], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    const output = () => out
    const stop = () =>
      new Promise<number | null>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode)
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
        child.once("close", (code) => {
          clearTimeout(timer)
          done(code)
        })
        child.kill("SIGTERM")
      })
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`organism serve did not start within 20 s:\n${out}`))
    }, 20_000)
    const onData = (d: Buffer) => {
      out += d.toString()
      const m = /at (http:\/\/[^\s]+\/) /.exec(out)
      if (m !== null) {
        clearTimeout(timer)
        resolve({ url: m[1]!, child, output, stop })
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", (d: Buffer) => void (out += d.toString()))
    child.once("close", (code) => {
      clearTimeout(timer)
      reject(new Error(`organism serve exited with ${code} before listening:\n${out}`))
    })
  })

/**
 * A copy of an example organism in a fresh folder two levels below the repository (like
 * examples/NAME), so its `../../src/index.js` imports still resolve. Removed by `remove`.
 */
export const copyOrganism = (example: string) => {
  const dir = mkdtempSync(join(root, "test", ".tmp-serve-"))
  cpSync(join(root, "examples", example), dir, { recursive: true })
  return { dir, file: join(dir, "organism.yaml"), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Polls `f` until it returns something other than undefined, or fails after `ms`. */
export const eventually = async <A>(f: () => Promise<A | undefined>, ms = 10_000, what = "a condition"): Promise<A> => {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await f()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export const getJson = async (url: string, init: RequestInit = {}) => {
  const res = await fetch(url, init)
  return { status: res.status, headers: res.headers, body: (await res.json()) as any }
}

export const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  getJson(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) })

/** Reads Server-Sent Events from a response body: each `data:` line's JSON, as it comes. */
export const sseReader = (res: Response) => {
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let buffer = ""
  const queue: Array<any> = []
  const next = async (): Promise<any> => {
    for (;;) {
      if (queue.length > 0) return queue.shift()
      const { done, value } = await reader.read()
      if (done) throw new Error("the event stream ended")
      buffer += decoder.decode(value, { stream: true })
      let end: number
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        for (const line of block.split("\n")) if (line.startsWith("data: ")) queue.push(JSON.parse(line.slice(6)))
      }
    }
  }
  /** The next event for which `f` holds (others are passed over), within `ms`. */
  const until = async (f: (e: any) => boolean, ms = 10_000): Promise<any> => {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("no such event in time")), ms)))
    try {
      return await Promise.race([
        (async () => {
          for (;;) {
            const e = await next()
            if (f(e)) return e
          }
        })(),
        timeout
      ])
    } finally {
      clearTimeout(timer)
    }
  }
  return { next, until, cancel: () => reader.cancel().catch(() => {}) }
}
