/** fast-check arbitraries for XML-representable values. */
import { FastCheck as fc } from "effect"
import { findInvalidXmlChar } from "../../src/domain/xml/escape.js"
import * as P from "./payloads.js"

/** Any string XML 1.0 can carry, biased towards characters that need escaping. */
export const xmlString: fc.Arbitrary<string> = fc
  .array(
    fc.oneof(
      { weight: 1, arbitrary: fc.constantFrom("<", ">", "&", "]]>", "\"", "'", "\r", "\n", "\t", " ", "&amp;", "é", "😀", "\u2028") },
      { weight: 3, arbitrary: fc.fullUnicode().filter((c) => findInvalidXmlChar(c) === -1) }
    ),
    { maxLength: 24 }
  )
  .map((parts) => parts.join(""))

const name = fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/)

const escText = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\r/g, "&#xD;")
const escAttr = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;").replace(/\t/g, "&#x9;").replace(/\n/g, "&#xA;")
    .replace(/\r/g, "&#xD;")

/** Free-form XML already in canonical form (sorted attributes, no empty-element tags). */
export const canonicalFragment: fc.Arbitrary<string> = fc.letrec<{ node: string; fragment: string }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    xmlString.map(escText),
    fc
      .tuple(name, fc.uniqueArray(fc.tuple(name, xmlString), { selector: ([k]) => k, maxLength: 3 }), tie("fragment"))
      .map(([n, attrs, inner]) => {
        const sorted = [...attrs].sort(([a], [b]) => (a < b ? -1 : 1))
        return `<${n}${sorted.map(([k, v]) => ` ${k}="${escAttr(v)}"`).join("")}>${inner}</${n}>`
      })
  ),
  fragment: fc.array(tie("node"), { maxLength: 3 }).map((nodes) => nodes.join(""))
})).fragment

export const point = fc
  .record({ x: fc.integer(), y: fc.integer(), label: fc.option(xmlString, { nil: undefined }) })
  .map(({ label, ...xy }) => new P.Point(label === undefined ? xy : { ...xy, label }))

export const double = fc.double()

/**
 * Lists of strings, but never exactly one empty string: written alone, `<Tags></Tags>` is
 * also xml-pipeline's empty list, so the native form refuses it both ways (see Codec.ts).
 */
const stringList = (maxLength: number) =>
  fc.array(xmlString, { maxLength }).filter((items) => !(items.length === 1 && items[0] === ""))

export const instances = {
  Text: xmlString.map((text) => new P.Text({ text })),
  Num: double.map((value) => new P.Num({ value })),
  Int: fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constant(-0)).map((value) => new P.Int({ value })),
  Flag: fc.boolean().map((value) => new P.Flag({ value })),
  Choice: fc
    .record({ color: fc.constantFrom("red" as const, "green" as const, "blue" as const), level: fc.constantFrom(1 as const, 2 as const, 3 as const) })
    .map((v) => new P.Choice(v)),
  Maybe: fc
    .record({ note: xmlString, count: fc.integer() }, { requiredKeys: [] })
    .map((v) => new P.Maybe(v)),
  Lists: fc
    .record({ tags: stringList(5), scores: fc.array(double, { minLength: 1, maxLength: 5 }) })
    .map(({ tags, scores }) => new P.Lists({ tags, scores: scores as [number, ...Array<number>] })),
  Shape: fc
    .record({ center: point, corners: fc.array(point, { maxLength: 4 }), bounds: fc.record({ min: double, max: double }) })
    .map((v) => new P.Shape(v)),
  Doc: fc.record({ title: xmlString, body: canonicalFragment }).map((v) => new P.Doc(v)),
  Everything: fc
    .record({
      message: xmlString,
      original_sender: xmlString,
      count: fc.option(fc.integer(), { nil: undefined }),
      ratio: double,
      ok: fc.boolean(),
      mood: fc.constantFrom("happy" as const, "sad" as const),
      tags: stringList(3),
      center: point,
      corners: fc.array(point, { maxLength: 3 }),
      body: canonicalFragment
    })
    .map(({ count, ...rest }) => new P.Everything(count === undefined ? rest : { ...rest, count }))
} as const
