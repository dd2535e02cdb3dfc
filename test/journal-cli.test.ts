/** `organism run --journal`, `organism trace` and `organism replay`, run as real processes. */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Journal } from "../src/services/Journal.js"
import { spawnForTest } from "./support/processes.js"

const root = join(__dirname, "..")
const bin = join(root, "bin", "organism.js")
const dir = mkdtempSync(join(tmpdir(), "organism-journal-cli-"))
const hello = "examples/hello/organism.yaml"
const desk = "test/fixtures/journal/organism.yaml"
const deskChanged = "test/fixtures/journal/organism-changed.yaml"

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Runs the CLI. `interruptWhen`: standard input stays open, and SIGINT is sent once the
 * output matches it (Ctrl-C at the console).
 */
const organism = (args: ReadonlyArray<string>, interruptWhen?: RegExp): Promise<Run> =>
  new Promise((resolve, reject) => {
    // Killed when the test ends: a run waiting for a Ctrl-C that never comes must not outlive it.
    const child = spawnForTest(process.execPath, [bin, ...args], { cwd: root, stdio: ["pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let interrupted = false
    child.stdout!.on("data", (d) => {
      stdout += d
      if (interruptWhen !== undefined && !interrupted && interruptWhen.test(stdout)) {
        interrupted = true
        child.kill("SIGINT")
      }
    })
    child.stderr!.on("data", (d) => (stderr += d))
    child.on("error", reject)
    child.on("close", (code) => resolve({ code, stdout, stderr }))
    if (interruptWhen === undefined) child.stdin!.end("")
  })

/** Tests that start several processes: each takes seconds of CPU, and the machine is shared. */
const SLOW = 120_000

const read = (path: string) => Effect.runPromise(Journal.read(path))
const records = (path: string) => readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l))

/** The desk organism run once with every kind of outcome; shared by the replay cases. */
const deskJournal = (() => {
  let run: Promise<string> | undefined
  return () =>
    (run ??= (async () => {
      const path = join(dir, "desk.jsonl")
      const r = await organism([
        "run",
        desk,
        "--until-idle",
        "--journal",
        path,
        ...["effect", "crash", "garble"].flatMap((q) => ["--send", `front=<Ask><Question>${q}</Question></Ask>`]),
        "--send",
        "loop=<Loop><N>0</N></Loop>",
        "--send",
        "nobody=<Ask><Question>x</Question></Ask>"
      ])
      expect(r.code).toBe(0)
      return path
    })())
})()

describe("organism run --journal", () => {
  it("the journal is complete when the run exits", async () => {
    const path = join(dir, "hello.jsonl")
    const r = await organism(["run", hello, "--until-idle", "--journal", path])
    expect(r.code).toBe(0)
    const contents = await read(path)
    expect(contents.complete).toBe(true)
    expect(contents.warnings).toEqual([])
    expect(contents.header).toMatchObject({ organism: "hello", source: hello })
    const types = contents.records.map((r) => r.type)
    expect(types[0]).toBe("header")
    expect(types.at(-1)).toBe("closed")
    // Boot and the World greeting, each conversation from creation to completion.
    expect(types.filter((t) => t === "thread-created")).toHaveLength(2)
    expect(types.filter((t) => t === "thread-completed")).toHaveLength(2)
    expect(types.filter((t) => t === "dispatched")).toHaveLength(4)
    expect(types.filter((t) => t === "acknowledged")).toHaveLength(4)
  }, SLOW)

  it("on Ctrl-C, in-flight work is drained into the journal before it is closed", async () => {
    const path = join(dir, "interrupted.jsonl")
    const r = await organism(["run", desk, "--journal", path, "--send", "nap=<Nap><Ms>600</Ms></Nap>"], /console → nap/)
    expect(r.code).toBe(130)
    expect(r.stdout).toMatch(/desk: 6 injected, 6 delivered/)
    const all = records(path)
    expect(all.at(-1).type).toBe("closed")
    const nap = all.find((x) => x.type === "thread-created" && x.to === "nap").thread
    // The nap was still sleeping when Ctrl-C came: its handler finished during the drain.
    expect(all.filter((x) => x.thread === nap).map((x) => x.type)).toEqual(["thread-created", "received", "dispatched", "acknowledged", "thread-completed"])
  }, SLOW)

  it("a journal that cannot be opened is a usage error", async () => {
    const r = await organism(["run", hello, "--until-idle", "--journal", join(dir, "no", "such", "dir.jsonl")])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/organism: journal .*dir\.jsonl: cannot open: ENOENT/)
  }, SLOW)
})

