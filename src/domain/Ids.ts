import { Schema } from "effect"

/**
 * A thread id: canonical lowercase UUIDv4 (the only form xml-pipeline accepts as-is).
 * Anything else arriving from outside is replaced by a fresh root thread.
 */
export const ThreadId = Schema.String.pipe(
  Schema.pattern(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/),
  Schema.brand("ThreadId"),
  Schema.annotations({ identifier: "ThreadId", description: "canonical lowercase UUIDv4" })
)
export type ThreadId = typeof ThreadId.Type

const threadIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

export const isThreadId = (s: string): s is ThreadId => s.length === 36 && threadIdPattern.test(s)

/** A fresh thread id. `crypto.randomUUID` yields canonical lowercase v4. */
export const makeThreadId = (): ThreadId => crypto.randomUUID() as ThreadId

/**
 * A listener name. Dots are allowed (`system.boot`, `search.google`): chains are lists of
 * names, never dot-split strings. Names are matched case-insensitively when routing.
 */
export const ListenerName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_.:-]*$/),
  Schema.maxLength(128),
  Schema.brand("ListenerName"),
  Schema.annotations({
    identifier: "ListenerName",
    description: "a letter or _, then letters, digits, '_', '.', ':' or '-' (at most 128)"
  })
)
export type ListenerName = typeof ListenerName.Type

const listenerNamePattern = /^[A-Za-z_][A-Za-z0-9_.:-]*$/

export const isListenerName = (s: string): s is ListenerName =>
  s.length <= 128 && listenerNamePattern.test(s)
