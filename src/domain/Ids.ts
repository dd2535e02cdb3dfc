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

/** `c` is a lowercase hex digit. */
const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66)

/**
 * The pattern of `ThreadId`, checked character by character: every message's thread is
 * checked, and a RegExp run cost several times this loop.
 */
export const isThreadId = (s: string): s is ThreadId => {
  if (s.length !== 36) return false
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i)
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 0x2d /* - */) return false
    } else if (i === 14) {
      if (c !== 0x34 /* 4 */) return false
    } else if (i === 19) {
      if (c !== 0x38 && c !== 0x39 && c !== 0x61 && c !== 0x62 /* 8 9 a b */) return false
    } else if (!isHex(c)) return false
  }
  return true
}

// Thread ids are Map keys that live as long as their conversation, so they should be flat
// 36-byte strings. crypto.randomUUID() returns a rope of eight concatenated fragments (about
// 500 bytes per id while it is kept), and an id read from an envelope is a view that keeps
// the whole envelope text alive. Ids are therefore written, or copied, in one piece.
const HEX = new TextEncoder().encode("0123456789abcdef")
const random = new Uint8Array(16 * 256)
let used = random.length
const idBytes = new Uint8Array(36)
const idEncoder = new TextEncoder()
const idDecoder = new TextDecoder()

/** A fresh thread id: a canonical lowercase UUIDv4 from the CSPRNG, as a flat string. */
export const makeThreadId = (): ThreadId => {
  if (used === random.length) {
    crypto.getRandomValues(random)
    used = 0
  }
  let o = 0
  for (let i = 0; i < 16; i++) {
    let b = random[used + i]!
    if (i === 6) b = (b & 0x0f) | 0x40 // version 4
    else if (i === 8) b = (b & 0x3f) | 0x80 // RFC 4122 variant
    if (i === 4 || i === 6 || i === 8 || i === 10) idBytes[o++] = 0x2d
    idBytes[o++] = HEX[b >> 4]!
    idBytes[o++] = HEX[b & 15]!
  }
  used += 16
  return idDecoder.decode(idBytes) as ThreadId
}

/** The same id as a string of its own (not a view into the envelope it was read from). */
export const ownThreadId = (id: ThreadId): ThreadId => {
  idEncoder.encodeInto(id, idBytes)
  return idDecoder.decode(idBytes) as ThreadId
}

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
