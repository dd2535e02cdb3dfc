/** Limits the ingress stages enforce on every message. */
export interface IngressConfig {
  /** Messages larger than this are rejected before parsing. */
  readonly maxBytes: number
  /** Element nesting limit (libxml2 itself stops at 256). */
  readonly maxDepth: number
  /** Use libxml2's recovering parser when the strict parse fails. */
  readonly recover: boolean
  /**
   * Worker threads that run the libxml2 stages of large inbox chunks (0: none, everything
   * inline; undefined: the default). Read when the pump starts; a reload keeps the pool.
   */
  readonly workers?: number | undefined
  /** Tuning and test hooks of the ingress workers (pipeline/internal/XmlWorkers.ts). */
  readonly workerOptions?: {
    readonly threshold?: number
    readonly testing?: { readonly exitOn?: string; readonly exitOnce?: SharedArrayBuffer }
  } | undefined
}

export const defaultIngressConfig: IngressConfig = {
  maxBytes: 1024 * 1024,
  maxDepth: 64,
  recover: true
}
