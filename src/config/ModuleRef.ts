/**
 * References to user code in configuration: `./module.ts#Export`. Modules are TypeScript,
 * loaded at run time (the `organism` binary registers tsx; vitest transpiles on its own).
 */
import { Effect, Schema } from "effect"
import { createHash } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path"
import { pathToFileURL } from "node:url"
import { isPayloadType, type PayloadType } from "../domain/Payload.js"
import { builtinPayloads } from "../domain/BuiltinPayloads.js"
import { closest } from "./suggest.js"

export class ModuleLoadError extends Schema.TaggedError<ModuleLoadError>()("ModuleLoadError", {
  reference: Schema.String,
  reason: Schema.Literal(
    "bad-reference",
    "module-not-found",
    "import-failed",
    "export-not-found",
    "not-a-payload",
    "not-a-function",
    "payload-module-changed"
  ),
  detail: Schema.String
}) {
  override get message(): string {
    return this.detail
  }
}

export interface ModuleReference {
  readonly path: string
  readonly exportName: string | undefined
}

/** `./m.ts#Greeting` → { path: "./m.ts", exportName: "Greeting" }; `./m.ts` → no export. */
export const parseReference = (reference: string): ModuleReference => {
  const hash = reference.lastIndexOf("#")
  return hash === -1
    ? { path: reference, exportName: undefined }
    : { path: reference.slice(0, hash), exportName: reference.slice(hash + 1) }
}

interface LoadedModule {
  readonly hash: string
  readonly module: Promise<Record<string, unknown>>
  readonly version: number
}

/**
 * Modules by absolute path, with the hash of the source they were loaded from. The first load
 * uses the plain file URL, so modules importing each other share one instance; a reload of
 * a changed file imports it again under a `?v=N` URL (ES modules cannot be unloaded).
 */
const cache = new Map<string, LoadedModule>()

/** The package.json that decides how Node reads `file` (the nearest one above it). */
const nearestPackageJson = (file: string): string | undefined => {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    const candidate = join(dir, "package.json")
    if (existsSync(candidate)) return candidate
    if (dirname(dir) === dir) return undefined
  }
}

/**
 * Where a reference points outside the organism's folder (`../shared/h.ts`, `/opt/x.ts`):
 * the absolute path, else undefined. Built-in payload names point nowhere.
 */
export const outsideFolder = (reference: string, baseDir: string): string | undefined => {
  if (!reference.includes("#") && Object.hasOwn(builtinPayloads, reference)) return undefined
  const { path } = parseReference(reference)
  if (path === "") return undefined
  const absolute = isAbsolute(path) ? path : resolve(baseDir, path)
  const rel = relative(baseDir, absolute)
  return rel.split(sep)[0] === ".." || isAbsolute(rel) ? absolute : undefined
}

const hashOf = (file: string) => createHash("sha1").update(readFileSync(file)).digest("hex")

const resolveModule = (reference: string, baseDir: string) =>
  Effect.gen(function*() {
    const { path } = parseReference(reference)
    if (path === "") {
      return yield* new ModuleLoadError({ reference, reason: "bad-reference", detail: `"${reference}" names no module` })
    }
    const absolute = isAbsolute(path) ? path : resolve(baseDir, path)
    if (!existsSync(absolute)) {
      return yield* new ModuleLoadError({
        reference,
        reason: "module-not-found",
        detail: `module ${path} not found (looked for ${absolute})`
      })
    }
    return { path, absolute }
  })

/** True when the module's file differs from what was loaded (false if never loaded). */
export const moduleChanged = (reference: string, baseDir: string) =>
  Effect.map(resolveModule(reference, baseDir), ({ absolute }) => {
    const loaded = cache.get(absolute)
    return loaded !== undefined && loaded.hash !== hashOf(absolute)
  })

/**
 * Imports a module (once per absolute path), relative to `baseDir`. With `reload`, a file
 * whose source changed since it was loaded is imported again.
 */
