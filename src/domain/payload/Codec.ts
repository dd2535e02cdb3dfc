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

const formatInteger = (n: number): string =>
  Object.is(n, -0) ? "-0" : Number.isSafeInteger(n) ? String(n) : BigInt(n).toString()

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
      return typeof value === "number" && Number.isInteger(value)
        ? formatInteger(value)
        : refuse(payload, path, `expected an integer, got ${String(value)}`)
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
        out += `<${f.element}>${encodeScalar(payload, `${fieldPath}[${i}]`, f.shape, items[i])}</${f.element}>`
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

const collapse = (s: string): string => s.replace(/[ \t\r\n]+/g, " ").trim()

const clip = (s: string): string => (s.length > 40 ? `${s.slice(0, 40)}…` : s)

const decodeNumber = (path: string, raw: string): number => {
  const t = raw.trim()
  if (t === "INF" || t === "+INF") return Infinity
  if (t === "-INF") return -Infinity
  if (t === "NaN") return NaN
  const n = t === "" ? NaN : Number(t)
  if (Number.isNaN(n)) throw new PayloadShapeError({ field: path, reason: `"${raw}" is not a number` })
  return n
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
    case "Integer": {
      const t = raw.trim()
      const n = /^[+-]?[0-9]+$/.test(t) ? Number(t) : NaN
      // Too many digits become Infinity: not an integer a JavaScript number can hold.
      if (!Number.isInteger(n)) throw new PayloadShapeError({ field: path, reason: `"${clip(raw)}" is not an integer` })
      return n
    }
    case "Boolean": {
      const t = raw.trim()
      if (t === "true" || t === "1") return true
      if (t === "false" || t === "0") return false
      throw new PayloadShapeError({ field: path, reason: `"${raw}" is not a boolean` })
    }
    case "Enum": {
      const t = collapse(raw)
      for (const v of shape.values) if (enumLexical(v) === t) return v
      throw new PayloadShapeError({ field: path, reason: `"${raw}" is not one of the allowed values` })
    }
  }
}

const decodeStruct = (text: string, path: string, shape: Struct, el: CanonicalElement): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const f of shape.fields) if (f.occurs === "many" || f.occurs === "many1") out[f.key] = []
  for (const child of el.children) {
    if (typeof child === "string") continue
    const f: Field | undefined = child.namespace === "" ? shape.byElement.get(child.localName) : undefined
    if (f === undefined) {
      throw new PayloadShapeError({ field: path, reason: `unexpected element <${child.qname}>` })
    }
    const fieldPath = path === "" ? f.key : `${path}.${f.key}`
    const value = decodeScalar(text, fieldPath, f.shape, child)
    if (f.occurs === "many" || f.occurs === "many1") (out[f.key] as Array<unknown>).push(value)
    else if (f.key in out) throw new PayloadShapeError({ field: fieldPath, reason: `<${f.element}> appears twice` })
    else out[f.key] = value
  }
  return out
}

/** Reads a payload element (from canonical `text`) into its encoded-side object. */
export const decodeElement = (text: string, shape: Struct, el: CanonicalElement): Record<string, unknown> =>
  decodeStruct(text, "", shape, el)
