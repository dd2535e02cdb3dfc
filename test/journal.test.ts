/** The journal: recording a real run, reading it back, tracing and replaying it. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Queue, Schema, type Scope } from "effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { renderReplay, renderTrace } from "../src/cli/renderJournal.js"
import { loadOrganism } from "./support/files.js"
import { ENVELOPE_NS } from "../src/domain/Envelope.js"
import { JournalRecord } from "../src/domain/JournalRecord.js"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import type { PumpEvent } from "../src/domain/PumpEvent.js"
import { RawPayload } from "../src/domain/Reply.js"
import { analyse, type Conversation, inputOf, type Run } from "../src/journal/Conversations.js"
import { compareRuns } from "../src/journal/Compare.js"
import { bootInputs, idleBefore, replay } from "../src/journal/Replay.js"
import { findConversation, traceOf } from "../src/journal/Trace.js"
import { Pump } from "../src/pipeline/Pump.js"
import { Events } from "../src/services/Events.js"
import { Journal } from "../src/services/Journal.js"
import { expectBalanced, layerWithoutModels, Note } from "./support/pump.js"

const dir = mkdtempSync(join(tmpdir(), "organism-journal-"))
const desk = join(__dirname, "fixtures", "journal", "organism.yaml")
const deskChanged = join(__dirname, "fixtures", "journal", "organism-changed.yaml")

const rawAsk = (question: string) =>
  `<message xmlns="${ENVELOPE_NS}"><meta><from>partner</from><to>front</to><thread>${crypto.randomUUID()}</thread></meta>` +
  `<Ask xmlns=""><Question>${question}</Question></Ask></message>`

const ofType = <T extends JournalRecord["type"]>(records: ReadonlyArray<JournalRecord>, type: T) =>
  records.filter((r): r is Extract<JournalRecord, { type: T }> => r.type === type)

const lines = (path: string) => readFileSync(path, "utf8").split("\n").filter((l) => l !== "")

/** Runs the desk organism with a journal at `path`; `body` sends the input. */
const recordDesk = <A>(path: string, body: (pump: Pump.Service) => Effect.Effect<A, unknown, Events | Scope.Scope>) =>
  Effect.gen(function*() {
    const { organism } = yield* loadOrganism(desk)
    const journal = yield* Journal.make({ path, organism: organism.settings.name, source: desk })
    const pump = yield* Pump.make(organism)
    yield* journal.markBooted
    const result = yield* body(pump)
    yield* pump.awaitIdle
    expectBalanced(pump)
    yield* journal.close
    return { result, counters: pump.counters() }
  }).pipe(Effect.scoped, Effect.provide(layerWithoutModels))

const payloadOf = (tag: string, inner: string) => new RawPayload({ tag, inner })

/** Every kind of lifecycle: forwards and responds, a failure, an invalid reply, a guard, raw input. */
const deskScenario = (pump: Pump.Service) =>
  Effect.gen(function*() {
    for (const q of ["effect", "crash", "garble"]) yield* pump.inject("front", payloadOf("Ask", `<Question>${q}</Question>`))
    yield* pump.inject("loop", payloadOf("Loop", "<N>0</N>"))
    yield* pump.inject("nobody", payloadOf("Ask", "<Question>x</Question>"))
    yield* pump.injectRaw(rawAsk("xml"))
    yield* pump.injectRaw(`<message xmlns="${ENVELOPE_NS}"><meta><from>partner</from>`)
  })

const recorded = (() => {
  let cached: Promise<{ path: string; injected: number }> | undefined
  return () =>
    (cached ??= Effect.runPromise(
      Effect.map(recordDesk(join(dir, "desk.jsonl"), deskScenario), ({ counters }) => ({ path: join(dir, "desk.jsonl"), injected: counters.injected }))
    ))
})()

const readRun = (path: string) => Effect.map(Journal.read(path), (contents) => ({ contents, run: analyse(contents.records) }))

