import { Schema } from "effect"

/** One message from libxml2 or a pipeline stage, with its position when known. */
export class Diagnostic extends Schema.Class<Diagnostic>("Diagnostic")({
  message: Schema.String,
  line: Schema.optional(Schema.Number),
  column: Schema.optional(Schema.Number),
  /** XPath of the offending node, as libxml2 reports it for validation errors. */
  path: Schema.optional(Schema.String)
}) {
  override toString(): string {
    const pos = this.line !== undefined && this.line > 0
      ? `${this.line}:${this.column ?? 0} `
      : ""
    const where = this.path !== undefined ? ` (at ${this.path})` : ""
    return `${pos}${this.message}${where}`
  }
}

export const diagnostic = (message: string): Diagnostic => new Diagnostic({ message })
