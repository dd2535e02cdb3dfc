/**
 * An agent's peers as native tools (`protocol: tools`): one tool per payload type a peer
 * accepts, whose JSON Schema is derived from the same Effect Schema as the type's XSD, and the
 * way back — a tool call's JSON arguments written as that payload's XML, guided by the same
 * shape the XSD was generated from. The XML is then sent like any payload and the pipeline
 * judges it (the XSD decides, as for every message): nothing here validates the arguments
 * beyond what is needed to write them.
 *
 * Naming: the tool is the payload tag (`ResearchRequest`) when one peer accepts it; when
 * several do, one tool per peer, `ResearchRequest_to_researcher`. Names keep to the
 * providers' `[a-zA-Z0-9_-]{1,64}` (other characters become `_`).
 */
import { Either, JSONSchema, Schema } from "effect"
import type { LlmTool } from "../../domain/Llm.js"
import { elementNameOf, type PayloadType, PayloadTypeId } from "../../domain/Payload.js"
import type { Shape, Struct } from "../../domain/payload/Shape.js"
import { escapeText, isNcName } from "../../domain/xml/escape.js"
import type { OutputVocabulary } from "./AgentOutput.js"

/** A tool the agent offers its model, and where a call of it goes. */
export interface AgentTool {
  readonly tool: LlmTool
  readonly peer: string
  readonly type: PayloadType
}

const safeName = (name: string) => name.replace(/[^a-zA-Z0-9_-]/g, "_").slice(0, 64)

/** The JSON Schema of a payload type's arguments: its encoded form, inline (no top-level $ref). */
export const argumentsSchema = (type: PayloadType): Record<string, unknown> => {
  const definitions: Record<string, JSONSchema.JsonSchema7> = {}
  const schema = JSONSchema.fromAST(Schema.encodedSchema(type).ast, { definitions, topLevelReferenceStrategy: "skip" }) as unknown as Record<
    string,
    unknown
  >
  return Object.keys(definitions).length === 0 ? schema : { ...schema, $defs: definitions }
}

/** Memoised per payload type: a schema is derived once, not on every model call. */
const schemas = new WeakMap<PayloadType, Record<string, unknown>>()
const schemaOf = (type: PayloadType) => {
  let s = schemas.get(type)
  if (s === undefined) schemas.set(type, s = argumentsSchema(type))
  return s
}

/** The tools an agent's vocabulary offers, by tool name. */
export const agentTools = (vocabulary: OutputVocabulary): ReadonlyMap<string, AgentTool> => {
  const tools = new Map<string, AgentTool>()
  for (const [tag, peers] of vocabulary.peersByTag) {
    const type = vocabulary.typesByTag?.get(tag)
    if (type === undefined) continue
    const spec = type[PayloadTypeId]
    const about = spec.description === undefined ? "" : ` ${spec.description}.`
    for (const peer of peers) {
      const name = safeName(peers.length === 1 ? spec.tag : `${spec.tag}_to_${peer}`)
      tools.set(name, {
        peer,
        type,
        tool: {
          name,
          description: `Sends a <${spec.tag}> to ${peer}; the result is ${peer}'s reply.${about}`,
          parameters: schemaOf(type)
        }
      })
    }
  }
  return tools
}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * JSON arguments as the payload's element content (the native wire form: fields in declared
 * order, a list as repeated elements, an absent or null field left out). Keys the type does
 * not declare are written too, after the declared ones, so that the XSD names them.
 */
export const argumentsToXml = (type: PayloadType, args: unknown): Either.Either<string, string> => {
  if (!isObject(args)) return Either.left(`the arguments must be a JSON object, got ${JSON.stringify(args)?.slice(0, 80)}`)
  const problems: Array<string> = []
  const value = (shape: Shape | undefined, element: string, v: unknown, out: Array<string>) => {
    if (v === null || v === undefined) return
    if (Array.isArray(v)) {
      for (const item of v) value(shape, element, item, out)
      return
    }
    if (isObject(v)) {
      out.push(`<${element}>${struct(shape?._tag === "Struct" ? shape : undefined, v)}</${element}>`)
      return
    }
    // A fragment field carries XML as written; every other scalar is text.
    const text = typeof v === "string" ? v : String(v)
    out.push(`<${element}>${shape?._tag === "Xml" ? text : escapeText(text)}</${element}>`)
  }
  const struct = (shape: Struct | undefined, obj: Record<string, unknown>): string => {
    const out: Array<string> = []
    const declared = new Set<string>()
    for (const field of shape?.fields ?? []) {
      declared.add(field.key)
      if (field.key in obj) value(field.shape, field.element, obj[field.key], out)
      else if (field.element in obj) {
        declared.add(field.element)
        value(field.shape, field.element, obj[field.element], out)
      }
    }
    for (const [key, v] of Object.entries(obj)) {
      if (declared.has(key)) continue
      const element = elementNameOf(key)
      if (!isNcName(element)) {
        problems.push(`"${key}" cannot be an XML element name`)
        continue
      }
      value(undefined, element, v, out)
    }
    return out.join("")
  }
  const inner = struct(type[PayloadTypeId].shape, args)
  return problems.length > 0 ? Either.left(problems.join("; ")) : Either.right(inner)
}
