/**
 * References to user code in configuration: `./module.ts#Export`. Modules are TypeScript,
 * loaded at run time (the `organism` binary registers tsx; vitest transpiles on its own).
 */
import { Effect, Schema } from "effect"
import { existsSync } from "node:fs"
import { isAbsolute, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { isPayloadType, type PayloadType } from "../domain/Payload.js"
import { builtinPayloads } from "./builtins.js"

export class ModuleLoadError extends Schema.TaggedError<ModuleLoadError>()("ModuleLoadError", {
  reference: Schema.String,
  reason: Schema.Literal("bad-reference", "module-not-found", "import-failed", "export-not-found", "not-a-payload", "not-a-function"),
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

const cache = new Map<string, Promise<Record<string, unknown>>>()

/** Imports a module (once per absolute path), relative to `baseDir`. */
export const importModule = (reference: string, baseDir: string) =>
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
    let loading = cache.get(absolute)
    if (loading === undefined) {
      loading = import(pathToFileURL(absolute).href) as Promise<Record<string, unknown>>
      cache.set(absolute, loading)
    }
    const promise = loading
    return yield* Effect.tryPromise({
      try: () => promise,
      catch: (e) => {
        cache.delete(absolute)
        return new ModuleLoadError({
          reference,
          reason: "import-failed",
          detail: `module ${path} failed to load: ${e instanceof Error ? e.message : String(e)}`
        })
      }
    })
  })

const exportOf = (reference: string, baseDir: string) =>
  Effect.gen(function*() {
    const { exportName, path } = parseReference(reference)
    if (exportName === undefined || exportName === "") {
      return yield* new ModuleLoadError({
        reference,
        reason: "bad-reference",
        detail: `"${reference}" must name an export: ${path}#ExportName`
      })
    }
    const module = yield* importModule(reference, baseDir)
    if (!(exportName in module)) {
      const available = Object.keys(module).sort()
      return yield* new ModuleLoadError({
        reference,
        reason: "export-not-found",
        detail: `module ${path} has no export "${exportName}"` +
          (available.length > 0 ? ` (it exports: ${available.join(", ")})` : "")
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

/** Loads `path#export` and checks that it is a function. */
export const loadFunction = (reference: string, baseDir: string) =>
  Effect.flatMap(exportOf(reference, baseDir), (value) =>
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
