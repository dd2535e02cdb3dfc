/**
 * The messages between the Shards service (the main thread) and a shard's worker thread.
 * Structured clone carries them: plain data only — an event loses its prototype on the way
 * and gets it back on the main thread (Shards.ts).
 */
import type { EventBatch } from "./internal/EventBatch.js"

/** Where a shard gets its organism (the same in every shard). */
export type ShardSource =
  | {
    /** An ES module: a file path or a URL (`import.meta.resolve`, `new URL(…, import.meta.url)`). */
    readonly module: string | URL
    /**
     * The export to use (default `default`): an `Organism` (needing no service beyond the
     * pump's embedded ones), or a function from `args` to one (or to a Promise of one).
     */
    readonly export?: string
    /** Structured-cloneable arguments for an exported function. */
    readonly args?: ReadonlyArray<unknown>
  }
  | {
    /** An organism file, loaded in every shard as `organism run` loads it (its `llm:` section included). */
    readonly yaml: string
  }

/** What every worker is started with. */
export interface ShardInit {
  readonly index: number
  /** The source, with a module turned into an absolute URL string. */
  readonly source: { readonly module: string; readonly export: string; readonly args: ReadonlyArray<unknown> } | { readonly yaml: string }
}

export type ToShard =
  | { readonly k: "inject"; readonly id: number; readonly to: string; readonly tag: string; readonly inner: string; readonly from: string | undefined }
  | { readonly k: "idle"; readonly id: number }
  | { readonly k: "counters"; readonly id: number }
  | { readonly k: "deadLetters"; readonly id: number }
  | { readonly k: "threads"; readonly id: number }
  | { readonly k: "cancel"; readonly id: number; readonly thread: string; readonly by: string | undefined }
  | { readonly k: "drain"; readonly id: number; readonly deadlineMs: number }
  | { readonly k: "call"; readonly id: number; readonly name: string; readonly args: ReadonlyArray<unknown> }
  | { readonly k: "watch"; readonly id: number; readonly on: boolean }
  | { readonly k: "stop"; readonly id: number; readonly deadlineMs: number }

/** A failure as data: its tag and fields (a typed error is rebuilt from them), or a message. */
export interface WireError {
  readonly _tag: string
  readonly fields: Record<string, unknown>
  readonly message: string
}

export type FromShard =
  | { readonly k: "ready"; readonly name: string; readonly wire: "native" | "xmlify"; readonly listeners: ReadonlyArray<string> }
  | { readonly k: "startFailed"; readonly reason: string }
  | { readonly k: "done"; readonly id: number; readonly value: unknown }
  | { readonly k: "error"; readonly id: number; readonly error: WireError }
  | { readonly k: "events"; readonly batch: EventBatch }
