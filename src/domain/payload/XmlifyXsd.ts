/**
 * XSDs of the xmlify wire form, derived from the same shape as the native XSD.
 *
 * - {@link xmlifyXsd}: what an organism in xmlify mode validates against. It follows
 *   xmlify's layout, with three differences, each a reading of what xml-pipeline actually
 *   writes: numbers accept every form of Python's `str(float)` (`1e-07`, `nan`, `inf`, which
 *   xmlify's own `xs:decimal` refuses); an optional's wrapper holds exactly one of its two
 *   elements (xmlify's sequence of two optional elements also allows none or both, which its
 *   reader then refuses); literals keep their enumeration.
 * - {@link xmlifyReferenceXsd}: the XSD xmlify itself generates for the equivalent Python
 *   dataclass — named complex types, `xs:decimal` — which what we write must satisfy.
 */
import { escapeAttribute, escapeText } from "../xml/escape.js"
import type { Field, Shape, Struct } from "./Shape.js"
import { NONE_ELEMENT, pythonTypeName } from "./Xmlify.js"
import { enumLexical } from "./Xsd.js"

/** Every lexical form Python's `str(float)` produces, plus plain decimals. */
export const PYTHON_FLOAT_PATTERN = "[+\\-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+\\-]?[0-9]+)?|[+\\-]?([Ii]nf(inity)?|INF|[Nn]a[Nn])"

const pythonXsdType = (name: string): string | undefined => {
  switch (name) {
    case "Str":
      return "xs:string"
    case "Int":
      return "xs:integer"
    case "Float":
      return "xs:decimal"
    case "Bool":
      return "xs:boolean"
    default:
      return undefined
  }
}

// ---------------------------------------------------------------------------------------
// Ingress XSD
// ---------------------------------------------------------------------------------------

const valueElement = (name: string, shape: Shape, occurs: string, pad: string): string => {
  switch (shape._tag) {
    case "String":
    case "Xml":
      return `${pad}<xs:element name="${name}" type="xs:string"${occurs}/>\n`
    case "Integer":
      return `${pad}<xs:element name="${name}" type="xs:integer"${occurs}/>\n`
    case "Boolean":
      return `${pad}<xs:element name="${name}" type="xs:boolean"${occurs}/>\n`
    case "Number":
      return `${pad}<xs:element name="${name}"${occurs}>\n${pad}  <xs:simpleType>\n` +
        `${pad}    <xs:restriction base="xs:token"><xs:pattern value="${escapeAttribute(PYTHON_FLOAT_PATTERN)}"/></xs:restriction>\n` +
        `${pad}  </xs:simpleType>\n${pad}</xs:element>\n`
    case "Enum":
      return `${pad}<xs:element name="${name}"${occurs}>\n${pad}  <xs:simpleType>\n${pad}    <xs:restriction base="xs:token">\n` +
        shape.values.map((v) => `${pad}      <xs:enumeration value="${escapeAttribute(enumLexical(v))}"/>\n`).join("") +
        `${pad}    </xs:restriction>\n${pad}  </xs:simpleType>\n${pad}</xs:element>\n`
    case "Struct":
      return `${pad}<xs:element name="${name}"${occurs}>\n${structType(shape, `${pad}  `)}${pad}</xs:element>\n`
  }
}

const structType = (shape: Struct, pad: string): string =>
  `${pad}<xs:complexType>\n${pad}  <xs:sequence>\n` +
  shape.fields.map((f) => fieldElement(f, `${pad}    `)).join("") +
  `${pad}  </xs:sequence>\n${pad}</xs:complexType>\n`

const documentation = (f: Field, pad: string): string =>
  f.description === undefined
    ? ""
    : `${pad}  <xs:annotation><xs:documentation>${escapeText(f.description)}</xs:documentation></xs:annotation>\n`

const fieldElement = (f: Field, pad: string): string => {
  const el = f.xmlifyElement
  if (f.occurs === "many" || f.occurs === "many1") {
    const itemOccurs = f.occurs === "many" ? ` minOccurs="0" maxOccurs="unbounded"` : ` maxOccurs="unbounded"`
    return `${pad}<xs:element name="${el}">\n${documentation(f, pad)}${pad}  <xs:complexType>\n${pad}    <xs:sequence>\n` +
      valueElement(pythonTypeName(f.shape), f.shape, itemOccurs, `${pad}      `) +
      `${pad}    </xs:sequence>\n${pad}  </xs:complexType>\n${pad}</xs:element>\n`
  }
  if (f.occurs === "optional" && !f.defaulted) {
    return `${pad}<xs:element name="${el}">\n${documentation(f, pad)}${pad}  <xs:complexType>\n${pad}    <xs:choice>\n` +
      valueElement(pythonTypeName(f.shape), f.shape, "", `${pad}      `) +
      `${pad}      <xs:element name="${NONE_ELEMENT}"><xs:complexType/></xs:element>\n` +
      `${pad}    </xs:choice>\n${pad}  </xs:complexType>\n${pad}</xs:element>\n`
  }
  if (f.description === undefined) return valueElement(el, f.shape, "", pad)
  // The documentation goes inside the element declaration, before its type.
  const declared = valueElement(el, f.shape, "", pad)
  const selfClosing = declared.endsWith("/>\n") && !declared.includes("\n" + pad + " ")
  return selfClosing
    ? declared.replace(/\/>\n$/, `>\n${documentation(f, pad)}${pad}</xs:element>\n`)
    : declared.replace(/>\n/, `>\n${documentation(f, pad)}`)
}

