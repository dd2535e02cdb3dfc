import { escapeAttribute, escapeText } from "../xml/escape.js"
import type { Field, Scalar, Shape, Struct } from "./Shape.js"

/** Lexical form of an enumeration value; the decoder maps it back. */
export const enumLexical = (v: string | number | boolean): string => String(v)

const scalarType = (s: Scalar): string | undefined => {
  switch (s._tag) {
    case "String":
      return "xs:string"
    case "Number":
      return "xs:double"
    case "Integer":
      return "xs:integer"
    case "Boolean":
      return "xs:boolean"
    default:
      return undefined
  }
}

const occursAttrs = (f: Field): string => {
  switch (f.occurs) {
    case "required":
      return ""
    case "optional":
      return ` minOccurs="0"`
    case "many":
      return ` minOccurs="0" maxOccurs="unbounded"`
    case "many1":
      return ` maxOccurs="unbounded"`
  }
}

const documentation = (f: Field, pad: string): string =>
  f.description === undefined
    ? ""
    : `${pad}  <xs:annotation><xs:documentation>${escapeText(f.description)}</xs:documentation></xs:annotation>\n`

const complexBody = (shape: Shape, pad: string): string => {
  switch (shape._tag) {
    case "Struct":
      return `${pad}<xs:complexType>\n${pad}  <xs:sequence>\n` +
        shape.fields.map((f) => fieldElement(f, `${pad}    `)).join("") +
        `${pad}  </xs:sequence>\n${pad}</xs:complexType>\n`
    case "Enum":
      // xs:token collapses surrounding whitespace, which model output often carries.
      return `${pad}<xs:simpleType>\n${pad}  <xs:restriction base="xs:token">\n` +
        shape.values.map((v) => `${pad}    <xs:enumeration value="${escapeAttribute(enumLexical(v))}"/>\n`).join("") +
        `${pad}  </xs:restriction>\n${pad}</xs:simpleType>\n`
    case "Xml":
      return `${pad}<xs:complexType mixed="true">\n${pad}  <xs:sequence>\n` +
        `${pad}    <xs:any namespace="##any" processContents="skip" minOccurs="0" maxOccurs="unbounded"/>\n` +
        `${pad}  </xs:sequence>\n${pad}  <xs:anyAttribute namespace="##any" processContents="skip"/>\n` +
        `${pad}</xs:complexType>\n`
    default:
      return ""
  }
}

const fieldElement = (f: Field, pad: string): string => {
  const simple = scalarType(f.shape as Scalar)
  if (simple !== undefined && f.description === undefined) {
    return `${pad}<xs:element name="${f.element}" type="${simple}"${occursAttrs(f)}/>\n`
  }
  if (simple !== undefined) {
    return `${pad}<xs:element name="${f.element}" type="${simple}"${occursAttrs(f)}>\n` +
      documentation(f, pad) + `${pad}</xs:element>\n`
  }
  return `${pad}<xs:element name="${f.element}"${occursAttrs(f)}>\n` + documentation(f, pad) +
    complexBody(f.shape, `${pad}  `) + `${pad}</xs:element>\n`
}

/**
 * The payload's XSD: one global element named by the tag, in no namespace (payloads carry
 * `xmlns=""` inside the envelope), fields as an ordered sequence as xmlify generates them.
 */
export const payloadXsd = (tag: string, shape: Struct, description?: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n` +
  `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="unqualified">\n` +
  `  <xs:element name="${tag}">\n` +
  (description === undefined
    ? ""
    : `    <xs:annotation><xs:documentation>${escapeText(description)}</xs:documentation></xs:annotation>\n`) +
  complexBody(shape, "    ") +
  `  </xs:element>\n` +
  `</xs:schema>\n`
