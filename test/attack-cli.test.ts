/**
 * Hostile input, signals and pipes against `organism run`, as real processes: control
 * characters at the console, Ctrl-C with a drain deadline, standard output closed or read
 * slowly. Each case starts a Node process (~1.5 s of CPU), so the timeouts are generous.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import type { ChildProcess } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { spawnForTest } from "./support/processes.js"

vi.setConfig({ testTimeout: 120_000 })

const root = join(__dirname, "..")
const bin = join(root, "bin", "organism.js")
const dir = mkdtempSync(join(tmpdir(), "organism-attack-"))
const hello = "examples/hello/organism.yaml"
const attack = "test/fixtures/attack/organism.yaml"

interface Run {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  /** Milliseconds from the signal (when one was sent) to the exit. */
  readonly afterSignalMs: number | undefined
}

interface Options {
  /** Written to standard input, which is then closed (unless `keepInputOpen`). */
  readonly input?: string
  readonly keepInputOpen?: boolean
  /** Sends `signal` once standard output matches. */
  readonly signalWhen?: RegExp
  readonly signal?: NodeJS.Signals
  /** Called with the child once started (to close its pipes, read slowly…). */
  readonly onStart?: (child: ChildProcess) => void
  /** Do not collect standard output (the test reads it itself). */
  readonly ownStdout?: boolean
}

/** Runs the CLI; the child is killed when the test ends if still running (a failing test must not leave one). */
const organism = (args: ReadonlyArray<string>, options: Options = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawnForTest(process.execPath, [bin, ...args], { cwd: root, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let signalledAt: number | undefined
    if (options.ownStdout !== true) {
      child.stdout!.on("data", (d) => {
        stdout += d
        if (options.signalWhen !== undefined && signalledAt === undefined && options.signalWhen.test(stdout)) {
          signalledAt = Date.now()
          child.kill(options.signal ?? "SIGINT")
        }
      })
    }
    child.stdout!.on("error", () => {})
    child.stdin!.on("error", () => {})
    child.stderr!.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.on("close", (code, signal) => {
      resolve({ code, signal, stdout, stderr, afterSignalMs: signalledAt === undefined ? undefined : Date.now() - signalledAt })
    })
    if (options.input !== undefined) child.stdin!.write(options.input)
    if (options.keepInputOpen !== true) child.stdin!.end()
    options.onStart?.(child)
  })

const records = (path: string) => readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l))

describe("control characters at the console", () => {
  it("an arrow key, a BEL and a NUL are reported on their line; the run goes on and prints its summary", async () => {
    const r = await organism(["run", hello], {
      input: "@greeter Ada\x1b[A\n@greeter Bob\x07\n@greeter Cy\x00\n@greeter Grace\n"
    })
    expect(r.stderr).toMatch(/^organism: input line 1: not sent to greeter: .*U\+001B/m)
    expect(r.stderr).toMatch(/^organism: input line 2: not sent to greeter: .*U\+0007/m)
    expect(r.stderr).toMatch(/^organism: input line 3: not sent to greeter: .*U\+0000/m)
    expect(r.stderr).not.toMatch(/\n\s+at /)
    // The line after them was sent, and the run ended normally.
    expect(r.stdout).toMatch(/HELLO, GRACE!/)
    expect(r.stdout).toMatch(/hello: 7 injected, 7 delivered/)
    expect(r.code).toBe(0)
  })

  it("--send with a control character: reported, the rest runs; --strict makes it exit 1", async () => {
    const args = ["run", hello, "--until-idle", "--send", "greeter=Ada\x07", "--send", "greeter=Grace"]
    const r = await organism(args)
    expect(r.stderr).toMatch(/^organism: --send greeter: not sent to greeter: .*U\+0007/m)
    expect(r.stderr).not.toMatch(/\n\s+at /)
    expect(r.stdout).toMatch(/HELLO, GRACE!/)
    expect(r.stdout).toMatch(/hello: 7 injected, 7 delivered/)
    expect(r.code).toBe(0)
    expect((await organism([...args, "--strict"])).code).toBe(1)
  })
})

