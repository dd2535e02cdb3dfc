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
  | { readonly kind: "done"; readonly seq: number; readonly fronts: PackedFronts }

/**
 * A chunk's results as they cross back. Most messages pass with nothing to say (the text is
 * the input, no notes, a valid payload): those are one number each, the id of the payload
 * schema checked (≥ -1); the others are -2 with their result in `others`, in order.
 */
export interface PackedFronts {
  readonly plain: Int32Array
  readonly others: ReadonlyArray<Front>
}

const OTHER = -2
const none: ReadonlyArray<never> = Object.freeze([])

export const packFronts = (fronts: ReadonlyArray<Front>): PackedFronts => {
  const plain = new Int32Array(fronts.length)
  const others: Array<Front> = []
  for (let i = 0; i < fronts.length; i++) {
    const f = fronts[i]!
    if (f.ok && f.text === undefined && !f.repaired && f.diagnostics.length === 0 && f.payloadErrors.length === 0) {
      plain[i] = f.schema
    } else {
      plain[i] = OTHER
      others.push(f)
    }
  }
  return { plain, others }
}

export const unpackFronts = ({ others, plain }: PackedFronts): Array<Front> => {
  const fronts = new Array<Front>(plain.length)
  let next = 0
  for (let i = 0; i < plain.length; i++) {
    const code = plain[i]!
    fronts[i] = code === OTHER
      ? others[next++]!
      : { ok: true, text: undefined, repaired: false, diagnostics: none, schema: code, payloadErrors: none }
  }
  return fronts
}
