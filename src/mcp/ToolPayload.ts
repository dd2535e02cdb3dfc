/**
 * The payload types of an MCP tool: its call, derived from the tool's input JSON Schema, and
 * its result. `read_text_file` of the server `fs` becomes
 *
 * - the listener `fs.read_text_file` (characters outside letters, digits, `_ . : -` become `_`),
 * - the call `<FsReadTextFile><Path>…</Path><Head>…</Head></FsReadTextFile>`: the PascalCase
 *   of the server and tool names; each property one element, the PascalCase of its key,
 * - the result `<FsReadTextFileResult><Text>…</Text><IsError>false</IsError></FsReadTextFileResult>`:
 *   the text of the tool's content blocks, and whether the tool reported an error.
 *
 * JSON Schema → payload fields:
 *
 * | JSON Schema | field |
 * |---|---|
 * | `string` (any `format`) | `Schema.String` |
 * | `integer` / `number` / `boolean` | `Schema.Int` / `Schema.Number` / `Schema.Boolean` |
 * | `enum` or `const` of strings, numbers, booleans | `Schema.Literal(…)` |
 * | `array` of one of these or of objects | `Schema.Array(…)` (an element per item) |
 * | `object` with `properties` | a nested struct |
 * | a property not in `required`, or `type: [X, "null"]`, or `anyOf: [X, {type: null}]` | optional |
 * | `$ref` to `#/$defs/…` or `#/definitions/…` | what it points to (not recursive) |
 *
 * Refused, with the JSON-Schema path: maps (`additionalProperties` other than `false`, and
 * `patternProperties`), unions (`oneOf`, `anyOf`, several types), `allOf`, `not`, arrays of
 * arrays, tuples, a schema with no type (any JSON), recursive `$ref`s, and property names that
 * are not XML names once PascalCased.
 */
import { Data, Either, Schema } from "effect"
import * as Payload from "../domain/Payload.js"

