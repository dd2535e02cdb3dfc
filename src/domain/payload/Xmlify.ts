/**
 * The xmlify wire form: payloads as xml-pipeline's `@xmlify` dataclasses write and read them
 * (its vendored `third_party/xmlable`, commit 3ffab8a3dde8b27896475371875e5c80301e08e3).
 *
 * - A field is always present. `X | None` is a wrapper holding one element named after the
 *   Python type: `<Note><Str>n</Str></Note>`, `<Note><NoneType/></Note>` for None.
 * - A list is a wrapper of items named the same way: `<Tags><Str>a</Str></Tags>`; an empty
 *   list is an empty wrapper (xmlify puts a comment in it, which canonicalization drops).
 * - Numbers are `xs:decimal`: written in plain decimal form (`0.0000001`, never `1e-07`);
 *   NaN and ±Infinity have no decimal form and are refused at encode. Read: every form
 *   Python's `str(float)` writes, `1e-07`, `nan`, `inf`, `-inf` included.
 * - Free-form XML fields (`Payload.Xml`) travel as text, as a Python `str` field would.
 */
import type { CanonicalElement } from "../xml/CanonicalTree.js"
import { hasElementChildren, textOf } from "../xml/CanonicalTree.js"
import { describeChar, escapeText, findInvalidXmlChar } from "../xml/escape.js"
import { decodeBoolean, decodeEnum, exactInteger, finiteNumber, PayloadEncodeError, PayloadShapeError } from "./Codec.js"
import type { Field, Shape, Struct } from "./Shape.js"
import { enumLexical } from "./Xsd.js"

/** The element name xmlify gives a value of this shape inside a list or an optional. */
export const pythonTypeName = (shape: Shape): string => {
  switch (shape._tag) {
    case "String":
    case "Xml":
      return "Str"
    case "Integer":
      return "Int"
    case "Number":
      return "Float"
    case "Boolean":
      return "Bool"
    case "Enum":
      return pythonScalarOfEnum(shape.values)
    case "Struct":
      return shape.name
  }
}

/** A literal union is a plain Python field of its values' type (xmlify has no Literal). */
const pythonScalarOfEnum = (values: ReadonlyArray<string | number | boolean>): "Str" | "Int" | "Float" | "Bool" => {
  if (values.every((v) => typeof v === "boolean")) return "Bool"
  if (values.every((v) => typeof v === "number" && Number.isInteger(v))) return "Int"
  if (values.every((v) => typeof v === "number")) return "Float"
  return "Str"
}

export const NONE_ELEMENT = "NoneType"

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

const refuse = (payload: string, path: string, reason: string): never => {
  throw new PayloadEncodeError({ payload, field: path, reason })
}

/**
 * A finite double in plain decimal notation, exact: the shortest digits that read back as
 * the same double (what `String` gives), with the exponent written out. Negative zero is
 * `-0.0`: lxml's objectify reads `-0` as the integer 0 and would drop the sign.
 */
export const decimalOf = (n: number): string => {
  if (Object.is(n, -0)) return "-0.0"
  const s = String(n)
  const e = s.indexOf("e")
  if (e === -1) return s
  const sign = s.charCodeAt(0) === 0x2d ? "-" : ""
  const mantissa = s.slice(sign.length, e)
  const exponent = Number(s.slice(e + 1))
  const dot = mantissa.indexOf(".")
  const digits = dot === -1 ? mantissa : mantissa.slice(0, dot) + mantissa.slice(dot + 1)
  const point = (dot === -1 ? mantissa.length : dot) + exponent
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`
  if (point >= digits.length) return sign + digits + "0".repeat(point - digits.length)
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`
}

const checkedText = (payload: string, path: string, value: unknown, what: string): string => {
  if (typeof value !== "string") return refuse(payload, path, `expected ${what}, got ${typeof value}`)
  const at = findInvalidXmlChar(value)
  if (at !== -1) refuse(payload, path, `${describeChar(value, at)} cannot appear in XML 1.0`)
  return escapeText(value)
}

