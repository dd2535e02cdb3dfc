/**
 * The published package, as a user gets it: `npm pack`, then a fresh project made by
 * `organism init` with the tarball installed offline (dependencies from the local npm cache).
 * There: the project's own `npm test` (its `tsc --strict` against the package's .d.ts, then
 * its test, which runs the organism and its mock-model agent), `npx organism run` on its
 * YAML organism, and a plain-Node ESM program composing the Layers.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { offlineEnv, writeOfflineLockfile } from "./support/offlineInstall.js"
import { exec, organism, output, root } from "./support/processes.js"

vi.setConfig({ testTimeout: 300_000 })

const npm = (args: ReadonlyArray<string>, cwd: string) => exec("npm", args, { cwd, env: offlineEnv() })

describe("the npm package", () => {
  it.live("packs compiled ES modules, declarations and maps, and installs and runs in a new project offline", () => Effect.promise(async () => {
    const dir = mkdtempSync(join(tmpdir(), "organism-pack-"))
    try {
      // `npm pack` builds dist/ first (the prepare script).
      const packed = await npm(["pack", "--json", "--pack-destination", dir], root)
      expect(packed.code, output(packed)).toBe(0)
      const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("["))) as Array<{
        filename: string
        files: Array<{ path: string }>
      }>
      const files = info!.files.map((f) => f.path)
      expect(files).toEqual(expect.arrayContaining([
        "package.json",
        "README.md",
        "bin/organism.js",
        "dist/index.js",
        "dist/index.d.ts",
        "dist/index.js.map",
        "dist/main.js",
        "dist/server/Server.js",
        "dashboard/index.html",
        "dashboard/app.js",
        "dashboard/style.css",
        "templates/init/organism.yaml",
        "templates/init/package.json"
      ]))
      expect(files.filter((f) => !/^(dist|templates\/init|dashboard)\/|^(bin\/organism\.js|package\.json|README\.md)$/.test(f))).toEqual([])
      expect(files.filter((f) => f.endsWith(".tsbuildinfo"))).toEqual([])
      const tarball = join(dir, info!.filename)

      const app = join(dir, "app")
      const init = await organism(["init", app])
      expect(init.code, output(init)).toBe(0)
      const scaffold = JSON.parse(readFileSync(join(app, "package.json"), "utf8"))
      expect(scaffold.type).toBe("module")
      expect(scaffold.dependencies["xml-organism"]).toBe(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version)

      // More of the API under the project's own `tsc --strict` (default options otherwise, so
      // exactOptionalPropertyTypes is off): optional settings given as undefined, services,
      // layers, errors — the declarations must not carry the package's compiler settings.
      writeFileSync(join(app, "consumer.ts"), `
import { Effect, Layer, Schema } from "effect"
import {
  BudgetRegistry, ContextBuffer, Events, layerForOrganism, Listener, loadOrganism, Organism, OrganismConfigError,
  Payload, Pump, Reply, TextOutput, XmlEngine
} from "xml-organism"

export class Order extends Payload.Class<Order>("Order", { description: "an order" })({
  item: Schema.String,
  note: Schema.optional(Schema.String)
}) {}

export const organism = Organism.make({
  name: "shop",
  settings: { maxConcurrentHandlers: 4, handlerTimeout: undefined, guards: { maxChainDepth: 5 } },
  listeners: [
    Listener.make({
      name: "till",
      payload: Order,
      description: undefined,
      handler: (order: Order) => Reply.respond(new TextOutput({ text: order.item }))
    })
  ]
})

export const services: Layer.Layer<Pump | Events | BudgetRegistry | ContextBuffer, unknown> = Pump.layer(organism).pipe(
  Layer.provideMerge(Pump.layerServices)
)

export const fromFile = loadOrganism("organism.yaml").pipe(
  Effect.flatMap((loaded) => Effect.scoped(Effect.flatMap(Pump.make(loaded.organism), (pump) => pump.awaitIdle)).pipe(
    Effect.provide(layerForOrganism(loaded, { env: undefined }))
  )),
  Effect.catchTag("OrganismConfigError", (e: OrganismConfigError) => Effect.succeed(e.problems.length)),
  Effect.provide(XmlEngine.layer)
)
`)

      writeOfflineLockfile(root, app, tarball)
      const installed = await npm(["install", "--offline", "--no-audit", "--no-fund"], app)
      expect(installed.code, output(installed)).toBe(0)
      // The installed package is the compiled one: no TypeScript sources to fall back on.
      expect(existsSync(join(app, "node_modules/xml-organism/dist/main.js"))).toBe(true)
      expect(existsSync(join(app, "node_modules/xml-organism/src"))).toBe(false)

      // The scaffold's own test: tsc --strict (default options otherwise), then node --test.
      const tested = await npm(["test"], app)
      expect(tested.code, output(tested)).toBe(0)
      expect(tested.stdout).toMatch(/# pass 2\b/)
      expect(tested.stdout).toMatch(/# fail 0\b/)

      const run = await exec("npx", ["organism", "run", "organism.yaml", "--until-idle", "--strict"], { cwd: app, env: offlineEnv() })
      expect(run.code, output(run)).toBe(0)
      expect(run.stdout).toMatch(/assistant → greeter: <Greeting><Name>Ada<\/Name><\/Greeting>/)
      expect(run.stdout).toMatch(/greeter → assistant: <GreetingReply><Message>Hello, Ada!<\/Message><\/GreetingReply>/)
      expect(run.stdout).toMatch(/assistant ⇐ The greeter says hello to Ada/)

      // The installed command's own templates.
      const again = await exec("npx", ["organism", "init", "second"], { cwd: app, env: offlineEnv() })
      expect(again.code, output(again)).toBe(0)
      expect(JSON.parse(readFileSync(join(app, "second", "package.json"), "utf8")).name).toBe("second")

      // Plain Node, no TypeScript anywhere: a program composing the Layers itself.
      writeFileSync(join(app, "plain.js"), `
import { Effect, Schema } from "effect"
import { Listener, Organism, Payload, Pump, Reply } from "xml-organism"
class Ping extends Payload.Class("Ping")({ n: Schema.Number }) {}
class Pong extends Payload.Class("Pong")({ n: Schema.Number }) {}
const organism = Organism.make({
  name: "doubler",
  listeners: [Listener.make({ name: "double", payload: Ping, handler: (p) => Reply.respond(new Pong({ n: p.n * 2 })) })]
})
const program = Effect.gen(function*() {
  const pump = yield* Pump
  const pong = yield* pump.request("double", new Ping({ n: 21 }))
  yield* pump.awaitIdle
  return { n: pong.n, delivered: pump.counters().delivered }
})
const result = await program.pipe(Effect.provide(Pump.layer(organism)), Effect.provide(Pump.layerServices), Effect.runPromise)
console.log(JSON.stringify(result))
`)
      const plain = await exec(process.execPath, ["plain.js"], { cwd: app })
      expect(plain.code, output(plain)).toBe(0)
      expect(JSON.parse(plain.stdout)).toMatchObject({ n: 42 })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }))
})
