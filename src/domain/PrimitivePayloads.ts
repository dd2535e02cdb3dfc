/**
 * Payloads of the orchestration primitives every organism has: `system.sequence` runs steps
 * one after another, `system.buffer` fans items out to a listener and collects the results.
 * Payload-valued fields are free-form XML: the payload element itself, as text.
 */
import { Schema } from "effect"
import * as Payload from "./Payload.js"

export class SequenceStart extends Payload.Class<SequenceStart>("SequenceStart", {
  description: "run steps in order: each step's reply becomes the next step's input"
})({
  /** Listener names, in order. */
  steps: Schema.NonEmptyArray(Schema.String),
  /** The first step's input: one payload element. */
  payload: Payload.Xml,
  /** Where SequenceComplete / SequenceError go instead of back to the caller. */
  returnTo: Schema.optional(Schema.String)
}) {}

export class SequenceComplete extends Payload.Class<SequenceComplete>("SequenceComplete")({
  /** Each step's reply payload element, in step order. */
  results: Schema.Array(Payload.Xml)
}) {}

export class SequenceError extends Payload.Class<SequenceError>("SequenceError")({
  failedStep: Schema.String,
  /** 0-based index of the failed step (-1: the request itself was invalid). */
  index: Schema.Int,
  error: Schema.String
}) {}

export class BufferStart extends Payload.Class<BufferStart>("BufferStart", {
  description: "send each item to a listener in parallel (bounded) and collect the results"
})({
  target: Schema.String,
  /** One payload element per item. */
  items: Schema.Array(Payload.Xml),
  /** false: reply BufferDispatched at once and discard the results. */
  collect: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** Items in flight at once (default 8). */
  maxConcurrent: Schema.optional(Schema.Int.pipe(Schema.positive()))
}) {}

export class BufferItemResult extends Schema.Class<BufferItemResult>("BufferItemResult")({
  index: Schema.Int,
  success: Schema.Boolean,
  /** The reply payload element, when the item succeeded. */
  result: Schema.optional(Payload.Xml),
  error: Schema.optional(Schema.String)
}) {}

export class BufferComplete extends Payload.Class<BufferComplete>("BufferComplete")({
  total: Schema.Int,
  successful: Schema.Int,
  /** In item order. */
  results: Schema.Array(BufferItemResult)
}) {}

export class BufferDispatched extends Payload.Class<BufferDispatched>("BufferDispatched")({
  total: Schema.Int
}) {}

/** One item on its way from `system.buffer` through `system.buffer.item` to the target. */
export class BufferItem extends Payload.Class<BufferItem>("BufferItem")({
  index: Schema.Int,
  target: Schema.String,
  payload: Payload.Xml
}) {}

/** An item's outcome, from `system.buffer.item` back to `system.buffer`. */
export class BufferItemDone extends Payload.Class<BufferItemDone>("BufferItemDone")({
  index: Schema.Int,
  success: Schema.Boolean,
  result: Schema.optional(Payload.Xml),
  error: Schema.optional(Schema.String)
}) {}