describe("organism trace", () => {
  it("prints a conversation as a tree of hops with timings", async () => {
    const path = join(dir, "trace.jsonl")
    expect((await organism(["run", hello, "--until-idle", "--journal", path])).code).toBe(0)
    const world = records(path).find((x) => x.type === "thread-created" && x.to === "greeter").thread as string
    const shouterThread = records(path).find((x) => x.type === "dispatched" && x.to === "shouter").thread as string

    const r = await organism(["trace", path, world])
    expect(r.code).toBe(0)
    const t = String.raw`\(\+\d+\.\d ms, handler \d+\.\d ms\)`
    const expected = [
      String.raw`^conversation ${world} of hello, started by console at \d{4}-\d\d-\d\dT[\d:.]+Z$`,
      String.raw`^console → greeter  Greeting  ${t}$`,
      String.raw`^  greeter → shouter  GreetingResponse  ${t}$`,
      String.raw`^    shouter → response-handler  ShoutedResponse  ${t}$`,
      String.raw`^✓ completed: 3 handler invocations  \(\+\d+\.\d ms\)$`
    ]
    const lines = r.stdout.trimEnd().split("\n")
    expect(lines).toHaveLength(expected.length)
    lines.forEach((line, i) => expect(line).toMatch(new RegExp(expected[i]!)))

    // Any hop's thread, by a prefix, leads to the same conversation; --json gives the tree.
    const json = await organism(["trace", path, shouterThread.slice(0, 8), "--json"])
    expect(json.code).toBe(0)
    const trace = JSON.parse(json.stdout)
    expect(trace).toMatchObject({ root: world, organism: "hello", injector: "console", completed: { invocations: 3 } })
    const chain: Array<string> = []
    for (let node = trace.tree; node !== undefined; node = node.children[0]) chain.push(node.name)
    expect(chain).toEqual(["console", "greeter", "shouter", "response-handler"])

    const list = await organism(["trace", path])
    expect(list.stdout).toMatch(new RegExp(`^${world}  console → greeter  Greeting  3 messages$`, "m"))
  }, SLOW)

  it("exit 1 for a thread the journal does not have, 2 for usage errors", async () => {
    const path = await deskJournal()
    const unknown = await organism(["trace", path, "00000000-0000-4000-8000-000000000000"])
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toMatch(/no thread 00000000-0000-4000-8000-000000000000 in this journal/)
    const short = await organism(["trace", path, "abc"])
    expect(short.code).toBe(2)
    expect(short.stderr).toMatch(/at least 8 characters/)
  }, SLOW)
})

describe("organism replay", () => {
  it("exit 0 when the replay has the same thread trees and payloads", async () => {
    const path = await deskJournal()
    const out = join(dir, "replay-of-desk.jsonl")
    const r = await organism(["replay", path, "--organism", desk, "--journal", out])
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      "replayed 5 inputs (2 sent by the organism itself while starting)\n" +
        "recorded: 7 conversations, 23 messages; replayed: 7 conversations, 23 messages\n" +
        "identical: the same thread trees and payloads\n"
    )
    // The replay recorded itself; that journal replays identically too.
    expect((await read(out)).complete).toBe(true)
    expect((await organism(["replay", out, "--organism", desk])).code).toBe(0)
  }, SLOW)

  it("exit 1 with the first differences when a handler answers differently", async () => {
    const path = await deskJournal()
    const r = await organism(["replay", path, "--organism", deskChanged])
    expect(r.code).toBe(1)
    expect(r.stdout).toContain("differs: 2 differences\n")
    expect(r.stdout).toMatch(/^  input 1 \(console → front Ask\) · recorded [0-9a-f]{8}, replayed [0-9a-f]{8}$/m)
    expect(r.stdout).toContain(
      "    at console:\n" +
        "      changed   recorded: front → console Answer: <Answer><Text>effect: a TypeScript library</Text></Answer> ⇒ delivered\n" +
        "                replayed: front → console Answer: <Answer><Text>effect: a library for TypeScript</Text></Answer> ⇒ delivered\n"
    )
    expect(r.stdout).toContain("    at console › front:\n")
    const json = await organism(["replay", path, "--organism", deskChanged, "--json"])
    expect(json.code).toBe(1)
    const result = JSON.parse(json.stdout)
    expect(result).toMatchObject({ identical: false, organism: "desk", inputs: 5, boot: 2 })
    expect(result.differences).toHaveLength(2)
    expect(result.differences[0]).toMatchObject({ at: "console", change: "changed" })
  }, SLOW)

  it("exit 2 for usage errors", async () => {
    const path = await deskJournal()
    const missing = await organism(["replay", join(dir, "nowhere.jsonl"), "--organism", desk])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/journal .*nowhere\.jsonl: cannot read/)
    const broken = await organism(["replay", path, "--organism", "test/fixtures/journal/payloads.ts"])
    expect(broken.code).toBe(2)
    const cut = join(dir, "garbage.jsonl")
    writeFileSync(cut, `${readFileSync(path, "utf8").split("\n")[0]}\nnot json\n{}\n`)
    const garbage = await organism(["replay", cut, "--organism", desk])
    expect(garbage.code).toBe(2)
    expect(garbage.stderr).toMatch(/line 2: not JSON/)
  }, SLOW)
})