const conversationAsking = (run: Run, question: string): Conversation => {
  const c = run.conversations.find((c) => inputOf(c)?.payload?.includes(`<Question>${question}</Question>`) === true)
  expect(c, `a conversation asking ${question}`).toBeDefined()
  return c!
}

describe("Journal", () => {
  it.effect("records the lifecycle of a real run: header, booted, every hop and outcome, closed", () =>
    Effect.gen(function*() {
      const { injected, path } = yield* Effect.promise(recorded)
      const { contents } = yield* readRun(path)
      const records = contents.records
      expect(contents.complete).toBe(true)
      expect(contents.warnings).toEqual([])
      expect(contents.header).toMatchObject({ type: "header", seq: 0, format: "xml-organism-journal", version: 1, organism: "desk", source: desk })
      expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i))
      expect(records.at(-1)!.type).toBe("closed")
      const booted = records.findIndex((r) => r.type === "booted")
      // Boot (to system.boot) and the YAML boot message come before the mark, the input after.
      const inputs = records.filter((r) => r.type === "received" && (r.origin === "injected" || r.origin === "raw"))
      expect(inputs.filter((r) => r.seq < booted).map((r) => (r as { to: string | null }).to)).toEqual(["system.boot", "front"])
      expect(inputs.filter((r) => r.seq > booted)).toHaveLength(7)

      const received = records.filter((r) => r.type === "received")
      expect(received).toHaveLength(injected)
      expect(new Set(received.map((r) => r.origin))).toEqual(new Set(["injected", "reply", "system", "raw"]))
      const failed = records.filter((r) => r.type === "failed")
      expect(failed.map((f) => f.failure === "rejected" ? `rejected ${f.kind}` : f.failure === "guard" ? `guard ${f.guard}` : `handler ${f.reason}`).sort())
        .toEqual(["guard max-chain-depth", "handler failed", "rejected MissingThread", "rejected PayloadInvalid", "rejected UnknownRoute"])
      const created = ofType(records, "thread-created").map((r) => r.thread).sort()
      const completed = ofType(records, "thread-completed").map((r) => r.thread).sort()
      expect(completed).toEqual(created)
      expect(records.some((r) => r.type === "acknowledged" && r.listener === "librarian" && r.replies[0] === "Found")).toBe(true)

      // The envelope text is kept, and each hop names the thread it extends.
      const dispatched = ofType(records, "dispatched")
      const lookup = dispatched.find((r) => r.to === "librarian" && r.payload.includes("effect"))!
      const ask = dispatched.find((r) => r.to === "front" && r.root === lookup.root && r.from === "console")!
      expect(lookup.envelope).toContain(`<to>librarian</to><thread>${lookup.thread}</thread>`)
      expect(lookup.parent).toBe(ask.thread)
    }))

  it.effect("records are JSON lines that round-trip through the schema", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      for (const line of lines(path)) {
        const json = JSON.parse(line)
        const record = Schema.decodeUnknownSync(JournalRecord)(json)
        const encoded = Schema.encodeSync(JournalRecord)(record)
        expect(encoded).toEqual(json)
        expect(JSON.stringify(encoded)).toBe(line)
      }
    }))

  it.effect("writes each record before the pump goes on, so a crash loses at most the last", () =>
    Effect.gen(function*() {
      const path = join(dir, "sync.jsonl")
      yield* recordDesk(path, (pump) =>
        Effect.gen(function*() {
          const events = yield* Events
          const queue = yield* events.subscribe
          const before = lines(path).length
          const thread = yield* pump.inject("front", payloadOf("Ask", "<Question>xml</Question>"))
          // inject returned: the thread and its first envelope are in the file already.
          const now = lines(path).slice(before).map((l) => JSON.parse(l))
          expect(now.map((r) => r.type)).toEqual(["thread-created", "received"])
          expect(now[1]).toMatchObject({ thread, origin: "injected", to: "front" })
          yield* pump.awaitIdle
          // Idle and still open: every event is on disk, nothing is waiting in a buffer.
          const published = (yield* Queue.takeAll(queue)).pipe((c) => [...c]).filter((e: PumpEvent) => e._tag !== "AgentState")
          expect(lines(path).length - before).toBe(published.length)
        }))
    }))

  it.effect("a reader drops a line cut short at the end and refuses anything else that is not a journal", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const all = lines(path)
      const cut = join(dir, "cut.jsonl")
      writeFileSync(cut, `${all.slice(0, 10).join("\n")}\n${all[10]!.slice(0, 25)}`)
      const contents = yield* Journal.read(cut)
      expect(contents.records).toHaveLength(10)
      expect(contents.complete).toBe(false)
      expect(contents.warnings.join("\n")).toMatch(/line 11 was cut short/)

      const bad = join(dir, "bad.jsonl")
      writeFileSync(bad, `${all[0]}\n{"type":"received","seq":1}\n${all[2]}\n`)
      const e1 = yield* Effect.flip(Journal.read(bad))
      expect(e1.message).toMatch(/^line 2: not a valid "received" record: /)
      writeFileSync(bad, `${all[1]}\n`)
      expect((yield* Effect.flip(Journal.read(bad))).message).toMatch(/the first line must be a "header" record/)
      writeFileSync(bad, `${all[0]}\n{"type":"gossip","seq":1}\n`)
      expect((yield* Effect.flip(Journal.read(bad))).message).toMatch(/line 2: unknown record type "gossip"/)
      expect((yield* Effect.flip(Journal.read(join(dir, "nowhere.jsonl")))).message).toMatch(/cannot read/)
    }))

  it.effect("an observer runs inside publish; one that throws is dropped and the pump goes on", () =>
    Effect.gen(function*() {
      const organism = Organism.make({ listeners: [Listener.make({ name: "echo", payload: Note, handler: () => undefined })] })
      yield* Effect.gen(function*() {
        const events = yield* Events
        const seen: Array<string> = []
        let throwing = 0
        yield* events.observe((e) => void seen.push(e._tag))
        yield* events.observe(() => {
          throwing++
          throw new Error("observer bug")
        })
        expect(events.active()).toBe(true)
        const pump = yield* Pump.make(organism)
        const before = seen.length
        yield* pump.inject("echo", new Note({ text: "hi" }))
        expect(seen.slice(before)).toEqual(["ThreadCreated", "MessageSent"])
        yield* pump.awaitIdle
        expectBalanced(pump)
        expect(throwing).toBe(1)
        expect(seen).toContain("ThreadCompleted")
      }).pipe(Effect.scoped, Effect.provide(layerWithoutModels))
    }))
})

