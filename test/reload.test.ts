import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber } from "effect"
import { spawn } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { Listener } from "../src/domain/Listener.js"
import { Organism } from "../src/domain/Organism.js"
import { Reply } from "../src/domain/Reply.js"
import { Note, Ping, Pong, withPump } from "./support/pump.js"

const echo = (name: string, tag: string) =>
  Listener.make({ name, payload: Ping, handler: (p) => Reply.respond(new Note({ text: `${tag}:${p.n}` })) })

describe("Pump.reload", () => {
  it.effect("adds, removes and updates listeners; reports what changed", () =>
    Effect.gen(function*() {
      const v1 = Organism.make({ listeners: [echo("a", "v1"), echo("b", "v1")] })
      yield* withPump(v1, ({ eventsOf, pump }) =>
        Effect.gen(function*() {
          expect(((yield* pump.request("a", new Ping({ n: 1 }))) as Note).text).toBe("v1:1")
          const v2 = Organism.make({
            listeners: [echo("a", "v2"), Listener.make({ ...echo("c", "v2"), description: "new" })]
          })
          const diff = yield* pump.reload(v2)
          expect(diff).toMatchObject({ added: ["c"], removed: ["b"], updated: ["a"] })
          expect(diff.details).toEqual(["a: handler"])
          expect(((yield* pump.request("a", new Ping({ n: 2 }))) as Note).text).toBe("v2:2")
          expect(((yield* pump.request("c", new Ping({ n: 3 }))) as Note).text).toBe("v2:3")
          const gone = yield* Effect.either(pump.request("b", new Ping({ n: 4 })))
          expect(gone._tag === "Left" && gone.left._tag).toBe("NoReply")
          const reloads = yield* eventsOf("ReloadEvent")
          expect(reloads).toHaveLength(1)
          expect(reloads[0]).toMatchObject({ outcome: "applied", added: ["c"], removed: ["b"], updated: ["a"] })
        }))
    }))

  it.live("messages in flight finish on the version they started with; none is lost", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const slow = (tag: string) =>
        Listener.make({
          name: "worker",
          payload: Ping,
          handler: (p) => Effect.as(Deferred.await(gate), Reply.respond(new Note({ text: `${tag}:${p.n}` })))
        })
      yield* withPump(Organism.make({ listeners: [slow("old")] }), ({ pump }) =>
        Effect.gen(function*() {
          const before = yield* Effect.forEach([1, 2, 3], (n) => Effect.fork(pump.request("worker", new Ping({ n }))))
          yield* Effect.sleep("20 millis") // all three are running on the old version
          yield* pump.reload(Organism.make({ listeners: [slow("new")] }))
          const after = yield* Effect.forEach([4, 5], (n) => Effect.fork(pump.request("worker", new Ping({ n }))))
          yield* Deferred.succeed(gate, undefined)
          const old = yield* Effect.forEach(before, Fiber.join)
          const fresh = yield* Effect.forEach(after, Fiber.join)
          expect(old.map((r) => (r as Note).text)).toEqual(["old:1", "old:2", "old:3"])
          expect(fresh.map((r) => (r as Note).text)).toEqual(["new:4", "new:5"])
        }))
    }))

  it.live("an exclusive listener stays exclusive across a reload", () =>
    Effect.gen(function*() {
      let now = 0
      let max = 0
      const exclusive = (tag: string) =>
        Listener.make({
          name: "solo",
          payload: Ping,
          concurrency: { _tag: "Exclusive" },
          handler: (p) =>
            Effect.acquireUseRelease(
              Effect.sync(() => void (max = Math.max(max, ++now))),
              () => Effect.as(Effect.sleep("5 millis"), Reply.respond(new Pong({ n: p.n }))),
              () => Effect.sync(() => void now--)
            ).pipe(Effect.map((r) => (tag === "" ? r : r)))
        })
      yield* withPump(Organism.make({ listeners: [exclusive("a")] }), ({ pump }) =>
        Effect.gen(function*() {
          const first = yield* Effect.forEach([1, 2, 3], (n) => Effect.fork(pump.request("solo", new Ping({ n }))))
          yield* pump.reload(Organism.make({ listeners: [exclusive("b")] }))
          const second = yield* Effect.forEach([4, 5, 6], (n) => Effect.fork(pump.request("solo", new Ping({ n }))))
          yield* Effect.forEach([...first, ...second], Fiber.join)
          expect(max).toBe(1)
        }))
    }))

  it.effect("an agent's prompt and the usage instructions generated from its peers are rebuilt", () =>
    Effect.gen(function*() {
      const quiet = () => Reply.none
      const agent = (prompt: string) => Listener.make({ name: "agent", agent: true, peers: ["tool"], payload: Note, prompt, handler: quiet })
      const answer = echo("tool", "t")
      const tool = (description: string, seconds: number) => Listener.make({ ...answer, description, timeout: Duration.seconds(seconds) })
      yield* withPump(Organism.make({ listeners: [agent("Be brief."), tool("Looks things up.", 5)] }), ({ pump }) =>
        Effect.gen(function*() {
          expect(pump.prompts().unsafePromptFor("agent")?.system).toMatch(/^Be brief\.[\s\S]*Looks things up\./)
          const diff = yield* pump.reload(Organism.make({ listeners: [agent("Be thorough."), tool("Searches the web.", 9)] }))
          expect([...diff.updated].sort()).toEqual(["agent", "tool"])
          expect([...diff.details].sort()).toEqual(["agent: prompt", "tool: description, timeout"])
          const system = pump.prompts().unsafePromptFor("agent")?.system
          expect(system).toMatch(/^Be thorough\./)
          expect(system).toMatch(/Searches the web\./)
          expect(system).not.toMatch(/Looks things up|Be brief/)
        }))
    }))

  it.effect("a version whose listeners cannot share a route table changes nothing", () =>
    Effect.gen(function*() {
      yield* withPump(Organism.make({ listeners: [echo("a", "v1")] }), ({ pump }) =>
        Effect.gen(function*() {
          const broken = yield* Effect.either(pump.reload(Organism.make({ listeners: [echo("a", "x"), echo("A", "y")] })))
          expect(broken._tag === "Left" && broken.left._tag).toBe("RouteTableError")
          expect(((yield* pump.request("a", new Ping({ n: 1 }))) as Note).text).toBe("v1:1")
        }))
    }))
})

