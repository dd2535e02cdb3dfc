import { Duration, Equal } from "effect"
import type { Listener } from "../domain/Listener.js"

export interface ListenerDiff {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly updated: ReadonlyArray<string>
  /** For each updated listener: `name: field, field…`. */
  readonly details: ReadonlyArray<string>
}

const sameList = <A>(a: ReadonlyArray<A> | undefined, b: ReadonlyArray<A> | undefined) =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]))

/** What differs between two versions of a listener, by field name. */
export const changedFields = (a: Listener, b: Listener): Array<string> => {
  const changed: Array<string> = []
  if (a.payload !== b.payload) changed.push("payload")
  if (!sameList(a.accepts, b.accepts) || a.acceptsAny !== b.acceptsAny) changed.push("accepts")
  // By identity: equal source text does not mean equal behaviour (closures), and every
  // function of a re-imported module is new code, so each is reported as updated.
  if (a.handler !== b.handler) changed.push("handler")
  if (a.onSystem !== b.onSystem) changed.push("on_system")
  if (a.description !== b.description) changed.push("description")
  if (a.agent !== b.agent) changed.push("agent")
  if (!sameList(a.peers, b.peers)) changed.push("peers")
  if (a.broadcast !== b.broadcast) changed.push("broadcast")
  const ta = a.timeout === undefined ? undefined : Duration.toMillis(a.timeout)
  const tb = b.timeout === undefined ? undefined : Duration.toMillis(b.timeout)
  if (ta !== tb) changed.push("timeout")
  if (a.retry !== b.retry) changed.push("retry")
  if (!Equal.equals(JSON.stringify(a.concurrency), JSON.stringify(b.concurrency))) changed.push("concurrency")
  if (a.maxConcurrent !== b.maxConcurrent) changed.push("max_concurrent")
  if (a.prompt !== b.prompt) changed.push("prompt")
  if (a.approval !== b.approval) changed.push("approval")
  return changed
}

/** Added, removed and updated listeners between two organism versions (names compared case-insensitively). */
export const diffListeners = (before: ReadonlyArray<Listener>, after: ReadonlyArray<Listener>): ListenerDiff => {
  const old = new Map(before.map((l) => [l.name.toLowerCase(), l]))
  const next = new Map(after.map((l) => [l.name.toLowerCase(), l]))
  const added: Array<string> = []
  const removed: Array<string> = []
  const updated: Array<string> = []
  const details: Array<string> = []
  for (const [key, l] of next) {
    const was = old.get(key)
    if (was === undefined) added.push(l.name)
    else {
      const fields = changedFields(was, l)
      if (fields.length > 0) {
        updated.push(l.name)
        details.push(`${l.name}: ${fields.join(", ")}`)
      }
    }
  }
  for (const [key, l] of old) if (!next.has(key)) removed.push(l.name)
  return { added, removed, updated, details }
}