describe("Journal.read: seq numbers the lines", () => {
  it.effect("a duplicated or out-of-order seq is refused with the line that has it", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const all = lines(path)
      const bad = join(dir, "seq.jsonl")
      // A line written twice (a copy-paste, two journals spliced together).
      writeFileSync(bad, `${[...all.slice(0, 6), all[5]!, ...all.slice(6)].join("\n")}\n`)
      expect((yield* Effect.flip(Journal.read(bad))).message).toBe("line 7: seq 5 is repeated (line 6 has it too)")
      // Two lines swapped.
      writeFileSync(bad, `${[...all.slice(0, 4), all[5]!, all[4]!, ...all.slice(6)].join("\n")}\n`)
      expect((yield* Effect.flip(Journal.read(bad))).message).toBe("line 5: seq 5 where 4 was expected (seq numbers the lines from 0)")
      expect((yield* Effect.flip(Journal.read(bad)))._tag).toBe("JournalError")
      writeFileSync(bad, `${[...all.slice(0, 4), all[2]!, ...all.slice(5)].join("\n")}\n`)
      expect((yield* Effect.flip(Journal.read(bad))).message).toBe("line 5: seq 2 comes after seq 3 (out of order)")
      // A line missing in the middle.
      writeFileSync(bad, `${[...all.slice(0, 4), ...all.slice(5)].join("\n")}\n`)
      expect((yield* Effect.flip(Journal.read(bad))).message).toMatch(/^line 5: seq 5 where 4 was expected/)
      // The untouched journal reads.
      expect((yield* Journal.read(path)).records).toHaveLength(all.length)
    }))
})

