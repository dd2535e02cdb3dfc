import { Data, Option, SchemaAST as AST } from "effect"
import { IntSchemaId } from "effect/Schema"
import { isNcName } from "../xml/escape.js"

/**
 * The XML shape of a payload, derived once from its Schema when the payload is declared.
 * XSD, encoder, decoder and example document are all generated from this one value, so
 * they cannot disagree with each other.
 */
export type Scalar =
  | { readonly _tag: "String" }
  | { readonly _tag: "Number" }
  | { readonly _tag: "Integer" }
  | { readonly _tag: "Boolean" }
  | { readonly _tag: "Enum"; readonly values: ReadonlyArray<string | number | boolean> }
  | { readonly _tag: "Xml" }

export interface Struct {
  readonly _tag: "Struct"
  readonly fields: ReadonlyArray<Field>
  /** Element name → field, for decoding. */
  readonly byElement: ReadonlyMap<string, Field>
  /**
   * The name a Python dataclass of this shape would have: the Schema.Class identifier (or an
   * `identifier` annotation), else the element name of the field holding it. xmlify names
   * list items and optional values after it (`<Points><Point>…</Point></Points>`).
   */
  readonly name: string
}

export type Shape = Scalar | Struct

export type Occurs = "required" | "optional" | "many" | "many1"

export interface Field {
  readonly key: string
  readonly element: string
  readonly shape: Shape
  readonly occurs: Occurs
  readonly description: string | undefined
  /**
   * Optional when encoded but always present in the value (`Schema.optionalWith(X, { default })`):
   * a Python field with a default, which xmlify writes like any required field.
   */
  readonly defaulted: boolean
  /** The element name in the xmlify wire form (the same as `element` unless annotated). */
  readonly xmlifyElement: string
}

/** Thrown when a payload is declared with a Schema shape XML cannot carry. */
export class PayloadDeclarationError extends Data.TaggedError("PayloadDeclarationError")<{
  readonly payload: string
  readonly field: string
  readonly reason: string
}> {
  override get message(): string {
    const where = this.field === "" ? "" : ` field "${this.field}"`
    return `payload ${this.payload}:${where} ${this.reason}`
  }
}

/** Marks a string field whose element holds free-form XML instead of text. */
export const XmlFragmentId: unique symbol = Symbol.for("xml-organism/XmlFragment")

/**
 * Names a field's element in the xmlify wire form when it is not the PascalCase of its key
 * (xml-pipeline's hand-written SystemError uses `<code>` and `<retry-allowed>`).
 */
export const XmlifyElementId: unique symbol = Symbol.for("xml-organism/XmlifyElement")

/**
 * `original_sender`, `originalSender` and `original-sender` all become `OriginalSender`,
 * as xml-pipeline's xmlify writes them.
 */
export const elementNameOf = (key: string): string =>
  key
    .split(/[_\-\s]+/)
    .filter((p) => p.length > 0)
    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
    .join("")

const hasAnnotation = (ast: AST.AST, id: symbol): boolean =>
  Object.prototype.hasOwnProperty.call(ast.annotations, id)

const describe = (annotated: AST.Annotated): string | undefined =>
  Option.getOrUndefined(AST.getDescriptionAnnotation(annotated))

const isDefaultDescription = (ast: AST.AST, d: string | undefined): boolean =>
  d === undefined ||
  // Effect annotates keywords with generic descriptions ("a string"); only a user's own
  // description is worth repeating in an XSD.
  (ast._tag === "StringKeyword" || ast._tag === "NumberKeyword" || ast._tag === "BooleanKeyword")

interface Ctx {
  readonly payload: string
  readonly path: string
}

const fail = (ctx: Ctx, reason: string): never => {
  throw new PayloadDeclarationError({ payload: ctx.payload, field: ctx.path, reason })
}

/** Strips refinements (validated by Schema at decode time), noticing integer-ness and XML. */
const unwrap = (ast: AST.AST): { ast: AST.AST; integer: boolean; xml: boolean } => {
  let integer = false
  let xml = false
  let cur = ast
  for (;;) {
    if (hasAnnotation(cur, XmlFragmentId)) xml = true
    if (cur._tag === "Refinement") {
      if (Option.getOrUndefined(AST.getSchemaIdAnnotation(cur)) === IntSchemaId) integer = true
      cur = cur.from
      continue
    }
    return { ast: cur, integer, xml }
  }
}