/** What of a tool's input schema XML cannot carry, and where (a JSON-Schema path). */
export class ToolSchemaProblem extends Data.TaggedError("ToolSchemaProblem")<{
  readonly path: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.path}: ${this.reason}`
  }
  override toString(): string {
    return this.message
  }
}

export interface ToolTypes {
  /** The listener's name: `server.tool`. */
  readonly listener: string
  readonly call: Payload.PayloadType
  readonly result: Payload.PayloadType<ToolResultValue>
  /** The call's value as the tool's JSON arguments (optional lists left out when empty). */
  readonly argumentsOf: (value: unknown) => Record<string, unknown>
}

export interface ToolResultValue {
  readonly text: string
  readonly is_error: boolean
}

const pascal = (name: string): string => Payload.elementNameOf(name.replace(/[^A-Za-z0-9_\-\s]/g, "_"))

/** A listener name the organism file accepts: `server.tool`, odd characters as `_`. */
export const listenerNameOf = (server: string, tool: string): string => `${server}.${tool.replace(/[^A-Za-z0-9_.:-]/g, "_")}`

/** `fs` + `read_text_file` → `FsReadTextFile`. */
export const payloadTagOf = (server: string, tool: string): string => {
  const tag = pascal(server) + pascal(tool)
  return /^[A-Za-z_]/.test(tag) ? tag : `T${tag}`
}

const XML_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/

type JsonSchema = Record<string, unknown>
const isObject = (u: unknown): u is JsonSchema => typeof u === "object" && u !== null && !Array.isArray(u)

interface Field {
  readonly schema: Schema.Schema.Any
  /** `type: [X, "null"]` and the like: never required. */
  readonly nullable: boolean
  readonly isArray: boolean
}

// Thrown from deep in the recursive compile and caught once in `toolTypes`, as the payload
// shape compiler does with PayloadDeclarationError.
const refuse = (path: string, reason: string): never => {
  throw new ToolSchemaProblem({ path, reason })
}

const MAP_REASON = "a map of arbitrary keys has no fixed XML elements (give the object its properties, or additionalProperties: false)"

const compile = (root: JsonSchema) => {
  const resolving = new Set<string>()

  const resolve = (node: JsonSchema, path: string): [JsonSchema, string] => {
    const ref = node.$ref
    if (typeof ref !== "string") return [node, path]
    const m = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref)
    const target = m === null ? undefined : (root[m[1]!] as JsonSchema | undefined)?.[decodeURIComponent(m[2]!)]
    if (!isObject(target)) return refuse(path, `$ref ${ref} does not point to a definition of this schema`)
    if (resolving.has(ref)) return refuse(path, `$ref ${ref} is recursive: XML elements cannot nest without end`)
    return [target, `${ref.slice(2).replace(/\//g, ".")}`]
  }

  const field = (input: JsonSchema, path: string): Field => {
    const ref = typeof input.$ref === "string" ? input.$ref : undefined
    const [node, at] = resolve(input, path)
    if (ref !== undefined) resolving.add(ref)
    try {
      return fieldOf(node, at === path ? path : `${path} (${at})`)
    } finally {
      if (ref !== undefined) resolving.delete(ref)
    }
  }

  const withDescription = (schema: Schema.Schema.Any, node: JsonSchema): Schema.Schema.Any =>
    typeof node.description === "string" && node.description !== "" ? schema.annotations({ description: node.description }) : schema

  const literal = (values: ReadonlyArray<unknown>, path: string): Schema.Schema.Any => {
    const ok = values.filter((v) => typeof v === "string" || typeof v === "number" || typeof v === "boolean")
    if (ok.length === 0 || ok.length !== values.length) {
      if (values.length === ok.length + 1 && values.includes(null)) return Schema.Literal(...(ok as Array<string | number | boolean>))
      return refuse(path, "an enum whose values are not all strings, numbers or booleans")
    }
    return Schema.Literal(...(ok as Array<string | number | boolean>))
  }

  const fieldOf = (node: JsonSchema, path: string): Field => {
    for (const key of ["oneOf", "anyOf"] as const) {
      const alternatives = node[key]
      if (!Array.isArray(alternatives)) continue
      const others = alternatives.filter((a) => !(isObject(a) && a.type === "null"))
      if (others.length === 1 && others.length < alternatives.length && isObject(others[0])) {
        return { ...field(others[0], `${path}.${key}[${alternatives.indexOf(others[0])}]`), nullable: true }
      }
      return refuse(`${path}.${key}`, "a union of several schemas has no single XML form (only X-or-null is read, as an optional X)")
    }
    if (node.allOf !== undefined) return refuse(`${path}.allOf`, "allOf is not supported: merge the schemas into one object")
    if (node.not !== undefined) return refuse(`${path}.not`, "not is not supported")
    if (node.const !== undefined) return { schema: withDescription(literal([node.const], `${path}.const`), node), nullable: false, isArray: false }
    if (Array.isArray(node.enum)) {
      return { schema: withDescription(literal(node.enum, `${path}.enum`), node), nullable: node.enum.includes(null), isArray: false }
    }
    let type = node.type
    let nullable = false
    if (Array.isArray(type)) {
      const others = type.filter((t) => t !== "null")
      if (others.length !== 1) return refuse(`${path}.type`, `several types (${type.join(", ")}) have no single XML form`)
      nullable = others.length < type.length
      type = others[0]
    }
    if (type === undefined && (isObject(node.properties) || node.additionalProperties !== undefined)) type = "object"
    switch (type) {
      case "string":
        return { schema: withDescription(Schema.String, node), nullable, isArray: false }
      case "integer":
        return { schema: withDescription(Schema.Int, node), nullable, isArray: false }
      case "number":
        return { schema: withDescription(Schema.Number, node), nullable, isArray: false }
      case "boolean":
        return { schema: withDescription(Schema.Boolean, node), nullable, isArray: false }
      case "array": {
        if (Array.isArray(node.items) || Array.isArray(node.prefixItems)) return refuse(`${path}.items`, "a tuple has no XML form here: use an array of one item type")
        if (!isObject(node.items)) return refuse(`${path}.items`, "an array needs an items schema (a list of anything has no XML form)")
        const item = field(node.items, `${path}.items`)
        if (item.isArray) return refuse(`${path}.items`, "an array of arrays has no XML form here (the items would run together)")
        return { schema: withDescription(Schema.Array(item.schema), node), nullable, isArray: true }
      }
      case "object":
        return { schema: withDescription(Schema.Struct(struct(node, path)), node), nullable, isArray: false }
      case "null":
        return refuse(`${path}.type`, "null alone carries nothing")
      case undefined:
        return refuse(path, "a schema with no type (any JSON value) has no XML form: give it a type")
      default:
        return refuse(`${path}.type`, `unknown type ${JSON.stringify(type)}`)
    }
  }

  const struct = (node: JsonSchema, path: string): Schema.Struct.Fields => {
    if (node.additionalProperties !== undefined && node.additionalProperties !== false) {
      if (!isObject(node.properties) || Object.keys(node.properties).length === 0 || node.additionalProperties !== true) {
        return refuse(`${path}.additionalProperties`, MAP_REASON)
      }
      // `additionalProperties: true` beside declared properties: the declared ones are
      // what a caller can write; nothing else is sent.
    }
    if (node.patternProperties !== undefined) return refuse(`${path}.patternProperties`, MAP_REASON)
    const properties = isObject(node.properties) ? node.properties : {}
    const required = new Set(Array.isArray(node.required) ? node.required.filter((r): r is string => typeof r === "string") : [])
    const fields: Record<string, Schema.Schema.Any | Schema.PropertySignature.Any> = {}
    const elements = new Map<string, string>()
    for (const [key, sub] of Object.entries(properties)) {
      const at = `${path}.properties.${key}`
      const element = Payload.elementNameOf(key)
      if (!XML_NAME.test(element)) return refuse(at, `the property name ${JSON.stringify(key)} is not an XML element name once PascalCased (${JSON.stringify(element)})`)
      const twin = elements.get(element)
      if (twin !== undefined) return refuse(at, `the properties ${JSON.stringify(twin)} and ${JSON.stringify(key)} would both be the element <${element}>`)
      elements.set(element, key)
      if (!isObject(sub)) {
        if (sub === true) return refuse(at, "a schema with no type (any JSON value) has no XML form: give it a type")
        return refuse(at, "not a schema")
      }
      const f = field(sub, at)
      // A list is already optional (no element: no item); an optional one is the same list.
      fields[key] = f.isArray || (required.has(key) && !f.nullable) ? f.schema : Schema.optional(f.schema)
    }
    return fields
  }

  return (node: JsonSchema): Schema.Struct.Fields => {
    const [top] = resolve(node, "inputSchema")
    if (top.type !== undefined && top.type !== "object") return refuse("inputSchema.type", `a tool's input must be an object, not ${JSON.stringify(top.type)}`)
    return struct(top, "inputSchema")
  }
}