describe("trace", () => {
  it.effect("a conversation as hops at their chain depth, with handler times and its completion", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { run } = yield* readRun(path)
      const trace = traceOf(run, conversationAsking(run, "effect"))
      expect(trace.steps.map((s) => s.kind === "delivery" ? `${s.depth} ${s.from} → ${s.to} ${s.payloadType}` : s.kind)).toEqual([
        "1 console → front Ask",
        "2 front → librarian Lookup",
        "1 librarian → front Found",
        "0 front → console Answer"
      ])
      const first = trace.steps[0]!
      const last = trace.steps[3]!
      expect(first.kind === "delivery" && first.handlerMs).toBeGreaterThanOrEqual(0)
      expect(last.kind === "delivery" && last.handlerMs).toBeUndefined() // the console runs no handler
      expect(trace.steps.map((s) => s.at)).toEqual([...trace.steps.map((s) => s.at)].sort((a, b) => a - b))
      expect(trace.completed).toMatchObject({ invocations: 3 })
      expect(trace.completed!.at).toBeGreaterThanOrEqual(trace.steps.at(-1)!.at)
      // The tree: the console's thread, front's below it, the librarian's below that.
      expect(trace.tree!.name).toBe("console")
      expect(trace.tree!.steps.map((s) => s.kind === "delivery" && s.payloadType)).toEqual(["Answer"])
      expect(trace.tree!.children.map((c) => c.name)).toEqual(["front"])
      expect(trace.tree!.children[0]!.children.map((c) => c.name)).toEqual(["librarian"])

      const crash = traceOf(run, conversationAsking(run, "crash"))
      expect(crash.steps.map((s) => `${s.depth} ${s.kind}`)).toEqual(["1 delivery", "2 delivery", "2 handler-failed", "1 delivery"])
      const loop = traceOf(run, run.conversations.find((c) => inputOf(c)?.to === "loop")!)
      expect(loop.steps.filter((s) => s.kind === "guard")).toMatchObject([{ guard: "max-chain-depth", listener: "loop", depth: 5 }])
      const garble = traceOf(run, conversationAsking(run, "garble"))
      expect(garble.steps.filter((s) => s.kind === "rejected")).toMatchObject([{ from: "librarian", to: "front", error: "PayloadInvalid", depth: 1 }])
    }))

  it.effect("renders rejections, handler failures and guards where they happened", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { run } = yield* readRun(path)
      const time = String.raw`\(\+\d+\.\d ms\)`
      expect(renderTrace(traceOf(run, conversationAsking(run, "crash")))).toMatch(
        new RegExp(String.raw`^  front → librarian  Lookup  ${time}\n  ⚠ librarian failed: the shelf collapsed  ${time}\n` +
          String.raw`system → front  SystemError  ${time}\n` +
          // The conversation ends with its reason: a handler failed.
          String.raw`✗ ended \(failed\): librarian failed: the shelf collapsed; 2 handler invocations  ${time}$`, "m")
      )
      expect(renderTrace(traceOf(run, conversationAsking(run, "garble")))).toMatch(
        /^✗ librarian → front {2}Found {2}rejected at payload \(PayloadInvalid\): payload <Found> does not match/m
      )
      expect(renderTrace(traceOf(run, run.conversations.find((c) => inputOf(c)?.to === "loop")!))).toMatch(
        new RegExp(String.raw`^ {6}loop → loop  Loop  .*\n {8}⛔ max-chain-depth guard at loop: chain depth 5 exceeds 4  ${time}$`, "m")
      )
      const nobody = renderTrace(traceOf(run, conversationAsking(run, "x")))
      expect(nobody).toMatch(/^✗ console → nobody {2}Ask {2}rejected at route \(UnknownRoute\)/m)
      expect(nobody).toMatch(/✓ completed: 0 handler invocations/)
    }))

  it.effect("finds a conversation by its root, any hop's thread, or a unique prefix", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { run } = yield* readRun(path)
      const c = conversationAsking(run, "effect")
      const hop = c.hops.find((h) => h.to === "librarian")!.thread!
      for (const q of [c.root, hop, hop.slice(0, 8), c.root.slice(0, 12).toUpperCase()]) {
        expect(Either.map(findConversation(run, q), (x) => x.root)).toEqual(Either.right(c.root))
      }
      expect(findConversation(run, hop.slice(0, 7))).toEqual(Either.left(expect.stringMatching(/at least 8 characters/)))
      expect(findConversation(run, "00000000-0000")).toEqual(Either.left(expect.stringMatching(/^no thread/)))
    }))
})

