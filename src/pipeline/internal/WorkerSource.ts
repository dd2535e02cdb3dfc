/**
 * How a `node:worker_threads` thread of this package is started: its entry module is the
 * compiled `.js` beside the module that starts it, or — in a checkout running from the
 * TypeScript sources (tests, benchmarks, the CLI from source) — the `.ts` source, loaded
 * through tsx's loader registered inside the worker before the entry is imported. Used by the
 * ingress workers and by the shards.
 */
import { existsSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"

/** tsx's ES module API (its CommonJS build cannot register hooks inside a worker). */
const tsxApi = (from: string): string => {
  const manifest = createRequire(fileURLToPath(from)).resolve("tsx/package.json")
  const exports = JSON.parse(readFileSync(manifest, "utf8")).exports["./esm/api"]
  return new URL(exports.import.default ?? exports.import, pathToFileURL(manifest)).href
}

/**
 * The code of a worker (for `new Worker(code, { eval: true })`) whose entry is `name` (without
 * extension) next to `from` (the starting module's `import.meta.url`).
 */
export const workerSource = (from: string, name: string): string => {
  const fromSource = from.endsWith(".ts")
  const entry = new URL(`./${name}${fromSource ? ".ts" : ".js"}`, from)
  if (!fromSource) return `import(${JSON.stringify(entry.href)})`
  if (!existsSync(fileURLToPath(entry))) throw new Error(`worker entry missing: ${entry.href}`)
  return `import(${JSON.stringify(tsxApi(from))}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}) })`
}
