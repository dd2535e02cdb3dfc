/**
 * What the real APIs refuse with a 400 before any model runs: a request the mock would answer
 * should be one the provider would answer. Each wire is checked for what its clients get
 * wrong in practice — a missing model or messages, a role that does not exist, a tool result
 * whose call is nowhere in the conversation, a tool without a name or a schema, Anthropic's
 * required `max_tokens` and its rule that the conversation starts with the user.
 *
 * The problem comes back as the provider's own words would (`messages: …`); the server wraps
 * it in that provider's error body.
 */
import type { Endpoint } from "../MockScript.js"

type Json = Record<string, unknown>

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)

/** OpenAI's rule for function names (Anthropic's is the same set of characters). */
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/

/**
 * OpenAI's structured outputs (`strict: true`): every object lists all its properties in
 * `required` and says `additionalProperties: false`.
 */
const strictProblem = (schema: unknown, at: string): string | undefined => {
  if (!isObject(schema)) return undefined
  if (schema.type === "object" || isObject(schema.properties)) {
    const keys = Object.keys(isObject(schema.properties) ? schema.properties : {})
    const required = Array.isArray(schema.required) ? schema.required : []
    const missing = keys.filter((k) => !required.includes(k))
    if (missing.length > 0) {
      return `In context=(${at}), 'required' is required to be supplied and to be an array including every key in properties. Missing '${missing[0]}'.`
    }
    if (schema.additionalProperties !== false) return `In context=(${at}), 'additionalProperties' is required to be supplied and to be false.`
  }
  for (const [k, v] of Object.entries(schema)) {
    const inner = Array.isArray(v) ? v : [v]
    for (const item of inner) {
      const p = isObject(item) ? strictProblem(item, at === "" ? `'${k}'` : `${at}, '${k}'`) : undefined
      if (p !== undefined) return p
    }
  }
  return undefined
}

const checkTools = (
  tools: unknown,
  nameOf: (t: Json) => unknown,
  schemaOf: (t: Json) => unknown,
  schemaKey: string,
  strictOf: (t: Json) => boolean = () => false
): string | undefined => {
  if (tools === undefined) return undefined
  if (!Array.isArray(tools)) return "tools: expected an array"
  const seen = new Set<string>()
  for (const [i, t] of tools.entries()) {
    if (!isObject(t)) return `tools[${i}]: expected an object`
    const name = nameOf(t)
    if (typeof name !== "string" || !TOOL_NAME.test(name)) {
      return `tools[${i}].name: ${JSON.stringify(name)} does not match '^[a-zA-Z0-9_-]{1,64}$'`
    }
    if (seen.has(name)) return `tools: tool names must be unique (${name} appears twice)`
    seen.add(name)
    const schema = schemaOf(t)
    if (schema !== undefined && (!isObject(schema) || (schema.type !== undefined && schema.type !== "object"))) {
      return `tools[${i}].${schemaKey}: expected a JSON Schema object of type "object"`
    }
    if (strictOf(t)) {
      const problem = strictProblem(schema, "")
      if (problem !== undefined) return `Invalid schema for function '${name}': ${problem}`
    }
  }
  return undefined
}

const checkChat = (b: Json): string | undefined => {
  if (!Array.isArray(b.messages) || b.messages.length === 0) return "messages: expected a non-empty array"
  const calls = new Set<string>()
  for (const [i, m] of b.messages.entries()) {
    if (!isObject(m)) return `messages[${i}]: expected an object`
    switch (m.role) {
      case "system":
      case "developer":
      case "user":
        break
      case "assistant": {
        if (m.tool_calls === undefined || m.tool_calls === null) break
        if (!Array.isArray(m.tool_calls)) return `messages[${i}].tool_calls: expected an array`
        for (const [j, c] of m.tool_calls.entries()) {
          const at = `messages[${i}].tool_calls[${j}]`
          if (!isObject(c) || typeof c.id !== "string" || c.type !== "function" || !isObject(c.function)) {
            return `${at}: expected {id, type: "function", function: {name, arguments}}`
          }
          if (typeof c.function.name !== "string" || typeof c.function.arguments !== "string") {
            return `${at}.function: name and arguments (a JSON string) are required`
          }
          calls.add(c.id)
        }
        break
      }
      case "tool":
        if (typeof m.tool_call_id !== "string" || !calls.has(m.tool_call_id)) {
          return `messages[${i}]: messages with role 'tool' must be a response to a preceeding message with 'tool_calls' (tool_call_id ${JSON.stringify(m.tool_call_id)})`
        }
        break
      default:
        return `messages[${i}].role: ${JSON.stringify(m.role)} is not one of 'system', 'developer', 'user', 'assistant', 'tool'`
    }
  }
  return checkTools(b.tools, (t) => (t.type === "function" && isObject(t.function) ? t.function.name : undefined), (t) =>
    isObject(t.function) ? t.function.parameters : undefined, "function.parameters", (t) => isObject(t.function) && t.function.strict === true)
}

