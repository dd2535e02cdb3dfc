/**
 * The layers of src/ form a DAG (DESIGN.md §6) and `npm run lint:deps` (part of `npm test`)
 * keeps it so. These tests run that very command — dependency-cruiser with the repository's
 * .dependency-cruiser.cjs — on small fixture trees, to show that it fails on what it must
 * refuse and passes a clean tree; and they check the one place where a domain type stands
 * for a service (the LlmRouter an LLM agent requires).
 */
import { Command, FileSystem, Path } from "@effect/platform"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream, String as Str } from "effect"
import type { LlmRouterRequirement } from "../src/domain/Llm.js"
import { BudgetRegistry } from "../src/services/BudgetRegistry.js"
import { LlmRouter } from "../src/services/LlmRouter.js"

const repo = new URL("..", import.meta.url).pathname

/** Runs `depcruise src` with the repository's config in a fixture tree; exit code and output. */
const cruise = (files: Readonly<Record<string, string>>) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const dir = yield* fs.makeTempDirectoryScoped({ prefix: "layers-" })
    yield* fs.writeFileString(path.join(dir, "tsconfig.json"), JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext" } }))
    for (const [file, text] of Object.entries(files)) {
      yield* fs.makeDirectory(path.dirname(path.join(dir, file)), { recursive: true })
      yield* fs.writeFileString(path.join(dir, file), text)
    }
    const process = yield* Command.make(
      path.join(repo, "node_modules/.bin/depcruise"),
      "src",
      "--config",
      path.join(repo, ".dependency-cruiser.cjs"),
      "--output-type",
      "err"
    ).pipe(Command.workingDirectory(dir), Command.start)
    const [output, exitCode] = yield* Effect.all(
      [Stream.mkString(Stream.decodeText(Stream.merge(process.stdout, process.stderr))), process.exitCode],
      { concurrency: "unbounded" }
    )
    return { exitCode, output: Str.trim(output) }
  })

const run = Effect.provide(NodeContext.layer)

describe("layers: the import check (npm run lint:deps)", () => {
  it.scopedLive("passes a tree whose imports go down the layers", () =>
    run(Effect.gen(function*() {
      const result = yield* cruise({
        "src/domain/Ids.ts": `import { Schema } from "effect"\nexport const Id = Schema.String\n`,
        "src/services/Registry.ts": `import { Id } from "../domain/Ids.js"\nexport const registry = Id\n`,
        "src/pipeline/Pump.ts": `import { registry } from "../services/Registry.js"\nexport const pump = registry\n`,
        "src/config/load.ts": `import { pump } from "../pipeline/Pump.js"\nexport const load = pump\n`
      })
      expect(result.output).toContain("no dependency violations found (5 modules, 4 dependencies cruised)")
      expect(result.exitCode).toBe(0)
    })))

  it.scopedLive("fails on an import cycle", () =>
    run(Effect.gen(function*() {
      const result = yield* cruise({
        "src/pipeline/a.ts": `import { b } from "./b.js"\nexport const a = () => b\n`,
        "src/pipeline/b.ts": `import { a } from "./a.js"\nexport const b = () => a\n`
      })
      expect(result.exitCode).not.toBe(0)
      expect(result.output).toContain("no-circular")
      expect(result.output).toContain("src/pipeline/a.ts")
    })))

  it.scopedLive("fails on a domain module importing a service, even for a type alone", () =>
    run(Effect.gen(function*() {
      const result = yield* cruise({
        "src/services/Router.ts": `export interface Router { readonly name: string }\n`,
        "src/domain/Listener.ts": `import type { Router } from "../services/Router.js"\nexport type Needs = Router\n`
      })
      expect(result.exitCode).not.toBe(0)
      expect(result.output).toContain("domain-imports-only-effect: src/domain/Listener.ts → src/services/Router.ts")
    })))

  it.scopedLive("fails on a domain module importing a package other than effect", () =>
    run(Effect.gen(function*() {
      const result = yield* cruise({
        "src/domain/Text.ts": `import { parse } from "yaml"\nexport const read = parse\n`
      })
      expect(result.exitCode).not.toBe(0)
      expect(result.output).toContain("domain-imports-only-effect: src/domain/Text.ts")
    })))

  it.scopedLive("fails on an upward import: the pump importing config, llm importing a service", () =>
    run(Effect.gen(function*() {
      const result = yield* cruise({
        "src/config/builtins.ts": `export const builtins = {}\n`,
        "src/pipeline/Pump.ts": `import { builtins } from "../config/builtins.js"\nexport const pump = builtins\n`,
        "src/services/Router.ts": `export const router = 1\n`,
        "src/llm/Ledger.ts": `import { router } from "../services/Router.js"\nexport const ledger = router\n`
      })
      expect(result.exitCode).not.toBe(0)
      expect(result.output).toContain("pipeline-below-config: src/pipeline/Pump.ts → src/config/builtins.ts")
      expect(result.output).toContain("llm-below-services: src/llm/Ledger.ts → src/services/Router.ts")
    })))
})

describe("layers: the LlmRouter as a domain requirement", () => {
  it.effect("the domain's LlmRouterRequirement is the service's tag type, both ways", () =>
    Effect.gen(function*() {
      // Compile-time: each is assignable to the other (tsc runs on the tests).
      const asDomain: LlmRouterRequirement = null as unknown as LlmRouter
      const asService: LlmRouter = null as unknown as LlmRouterRequirement
      void asDomain
      void asService
      // An effect needing the domain's requirement is satisfied by the service's layer.
      const needsRouter: Effect.Effect<number, never, LlmRouterRequirement> = Effect.map(LlmRouter, (r) => r.backends().length)
      const backends = yield* needsRouter.pipe(
        Effect.provide(Layer.merge(LlmRouter.layerNone("no models here"), BudgetRegistry.layerMemory()))
      )
      expect(backends).toBe(0)
    }))
})
