/**
 * Turning a model's answer into what an agent sends.
 *
 * The protocol the usage instructions teach the model:
 * - a peer's payload element (`<Search>…</Search>`) is sent to the peer that accepts it;
 *   `<Send to="peer">…</Send>` names the peer when several accept the same type;
 * - `<Respond>…</Respond>` answers the caller with the payload(s) inside;
 * - several payloads in one answer are sent in parallel;
 * - an answer without any payload is plain text for the caller (a TextOutput).
 *
 * Models wrap XML in prose and code fences, and sometimes break it: only elements whose
 * names the agent can use are picked out, fences are looked into first, and each element is
 * read by libxml2's recovering parser (an unclosed element at the end is closed). What still
 * cannot be read, or names nobody, is reported back to the model rather than sent.
 */
import { Either } from "effect"
import { type CanonicalElement, childElements, readCanonical } from "../../domain/xml/CanonicalTree.js"
import type { PayloadType } from "../../domain/Payload.js"
import { RawPayload } from "../../domain/Reply.js"
import type { XmlEngine } from "../../services/XmlEngine.js"

export const RESPOND = "Respond"
export const SEND = "Send"

export type AgentAction =
  | { readonly _tag: "Forward"; readonly to: string; readonly payload: RawPayload }
  | { readonly _tag: "Respond"; readonly payload: RawPayload }

export interface ParsedOutput {
  readonly actions: ReadonlyArray<AgentAction>
  /** Problems to tell the model about (nothing was sent for these). */
  readonly problems: ReadonlyArray<string>
  /** Repairs libxml2 made (sent anyway; worth knowing). */
  readonly repairs: ReadonlyArray<string>
  /** The answer had no payload at all: it is text for the caller. */
  readonly text: string | undefined
}

export interface OutputVocabulary {
  /** Payload tag (lowercase) → the peers that accept it. */
  readonly peersByTag: ReadonlyMap<string, ReadonlyArray<string>>
  /** Peer names, for `<Send to="…">`. */
  readonly peers: ReadonlyArray<string>
  /** Payload tag (lowercase) → its type, for native tool calls (their JSON Schema and XML shape). */
  readonly typesByTag?: ReadonlyMap<string, PayloadType> | undefined
}

const NAME = /[A-Za-z_][A-Za-z0-9_.-]*/y

/** The text the model meant as XML: the inside of code fences when there are any. */
export const unfence = (text: string): string => {
  const fences = [...text.matchAll(/```[a-zA-Z]*\n?([\s\S]*?)```/g)].map((m) => m[1] ?? "")
  const withXml = fences.filter((f) => f.includes("<"))
  return withXml.length > 0 ? withXml.join("\n") : text
}

/** Regions `<Name …>…</Name>` for names in `known`, top level only; unclosed runs to the end. */
export const findElements = (text: string, known: (name: string) => boolean): Array<string> => {
  const found: Array<string> = []
  let i = 0
  while (i < text.length) {
    const lt = text.indexOf("<", i)
    if (lt === -1) break
    NAME.lastIndex = lt + 1
    const m = NAME.exec(text)
    if (m === null || !known(m[0])) {
      i = lt + 1
      continue
    }
    const name = m[0]
    const headEnd = text.indexOf(">", NAME.lastIndex)
    if (headEnd !== -1 && text[headEnd - 1] === "/") {
      found.push(text.slice(lt, headEnd + 1))
      i = headEnd + 1
      continue
    }
    // Find the matching end tag, counting nested elements of the same name.
    let depth = 1
    let j = headEnd === -1 ? text.length : headEnd + 1
    const open = new RegExp(`<${name.replace(/\./g, "\\.")}(?=[\\s/>])`, "g")
    const close = `</${name}`
    while (depth > 0) {
      const nextClose = text.indexOf(close, j)
      if (nextClose === -1) {
        j = text.length
        break
      }
      open.lastIndex = j
      const nested = open.exec(text)
      if (nested !== null && nested.index < nextClose) {
        depth++
        j = nested.index + 1
        continue
      }
      depth--
      const gt = text.indexOf(">", nextClose)
      j = gt === -1 ? text.length : gt + 1
    }
    found.push(text.slice(lt, j))
    i = j
  }
  return found
}