const checkResponses = (b: Json): string | undefined => {
  if (typeof b.input !== "string" && !Array.isArray(b.input)) return "input: expected a string or an array of input items"
  const calls = new Set<string>()
  for (const [i, item] of (Array.isArray(b.input) ? b.input : []).entries()) {
    if (!isObject(item)) return `input[${i}]: expected an object`
    if (item.type === "function_call") {
      if (typeof item.call_id !== "string" || typeof item.name !== "string" || typeof item.arguments !== "string") {
        return `input[${i}]: a function_call needs call_id, name and arguments (a JSON string)`
      }
      calls.add(item.call_id)
    } else if (item.type === "function_call_output") {
      if (typeof item.call_id !== "string" || !calls.has(item.call_id)) {
        return `input[${i}]: No tool call found for function call output with call_id ${JSON.stringify(item.call_id)}.`
      }
    } else if (item.role !== undefined && !["system", "developer", "user", "assistant"].includes(String(item.role))) {
      return `input[${i}].role: ${JSON.stringify(item.role)} is not one of 'system', 'developer', 'user', 'assistant'`
    }
  }
  return checkTools(b.tools, (t) => (t.type === "function" ? t.name : "function"), (t) => t.parameters, "parameters", (t) => t.strict === true)
}

const checkMessages = (b: Json, countTokens: boolean): string | undefined => {
  if (!countTokens && (typeof b.max_tokens !== "number" || !Number.isInteger(b.max_tokens) || b.max_tokens < 1)) {
    return "max_tokens: Field required"
  }
  if (!Array.isArray(b.messages) || b.messages.length === 0) return "messages: at least one message is required"
  let pending = new Set<string>()
  for (const [i, m] of b.messages.entries()) {
    if (!isObject(m) || (m.role !== "user" && m.role !== "assistant")) {
      return `messages.${i}.role: Input should be 'user' or 'assistant'`
    }
    if (i === 0 && m.role !== "user") return "messages: the first message must use the \"user\" role"
    const blocks = typeof m.content === "string" ? [] : Array.isArray(m.content) ? m.content : undefined
    if (blocks === undefined) return `messages.${i}.content: Input should be a valid string or list of content blocks`
    const answered = new Set<string>()
    const uses = new Set<string>()
    for (const [j, block] of blocks.entries()) {
      if (!isObject(block) || typeof block.type !== "string") return `messages.${i}.content.${j}: expected a content block with a type`
      if (block.type === "tool_use") {
        if (m.role !== "assistant") return `messages.${i}.content.${j}: tool_use blocks belong to assistant messages`
        if (typeof block.id !== "string" || typeof block.name !== "string" || !isObject(block.input)) {
          return `messages.${i}.content.${j}: a tool_use block needs id, name and an input object`
        }
        uses.add(block.id)
      } else if (block.type === "tool_result") {
        if (m.role !== "user") return `messages.${i}.content.${j}: tool_result blocks belong to user messages`
        if (typeof block.tool_use_id !== "string" || !pending.has(block.tool_use_id)) {
          return `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(block.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`
        }
        answered.add(block.tool_use_id)
      }
    }
    if (m.role === "user" && pending.size > 0) {
      const missing = [...pending].filter((id) => !answered.has(id))
      if (missing.length > 0) {
        return `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(", ")}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`
      }
    }
    pending = m.role === "assistant" ? uses : new Set()
  }
  return checkTools(b.tools, (t) => t.name, (t) => t.input_schema, "input_schema")
}

/** Why the provider would refuse this request with a 400, or undefined when it would take it. */
export const requestProblem = (endpoint: Endpoint | "count_tokens", body: unknown): string | undefined => {
  if (!isObject(body)) return "the request body must be a JSON object"
  if (typeof body.model !== "string" || body.model === "") return "model: Field required"
  switch (endpoint) {
    case "chat":
      return checkChat(body)
    case "responses":
      return checkResponses(body)
    case "messages":
      return checkMessages(body, false)
    case "count_tokens":
      return checkMessages(body, true)
  }
}