describe("hostile organism files", () => {
  it("a YAML alias-expansion bomb: a config error with file and line, exit 2, no stack trace", async () => {
    const levels = [`a0: &a0 [x, x, x, x, x, x, x, x, x, x]`]
    for (let i = 1; i < 30; i++) levels.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]`)
    const bomb = join(dir, "bomb.yaml")
    writeFileSync(bomb, `organism:\n  name: bomb\nlisteners: []\n${levels.join("\n")}\n`)
    const r = await organism(["run", bomb, "--until-idle"])
    expect(r.stderr).toMatch(/bomb\.yaml:8:\d+: the alias \*a3 stands for more than 10000 YAML nodes/)
    expect(r.stderr).not.toMatch(/\n\s+at /)
    expect(r.code).toBe(2)
  })

  it("a module in a package that is not \"type\": \"module\": the README's explanation, not Node's riddle", async () => {
    // Under the real binary (tsx), such a file is compiled as CommonJS; vitest would load it anyway.
    const pkg = mkdtempSync(join(tmpdir(), "organism-cjs-"))
    writeFileSync(join(pkg, "package.json"), `{ "name": "not-esm" }`)
    writeFileSync(join(pkg, "h.ts"), `import { Reply } from ${JSON.stringify(join(root, "src", "index.js"))}\nexport const h = () => Reply.none\n`)
    writeFileSync(join(pkg, "o.yaml"), `organism:\n  name: cjs\nlisteners:\n  - name: a\n    payload: TextInput\n    handler: ./h.ts#h\n`)
    const r = await organism(["validate", join(pkg, "o.yaml")])
    expect(r.stderr).toContain(
      `o.yaml:6:14: listeners[0] "a".handler: module ./h.ts is not an ES module: its package (${join(pkg, "package.json")}) ` +
        `does not say "type": "module", so it is compiled as CommonJS, which cannot import the framework. ` +
        `Add "type": "module" to that package.json, or name the file .mts`
    )
    expect(r.stderr).not.toMatch(/in a cycle/)
    expect(r.code).toBe(1)
  })

  it("modules outside the organism's folder: a warning per module, and the organism runs", async () => {
    const outside = join(dir, "outside.yaml")
    writeFileSync(outside, readFileSync(join(root, hello), "utf8").replaceAll("./", `${join(root, "examples/hello")}/`))
    const r = await organism(["run", outside, "--until-idle"])
    // Once per module, at its first mention.
    expect(r.stderr.match(/^organism: warning: .*$/gm)).toEqual([
      expect.stringMatching(/outside\.yaml:10:14: listeners\[0\] "greeter"\.payload: module .*examples\/hello\/payloads\.ts is outside the organism's folder/),
      expect.stringMatching(/outside\.yaml:12:14: listeners\[0\] "greeter"\.handler: module .*examples\/hello\/handlers\.ts is outside the organism's folder/)
    ])
    expect(r.stdout).toMatch(/hello: 4 injected, 4 delivered/)
    expect(r.code).toBe(0)
  })
})

const nap = (ms: number) => `nap=<Nap><Ms>${ms}</Ms></Nap>`
const ticks = (limit: number) => `tick=<Tick><N>0</N><Limit>${limit}</Limit></Tick>`

describe("--drain-timeout is a deadline", () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`after ${signal}, what is still running at the deadline is interrupted, booked in the journal, and the run exits`, async () => {
      const path = join(dir, `drain-${signal}.jsonl`)
      const r = await organism(
        ["run", attack, "--journal", path, "--drain-timeout", "2s", "--send", nap(60_000), "--send", nap(300)],
        { keepInputOpen: true, signalWhen: /console → nap: <Nap><Ms>60000/, signal }
      )
      // Within the deadline and a little, not after the minute the nap asked for.
      expect(r.afterSignalMs).toBeGreaterThanOrEqual(1_900)
      expect(r.afterSignalMs).toBeLessThan(2_000 + 6_000)
      expect(r.code).toBe(130)
      expect(r.stderr).toMatch(/^organism: stopped by a signal; --drain-timeout 2s elapsed with 1 handler job still in flight, interrupted$/m)
      // What was interrupted is booked: the handler cancelled, its caller's SystemError stopped by the
      // shutdown guard, the conversation ended as cancelled; the books add up.
      expect(r.stdout).toMatch(/attack: 4 injected, 3 delivered, 0 rejected, 1 stopped by guards/)
      expect(r.stdout).toMatch(/✗ thread ended: cancelled — not finished within 2s/)
      const all = records(path)
      const last = all.at(-1)
      expect(last).toMatchObject({ type: "closed", stopped: "stopped by a signal; --drain-timeout 2s elapsed with 1 handler job still in flight, interrupted" })
      // The long nap was dispatched, its handler cancelled at the deadline, and its
      // conversation ended as cancelled; the short one finished during the drain.
      const long = all.find((x) => x.type === "dispatched" && x.payload.includes("60000")).thread
      expect(all.filter((x) => x.thread === long).map((x) => x.type)).toEqual([
        "thread-created",
        "received",
        "dispatched",
        "failed",
        "thread-completed"
      ])
      expect(all.find((x) => x.thread === long && x.type === "thread-completed")).toMatchObject({ reason: "cancelled" })
      const trace = await organism(["trace", path, long])
      expect(trace.stdout.trimEnd().split("\n").at(-1)).toMatch(
        /^✗ ended \(cancelled\): not finished within 2s; 1 handler invocation/
      )
    })
  }

  it("work that finishes within the deadline is not cut: the journal closes without a stop", async () => {
    const path = join(dir, "drain-in-time.jsonl")
    const r = await organism(["run", attack, "--journal", path, "--drain-timeout", "10s", "--send", nap(1_000)], {
      keepInputOpen: true,
      signalWhen: /console → nap/
    })
    expect(r.code).toBe(130)
    expect(r.stderr).not.toMatch(/interrupted/)
    const all = records(path)
    expect(all.at(-1)).toEqual({ type: "closed", seq: all.length - 1, time: expect.any(Number) })
    expect(all.filter((x) => x.type === "acknowledged" && x.listener === "nap")).toHaveLength(1)
  })
})