const asPayload = (text: string, el: CanonicalElement): RawPayload =>
  new RawPayload({ tag: el.localName, inner: text.slice(el.contentStart, el.contentEnd) })

/** Parses a model's answer into actions (see the module comment for the protocol). */
export const parseAgentOutput = (
  engine: XmlEngine.Service,
  output: string,
  vocabulary: OutputVocabulary
): ParsedOutput => {
  const known = (name: string) =>
    name === RESPOND || name === SEND || vocabulary.peersByTag.has(name.toLowerCase())
  const regions = findElements(unfence(output), known)
  if (regions.length === 0) return { actions: [], problems: [], repairs: [], text: output.trim() }
  const actions: Array<AgentAction> = []
  const problems: Array<string> = []
  const repairs: Array<string> = []
  const forward = (text: string, el: CanonicalElement, to: string | undefined) => {
    const peers = vocabulary.peersByTag.get(el.localName.toLowerCase()) ?? []
    if (to !== undefined) {
      const peer = vocabulary.peers.find((p) => p.toLowerCase() === to.toLowerCase())
      if (peer === undefined) problems.push(`<${SEND} to="${to}">: ${to} is not one of your peers (${vocabulary.peers.join(", ") || "none"})`)
      else actions.push({ _tag: "Forward", to: peer, payload: asPayload(text, el) })
      return
    }
    if (peers.length === 1) actions.push({ _tag: "Forward", to: peers[0]!, payload: asPayload(text, el) })
    else if (peers.length === 0) problems.push(`<${el.localName}>: none of your peers accepts it; wrap an answer in <${RESPOND}>`)
    else problems.push(`<${el.localName}>: accepted by ${peers.join(" and ")}; say which with <${SEND} to="…">`)
  }
  for (const region of regions) {
    const parsed = engine.withDocument(region, { recover: true }, (doc) => ({
      canonical: engine.canonicalize(doc),
      repaired: doc.repaired,
      diagnostics: doc.diagnostics.map(String)
    }))
    if (Either.isLeft(parsed)) {
      problems.push(`${region.slice(0, 60)}…: not XML (${parsed.left.diagnostics.map(String).join("; ")})`)
      continue
    }
    if (Either.isLeft(parsed.right.canonical)) {
      problems.push(`${region.slice(0, 60)}…: not canonical XML (${parsed.right.canonical.left.diagnostics.map(String).join("; ")})`)
      continue
    }
    const canonical = parsed.right.canonical.right
    const { diagnostics, repaired } = parsed.right
    if (repaired) repairs.push(`repaired ${region.slice(0, 40)}…: ${diagnostics.join("; ")}`)
    const root = readCanonical(canonical)
    const inner = childElements(root)
    if (root.localName === RESPOND) {
      if (inner.length === 0) {
        const text = canonical.slice(root.contentStart, root.contentEnd).trim()
        if (text === "") problems.push(`<${RESPOND}> is empty`)
        else actions.push({ _tag: "Respond", payload: new RawPayload({ tag: "TextOutput", inner: `<Text>${text}</Text>` }) })
      }
      for (const el of inner) actions.push({ _tag: "Respond", payload: asPayload(canonical, el) })
    } else if (root.localName === SEND) {
      const to = root.attributes.find(([n]) => n === "to")?.[1]
      if (to === undefined) problems.push(`<${SEND}> needs a to="peer" attribute`)
      else if (inner.length === 0) problems.push(`<${SEND} to="${to}"> holds no payload`)
      else for (const el of inner) forward(canonical, el, to)
    } else {
      forward(canonical, root, undefined)
    }
  }
  return { actions, problems, repairs, text: undefined }
}