const encodeValue = (payload: string, path: string, shape: Shape, value: unknown): string => {
  switch (shape._tag) {
    case "String":
      return checkedText(payload, path, value, "a string")
    case "Xml":
      // A Python `str` field: the markup travels as text and comes back as the same string.
      return checkedText(payload, path, value, "XML text")
    case "Number":
      if (typeof value !== "number") return refuse(payload, path, `expected a number, got ${typeof value}`)
      if (!Number.isFinite(value)) {
        return refuse(
          payload,
          path,
          `${String(value)} has no xs:decimal form; xml-pipeline's XSD (xs:decimal) refuses NaN and ±Infinity, ` +
            "so the xmlify wire form cannot carry it"
        )
      }
      return decimalOf(value)
    case "Integer":
      return typeof value === "number" && Number.isSafeInteger(value)
        ? (Object.is(value, -0) ? "-0" : String(value))
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
    const fieldPath = path === "" ? f.key : `${path}.${f.key}`
    const el = f.xmlifyElement
    if (f.occurs === "many" || f.occurs === "many1") {
      if (!Array.isArray(value)) refuse(payload, fieldPath, "expected an array")
      const item = pythonTypeName(f.shape)
      out += `<${el}>`
      const items = value as Array<unknown>
      for (let i = 0; i < items.length; i++) {
        out += `<${item}>${encodeValue(payload, `${fieldPath}[${i}]`, f.shape, items[i])}</${item}>`
      }
      out += `</${el}>`
      continue
    }
    if (f.occurs === "optional" && !f.defaulted) {
      const variant = value === undefined ? NONE_ELEMENT : pythonTypeName(f.shape)
      const inner = value === undefined ? "" : encodeValue(payload, fieldPath, f.shape, value)
      out += `<${el}><${variant}>${inner}</${variant}></${el}>`
      continue
    }
    if (value === undefined) refuse(payload, fieldPath, "missing required value (xmlify writes every field)")
    out += `<${el}>${encodeValue(payload, fieldPath, f.shape, value)}</${el}>`
  }
  return out
}

/** The payload element's content in the xmlify form; throws {@link PayloadEncodeError}. */
export const encodeInnerXmlify = (tag: string, shape: Struct, encoded: Record<string, unknown>): string =>
  encodeFields(tag, "", shape, encoded)

// ---------------------------------------------------------------------------------------
// Decoding: canonical element tree → encoded-side value. The element was validated against
// the xmlify XSD first; every check here still stands on its own (a value that cannot be
// read is a rejection naming the field, never another value).
// ---------------------------------------------------------------------------------------

const shapeError = (field: string, reason: string): never => {
  throw new PayloadShapeError({ field, reason })
}

/** Element children; text between them must be whitespace (Python indents SystemError). */
const elementsOf = (path: string, el: CanonicalElement): Array<CanonicalElement> => {
  const out: Array<CanonicalElement> = []
  for (const c of el.children) {
    if (typeof c !== "string") out.push(c)
    else if (c.trim() !== "") shapeError(path, `unexpected text ${JSON.stringify(c.trim().slice(0, 40))} in <${el.qname}>`)
  }
  return out
}

const PYTHON_FLOAT_SPECIAL = /^([+-]?)(inf|infinity|nan)$/i

const decodeFloat = (path: string, raw: string): number => {
  const t = raw.trim()
  const special = PYTHON_FLOAT_SPECIAL.exec(t)
  if (special !== null) {
    if (special[2]!.toLowerCase() === "nan") return NaN
    return special[1] === "-" ? -Infinity : Infinity
  }
  return finiteNumber(path, raw, t)
}

