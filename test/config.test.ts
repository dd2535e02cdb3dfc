import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Option } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { loadOrganism } from "./support/files.js"
import { Pump } from "../src/pipeline/Pump.js"
import { BudgetRegistry } from "../src/services/BudgetRegistry.js"
import { ContextBuffer } from "../src/services/ContextBuffer.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { Question } from "./fixtures/modules.js"
import { layerWithoutModels } from "./support/pump.js"

const dir = mkdtempSync(join(tmpdir(), "organism-config-"))
const modules = relative(dir, join(__dirname, "fixtures", "modules.ts"))

const write = (name: string, text: string) => {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

const valid = (extra = "", listenerExtra = "") => `organism:
  name: qa
${extra}
listeners:
  - name: oracle
    payload: ${modules}#Question
    handler: ${modules}#answer
${listenerExtra}`

/** Loads and returns the problems as `line:column key: message` strings. */
const problems = (file: string) =>
  Effect.map(Effect.either(loadOrganism(file)), (result) => {
    if (Either.isRight(result)) throw new Error("expected the organism file to be refused")
    return result.left.problems.map((p) => ({ line: p.line, key: p.key, message: p.message, text: String(p) }))
  }).pipe(Effect.provide(XmlEngine.layer))

describe("YAML organisms", () => {
  it.effect("a valid file loads and runs", () =>
    Effect.gen(function*() {
      const file = write("ok.yaml", valid("  max_concurrent_handlers: 4\n  handler_timeout: 2.5s\n  guards:\n    max_chain_depth: 9"))
      const { organism } = yield* loadOrganism(file)
      expect(organism.settings.name).toBe("qa")
      expect(organism.settings.maxConcurrentHandlers).toBe(4)
      expect(organism.settings.guards.maxChainDepth).toBe(9)
      const reply = yield* Effect.scoped(Effect.flatMap(Pump.make(organism), (pump) =>
        pump.request("oracle", new Question({ text: "why" }))))
      expect((reply as { text: string }).text).toBe("you asked: why")
    }).pipe(Effect.provide(layerWithoutModels)))

  it.effect("the file's history limits and token budgets configure the services layerForOrganism builds", () =>
    Effect.gen(function*() {
      const file = write("limits.yaml", valid(
        "  max_tokens_per_thread: 5000\n  context:\n    max_slots_per_thread: 3\n    max_threads: 7\n" +
          "    on_full: drop-oldest\n    retain_completed: 2\n    retain_for: 10m",
        "    max_tokens_per_thread: 1200\n"
      ))
      const loaded = yield* loadOrganism(file)
      yield* Effect.gen(function*() {
        const history = yield* ContextBuffer
        const config = yield* history.config
        expect(config).toMatchObject({ maxSlotsPerThread: 3, maxThreads: 7, onFull: "drop-oldest", retainCompleted: 2 })
        expect(Duration.toMillis(config.retainFor)).toBe(600_000)
        expect(yield* (yield* BudgetRegistry).config).toMatchObject({ maxTokensPerThread: 5000, perListener: { oracle: 1200 } })
        // And the pump records into them: the question and its answer, kept after completion.
        const pump = yield* Pump.make(loaded.organism)
        const root = yield* pump.inject("oracle", new Question({ text: "1" }))
        yield* pump.awaitIdle
        expect((yield* history.slots(root)).map((slot) => slot.payloadType)).toEqual(["Question", "Answer"])
        expect(Option.getOrThrow(yield* history.info(root)).completedAt).toBeDefined()
      }).pipe(Effect.scoped, Effect.provide(layerForOrganism(loaded)))
    }).pipe(Effect.provide(XmlEngine.layer)))

  it.effect("a missing file", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(join(dir, "nope.yaml"))
      expect(p!.text).toMatch(/nope\.yaml: no such file/)
    }))

  it.effect("a YAML syntax error names its line", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(write("syntax.yaml", `organism:\n  name: x\nlisteners:\n  - name: [unclosed\n`))
      expect(p!.message).toMatch(/YAML syntax error/)
      expect(p!.line).toBeGreaterThanOrEqual(4)
      expect(p!.text).toMatch(/syntax\.yaml:\d+:\d+: /)
    }))

  it.effect("an unknown key, with a did-you-mean suggestion", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(write("unknown.yaml", valid("  max_concurent_handlers: 4")))
      expect(p).toMatchObject({ line: 3, key: "organism.max_concurent_handlers" })
      expect(p!.message).toMatch(/unknown key "max_concurent_handlers" \(did you mean "max_concurrent_handlers"\?\)/)
      const [q] = yield* problems(write("unknown2.yaml", valid("", "    peer: [x]")))
      expect(q).toMatchObject({ line: 8, key: `listeners[0] "oracle".peer` })
      expect(q!.message).toMatch(/did you mean "peers"/)
    }))

  it.effect("a wrong type says what was expected", () =>
    Effect.gen(function*() {
      const found = yield* problems(write("types.yaml", valid("  max_concurrent_handlers: ten\n  handler_timeout: soon", "    agent: maybe")))
      expect(found.map((p) => [p.line, p.key])).toEqual([
        [3, "organism.max_concurrent_handlers"],
        [4, "organism.handler_timeout"],
        [9, `listeners[0] "oracle".agent`]
      ])
      expect(found[0]!.message).toMatch(/expected a positive integer/)
      expect(found[1]!.message).toMatch(/expected a duration like 500ms, 10s/)
      expect(found[2]!.message).toMatch(/expected true or false/)
    }))

  it.effect("a missing required key is reported at its parent", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(write("missing.yaml", `organism:\n  name: x\nlisteners:\n  - name: lonely\n    payload: ${modules}#Question\n`))
      expect(p).toMatchObject({ key: `listeners[0] "lonely".handler`, line: 4 })
      expect(p!.message).toMatch(/^missing required key "handler"/)
    }))

  it.effect("a module that does not exist", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(write("nomodule.yaml", valid().replace(`${modules}#answer`, "./missing.ts#answer")))
      expect(p).toMatchObject({ line: 7, key: `listeners[0] "oracle".handler` })
      expect(p!.message).toMatch(/module \.\/missing\.ts not found/)
    }))

  it.effect("an export that does not exist lists what the module exports", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(write("noexport.yaml", valid().replace("#Question", "#Questio")))
      expect(p).toMatchObject({ line: 6, key: `listeners[0] "oracle".payload` })
      expect(p!.message).toMatch(/has no export "Questio" \(it exports: Answer, Question, answer, echoText, notAFunction, notAPayload\)/)
    }))

  it.effect("an export that is not a payload type", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(write("notpayload.yaml", valid().replace("#Question", "#notAPayload")))
      expect(p!.message).toMatch(/is not a payload type/)
      const [q] = yield* problems(write("notfunction.yaml", valid().replace("#answer", "#notAFunction")))
      expect(q!.message).toMatch(/is not a function \(it is number\)/)
    }))

  it.effect("cross-references: duplicate names, unknown peers, unknown boot targets", () =>
    Effect.gen(function*() {
      const found = yield* problems(write(
        "refs.yaml",
        valid("", `    peers: [Oracle2]
  - name: oracle
    payload: ${modules}#Answer
    handler: ${modules}#answer
boot:
  - to: nobody
    payload: <Question><Text>hi</Text></Question>
`)
      ))
      const messages = found.map((p) => p.message)
      expect(messages).toContain(`peer "Oracle2" is not a listener of this organism (did you mean "oracle"?)`)
      expect(messages).toContain(`listener "oracle" is already defined at listeners[0]`)
      expect(messages).toContain(`"nobody" is not a listener of this organism`)
    }))

  it.effect("a listener without a handler must be an agent with a prompt (an LLM agent)", () =>
    Effect.gen(function*() {
      const noHandler = (extra: string) => `organism:\n  name: x\nlisteners:\n  - name: bot\n    payload: ${modules}#Question\n${extra}`
      const [p] = yield* problems(write("nohandler.yaml", noHandler("")))
      expect(p!.message).toMatch(/missing required key "handler" \(only an LLM agent/)
      const [q] = yield* problems(write("noprompt.yaml", noHandler("    agent: true\n")))
      expect(q!.message).toMatch(/needs a "prompt"/)
      const agent = noHandler("    agent: true\n    prompt: Be brief.\n    model: gpt-4o\n")
      const [r] = yield* problems(write("nomodels.yaml", agent))
      expect(r).toMatchObject({ line: 4, key: `listeners[0] "bot"` })
      expect(r!.message).toMatch(/LLM agent .* needs the file's llm: section/)
      const { organism } = yield* loadOrganism(
        write("llm.yaml", `${agent}llm:\n  backends:\n    - name: local\n      provider: mock\n      models: [gpt-4o]\n`)
      )
      const bot = organism.listeners.find((l) => l.name === "bot")!
      // The answer's reserve in a context window is the llm section's output cap (4096 by default).
      expect(bot.llm).toEqual({ model: "gpt-4o", maxOutputTokens: undefined, outputRetries: undefined, errorRetries: undefined, context: { reserveOutput: 4096 } })
      expect(bot.prompt).toBe("Be brief.")
      const [m] = yield* problems(write("unserved.yaml", `${agent}llm:\n  backends:\n    - name: local\n      provider: mock\n      models: [gpt-4o-mini, gpt-4]\n`))
      expect(m).toMatchObject({ line: 8, key: `listeners[0] "bot".model` })
      expect(m!.message).toBe(`no backend in llm: serves the model "gpt-4o" (served: gpt-4o-mini, gpt-4) — did you mean "gpt-4"?`)
    }).pipe(Effect.provide(XmlEngine.layer)))

  it.effect("a boot payload that is not well-formed XML", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(write("boot.yaml", valid() + `boot:\n  - to: oracle\n    payload: <Question><Text>hi</Question>\n`))
      expect(p).toMatchObject({ key: "boot[0].payload" })
      expect(p!.message).toMatch(/not well-formed XML/)
    }))

  it.effect("an alias-expansion bomb is refused at the alias, before anything expands it", () =>
    Effect.gen(function*() {
      const levels = [`a0: &a0 [x, x, x, x, x, x, x, x, x, x]`]
      for (let i = 1; i < 12; i++) levels.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]`)
      const started = Date.now()
      const found = yield* problems(write("bomb.yaml", `${valid()}${levels.join("\n")}\n`))
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(found).toHaveLength(1)
      // *a3 (10 × *a2, 11,111 nodes) is the first alias past the limit: line 12, the a4 line.
      expect(found[0]).toMatchObject({ line: 12, key: "" })
      expect(found[0]!.message).toMatch(/the alias \*a3 stands for more than 10000 YAML nodes .*alias-expansion bomb/)
      // A few aliases of a small anchor are fine.
      const shared = `organism:\n  name: qa\nlisteners:\n  - name: oracle\n    payload: &q ${modules}#Question\n    handler: &h ${modules}#answer\n` +
        `  - name: other\n    payload: *q\n    handler: *h\n`
      const reused = yield* loadOrganism(write("aliases.yaml", shared))
      expect(reused.organism.listeners.map((l) => l.name)).toEqual(expect.arrayContaining(["oracle", "other"]))
    }).pipe(Effect.provide(XmlEngine.layer)))

  it.effect("a problem inside an optional section is reported once, without an 'expected undefined' line", () =>
    Effect.gen(function*() {
      const found = yield* problems(write("guards.yaml", valid("  guards:\n    max_chain_depth: -3\n  context:\n    max_threads: many")))
      expect(found.map((p) => p.key)).toEqual(["organism.guards.max_chain_depth", "organism.context.max_threads"])
      expect(found.map((p) => p.message).join("\n")).not.toMatch(/undefined/)
      // A section of the wrong type still says what it should be.
      const [p] = yield* problems(write("guards2.yaml", valid("  guards: 5")))
      expect(p).toMatchObject({ key: "organism.guards", line: 3, message: "expected a mapping (a GuardsConfig section), got 5" })
    }))

  it.effect("concurrency: \"category:\" without a name is refused at its line", () =>
    Effect.gen(function*() {
      const [p] = yield* problems(write("category.yaml", valid("", `    concurrency: "category:"\n`)))
      expect(p).toMatchObject({ line: 8, key: `listeners[0] "oracle".concurrency` })
      expect(p!.message).toMatch(/"category:" needs a name/)
      const ok = yield* loadOrganism(write("category-ok.yaml", valid("", `    concurrency: "category:db"\n`)))
      expect(ok.organism.listeners[0]!.concurrency).toEqual({ _tag: "Category", name: "db" })
    }).pipe(Effect.provide(XmlEngine.layer)))

  it.effect("a bad boot target does not hide the boot payloads' own problems", () =>
    Effect.gen(function*() {
      const found = yield* problems(write("boot2.yaml", valid() + `boot:\n  - to: nobody\n    payload: <Question><Text>hi</Question>\n  - to: oracle\n    payload: <Bad\n`))
      expect(found.map((p) => [p.line, p.key])).toEqual([[9, "boot[0].to"], [10, "boot[0].payload"], [12, "boot[1].payload"]])
      expect(found[1]!.message).toMatch(/not well-formed XML/)
    }))

  it.effect("modules outside the organism's folder load, with a warning naming each module once", () =>
    Effect.gen(function*() {
      const outside = yield* loadOrganism(write("outside.yaml", valid()))
      // One module for the payload and the handler: one warning, at its first mention.
      expect(outside.warnings.map((w) => [w.line, w.key])).toEqual([[6, `listeners[0] "oracle".payload`]])
      expect(outside.warnings[0]!.message).toBe(
        `module ${join(__dirname, "fixtures", "modules.ts")} is outside the organism's folder (${dir}): it runs with the organism`
      )
      // The fixtures' own organism names its modules beside it; a built-in type names no module.
      const inside = yield* loadOrganism(join(__dirname, "fixtures", "echo.yaml"))
      expect(inside.warnings).toEqual([])
    }).pipe(Effect.provide(XmlEngine.layer)))
})