export const importModule = (reference: string, baseDir: string, options: { readonly reload?: boolean } = {}) =>
  Effect.gen(function*() {
    const { absolute, path } = yield* resolveModule(reference, baseDir)
    const hash = hashOf(absolute)
    let loaded = cache.get(absolute)
    if (loaded === undefined || (options.reload === true && loaded.hash !== hash)) {
      const version = loaded === undefined ? 0 : loaded.version + 1
      const href = pathToFileURL(absolute).href
      loaded = {
        hash,
        version,
        module: import(version === 0 ? href : `${href}?v=${version}`) as Promise<Record<string, unknown>>
      }
      cache.set(absolute, loaded)
    }
    const promise = loaded.module
    return yield* Effect.tryPromise({
      try: () => promise,
      catch: (e) => {
        cache.delete(absolute)
        const message = e instanceof Error ? e.message : String(e)
        // TypeScript files outside a `"type": "module"` package are compiled as CommonJS,
        // which cannot import the framework: say so instead of leaving Node's riddle
        // ("Cannot require() ES Module … in a cycle").
        if (/require\(\) ES Module|ERR_REQUIRE_ESM|Cannot use import statement/i.test(message)) {
          const manifest = nearestPackageJson(absolute)
          return new ModuleLoadError({
            reference,
            reason: "import-failed",
            detail: `module ${path} is not an ES module: ` +
              (manifest === undefined
                ? `no package.json above it says "type": "module"`
                : `its package (${manifest}) does not say "type": "module"`) +
              `, so it is compiled as CommonJS, which cannot import the framework. ` +
              `Add "type": "module" to that package.json, or name the file .mts`
          })
        }
        return new ModuleLoadError({
          reference,
          reason: "import-failed",
          detail: `module ${path} failed to load: ${message}`
        })
      }
    })
  })

const exportOf = (reference: string, baseDir: string, options: { readonly reload?: boolean } = {}) =>
  Effect.gen(function*() {
    const { exportName, path } = parseReference(reference)
    if (exportName === undefined || exportName === "") {
      return yield* new ModuleLoadError({
        reference,
        reason: "bad-reference",
        detail: `"${reference}" must name an export: ${path}#ExportName`
      })
    }
    const module = yield* importModule(reference, baseDir, options)
    if (!(exportName in module)) {
      const available = Object.keys(module).sort()
      const near = closest(exportName, available)
      return yield* new ModuleLoadError({
        reference,
        reason: "export-not-found",
        detail: `module ${path} has no export "${exportName}"` +
          (available.length > 0 ? ` (it exports: ${available.join(", ")})` : "") +
          (near !== undefined ? ` — did you mean "${near}"?` : "")
      })
    }
    return module[exportName]
  })

/**
 * Loads `path#Export` and checks that it is a payload class (`Payload.Class`). A bare name
 * (`TextInput`) is one of the framework's own payload types.
 */
export const loadPayloadType = (reference: string, baseDir: string) =>
  Effect.flatMap(
    !reference.includes("#") && Object.hasOwn(builtinPayloads, reference)
      ? Effect.succeed<unknown>(builtinPayloads[reference])
      : exportOf(reference, baseDir),
    (value) =>
    isPayloadType(value)
      ? Effect.succeed(value)
      : Effect.fail(
        new ModuleLoadError({
          reference,
          reason: "not-a-payload",
          detail: `${reference} is not a payload type (declare it with Payload.Class<T>("Tag")({...}))`
        })
      )
  )

/** Loads `path#export` and checks that it is a function (re-imported if changed, with `reload`). */
export const loadFunction = (reference: string, baseDir: string, options: { readonly reload?: boolean } = {}) =>
  Effect.flatMap(exportOf(reference, baseDir, options), (value) =>
    typeof value === "function"
      ? Effect.succeed(value as (...args: Array<any>) => unknown)
      : Effect.fail(
        new ModuleLoadError({
          reference,
          reason: "not-a-function",
          detail: `${reference} is not a function (it is ${value === null ? "null" : typeof value})`
        })
      ))

/** Every payload type a module exports (for `inspect --payloads ./module.ts`). */
export const loadPayloadTypes = (reference: string, baseDir: string) =>
  Effect.flatMap(importModule(reference, baseDir), (module) => {
    const found = Object.values(module).filter(isPayloadType) as Array<PayloadType>
    return found.length > 0
      ? Effect.succeed(found)
      : Effect.fail(
        new ModuleLoadError({ reference, reason: "not-a-payload", detail: `module ${reference} exports no payload types` })
      )
  })
