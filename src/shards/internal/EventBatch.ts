/**
 * Events on their way from a shard to the main thread, packed for the crossing.
 *
 * Structured clone of the events themselves writes every property name of every object and
 * reads them back one by one. A pump's events come in a few fixed shapes, so a batch is sent
 * as each shape's property names once, then every event's values in its shape's order, in
 * one array. Measured on pingpong's events as a shard makes them: ≈ 0.6–0.8 µs an event to
 * write on the shard's thread (where the cost slows the pump) against ≈ 1.1–1.5 for the
 * events themselves, and ≈ 0.6 µs to read on the main thread instead of ≈ 1.7.
 *
 * Strings are not deduplicated, though the events of a hop share most of theirs: looking a
 * fresh string up in a Map hashes it, which cost the shard's thread more than copying it.
 * The main thread rebuilds each event on its class's prototype, property by property in the
 * order the shard's event had, with `_tag` last as the pump writes it.
 */
import type { PumpEvent } from "../../domain/PumpEvent.js"

export interface EventBatch {
  /** Property names (without `_tag`) by shape number. */
  readonly shapes: ReadonlyArray<ReadonlyArray<string>>
  /** Tag of each shape. */
  readonly tags: ReadonlyArray<string>
  /** Per event: its shape number. */
  readonly events: ReadonlyArray<number>
  /** Every event's values, in its shape's order, one event after the other. */
  readonly values: ReadonlyArray<unknown>
}

/** Whether `e`'s own enumerable properties but `_tag` are `keys`, in that order (no allocation). */
const hasShape = (e: Record<string, unknown>, keys: ReadonlyArray<string>): boolean => {
  let i = 0
  for (const k in e) {
    if (k === "_tag") continue
    if (keys[i++] !== k) return false
  }
  return i === keys.length
}

export const encodeEvents = (events: ReadonlyArray<PumpEvent>): EventBatch => {
  // Events of one tag normally share one shape (the pump builds them with fixed-shape
  // constructors); one that differs (an optional field set) gets a shape of its own.
  const shapesOfTag = new Map<string, Array<number>>()
  const shapes: Array<ReadonlyArray<string>> = []
  const tags: Array<string> = []
  const shapeOfEvent: Array<number> = []
  const values: Array<unknown> = []
  for (const event of events) {
    const e = event as unknown as Record<string, unknown>
    const tag = e._tag as string
    let candidates = shapesOfTag.get(tag)
    if (candidates === undefined) shapesOfTag.set(tag, candidates = [])
    let shape = -1
    for (const c of candidates) {
      if (hasShape(e, shapes[c]!)) {
        shape = c
        break
      }
    }
    if (shape === -1) {
      shape = shapes.length
      shapes.push(Object.keys(e).filter((k) => k !== "_tag"))
      tags.push(tag)
      candidates.push(shape)
    }
    shapeOfEvent.push(shape)
    const keys = shapes[shape]!
    for (let j = 0; j < keys.length; j++) values.push(e[keys[j]!])
  }
  return { shapes, tags, events: shapeOfEvent, values }
}

/** The events of a batch, each on the prototype `prototypes` gives for its tag (plain objects for an unknown tag). */
export const decodeEvents = (batch: EventBatch, prototypes: ReadonlyMap<string, object>): Array<PumpEvent> => {
  const { shapes, tags, values } = batch
  const out: Array<PumpEvent> = new Array(batch.events.length)
  let v = 0
  for (let i = 0; i < batch.events.length; i++) {
    const shape = batch.events[i]!
    const keys = shapes[shape]!
    const tag = tags[shape]!
    const e: Record<string, unknown> = Object.create(prototypes.get(tag) ?? Object.prototype)
    for (let j = 0; j < keys.length; j++) e[keys[j]!] = values[v++]
    e._tag = tag
    out[i] = e as unknown as PumpEvent
  }
  return out
}
