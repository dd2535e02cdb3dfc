import { type Diagnostic, diagnostic } from "../../domain/Diagnostic.js"
import { isThreadId, makeThreadId, type ThreadId } from "../../domain/Ids.js"

export interface AssignedThread {
  readonly thread: ThreadId
  /** True when the wire value was replaced by a fresh root thread. */
  readonly replaced: boolean
  readonly diagnostics: ReadonlyArray<Diagnostic>
}

/**
 * Assign thread: a canonical lowercase UUIDv4 is kept; anything else (uppercase, braces,
 * other versions, free text, forged chains) is replaced by a fresh root thread, and the
 * replacement is reported. Never fails: a bad thread id is not a reason to lose a message.
 */
const noDiagnostics: ReadonlyArray<Diagnostic> = Object.freeze([])

export const assignThread = (wire: string): AssignedThread =>
  isThreadId(wire)
    ? { thread: wire, replaced: false, diagnostics: noDiagnostics }
    : {
      thread: makeThreadId(),
      replaced: true,
      diagnostics: [
        diagnostic(
          `thread id ${JSON.stringify(wire.length > 80 ? `${wire.slice(0, 80)}…` : wire)} is not a canonical ` +
            `lowercase UUIDv4; replaced with a new root thread`
        )
      ]
    }
