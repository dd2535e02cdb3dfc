/** The messages between the pump and its ingress workers (plain data: structured clone). */
import type { IngressConfig } from "../../domain/IngressConfig.js"
import type { Front } from "./IngressFront.js"

export interface WorkerData {
  /** Test hook: the worker exits when a chunk has an input containing this text. */
  readonly exitOn?: string
  /** With `exitOn`: a shared flag, so that only the first worker to meet it exits. */
  readonly exitOnce?: SharedArrayBuffer
}

/** A version's payload schemas: new [id, name, xsd] entries, and each tag's schema id. */
export interface VersionMessage {
  readonly kind: "version"
  readonly version: number
  readonly config: IngressConfig
  readonly schemas: ReadonlyArray<readonly [id: number, name: string, xsd: string]>
  readonly tags: ReadonlyArray<readonly [tag: string, id: number]>
  /** Versions no chunk will name again. */
  readonly retire: ReadonlyArray<number>
}

export interface ChunkMessage {
  readonly kind: "chunk"
  readonly seq: number
  readonly version: number
  readonly inputs: ReadonlyArray<Uint8Array | string>
  readonly known: ReadonlyArray<boolean>
}

export type ToWorker = VersionMessage | ChunkMessage

export type FromWorker =
  | { readonly kind: "ready"; readonly version: number; readonly error: string | undefined }
  | { readonly kind: "done"; readonly seq: number; readonly fronts: ReadonlyArray<Front> }