const literalValue = (ctx: Ctx, ast: AST.AST): string | number | boolean => {
  if (ast._tag === "Literal") {
    const v = ast.literal
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v
    return fail(ctx, `literal ${String(v)} cannot be written as XML text`)
  }
  if (ast._tag === "UniqueSymbol") return fail(ctx, "unique symbols cannot be written as XML text")
  return fail(ctx, `a union must consist of literals only (found ${String(ast)})`)
}

const compileShape = (ctx: Ctx, input: AST.AST): Shape => {
  const { ast, integer, xml } = unwrap(input)
  if (xml) {
    if (ast._tag !== "StringKeyword") fail(ctx, "Payload.Xml must wrap a string")
    return { _tag: "Xml" }
  }
  switch (ast._tag) {
    case "StringKeyword":
    case "TemplateLiteral":
      return { _tag: "String" }
    case "NumberKeyword":
      return integer ? { _tag: "Integer" } : { _tag: "Number" }
    case "BooleanKeyword":
      return { _tag: "Boolean" }
    case "Literal":
      return { _tag: "Enum", values: [literalValue(ctx, ast)] }
    case "Enums":
      return { _tag: "Enum", values: ast.enums.map(([, v]) => v) }
    case "Union": {
      const values = ast.types.map((t) => literalValue(ctx, unwrap(t).ast))
      return { _tag: "Enum", values }
    }
    case "TypeLiteral":
      return compileStruct(ctx, ast)
    case "Transformation":
      // Only reached for encoded sides that are themselves transformations; the encoded form
      // is what travels.
      return compileShape(ctx, AST.encodedBoundAST(ast))
    case "TupleType":
      return fail(ctx, "arrays are only supported as the type of a field (a repeated element)")
    case "Suspend":
      return fail(ctx, "recursive schemas cannot be expressed as an XSD here")
    case "Declaration":
      return fail(ctx, `${String(ast)} has no XML text form (declare its encoded form instead)`)
    default:
      return fail(ctx, `${ast._tag} (${String(ast)}) cannot be expressed as XML`)
  }
}

const xmlifyElementOf = (ps: AST.PropertySignature, type: AST.AST, element: string): string => {
  const named = ps.annotations[XmlifyElementId] ?? type.annotations[XmlifyElementId]
  return typeof named === "string" ? named : element
}

const compileField = (ctx: Ctx, ps: AST.PropertySignature): Field => {
  if (typeof ps.name !== "string") return fail(ctx, "symbol keys cannot be XML elements")
  const key = ps.name
  const fieldCtx = { payload: ctx.payload, path: ctx.path === "" ? key : `${ctx.path}.${key}` }
  const element = elementNameOf(key)
  if (!isNcName(element)) fail(fieldCtx, `element name "${element}" is not a valid XML name`)
  let type = ps.type
  if (ps.isOptional && type._tag === "Union") {
    // `optional(X)` is `X | undefined` on the encoded side; absence is the element's absence.
    const members = type.types.filter((t) => t._tag !== "UndefinedKeyword")
    if (members.length === 1) type = members[0]!
    else if (members.length !== type.types.length) type = AST.Union.make(members)
  }
  const description = describe(ps) ?? (isDefaultDescription(type, describe(type)) ? undefined : describe(type))
  const { ast: inner } = unwrap(type)
  if (inner._tag === "TupleType") {
    const arrayCtx = fieldCtx
    if (ps.isOptional) {
      fail(arrayCtx, "an array field is already optional (zero elements); declare it without optional")
    }
    const { elements, rest } = inner
    const item = rest[0]
    if (rest.length !== 1 || item === undefined) fail(arrayCtx, "tuples cannot be expressed; use an array")
    if (elements.length > 1) fail(arrayCtx, "tuples cannot be expressed; use an array")
    if (elements.length === 1 && elements[0]!.isOptional) fail(arrayCtx, "tuples cannot be expressed; use an array")
    if (unwrap(item!.type).ast._tag === "TupleType") fail(arrayCtx, "arrays of arrays cannot be expressed")
    const itemShape = compileShape(arrayCtx, item!.type)
    return {
      key,
      element,
      shape: itemShape,
      occurs: elements.length === 1 ? "many1" : "many",
      description,
      defaulted: false,
      xmlifyElement: xmlifyElementOf(ps, type, element)
    }
  }
  if (inner._tag === "UndefinedKeyword" || inner._tag === "VoidKeyword") {
    return fail(fieldCtx, "undefined cannot be written as XML; make the field optional instead")
  }
  const shape = compileShape(fieldCtx, type)
  return { key, element, shape, occurs: ps.isOptional ? "optional" : "required", description, defaulted: false, xmlifyElement: xmlifyElementOf(ps, type, element) }
}

