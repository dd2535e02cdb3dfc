/**
 * `organism init`, as a process. That the project it writes installs and passes its own
 * `npm test` is checked by test/package.test.ts, against the packed tarball.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { organism, output, root } from "./support/processes.js"

vi.setConfig({ testTimeout: 120_000 })

const dir = mkdtempSync(join(tmpdir(), "organism-init-"))
const own = JSON.parse(readFileSync(join(root, "package.json"), "utf8"))

describe("organism init", () => {
  it.live("writes a project named after its directory, pinned to this version, with every file its organism names", () =>
    Effect.promise(async () => {
      const app = join(dir, "nested", "My Organism")
      const r = await organism(["init", app])
      expect(r.code, output(r)).toBe(0)
      expect(readdirSync(app).sort()).toEqual([
        ".gitignore",
        "README.md",
        "handlers.ts",
        "mock-script.yaml",
        "organism.yaml",
        "package.json",
        "payloads.ts",
        "test",
        "tsconfig.json"
      ])
      expect(existsSync(join(app, "test", "organism.test.ts"))).toBe(true)
      const pkg = JSON.parse(readFileSync(join(app, "package.json"), "utf8"))
      expect(pkg).toMatchObject({
        name: "my-organism",
        type: "module",
        dependencies: { "xml-organism": own.version, effect: own.dependencies.effect },
        devDependencies: { tsx: own.dependencies.tsx, typescript: own.devDependencies.typescript }
      })
      expect(readFileSync(join(app, "organism.yaml"), "utf8")).toMatch(/^organism:\n  name: my-organism$/m)
      expect(r.stdout).toMatch(/npm install\n  npm test/)
      const yaml = readFileSync(join(app, "organism.yaml"), "utf8")
      for (const ref of yaml.matchAll(/\.\/([\w-]+\.(?:ts|yaml))/g)) expect(existsSync(join(app, ref[1]!))).toBe(true)
    }))

  it.live("without DIR: the current directory", () =>
    Effect.promise(async () => {
      const here = join(dir, "here")
      mkdirSync(here)
      const r = await organism(["init"], { cwd: here })
      expect(r.code, output(r)).toBe(0)
      expect(JSON.parse(readFileSync(join(here, "package.json"), "utf8")).name).toBe("here")
      expect(r.stdout).not.toMatch(/\bcd /)
    }))

  it.live("refuses to overwrite: lists the files in the way, writes nothing, exit 2", () =>
    Effect.promise(async () => {
      const taken = join(dir, "taken")
      mkdirSync(taken)
      writeFileSync(join(taken, "organism.yaml"), "mine")
      const r = await organism(["init", taken])
      expect(r.code).toBe(2)
      expect(r.stderr).toMatch(/already has organism\.yaml; nothing was written/)
      expect(readdirSync(taken)).toEqual(["organism.yaml"])
      expect(readFileSync(join(taken, "organism.yaml"), "utf8")).toBe("mine")
    }))
})