const decodeValue = (text: string, path: string, shape: Shape, el: CanonicalElement): unknown => {
  if (shape._tag === "Struct") return decodeStruct(text, path, shape, el)
  if (hasElementChildren(el)) shapeError(path, `expected text, found child elements in <${el.qname}>`)
  const raw = textOf(el)
  switch (shape._tag) {
    case "String":
    case "Xml":
      return raw
    case "Number":
      return decodeFloat(path, raw)
    case "Integer":
      return exactInteger(path, raw)
    case "Boolean":
      return decodeBoolean(path, raw)
    case "Enum":
      return decodeEnum(path, shape.values, raw)
  }
}

const decodeList = (text: string, path: string, f: Field, el: CanonicalElement): Array<unknown> => {
  const item = pythonTypeName(f.shape)
  const items = elementsOf(path, el)
  const out: Array<unknown> = []
  for (let i = 0; i < items.length; i++) {
    const child = items[i]!
    if (child.namespace !== "" || child.localName !== item) {
      shapeError(path, `<${f.xmlifyElement}> holds <${child.qname}> where <${item}> items were expected`)
    }
    out.push(decodeValue(text, `${path}[${i}]`, f.shape, child))
  }
  if (f.occurs === "many1" && out.length === 0) shapeError(path, "expected at least one item")
  return out
}

const decodeOptional = (text: string, path: string, f: Field, el: CanonicalElement): unknown => {
  const variant = pythonTypeName(f.shape)
  const variants = elementsOf(path, el)
  if (variants.length !== 1) {
    shapeError(
      path,
      `<${f.xmlifyElement}> must hold exactly one of <${variant}> or <${NONE_ELEMENT}>, found ${variants.length}`
    )
  }
  const only = variants[0]!
  if (only.namespace === "" && only.localName === NONE_ELEMENT) return undefined
  if (only.namespace !== "" || only.localName !== variant) {
    shapeError(path, `<${f.xmlifyElement}> holds <${only.qname}> where <${variant}> or <${NONE_ELEMENT}> was expected`)
  }
  return decodeValue(text, path, f.shape, only)
}

const byXmlifyElement = new WeakMap<Struct, ReadonlyMap<string, Field>>()

const fieldsByElement = (shape: Struct): ReadonlyMap<string, Field> => {
  let map = byXmlifyElement.get(shape)
  if (map === undefined) {
    map = new Map(shape.fields.map((f) => [f.xmlifyElement, f]))
    byXmlifyElement.set(shape, map)
  }
  return map
}

const decodeStruct = (text: string, path: string, shape: Struct, el: CanonicalElement): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  const seen = new Set<Field>()
  const byElement = fieldsByElement(shape)
  for (const child of elementsOf(path, el)) {
    const f = child.namespace === "" ? byElement.get(child.localName) : undefined
    if (f === undefined) shapeError(path, `unexpected element <${child.qname}>`)
    const field = f!
    const fieldPath = path === "" ? field.key : `${path}.${field.key}`
    if (seen.has(field)) shapeError(fieldPath, `<${field.xmlifyElement}> appears twice`)
    seen.add(field)
    let value: unknown
    if (field.occurs === "many" || field.occurs === "many1") value = decodeList(text, fieldPath, field, child)
    else if (field.occurs === "optional" && !field.defaulted) value = decodeOptional(text, fieldPath, field, child)
    else value = decodeValue(text, fieldPath, field.shape, child)
    if (value !== undefined) out[field.key] = value
  }
  for (const f of shape.fields) {
    if (!seen.has(f)) {
      // xmlify writes every field and refuses a missing one (its NonMemberTag error).
      shapeError(path === "" ? f.key : `${path}.${f.key}`, `<${f.xmlifyElement}> is missing`)
    }
  }
  return out
}

/** Reads a payload element in the xmlify form into its encoded-side object. */
export const decodeElementXmlify = (text: string, shape: Struct, el: CanonicalElement): Record<string, unknown> =>
  decodeStruct(text, "", shape, el)