const compileStruct = (ctx: Ctx, ast: AST.TypeLiteral): Struct => {
  if (ast.indexSignatures.length > 0) fail(ctx, "records (index signatures) cannot be expressed as XML")
  const fields = ast.propertySignatures.map((ps) => compileField(ctx, ps))
  const byElement = new Map<string, Field>()
  for (const f of fields) {
    const clash = byElement.get(f.element)
    if (clash !== undefined) {
      fail(
        { payload: ctx.payload, path: ctx.path === "" ? f.key : `${ctx.path}.${f.key}` },
        `element name <${f.element}> is also used by field "${clash.key}"`
      )
    }
    byElement.set(f.element, f)
  }
  return { _tag: "Struct", fields, byElement, name: "" }
}

/** Compiles the encoded side of a payload schema; throws {@link PayloadDeclarationError}. */
export const compilePayloadShape = (tag: string, ast: AST.AST): Struct => {
  const ctx: Ctx = { payload: tag, path: "" }
  if (!isNcName(tag)) fail(ctx, `"${tag}" is not a valid XML element name`)
  const encoded = unwrap(AST.encodedBoundAST(ast)).ast
  if (encoded._tag !== "TypeLiteral") return fail(ctx, "a payload must be a struct of fields")
  return annotateStruct(compileStruct(ctx, encoded), ast, tag)
}

// ---------------------------------------------------------------------------------------
// What the encoded side forgets and the xmlify form needs: class names and defaults. The
// shape is compiled from the encoded AST; this pass walks the declared AST beside it.
// ---------------------------------------------------------------------------------------

const identifierOf = (ast: AST.AST): string | undefined => {
  for (let cur: AST.AST = ast;;) {
    const id = Option.getOrUndefined(AST.getIdentifierAnnotation(cur))
    if (id !== undefined) return id
    if (cur._tag === "Transformation") cur = cur.to
    else if (cur._tag === "Refinement") cur = cur.from
    else return undefined
  }
}

/** The encoded-side struct of a declared schema, with its fields' declared types. */
const declaredLiteral = (ast: AST.AST): AST.TypeLiteral | undefined => {
  for (let cur: AST.AST = ast;;) {
    if (cur._tag === "TypeLiteral") return cur
    if (cur._tag === "Transformation" || cur._tag === "Refinement") cur = cur.from
    else return undefined
  }
}

/** Keys that are optional in the value (type side); a class hides its struct in a Declaration. */
const typeSideOptional = (ast: AST.AST): ReadonlySet<PropertyKey> => {
  let cur = AST.typeAST(ast)
  for (let guard = 0; guard < 8; guard++) {
    if (cur._tag === "Declaration" && cur.typeParameters.length === 1) cur = AST.typeAST(cur.typeParameters[0]!)
    else if (cur._tag === "Refinement") cur = cur.from
    else break
  }
  if (cur._tag !== "TypeLiteral") return new Set()
  return new Set(cur.propertySignatures.filter((p) => p.isOptional).map((p) => p.name))
}

/** The declared type of a field's value: without `| undefined`, an array's item type. */
const valueTypeOf = (ast: AST.AST): AST.AST => {
  for (let cur: AST.AST = ast;;) {
    if (cur._tag === "Union") {
      const members = cur.types.filter((t) => t._tag !== "UndefinedKeyword")
      if (members.length !== 1) return cur
      cur = members[0]!
    } else if (cur._tag === "Refinement" && cur.from._tag === "TupleType") cur = cur.from
    else if (cur._tag === "TupleType") cur = cur.rest[0]?.type ?? cur.elements[0]?.type ?? cur
    else return cur
  }
}

