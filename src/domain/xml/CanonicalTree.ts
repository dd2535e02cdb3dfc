/**
 * A light element tree read from the output of Exclusive C14N.
 *
 * Why a second reader when libxml2 already has a tree: walking libxml2-wasm's tree costs a
 * WebAssembly call and a string copy per node and property (≈4 µs for an envelope's meta
 * alone), while the canonical text is already in JavaScript. Canonical XML is a small,
 * regular language — no DTD, no CDATA, no comments (we canonicalize without them), no
 * empty-element tags, attribute values always in double quotes, a fixed set of character
 * references — so one linear scan gives every element with its namespace and the exact
 * source span, which also yields canonical substrings (payload, free-form XML fields) for
 * free. libxml2 remains the only judge of well-formedness and validity; this reader only
 * runs on text libxml2 produced.
 */

export interface CanonicalElement {
  /** Qualified name as written (`p:name` or `name`). */
  readonly qname: string
  readonly localName: string
  /** Namespace URI, "" for no namespace. */
  readonly namespace: string
  readonly attributes: ReadonlyArray<readonly [qname: string, value: string]>
  /** Child elements and text, in document order. */
  readonly children: ReadonlyArray<CanonicalElement | string>
  /** Offset of `<` of the start tag. */
  readonly start: number
  /** Offset just after the start tag's `>`. */
  contentStart: number
  /** Offset of `</` of the end tag. */
  contentEnd: number
  /** Offset just after the end tag's `>`. */
  end: number
  readonly depth: number
}

export class CanonicalReadError extends Error {
  override readonly name = "CanonicalReadError"
}

export class CanonicalDepthError extends Error {
  override readonly name = "CanonicalDepthError"
  constructor(readonly limit: number) {
    super(`element nesting deeper than ${limit}`)
  }
}

const decodeReferences = (raw: string): string => {
  if (raw.indexOf("&") === -1) return raw
  return raw.replace(/&(amp|lt|gt|quot|#x[0-9A-Fa-f]+|#[0-9]+);/g, (_, ref: string) => {
    switch (ref) {
      case "amp":
        return "&"
      case "lt":
        return "<"
      case "gt":
        return ">"
      case "quot":
        return "\""
      default:
        return String.fromCodePoint(
          ref.charCodeAt(1) === 0x78 ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10)
        )
    }
  })
}

/**
 * In-scope namespace declarations as a chain (one link per declaration, innermost first):
 * a declaration costs one small object instead of a copy of every binding above it, and
 * lookups walk a handful of links.
 */
interface Scope {
  readonly prefix: string
  readonly uri: string
  readonly parent: Scope | undefined
}

const lookup = (scope: Scope | undefined, prefix: string): string => {
  for (let s = scope; s !== undefined; s = s.parent) if (s.prefix === prefix) return s.uri
  return ""
}

/** Shared by every element without attributes (nearly all of them): never mutated. */
const NO_ATTRIBUTES: ReadonlyArray<readonly [string, string]> = Object.freeze([])

/** Shared by every element without children; the others get an array of exactly theirs. */
const NO_CHILDREN: ReadonlyArray<CanonicalElement | string> = Object.freeze([])

// The reader's stacks, shared by every call (it is synchronous and calls nothing that reads
// again): the open elements with their namespace scopes and where their children start on
// the child stack, and the children read so far. An element's children become one array of
// exactly their number when its end tag is read. Made per call, the stacks and the arrays a
// first push grows (room for 17) were a third of the bytes the pump allocated per message.
const openElements: Array<CanonicalElement | undefined> = []
const openScopes: Array<Scope | undefined> = []
const childrenFrom: Array<number> = []
const children: Array<CanonicalElement | string | undefined> = []

