/**
 * A YAML file parsed with positions, so that any problem found later — by the Schema, by a
 * module import, by a cross-reference check — can say which line and key it is about.
 */
import { Either, ParseResult, type Schema, SchemaAST as AST } from "effect"
import { isAlias, isCollection, isMap, isPair, isScalar, LineCounter, parseDocument, visit, type Document, type Node } from "yaml"
import { ConfigProblem } from "./ConfigError.js"
import { closest } from "./suggest.js"

export type Path = ReadonlyArray<string | number>

export interface YamlSource {
  readonly file: string
  readonly value: unknown
  /** A problem located at `path` (at the key itself when `atKey`). */
  readonly problem: (path: Path, message: string, atKey?: boolean) => ConfigProblem
}

/** `listeners[0].handler`, or `listeners[0] "greeter".handler` when the item has a name. */
export const formatPath = (path: Path, value: unknown): string => {
  let out = ""
  let cur: any = value
  for (const seg of path) {
    if (typeof seg === "number") {
      out += `[${seg}]`
      cur = Array.isArray(cur) ? cur[seg] : undefined
      if (cur !== null && typeof cur === "object" && typeof cur.name === "string") out += ` "${cur.name}"`
    } else {
      out += out === "" ? seg : `.${seg}`
      cur = cur !== null && typeof cur === "object" ? cur[seg] : undefined
    }
  }
  return out
}

export const parseYaml = (file: string, text: string): Either.Either<YamlSource, ReadonlyArray<ConfigProblem>> => {
  const lineCounter = new LineCounter()
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    return Either.left(doc.errors.map((e) => {
      const pos = lineCounter.linePos(e.pos[0])
      return new ConfigProblem({
        file,
        line: pos.line,
        column: pos.col,
        key: "",
        message: `YAML syntax error: ${e.message.split("\n")[0]}`
      })
    }))
  }
  const at = (node: Node | null | undefined) => {
    const pos = lineCounter.linePos(node?.range?.[0] ?? 0)
    return { line: pos.line, column: pos.col }
  }
  const bomb = aliasBomb(doc)
  if (bomb !== undefined) {
    return Either.left([new ConfigProblem({ file, ...at(bomb.alias), key: "", message: bomb.message })])
  }
  let value: unknown
  try {
    value = doc.toJS({ maxAliasCount: 100 }) as unknown
  } catch (e) {
    // The yaml library's own limits (an alias before its anchor…): a problem, never a crash.
    return Either.left([new ConfigProblem({ file, line: 1, column: 1, key: "", message: `YAML: ${e instanceof Error ? e.message : String(e)}` })])
  }

  const locate = (path: Path, atKey: boolean): { line: number; column: number } => {
    // Walk as far as the document goes: a missing key is reported at its parent.
    let node: unknown = doc.contents
    let at: unknown = node
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg)
        if (pair === undefined) break
        at = atKey && seg === path[path.length - 1] ? pair.key : pair.value ?? pair.key
        node = pair.value
      } else if (node !== null && typeof node === "object" && "items" in node && typeof seg === "number") {
        const item = (node as { items: Array<unknown> }).items[seg]
        if (item === undefined) break
        at = item
        node = item
      } else break
    }
    const range = (at as Node | null)?.range
    if (range === undefined || range === null) return { line: 1, column: 1 }
    const pos = lineCounter.linePos(range[0])
    return { line: pos.line, column: pos.col }
  }

  return Either.right({
    file,
    value,
    problem: (path, message, atKey = false) => {
      const { column, line } = locate(path, atKey)
      return new ConfigProblem({ file, line, column, key: formatPath(path, value), message })
    }
  })
}

/** An organism file is small: no alias may stand for more nodes than this. */
const MAX_ALIAS_EXPANSION = 10_000

/**
 * Finds an alias-expansion bomb (`a: &a [x, x]`, `b: &b [*a, *a]`, … doubling at every
 * level) before anything expands it: the size of every anchored node, aliases counted at
 * their full size, is computed once in document order. Returns the first alias that stands
 * for too many nodes.
 */