/** The XSD an organism in xmlify mode validates this payload against. */
export const xmlifyXsd = (tag: string, shape: Struct, description?: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>\n` +
  `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" elementFormDefault="unqualified">\n` +
  `  <xs:element name="${tag}">\n` +
  (description === undefined
    ? ""
    : `    <xs:annotation><xs:documentation>${escapeText(description)}</xs:documentation></xs:annotation>\n`) +
  structType(shape, "    ") +
  `  </xs:element>\n` +
  `</xs:schema>\n`

// ---------------------------------------------------------------------------------------
// The XSD xmlify generates for the equivalent dataclass
// ---------------------------------------------------------------------------------------

const referenceType = (shape: Shape): string =>
  shape._tag === "Struct" ? shape.name : pythonXsdType(pythonTypeName(shape))!

const referenceElement = (name: string, shape: Shape, occurs: string, pad: string): string =>
  `${pad}<xs:element name="${name}" type="${referenceType(shape)}"${occurs}/>\n`

const referenceField = (f: Field, pad: string): string => {
  const el = f.xmlifyElement
  if (f.occurs === "many" || f.occurs === "many1") {
    return `${pad}<xs:element name="${el}">\n${pad}  <xs:complexType>\n${pad}    <xs:sequence>\n` +
      referenceElement(pythonTypeName(f.shape), f.shape, ` minOccurs="0" maxOccurs="unbounded"`, `${pad}      `) +
      `${pad}    </xs:sequence>\n${pad}  </xs:complexType>\n${pad}</xs:element>\n`
  }
  if (f.occurs === "optional" && !f.defaulted) {
    return `${pad}<xs:element name="${el}">\n${pad}  <xs:complexType>\n${pad}    <xs:sequence>\n` +
      referenceElement(pythonTypeName(f.shape), f.shape, ` minOccurs="0"`, `${pad}      `) +
      `${pad}      <xs:element name="${NONE_ELEMENT}" minOccurs="0"/>\n` +
      `${pad}    </xs:sequence>\n${pad}  </xs:complexType>\n${pad}</xs:element>\n`
  }
  return referenceElement(el, f.shape, "", pad)
}

const structsUsedBy = (shape: Struct): Array<Struct> => shape.fields.flatMap((f) => (f.shape._tag === "Struct" ? [f.shape] : []))

/**
 * The XSD xmlify generates for the Python dataclass equivalent to this payload: one named
 * complex type per dataclass, dependencies first (depth first, by name, as its toposort),
 * then the payload element typed by its own class.
 */
export const xmlifyReferenceXsd = (tag: string, shape: Struct): string => {
  const order: Array<Struct> = []
  const visited = new Set<string>()
  const visit = (s: Struct, name: string) => {
    visited.add(name)
    const deps = structsUsedBy(s).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    for (const d of deps) if (!visited.has(d.name)) visit(d, d.name)
    order.push(name === tag ? { ...s, name: tag } : s)
  }
  visit(shape, tag)
  return `<?xml version='1.0' encoding='UTF-8'?>\n` +
    `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" id="${tag}" elementFormDefault="qualified">\n` +
    order.map((s) =>
      `  <xs:complexType name="${s.name}">\n    <xs:sequence>\n` +
      s.fields.map((f) => referenceField(f, "      ")).join("") +
      `    </xs:sequence>\n  </xs:complexType>\n`
    ).join("") +
    `  <xs:element name="${tag}" type="${tag}"/>\n` +
    `</xs:schema>\n`
}

// ---------------------------------------------------------------------------------------
// Example document (for prompts), in the xmlify form; it validates against xmlifyXsd.
// ---------------------------------------------------------------------------------------

const placeholder = (shape: Shape): string => {
  switch (shape._tag) {
    case "String":
    case "Xml":
      return "text"
    case "Number":
      return "1.5"
    case "Integer":
      return "1"
    case "Boolean":
      return "true"
    case "Enum":
      return escapeText(enumLexical(shape.values[0]!))
    case "Struct":
      return ""
  }
}

const note = (f: Field): string => {
  const parts: Array<string> = []
  if (f.occurs === "optional" && !f.defaulted) parts.push(`or <${NONE_ELEMENT}/> for none`)
  if (f.occurs === "many") parts.push(`one <${pythonTypeName(f.shape)}> per item (zero or more)`)
  if (f.occurs === "many1") parts.push(`one <${pythonTypeName(f.shape)}> per item (one or more)`)
  if (f.shape._tag === "Enum" && f.shape.values.length > 1) {
    parts.push(`one of: ${f.shape.values.map((v) => enumLexical(v)).join(", ")}`)
  }
  if (f.description !== undefined) parts.push(f.description)
  return parts.length === 0 ? "" : ` <!-- ${parts.join("; ").replace(/--/g, "- -")} -->`
}

const valueLines = (name: string, shape: Shape, pad: string, comment: string): string =>
  shape._tag === "Struct"
    ? `${pad}<${name}>${comment}\n${exampleFields(shape, `${pad}  `)}${pad}</${name}>\n`
    : `${pad}<${name}>${placeholder(shape)}</${name}>${comment}\n`

const exampleFields = (shape: Struct, pad: string): string =>
  shape.fields.map((f) => {
    const el = f.xmlifyElement
    if (f.occurs === "many" || f.occurs === "many1" || (f.occurs === "optional" && !f.defaulted)) {
      return `${pad}<${el}>${note(f)}\n${valueLines(pythonTypeName(f.shape), f.shape, `${pad}  `, "")}${pad}</${el}>\n`
    }
    return valueLines(el, f.shape, pad, note(f))
  }).join("")

export const xmlifyExample = (tag: string, shape: Struct): string => `<${tag}>\n${exampleFields(shape, "  ")}</${tag}>`
