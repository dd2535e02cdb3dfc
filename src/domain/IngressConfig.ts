/** Limits the ingress stages enforce on every message. */
export interface IngressConfig {
  /** Messages larger than this are rejected before parsing. */
  readonly maxBytes: number
  /** Element nesting limit (libxml2 itself stops at 256). */
  readonly maxDepth: number
  /** Use libxml2's recovering parser when the strict parse fails. */
  readonly recover: boolean
}

export const defaultIngressConfig: IngressConfig = {
  maxBytes: 1024 * 1024,
  maxDepth: 64,
  recover: true
}