const aliasBomb = (doc: Document): { alias: Node; message: string } | undefined => {
  const sizes = new Map<unknown, number>()
  const sizeOf = (node: unknown): number => {
    const known = sizes.get(node)
    if (known !== undefined) return known
    let size = 1
    if (isAlias(node)) {
      const target = node.resolve(doc)
      size = target === undefined ? 1 : sizeOf(target)
    } else if (isCollection(node)) {
      for (const item of node.items) {
        size += isPair(item) ? sizeOf(item.key) + sizeOf(item.value) : sizeOf(item)
        if (size > MAX_ALIAS_EXPANSION) break
      }
    }
    sizes.set(node, size)
    return size
  }
  let found: { alias: Node; message: string } | undefined
  visit(doc, {
    Alias(_, node) {
      const size = sizeOf(node)
      if (size <= MAX_ALIAS_EXPANSION) return undefined
      found = {
        alias: node,
        message: `the alias *${node.source} stands for more than ${MAX_ALIAS_EXPANSION} YAML nodes once expanded ` +
          `(aliases of aliases multiply): refused as an alias-expansion bomb`
      }
      return visit.BREAK
    }
  })
  return found
}

/** The property names a schema accepts at `path` (walking arrays and the encoded side). */
const keysAt = (ast: AST.AST, path: Path): ReadonlyArray<string> => {
  let cur: AST.AST | undefined = ast
  const unwrap = (a: AST.AST): AST.AST =>
    a._tag === "Transformation"
      ? unwrap(a.from)
      : a._tag === "Refinement"
      ? unwrap(a.from)
      : a._tag === "Union"
      ? unwrap(a.types.find((t) => t._tag !== "UndefinedKeyword") ?? a)
      : a
  for (const seg of path) {
    if (cur === undefined) return []
    const u: AST.AST = unwrap(cur)
    if (typeof seg === "number" && u._tag === "TupleType") cur = u.rest[0]?.type
    else if (typeof seg === "string" && u._tag === "TypeLiteral") {
      // A record (`prices: {model: {…}}`) is a TypeLiteral whose values are its index signature's.
      cur = u.propertySignatures.find((p) => p.name === seg)?.type ?? u.indexSignatures[0]?.type
    }
    else return []
  }
  if (cur === undefined) return []
  const last = unwrap(cur)
  return last._tag === "TypeLiteral" ? last.propertySignatures.map((p) => String(p.name)) : []
}

/** Decodes with a Schema; every issue becomes a located, readable problem. */
export const decodeSource = <A, I>(
  source: YamlSource,
  schema: Schema.Schema<A, I>
): Either.Either<A, ReadonlyArray<ConfigProblem>> => {
  const result = ParseResult.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })(source.value)
  if (Either.isRight(result)) return Either.right(result.right)
  const all = ParseResult.ArrayFormatter.formatIssueSync(result.left)
  // An optional field is `X | undefined`: a bad X also fails the `undefined` member, which
  // says nothing useful. Keep that only when nothing else complains about the key or about
  // something inside it (`organism.guards` when `organism.guards.max_chain_depth` is wrong).
  const isUndefinedMember = (i: { readonly message: string }) => /^Expected undefined, actual/.test(i.message)
  const within = (inner: ReadonlyArray<PropertyKey>, outer: ReadonlyArray<PropertyKey>) =>
    inner.length >= outer.length && outer.every((seg, k) => String(seg) === String(inner[k]))
  const real = all.filter((i) => !isUndefinedMember(i))
  const issues = all.filter((i) => !isUndefinedMember(i) || !real.some((r) => within(r.path, i.path)))
  const problems = issues.map((issue) => {
    const path = issue.path as Path
    if (issue._tag === "Unexpected") {
      const key = String(path[path.length - 1])
      const parent = path.slice(0, -1)
      const known = keysAt(schema.ast, parent)
      const guess = closest(key, known)
      return source.problem(
        path,
        `unknown key "${key}"${guess !== undefined ? ` (did you mean "${guess}"?)` : ""}` +
          (known.length > 0 ? `; expected one of: ${known.join(", ")}` : ""),
        true
      )
    }
    if (issue._tag === "Missing") {
      return source.problem(path, `missing required key "${String(path[path.length - 1])}"`)
    }
    return source.problem(path, readable(issue.message))
  })
  const sorted = [...problems].sort((a, b) => a.line - b.line || a.column - b.column)
  return Either.left(sorted)
}

/** Effect's default messages, reworded for people editing YAML. */
const readable = (message: string): string => {
  const m = /^Expected (.+), actual (.+)$/s.exec(message)
  // A section (a Schema struct) is named by its class on the encoded side: say what it is.
  if (m !== null && /^\w+ \(Encoded side\)$/.test(m[1]!)) return `expected a mapping (a ${m[1]!.split(" ")[0]} section), got ${m[2]}`
  if (m !== null) return `expected ${m[1]}, got ${m[2]}`
  return message
}
