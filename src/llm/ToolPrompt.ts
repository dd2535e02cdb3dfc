/**
 * Native tool calls between the router's provider-neutral request (`LlmRequest`) and
 * @effect/ai: the prompt with its tool calls and tool results, the `Toolkit` a request offers,
 * and the tool calls read back from an answer.
 *
 * The tools are never run by @effect/ai (`disableToolCallResolution`): a tool call is a
 * message the agent sends through the pipeline, and its result comes back later as a reply.
 * So a tool here is only a name, a description and a JSON Schema — the one its caller derived
 * (from a payload's Effect Schema). Its parameters *decode* permissively (any JSON object):
 * judging the arguments is the pipeline's business (the XSD), not the client's — a decoding
 * failure in the client would lose the whole answer, including the calls that were fine.
 */
import { AiError, Prompt, type Response, Tool, Toolkit } from "@effect/ai"
import { ParseResult, Schema } from "effect"
import type { LlmMessage, LlmTool, LlmToolCall } from "../domain/Llm.js"

/** Any JSON object, shown to the model with the schema the caller gave. */
const permissive = (jsonSchema: Readonly<Record<string, unknown>>) =>
  Schema.Struct({}, Schema.Record({ key: Schema.String, value: Schema.Unknown })).annotations({ jsonSchema })

/** An @effect/ai tool with the caller's JSON Schema and permissive decoding. */
const toolOf = (tool: LlmTool): Tool.Any => {
  const base = Tool.make(tool.name, { description: tool.description })
  // Tool.make takes Struct fields only; the parameters schema is swapped for one that keeps
  // every key (Struct({}) would strip them) and carries the JSON Schema as its annotation.
  return Object.assign(Object.create(Object.getPrototypeOf(base)), base, { parametersSchema: permissive(tool.parameters) })
}

/** The toolkit a request offers (undefined without tools: the plain text path). */
export const toolkitOf = (tools: ReadonlyArray<LlmTool> | undefined): Toolkit.Toolkit<any> | undefined =>
  tools === undefined || tools.length === 0 ? undefined : Toolkit.make(...tools.map(toolOf))

/** The prompt: system, then the messages, with tool calls and tool results in @effect/ai's parts. */
export const promptOf = (system: string, messages: ReadonlyArray<LlmMessage>): Prompt.Prompt => {
  const raw: Array<Prompt.MessageEncoded> = []
  if (system !== "") raw.push({ role: "system", content: system })
  for (const m of messages) {
    if (m.role === "tool") {
      raw.push({
        role: "tool",
        content: (m.toolResults ?? []).map((r) => ({
          type: "tool-result",
          id: r.id,
          name: r.name,
          result: r.content,
          isFailure: r.isError,
          providerExecuted: false
        }))
      })
    } else if (m.role === "assistant" && m.toolCalls !== undefined && m.toolCalls.length > 0) {
      raw.push({
        role: "assistant",
        content: [
          ...(m.content === "" ? [] : [{ type: "text" as const, text: m.content }]),
          ...m.toolCalls.map((c) => ({ type: "tool-call" as const, id: c.id, name: c.name, params: c.arguments, providerExecuted: false }))
        ]
      })
    } else {
      raw.push({ role: m.role, content: m.content })
    }
  }
  return Prompt.make(raw)
}

/** The tool calls among an answer's parts, in order (parts of tools run by the provider left out). */
export const toolCallsOf = (parts: ReadonlyArray<Response.AnyPart>): Array<LlmToolCall> => {
  const calls: Array<LlmToolCall> = []
  for (const part of parts) {
    if (part.type === "tool-call" && !part.providerExecuted) calls.push({ id: part.id, name: part.name, arguments: part.params })
  }
  return calls
}

/**
 * The description of a failure to read the answer's tool calls — a name that was not offered,
 * arguments that are not JSON or not an object — or undefined when the failure is something
 * else (a broken body: the backend's fault, retried as usual). Only asked when tools were offered.
 */
export const toolCallFailure = (error: AiError.AiError): string | undefined => {
  if (error._tag !== "MalformedOutput") return undefined
  // The clients' own words for arguments that are not JSON.
  if (/tool call parameters/i.test(error.description ?? "")) return error.description
  // @effect/ai decodes the answer's parts against the toolkit: what fails there is a tool
  // call (the clients build the other parts themselves).
  if (error.module === "LanguageModel" && ParseResult.isParseError(error.cause)) {
    const calls = ParseResult.ArrayFormatter.formatErrorSync(error.cause)
      .filter((i) => i.path.includes("name") || i.path.includes("params"))
      .map((i) => `${i.path.join(".")}: ${i.message}`)
    return `a tool call could not be read${calls.length > 0 ? ` (${[...new Set(calls)].slice(0, 3).join("; ")})` : ""}`
  }
  return undefined
}
