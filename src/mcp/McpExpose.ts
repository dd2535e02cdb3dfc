/**
 * An organism's listeners as the tools of an MCP server (`organism mcp FILE`), through
 * `@effect/ai`'s McpServer:
 *
 * - the tool's name is the listener's (characters MCP tool names do not allow become `_`),
 *   its description the listener's, its input schema the JSON Schema of the listener's
 *   payload type (its encoded form: the JSON an MCP client writes);
 * - a call's arguments are decoded with that payload type — arguments it refuses are an MCP
 *   error (`-32602`, invalid params) naming the field, and nothing is sent;
 * - the call is injected as a message to the listener (from the organism's injector) and the
 *   conversation's first answer to the injector is the tool's result: its XML as text, its
 *   fields as `structuredContent`. A SystemError, a rejection or the deadline are a result
 *   with `isError: true`, saying why.
 */
import { McpSchema, McpServer } from "@effect/ai"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { type Duration, Effect, JSONSchema, Layer, ParseResult, Schema } from "effect"
import type { Listener } from "../domain/Listener.js"
import * as Payload from "../domain/Payload.js"
import { RawPayload } from "../domain/Reply.js"
import type { Pump } from "../pipeline/Pump.js"

/** `a:b` → `a_b`: MCP tool names are letters, digits, `_`, `-` and `.`. */
export const toolNameOf = (listener: string): string => listener.replace(/[^A-Za-z0-9_.-]/g, "_")

/** The JSON Schema of a payload type's JSON form, with its definitions inline in `$defs`. */
export const inputSchemaOf = (payload: Payload.PayloadType): JSONSchema.JsonSchema7 => {
  const $defs: Record<string, JSONSchema.JsonSchema7> = {}
  // From the class's fields rather than its encoded side, which would drop the refinements
  // JSON Schema can say (Schema.Int is "integer", not "number").
  const fields = (payload as { readonly fields?: Schema.Struct.Fields }).fields
  const ast = fields === undefined ? Schema.encodedSchema(payload).ast : Schema.Struct(fields).ast
  const schema = JSONSchema.fromAST(ast, { definitions: $defs, topLevelReferenceStrategy: "skip" })
  return Object.keys($defs).length === 0 ? schema : { ...schema, $defs } as unknown as JSONSchema.JsonSchema7
}

/** The reply as the tool's result: its XML, and its fields as JSON when it has a type. */
const resultOf = (reply: unknown, wire: Payload.WireMode): McpSchema.CallToolResult => {
  if (reply instanceof RawPayload) {
    return new McpSchema.CallToolResult({ isError: false, content: [{ type: "text", text: `<${reply.tag}>${reply.inner}</${reply.tag}>` }] })
  }
  const type = Payload.typeOfValue(reply)
  if (type === undefined) {
    return new McpSchema.CallToolResult({ isError: false, content: [{ type: "text", text: JSON.stringify(reply) }] })
  }
  const xml = Payload.encode(type, reply, wire)
  const json = Schema.encodeEither(type)(reply)
  const isError = type.payloadTag === "SystemError"
  return new McpSchema.CallToolResult({
    isError,
    content: [{ type: "text", text: xml._tag === "Right" ? xml.right : JSON.stringify(json._tag === "Right" ? json.right : reply) }],
    ...(json._tag === "Right" && typeof json.right === "object" && json.right !== null ? { structuredContent: json.right } : {})
  })
}

const errorResult = (text: string) => new McpSchema.CallToolResult({ isError: true, content: [{ type: "text", text }] })

export interface ExposeOptions {
  /** How long a call may wait for the conversation's answer. */
  readonly timeout: Duration.Duration
  readonly wire: Payload.WireMode
}

/** Registers each listener as a tool of the McpServer in context. */
export const exposeListeners = (
  pump: Pump.Service,
  listeners: ReadonlyArray<Listener<any, any>>,
  options: ExposeOptions
): Effect.Effect<void, never, McpServer.McpServer> =>
  Effect.gen(function*() {
    const server = yield* McpServer.McpServer
    for (const listener of listeners) {
      // Keys the schema does not have are refused too: the input schema says additionalProperties: false.
      const decode = Schema.decodeUnknown(listener.payload as Schema.Schema<any, any, never>, { onExcessProperty: "error", errors: "all" })
      yield* server.addTool({
        tool: new McpSchema.Tool({
          name: toolNameOf(listener.name),
          description: listener.description === "" ? `send a ${listener.payload.payloadTag} to ${listener.name}` : listener.description,
          inputSchema: inputSchemaOf(listener.payload)
        }),
        handle: (args: unknown) =>
          decode(args ?? {}).pipe(
            // Arguments the payload type refuses are the caller's mistake: an MCP error.
            Effect.mapError((e) =>
              new McpSchema.InvalidParams({
                message: `invalid arguments for ${toolNameOf(listener.name)}: ${ParseResult.TreeFormatter.formatErrorSync(e)}`
              })
            ),
            Effect.flatMap((payload) =>
              pump.request(listener.name, payload, { timeout: options.timeout }).pipe(
                Effect.map((reply) => resultOf(reply, options.wire)),
                Effect.catchAll((e) => Effect.succeed(errorResult(requestErrorText(e))))
              )
            )
            // McpServer's `handle` is typed as infallible, but its callTool answers a failure
            // with an InvalidParams as a JSON-RPC error: what a bad call should get.
          ) as unknown as Effect.Effect<McpSchema.CallToolResult, never, McpSchema.McpServerClient>
      })
    }
  })

/**
 * The listeners as the tools of an MCP server on the HTTP router of `organism serve`
 * (streamable HTTP at `path`), behind the same guard as the API: its token and limits.
 */
export const layerHttp = (
  pump: Pump.Service,
  listeners: ReadonlyArray<Listener<any, any>>,
  options: ExposeOptions & { readonly name: string; readonly version: string; readonly path: `/${string}` }
): Layer.Layer<never> =>
  Layer.effectDiscard(exposeListeners(pump, listeners, options)).pipe(
    Layer.provide(McpServer.layerHttp({ name: options.name, version: options.version, path: options.path, routerTag: HttpApiBuilder.Router })),
    Layer.orDie
  ) as Layer.Layer<never>

const requestErrorText = (e: unknown): string => {
  const error = e as { _tag?: string; message?: string; error?: { code?: string; message?: string } }
  if (error.error?.message !== undefined) return `${error.error.code ?? "error"}: ${error.error.message}`
  return error.message ?? String(error._tag ?? e)
}