describe("organism run --watch", () => {
  const root = join(__dirname, "..")

  it("hot-reloads edits to the YAML and to handler modules; a broken edit changes nothing", async () => {
    // Two levels below the repository root, like examples/hello, so its imports still resolve.
    const dir = mkdtempSync(join(root, "test", ".tmp-watch-"))
    cpSync(join(root, "examples", "hello"), dir, { recursive: true })
    const yaml = join(dir, "organism.yaml")
    const child = spawn(process.execPath, [join(root, "bin", "organism.js"), "run", yaml, "--watch"], {
      cwd: root,
      stdio: ["pipe", "pipe", "pipe"]
    })
    let out = ""
    child.stdout.on("data", (d) => (out += d))
    child.stderr.on("data", (d) => (out += d))
    const waitFor = async (pattern: RegExp, ms = 20_000) => {
      const until = Date.now() + ms
      while (!pattern.test(out)) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${pattern}; output so far:\n${out}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve))
    try {
      await waitFor(/HELLO, WORLD!/)
      // 1. Update a handler module: shout with three exclamation marks.
      const handlers = join(dir, "handlers.ts")
      writeFileSync(handlers, readFileSync(handlers, "utf8").replace("payload.message.toUpperCase()", "`${payload.message.toUpperCase()}!!`"))
      // Every handler of the re-imported module is new code, so all three are updated.
      await waitFor(/↻ reloaded: updated greeter: handler; shouter: handler; response-handler: handler/)
      child.stdin.write("@greeter Ada\n")
      await waitFor(/HELLO, ADA!!!</)
      // 2. A broken edit: rejected with its problem, the organism keeps running.
      const good = readFileSync(yaml, "utf8")
      writeFileSync(yaml, good.replace("timeout: ", "timeout: ").replace("peers: [shouter]", "peers: [shouter]\n    timeout: forever"))
      await waitFor(/reload rejected, still running the last good version:\n.*timeout: expected a duration/)
      child.stdin.write("@greeter Bob\n")
      await waitFor(/HELLO, BOB!!!</)
      // 3. Remove response-handler and add a listener in its place.
      // (shouter's peer list must go too, or the edit is refused: a peer that is not a listener.)
      writeFileSync(
        yaml,
        good.replace("    peers: [response-handler]\n", "").replace(
          /  - name: response-handler[\s\S]*?handler: \.\/handlers\.ts#receive\n/,
          `  - name: response-handler-2
    payload: ./payloads.ts#ShoutedResponse
    handler: ./handlers.ts#receive
`
        )
      )
      await waitFor(/↻ reloaded: added response-handler-2; removed response-handler; updated shouter: peers/)
      child.stdin.write("@greeter Cy\n")
      // shouter still forwards to the removed listener: rejected, and shouter is told.
      await waitFor(/rejected at route \(UnknownRoute\): no listener for route "response-handler\.shoutedresponse"/)
      child.kill("SIGINT")
      expect(await exited).toBe(130)
      expect(out).toMatch(/hello: \d+ injected/)
    } finally {
      child.kill("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