const annotateStruct = (struct: Struct, declared: AST.AST, name: string): Struct => {
  const literal = declaredLiteral(declared)
  const optionalInValue = typeSideOptional(declared)
  const declaredFields = new Map(literal?.propertySignatures.map((p) => [p.name, p]) ?? [])
  const byElement = new Map<string, Field>()
  const fields = struct.fields.map((f): Field => {
    const ps = declaredFields.get(f.key)
    const defaulted = f.occurs === "optional" && ps !== undefined && !optionalInValue.has(f.key)
    const shape = f.shape._tag === "Struct" && ps !== undefined
      ? annotateStruct(f.shape, valueTypeOf(ps.type), f.element)
      : f.shape
    const field = { ...f, defaulted, shape }
    byElement.set(field.element, field)
    return field
  })
  return { _tag: "Struct", fields, byElement, name: elementNameOf(identifierOf(declared) ?? name) }
}

/**
 * True when the Schema adds nothing to the XML shape: no transformations, no defaults, no
 * nested classes, and no refinements but "integer". For such payloads the XSD has already
 * checked everything Schema would, so values can be built and read directly — a few µs per
 * message saved on the hot path. Anything else goes through Schema.decode / encode.
 */
export const isPlainStruct = (ast: AST.AST): boolean => {
  if (AST.typeAST(ast) !== ast || AST.encodedBoundAST(ast) !== ast) return false
  const plain = (a: AST.AST): boolean => {
    switch (a._tag) {
      case "StringKeyword":
      case "NumberKeyword":
      case "BooleanKeyword":
      case "Literal":
      case "Enums":
      case "UndefinedKeyword":
        return true
      case "Union":
        return a.types.every(plain)
      case "Refinement":
        return Option.getOrUndefined(AST.getSchemaIdAnnotation(a)) === IntSchemaId && a.from._tag === "NumberKeyword"
      case "TupleType":
        return a.elements.every((e) => plain(e.type)) && a.rest.every((r) => plain(r.type))
      case "TypeLiteral":
        return a.indexSignatures.length === 0 && a.propertySignatures.every((p) => plain(p.type))
      default:
        return false
    }
  }
  return plain(ast)
}

/**
 * For a plain struct (see `isPlainStruct`): a check that props certainly satisfy its Schema,
 * compiled once from the AST. Construction runs it instead of Schema's validation (≈ 0.1 µs
 * instead of ≈ 2 µs for a three-field payload); when it says no, the constructor validates
 * the Schema way, so a wrong value still fails with Schema's own error.
 */
export const plainConformance = (ast: AST.AST): (value: unknown) => boolean => {
  const compile = (a: AST.AST): (v: unknown) => boolean => {
    switch (a._tag) {
      case "StringKeyword":
        return (v) => typeof v === "string"
      case "NumberKeyword":
        return (v) => typeof v === "number"
      case "BooleanKeyword":
        return (v) => typeof v === "boolean"
      case "UndefinedKeyword":
        return (v) => v === undefined
      case "Literal": {
        const literal = a.literal
        return (v) => v === literal
      }
      case "Enums": {
        const values = new Set(a.enums.map(([, value]) => value))
        return (v) => values.has(v as string | number)
      }
      case "Union": {
        const members = a.types.map(compile)
        return (v) => members.some((m) => m(v))
      }
      case "Refinement":
        // Only Schema.Int is plain; a safe integer satisfies it.
        return (v) => Number.isSafeInteger(v)
      case "TupleType": {
        if (a.elements.length > 0 || a.rest.length !== 1) return () => false
        const item = compile(a.rest[0]!.type)
        return (v) => Array.isArray(v) && v.every(item)
      }
      case "TypeLiteral": {
        const fields = a.propertySignatures.map((p) => ({ key: p.name, optional: p.isOptional, check: compile(p.type) }))
        const known = new Set(fields.map((f) => f.key))
        return (v) => {
          if (typeof v !== "object" || v === null || Array.isArray(v)) return false
          const obj = v as Record<PropertyKey, unknown>
          for (const f of fields) {
            const value = obj[f.key]
            if (value === undefined && f.optional && !(f.key in obj)) continue
            if (!f.check(value)) return false
          }
          // Schema drops keys it does not know; leave those cases to it.
          for (const key in obj) if (!known.has(key)) return false
          return true
        }
      }
      default:
        return () => false
    }
  }
  return compile(ast)
}