describe("standard output", () => {
  it("closed by its reader during a run with --journal: the run stops in order and the journal gets its closing record", async () => {
    const path = join(dir, "stdout-closed.jsonl")
    let closedAt = 0
    const r = await organism(["run", attack, "--journal", path, "--drain-timeout", "1s", "--send", ticks(9_000), "--send", nap(60_000)], {
      keepInputOpen: true,
      ownStdout: true,
      onStart: (child) =>
        child.stdout!.once("data", () => {
          closedAt = Date.now()
          child.stdout!.destroy()
        })
    })
    expect(closedAt).toBeGreaterThan(0)
    expect(r.stderr).toMatch(/^organism: the reader of standard output went away: stopping$/m)
    expect(r.stderr).toMatch(/^organism: the reader of standard output went away; --drain-timeout 1s elapsed with \d+ handler jobs? still in flight, interrupted$/m)
    // The summary still comes, on standard error.
    expect(r.stderr).toMatch(/^attack: \d+ injected, \d+ delivered/m)
    expect(r.code).toBe(0)
    const all = records(path)
    expect(all.at(-1)).toMatchObject({ type: "closed", stopped: expect.stringMatching(/^the reader of standard output went away/) })
    expect(all.map((x) => x.seq)).toEqual(all.map((_, i) => i))
  })

  it("a reader that does not keep up: printing waits for it, events beyond the backlog are skipped and counted, memory stays bounded", async () => {
    let peakKb = 0
    let lines = 0
    let partial = ""
    let valid = true
    // 9,000 hops make 27,000 events, more than the 20,000 that may wait for a slow reader.
    const r = await organism(["run", attack, "--until-idle", "--json", "--send", ticks(9_000)], {
      ownStdout: true,
      onStart: (child) => {
        const stdout = child.stdout!
        stdout.pause()
        const watch = setInterval(() => {
          try {
            const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1] ?? 0)
            peakKb = Math.max(peakKb, kb)
          } catch {
            clearInterval(watch)
          }
        }, 100)
        child.on("close", () => clearInterval(watch))
        // The reader wakes up once the run says it skips events (or after a minute), and reads everything.
        let stderr = ""
        let awake = false
        const wake = setTimeout(() => read(), 60_000)
        child.stderr!.on("data", (d) => {
          stderr += d
          if (/skipping events/.test(stderr)) read()
        })
        const read = () => {
          if (awake) return
          awake = true
          clearTimeout(wake)
          stdout.on("data", (d: Buffer) => {
            const text = partial + d.toString()
            const parts = text.split("\n")
            partial = parts.pop()!
            for (const p of parts) {
              lines++
              try {
                JSON.parse(p)
              } catch {
                valid = false
              }
            }
          })
          stdout.resume()
        }
      }
    })
    expect(r.code).toBe(0)
    expect(valid).toBe(true)
    expect(partial).toBe("")
    expect(r.stderr).toMatch(/standard output is read too slowly for this organism: skipping events/)
    const skipped = Number(/organism: (\d+) events were not printed/.exec(r.stderr)?.[1])
    expect(skipped).toBeGreaterThan(0)
    expect(lines).toBeGreaterThan(1_000)
    expect(r.stderr).toMatch(/attack: 9002 injected, 9002 delivered/)
    expect(peakKb).toBeGreaterThan(0)
    expect(peakKb).toBeLessThan(600_000)
  })

  it("a fast event rate into a pipe: every event printed, as whole JSON lines, no ENOBUFS or EPIPE", async () => {
    const r = await organism(["run", attack, "--until-idle", "--json", "--send", ticks(5_000)])
    expect(r.code).toBe(0)
    expect(r.stderr).not.toMatch(/ENOBUFS|EPIPE|skipping/)
    const events = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l))
    expect(events.filter((e) => e.type === "HandlerCompleted" && e.listener === "tick")).toHaveLength(5_001)
    expect(events.at(-1)).toMatchObject({ type: "ThreadCompleted", invocations: 5_001 })
  })
})

describe("test teardown", () => {
  // A test that ends while its process still runs (as a failing one would) must not leave it.
  let leftRunning: ChildProcess | undefined
  it("a test leaves a process running…", () => {
    leftRunning = spawnForTest(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" })
    expect(leftRunning.pid).toBeGreaterThan(0)
  })

  it("…and it is gone once that test has finished", async () => {
    const child = leftRunning!
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once("close", resolve))
    expect(child.signalCode).toBe("SIGKILL")
    expect(() => process.kill(child.pid!, 0)).toThrow(/ESRCH/)
  })
})