describe("replay", () => {
  it.effect("sends the input again and gets the same thread trees and payloads", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { contents } = yield* readRun(path)
      const { organism } = yield* loadOrganism(desk)
      const out = join(dir, "replayed.jsonl")
      const result = yield* replay(contents, organism, { journal: { path: out, organism: "desk" } })
      expect(result.comparison.differences).toEqual([])
      expect(result.comparison.identical).toBe(true)
      expect(result).toMatchObject({ inputs: 7, boot: 2, warnings: [] })
      expect(result.comparison.replayed).toEqual(result.comparison.recorded)
      // The replay's own journal replays identically too.
      const again = yield* replay(yield* Journal.read(out), organism)
      expect(again.comparison.identical).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(layerWithoutModels)))

  it.effect("a handler that answers differently is a difference, placed on its thread", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { contents } = yield* readRun(path)
      const { organism } = yield* loadOrganism(deskChanged)
      const result = yield* replay(contents, organism)
      expect(result.comparison.identical).toBe(false)
      expect(renderReplay(result, 1)).toMatch(/^differs: 2 differences \(the first 1 shown\)\n {2}input 1 \(console → front Ask\)/m)
      expect(result.comparison.differences).toEqual([
        expect.objectContaining({
          conversation: "input 1 (console → front Ask)",
          at: "console",
          change: "changed",
          recorded: "front → console Answer: <Answer><Text>effect: a TypeScript library</Text></Answer> ⇒ delivered",
          replayed: "front → console Answer: <Answer><Text>effect: a library for TypeScript</Text></Answer> ⇒ delivered"
        }),
        expect.objectContaining({
          at: "console › front",
          change: "changed",
          replayed: expect.stringContaining("<Answer>a library for TypeScript</Answer>")
        })
      ])
    }).pipe(Effect.scoped, Effect.provide(layerWithoutModels)))

  it.effect("a conversation the replay lacks, one it adds, and a different ending are differences", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { contents } = yield* readRun(path)
      const { organism } = yield* loadOrganism(desk)
      // The recorded "nobody" conversation did complete; pretend the journal ends before.
      const nobody = ofType(contents.records, "thread-created").find((r) => r.to === "nobody")!.thread
      const cut = { ...contents, records: contents.records.filter((r) => !(r.type === "thread-completed" && r.thread === nobody)) }
      const withoutBoot = yield* replay(cut, { ...organism, boot: [] })
      expect(withoutBoot.comparison.differences).toEqual([
        expect.objectContaining({ conversation: "boot 2 (console → front Ask)", change: "missing", replayedRoot: null }),
        expect.objectContaining({
          conversation: "input 5 (console → nobody Ask)",
          at: null,
          change: "changed",
          recorded: "not completed",
          replayed: "completed after 0 handler invocations"
        })
      ])
      const moreBoot = yield* replay(contents, { ...organism, boot: [...organism.boot, { to: "loop", payload: payloadOf("Loop", "<N>3</N>") }] })
      expect(moreBoot.comparison.differences).toEqual([
        expect.objectContaining({ conversation: "boot 3 (console → loop Loop)", change: "extra", recordedRoot: null })
      ])
    }).pipe(Effect.scoped, Effect.provide(layerWithoutModels)))

  it.effect("without a booted mark, the organism's own boot messages are still recognised", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { contents } = yield* readRun(path)
      const { organism } = yield* loadOrganism(desk)
      const result = yield* replay({ ...contents, records: contents.records.filter((r) => r.type !== "booted") }, organism)
      expect(result).toMatchObject({ inputs: 7, boot: 2 })
      expect(result.comparison.identical).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(layerWithoutModels)))

  it.effect("input that arrived at an idle organism waits for idle in the replay; input in a burst does not", () =>
    Effect.gen(function*() {
      const path = join(dir, "paced.jsonl")
      yield* recordDesk(path, (pump) =>
        Effect.gen(function*() {
          yield* pump.awaitIdle
          yield* pump.inject("front", payloadOf("Ask", "<Question>xml</Question>"))
          yield* pump.awaitIdle
          yield* pump.inject("front", payloadOf("Ask", "<Question>effect</Question>"))
          yield* pump.inject("front", payloadOf("Ask", "<Question>crash</Question>"))
        }))
      const { run } = yield* readRun(path)
      const idle = idleBefore(run)
      expect(run.inputs.map((h) => [h.payload?.match(/<Question>(\w+)/)?.[1] ?? h.to, idle(h.seq)])).toEqual([
        ["system.boot", true],
        ["xml", false], // boot: sent while Boot was in flight
        ["xml", true],
        ["effect", true],
        ["crash", false]
      ])
    }))

  it.effect("one message missing and one extra on a thread both runs have: one 'missing' and one 'extra', not a change", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { contents, run } = yield* readRun(path)
      // The replay in which the librarian answered "effect" with an Answer instead of a Found:
      // same thread, same sender and receiver, another payload type.
      const found = ofType(contents.records, "dispatched").find((r) => r.payloadType === "Found" && r.payload.includes("effect"))!
      const edited = contents.records.map((r) =>
        (r.type === "dispatched" || r.type === "received") && r.thread === found.thread && r.payloadType === "Found"
          ? { ...r, payloadType: "Answer", payload: "<Answer><Text>effect</Text></Answer>" }
          : r
      ) as ReadonlyArray<JournalRecord>
      const other = analyse(edited)
      const comparison = compareRuns(run, other, bootInputs(run, []), bootInputs(other, []))
      expect(comparison.identical).toBe(false)
      expect(comparison.differences).toEqual([
        {
          conversation: "input 1 (console → front Ask)",
          recordedRoot: found.root,
          replayedRoot: found.root,
          at: "console › front",
          change: "missing",
          recorded: "librarian → front Found: <Found><Term>effect</Term><Answer>a TypeScript library</Answer></Found> ⇒ delivered",
          replayed: null
        },
        {
          conversation: "input 1 (console → front Ask)",
          recordedRoot: found.root,
          replayedRoot: found.root,
          at: "console › front",
          change: "extra",
          recorded: null,
          replayed: "librarian → front Answer: <Answer><Text>effect</Text></Answer> ⇒ delivered"
        }
      ])
      // Both runs have as many messages: only the thread's contents tell them apart.
      expect(comparison.replayed).toEqual(comparison.recorded)
    }))

  it.effect("replaying with an organism of another name warns, and still compares", () =>
    Effect.gen(function*() {
      const { path } = yield* Effect.promise(recorded)
      const { contents } = yield* readRun(path)
      const { organism } = yield* loadOrganism(desk)
      const renamed = { ...organism, settings: { ...organism.settings, name: "front-desk" } }
      const result = yield* replay(contents, renamed)
      expect(result.warnings).toEqual([`the journal was written by organism "desk", replayed with "front-desk"`])
      expect(result.organism).toBe("front-desk")
      // The one difference is the name itself, which Boot carries.
      expect(result.comparison.differences).toEqual([
        expect.objectContaining({
          conversation: "boot 1 (system → system.boot Boot)",
          change: "changed",
          recorded: expect.stringContaining("<OrganismName>desk</OrganismName>"),
          replayed: expect.stringContaining("<OrganismName>front-desk</OrganismName>")
        })
      ])
      // The same name: no warning.
      expect((yield* replay(contents, organism)).warnings).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(layerWithoutModels)))
})
