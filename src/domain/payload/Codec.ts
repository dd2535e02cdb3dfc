import { Data } from "effect"
import type { CanonicalElement } from "../xml/CanonicalTree.js"
import { hasElementChildren, textOf } from "../xml/CanonicalTree.js"
import { describeChar, escapeText, findInvalidXmlChar } from "../xml/escape.js"
import type { Field, Shape, Struct } from "./Shape.js"
import { enumLexical } from "./Xsd.js"

/** A value that cannot be written as XML (a control character, a non-integer integer…). */
export class PayloadEncodeError extends Data.TaggedError("PayloadEncodeError")<{
  readonly payload: string
  readonly field: string
  readonly reason: string
}> {
  override get message(): string {
    return `cannot encode ${this.payload}${this.field === "" ? "" : ` field "${this.field}"`}: ${this.reason}`
  }
}

/** The element tree does not fit the payload's shape (only possible without XSD validation). */
export class PayloadShapeError extends Data.TaggedError("PayloadShapeError")<{
  readonly field: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.field === "" ? "" : `field "${this.field}": `}${this.reason}`
  }
}

// ---------------------------------------------------------------------------------------
// Encoding: encoded-side value (plain object, as Schema.encode yields it) → XML text.
// ---------------------------------------------------------------------------------------

// "-0" is valid for both xs:double and xs:integer and keeps the sign that String() drops.
const formatNumber = (n: number): string => {
  if (Object.is(n, -0)) return "-0"
  if (Number.isFinite(n)) return String(n)
  return Number.isNaN(n) ? "NaN" : n > 0 ? "INF" : "-INF"
}

const formatInteger = (n: number): string => (Object.is(n, -0) ? "-0" : String(n))

/**
 * `<Tags></Tags>` alone is how xml-pipeline writes an *empty* list (its wrapper, once the
 * comment inside is dropped by canonicalization) and how this format would write a list of
 * one empty item: the reader cannot tell them apart, so neither side produces or accepts it.
 */
export const ONE_EMPTY_ITEM =
  "a list of exactly one empty item is written exactly as xml-pipeline writes an empty list; " +
  "it is refused rather than read as either (with xml-pipeline, use the xmlify wire form)"

const collapse = (s: string): string => s.replace(/[ \t\r\n]+/g, " ").trim()

const clip = (s: string): string => (s.length > 40 ? `${s.slice(0, 40)}…` : s)

// Hot path: no closures here — each would be a fresh function object per value.
const refuse = (payload: string, path: string, reason: string): never => {
  throw new PayloadEncodeError({ payload, field: path, reason })
}

const fieldPathOf = (path: string, key: string) => (path === "" ? key : `${path}.${key}`)

const encodeScalar = (payload: string, path: string, shape: Shape, value: unknown): string => {
  switch (shape._tag) {
    case "String": {
      if (typeof value !== "string") return refuse(payload, path, `expected a string, got ${typeof value}`)
      const at = findInvalidXmlChar(value)
      if (at !== -1) refuse(payload, path, `${describeChar(value, at)} cannot appear in XML 1.0`)
      return escapeText(value)
    }
    case "Xml": {
      if (typeof value !== "string") return refuse(payload, path, `expected XML text, got ${typeof value}`)
      const at = findInvalidXmlChar(value)
      if (at !== -1) refuse(payload, path, `${describeChar(value, at)} cannot appear in XML 1.0`)
      return value
    }
    case "Number":
      return typeof value === "number" ? formatNumber(value) : refuse(payload, path, `expected a number, got ${typeof value}`)
    case "Integer":
      // Beyond ±(2^53 − 1) a number stands for several integers; the reader would refuse it.
      return typeof value === "number" && Number.isSafeInteger(value)
        ? formatInteger(value)
        : refuse(payload, path, `expected an integer within ±(2^53 − 1), got ${String(value)}`)
    case "Boolean":
      return typeof value === "boolean"
        ? (value ? "true" : "false")
        : refuse(payload, path, `expected a boolean, got ${typeof value}`)
    case "Enum":
      return shape.values.includes(value as string)
        ? escapeText(enumLexical(value as string))
        : refuse(payload, path, `expected one of ${shape.values.map((v) => JSON.stringify(v)).join(", ")}`)
    case "Struct":
      if (typeof value !== "object" || value === null) return refuse(payload, path, "expected an object")
      return encodeFields(payload, path, shape, value as Record<string, unknown>)
  }
}

const encodeFields = (payload: string, path: string, shape: Struct, obj: Record<string, unknown>): string => {
  let out = ""
  for (const f of shape.fields) {
    const value = obj[f.key]
    const fieldPath = fieldPathOf(path, f.key)
    if (f.occurs === "many" || f.occurs === "many1") {
      if (!Array.isArray(value)) refuse(payload, fieldPath, "expected an array")
      const items = value as Array<unknown>
      for (let i = 0; i < items.length; i++) {
        const item = encodeScalar(payload, `${fieldPath}[${i}]`, f.shape, items[i])
        if (item === "" && items.length === 1) refuse(payload, fieldPath, ONE_EMPTY_ITEM)
        out += `<${f.element}>${item}</${f.element}>`
      }
      continue
    }
    if (value === undefined) {
      if (f.occurs === "optional") continue
      refuse(payload, fieldPath, "missing required value")
    }
    out += `<${f.element}>${encodeScalar(payload, fieldPath, f.shape, value)}</${f.element}>`
  }
  return out
}

/**
 * Writes `<Tag>…fields…</Tag>`. Attributes are never written, so the element is exactly
 * what Exclusive C14N would produce for it, apart from the `xmlns=""` the envelope adds.
 */
export const encodeElement = (tag: string, shape: Struct, encoded: Record<string, unknown>): string =>
  `<${tag}>${encodeFields(tag, "", shape, encoded)}</${tag}>`

/** Only the inner fields, for callers that write the start tag themselves. */
export const encodeInner = (tag: string, shape: Struct, encoded: Record<string, unknown>): string =>
  encodeFields(tag, "", shape, encoded)

// ---------------------------------------------------------------------------------------
// Decoding: canonical element tree → encoded-side value, for Schema to decode.
// ---------------------------------------------------------------------------------------


const decodeNumber = (path: string, raw: string): number => {
  const t = raw.trim()
  if (t === "INF" || t === "+INF") return Infinity
  if (t === "-INF") return -Infinity
  if (t === "NaN") return NaN
  return finiteNumber(path, raw, t)
}

const DECIMAL_OR_EXPONENT = /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/

/**
 * A finite number written in decimal or exponent form. One the double cannot hold at all is
 * refused rather than turned into another value: `1e400` is not Infinity, `1e-400` is not 0.
 */
export const finiteNumber = (path: string, raw: string, t: string): number => {
  if (!DECIMAL_OR_EXPONENT.test(t)) throw new PayloadShapeError({ field: path, reason: `"${clip(raw)}" is not a number` })
  const n = Number(t)
  if (!Number.isFinite(n)) {
    throw new PayloadShapeError({ field: path, reason: `"${clip(raw)}" is beyond the range of a double` })
  }
  if (n === 0 && /[1-9]/.test(t.replace(/[eE].*$/, ""))) {
    throw new PayloadShapeError({ field: path, reason: `"${clip(raw)}" is too small for a double (it would read as 0)` })
  }
  return n
}

/**
 * An integer the value can hold exactly. Beyond ±(2^53 − 1) a JavaScript number rounds
 * (`1152921504606846977` would arrive as `1152921504606847000`): refused, naming the field,
 * as the payload's constructor (Schema.Int) would refuse it.
 */
export const exactInteger = (path: string, raw: string): number => {
  const t = raw.trim()
  const n = /^[+-]?[0-9]+$/.test(t) ? Number(t) : NaN
  if (Number.isNaN(n)) throw new PayloadShapeError({ field: path, reason: `"${clip(raw)}" is not an integer` })
  if (!Number.isSafeInteger(n)) {
    throw new PayloadShapeError({
      field: path,
      reason: `${clip(t)} cannot be held exactly (integers are limited to ±(2^53 − 1) = ±9007199254740991)`
    })
  }
  return n
}

export const decodeBoolean = (path: string, raw: string): boolean => {
  const t = raw.trim()
  if (t === "true" || t === "1") return true
  if (t === "false" || t === "0") return false
  throw new PayloadShapeError({ field: path, reason: `"${clip(raw)}" is not a boolean` })
}

export const decodeEnum = (path: string, values: ReadonlyArray<string | number | boolean>, raw: string) => {
  const t = collapse(raw)
  for (const v of values) if (enumLexical(v) === t) return v
  throw new PayloadShapeError({ field: path, reason: `"${clip(raw)}" is not one of the allowed values` })
}

const decodeScalar = (text: string, path: string, shape: Shape, el: CanonicalElement): unknown => {
  if (shape._tag === "Struct") return decodeStruct(text, path, shape, el)
  if (shape._tag === "Xml") return text.slice(el.contentStart, el.contentEnd)
  if (hasElementChildren(el)) {
    throw new PayloadShapeError({ field: path, reason: "expected text, found child elements" })
  }
  const raw = textOf(el)
  switch (shape._tag) {
    case "String":
      return raw
    case "Number":
      return decodeNumber(path, raw)
    case "Integer":
      return exactInteger(path, raw)
    case "Boolean":
      return decodeBoolean(path, raw)
    case "Enum":
      return decodeEnum(path, shape.values, raw)
  }
}

const decodeStruct = (text: string, path: string, shape: Struct, el: CanonicalElement): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const f of shape.fields) if (f.occurs === "many" || f.occurs === "many1") out[f.key] = []
  let emptyItems: Set<Field> | undefined
  for (const child of el.children) {
    if (typeof child === "string") continue
    const f: Field | undefined = child.namespace === "" ? shape.byElement.get(child.localName) : undefined
    if (f === undefined) {
      throw new PayloadShapeError({ field: path, reason: `unexpected element <${child.qname}>` })
    }
    const fieldPath = path === "" ? f.key : `${path}.${f.key}`
    const value = decodeScalar(text, fieldPath, f.shape, child)
    if (f.occurs === "many" || f.occurs === "many1") {
      ;(out[f.key] as Array<unknown>).push(value)
      if (child.children.length === 0) (emptyItems ??= new Set()).add(f)
    } else if (f.key in out) throw new PayloadShapeError({ field: fieldPath, reason: `<${f.element}> appears twice` })
    else out[f.key] = value
  }
  if (emptyItems !== undefined) {
    for (const f of emptyItems) {
      if ((out[f.key] as Array<unknown>).length === 1) {
        throw new PayloadShapeError({ field: path === "" ? f.key : `${path}.${f.key}`, reason: ONE_EMPTY_ITEM })
      }
    }
  }
  return out
}

/** Reads a payload element (from canonical `text`) into its encoded-side object. */
export const decodeElement = (text: string, shape: Struct, el: CanonicalElement): Record<string, unknown> =>
  decodeStruct(text, "", shape, el)