/** Optional lists the caller left empty are left out; everything else is sent as given. */
const argumentsOf = (encode: (u: unknown) => unknown, required: ReadonlySet<string>) => (value: unknown) => {
  const encoded = encode(value) as Record<string, unknown>
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(encoded)) {
    if (v === undefined) continue
    if (Array.isArray(v) && v.length === 0 && !required.has(k)) continue
    out[k] = v
  }
  return out
}

/**
 * The call and result payload types of one tool, or what of its input schema XML cannot
 * carry (with the JSON-Schema path).
 */
export const toolTypes = (
  server: string,
  tool: { readonly name: string; readonly description?: string | undefined; readonly inputSchema: unknown }
): Either.Either<ToolTypes, ToolSchemaProblem> => {
  const tag = payloadTagOf(server, tool.name)
  try {
    const schema = isObject(tool.inputSchema) ? tool.inputSchema : refuse("inputSchema", "missing: a tool needs an input schema of type object")
    const fields = compile(schema)(schema)
    const description = tool.description === undefined ? `a call of the MCP tool ${tool.name} (server ${server})` : tool.description
    let call: Payload.PayloadType
    try {
      call = class extends Payload.Class<any>(tag, { description })(fields) {} as unknown as Payload.PayloadType
      Payload.specOf(call)
    } catch (e) {
      return refuse("inputSchema", e instanceof Error ? e.message : String(e))
    }
    const result = class extends Payload.Class<any>(`${tag}Result`, { description: `the answer of the MCP tool ${tool.name} (server ${server})` })({
      text: Schema.String.annotations({ description: "the text the tool answered" }),
      is_error: Schema.Boolean.annotations({ description: "true when the tool reported an error" })
    }) {} as unknown as Payload.PayloadType<ToolResultValue>
    const required = new Set(Array.isArray(schema.required) ? (schema.required as Array<string>) : [])
    return Either.right({
      listener: listenerNameOf(server, tool.name),
      call,
      result,
      argumentsOf: argumentsOf(Schema.encodeSync(call as Schema.Schema<any, any, never>), required)
    })
  } catch (e) {
    if (e instanceof ToolSchemaProblem) return Either.left(e)
    throw e
  }
}
