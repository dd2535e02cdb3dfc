import { escapeText } from "../xml/escape.js"
import type { Field, Shape, Struct } from "./Shape.js"
import { enumLexical } from "./Xsd.js"

const placeholder = (shape: Shape): string => {
  switch (shape._tag) {
    case "String":
      return "text"
    case "Number":
      return "1.5"
    case "Integer":
      return "1"
    case "Boolean":
      return "true"
    case "Enum":
      return escapeText(enumLexical(shape.values[0]!))
    case "Xml":
      return "<!-- any XML -->"
    case "Struct":
      return ""
  }
}

const note = (f: Field): string => {
  const parts: Array<string> = []
  if (f.occurs === "optional") parts.push("optional")
  if (f.occurs === "many") parts.push("repeat this element for each item (zero or more)")
  if (f.occurs === "many1") parts.push("repeat this element for each item (one or more)")
  if (f.shape._tag === "Enum" && f.shape.values.length > 1) {
    parts.push(`one of: ${f.shape.values.map((v) => enumLexical(v)).join(", ")}`)
  }
  if (f.description !== undefined) parts.push(f.description)
  // "--" may not appear inside a comment.
  return parts.length === 0 ? "" : ` <!-- ${parts.join("; ").replace(/--/g, "- -")} -->`
}

const fieldLines = (shape: Struct, pad: string): string =>
  shape.fields
    .map((f) =>
      f.shape._tag === "Struct"
        ? `${pad}<${f.element}>${note(f)}\n${fieldLines(f.shape, `${pad}  `)}${pad}</${f.element}>\n`
        : `${pad}<${f.element}>${placeholder(f.shape)}</${f.element}>${note(f)}\n`
    )
    .join("")

/**
 * An example document for prompts: every field present once, with a comment where a field is
 * optional, repeated or restricted. It validates against the payload's own XSD.
 */
export const exampleDocument = (tag: string, shape: Struct): string =>
  `<${tag}>\n${fieldLines(shape, "  ")}</${tag}>`