/** Reads the document element of a canonical document. */
export const readCanonical = (text: string, maxDepth = 256): CanonicalElement => {
  let depth = 0 // open elements: openElements[0, depth)
  let pending = 0 // children of open elements: children[0, pending)
  let deepest = 0
  let most = 0
  try {
    let root: CanonicalElement | undefined
    let pos = 0
    const n = text.length
    while (pos < n) {
      const lt = text.indexOf("<", pos)
      if (lt === -1) {
        if (depth > 0) throw new CanonicalReadError("unexpected end of input")
        break
      }
      if (lt > pos && depth > 0) {
        children[pending++] = decodeReferences(text.slice(pos, lt))
        if (pending > most) most = pending
      }
      const next = text.charCodeAt(lt + 1)
      if (next === 0x3f /* ? */) {
        const close = text.indexOf("?>", lt + 2)
        if (close === -1) throw new CanonicalReadError("unterminated processing instruction")
        pos = close + 2
        continue
      }
      if (next === 0x2f /* / */) {
        const gt = text.indexOf(">", lt + 2)
        const top = depth > 0 ? openElements[--depth] : undefined
        if (gt === -1 || top === undefined || !endTagNames(text, lt + 2, gt, top.qname)) {
          throw new CanonicalReadError(`unexpected end tag at offset ${lt}`)
        }
        const from = childrenFrom[depth]!
        if (pending > from) {
          ;(top as { children: ReadonlyArray<CanonicalElement | string> }).children = children.slice(from, pending) as Array<
            CanonicalElement | string
          >
          pending = from
        }
        top.contentEnd = lt
        top.end = gt + 1
        pos = gt + 1
        continue
      }
      // Start tag: name, then ` name="value"` pairs; `>` never appears unescaped in a name and
      // attribute values are scanned quote to quote.
      let i = lt + 1
      while (i < n) {
        const c = text.charCodeAt(i)
        if (c === 0x20 || c === 0x3e) break
        i++
      }
      const qname = text.slice(lt + 1, i)
      let attributes = NO_ATTRIBUTES as Array<readonly [string, string]>
      let scope = depth > 0 ? openScopes[depth - 1] : undefined
      while (text.charCodeAt(i) === 0x20) {
        const eq = text.indexOf("=\"", i + 1)
        const endQuote = eq === -1 ? -1 : text.indexOf("\"", eq + 2)
        if (endQuote === -1) throw new CanonicalReadError(`malformed attribute at offset ${i}`)
        const name = text.slice(i + 1, eq)
        const value = decodeReferences(text.slice(eq + 2, endQuote))
        if (name === "xmlns" || name.startsWith("xmlns:")) {
          scope = { prefix: name === "xmlns" ? "" : name.slice(6), uri: value, parent: scope }
        } else {
          if (attributes === NO_ATTRIBUTES) attributes = []
          attributes.push([name, value])
        }
        i = endQuote + 1
      }
      if (text.charCodeAt(i) !== 0x3e) throw new CanonicalReadError(`malformed start tag at offset ${lt}`)
      const colon = qname.indexOf(":")
      if (depth + 1 > maxDepth) throw new CanonicalDepthError(maxDepth)
      const el: CanonicalElement = {
        qname,
        localName: colon === -1 ? qname : qname.slice(colon + 1),
        namespace: lookup(scope, colon === -1 ? "" : qname.slice(0, colon)),
        attributes,
        children: NO_CHILDREN,
        start: lt,
        contentStart: i + 1,
        contentEnd: -1,
        end: -1,
        depth: depth + 1
      }
      if (depth > 0) {
        children[pending++] = el
        if (pending > most) most = pending
      } else if (root === undefined) root = el
      else throw new CanonicalReadError("more than one document element")
      openElements[depth] = el
      openScopes[depth] = scope
      childrenFrom[depth] = pending
      if (++depth > deepest) deepest = depth
      pos = i + 1
    }
    if (root === undefined || depth > 0) throw new CanonicalReadError("no complete document element")
    return root
  } finally {
    // The stacks keep nothing of this document (nor, through its strings, its text).
    openElements.fill(undefined, 0, deepest)
    openScopes.fill(undefined, 0, deepest)
    children.fill(undefined, 0, most)
  }
}

/** `text[from, to)` is `name`, compared in place (no substring). */
const endTagNames = (text: string, from: number, to: number, name: string): boolean =>
  to - from === name.length && text.startsWith(name, from)

/** Element children, skipping text (whitespace between elements). */
export const childElements = (el: CanonicalElement): Array<CanonicalElement> => {
  const out: Array<CanonicalElement> = []
  for (const c of el.children) if (typeof c !== "string") out.push(c)
  return out
}

/** Concatenated character data of an element's direct text children. */
export const textOf = (el: CanonicalElement): string => {
  const cs = el.children
  if (cs.length === 1 && typeof cs[0] === "string") return cs[0]
  let s = ""
  for (const c of cs) if (typeof c === "string") s += c
  return s
}

/** True when an element has child elements (a scalar field must not). */
export const hasElementChildren = (el: CanonicalElement): boolean => {
  for (const c of el.children) if (typeof c !== "string") return true
  return false
}
