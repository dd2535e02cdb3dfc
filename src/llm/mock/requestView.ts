/**
 * What the mock needs to know about a request, read the same way from the three wire formats:
 * model, streaming, system prompt, last user message and the whole prompt's text (to estimate
 * prompt tokens). Bodies come from clients under test, so nothing here trusts their shape.
 */
import type { Endpoint, Provider } from "../MockScript.js"

export interface RequestView {
  readonly endpoint: Endpoint
  readonly provider: Provider
  readonly model: string
  readonly stream: boolean
  /** OpenAI chat `stream_options.include_usage`: a final chunk with usage only. */
  readonly includeUsage: boolean
  readonly system: string
  readonly lastUser: string
  /** Every text of the prompt, for the prompt token estimate. */
  readonly promptText: string
  /**
   * The answer's cap the client asked for: `max_output_tokens` (Responses),
   * `max_completion_tokens` or `max_tokens` (Chat Completions), `max_tokens` (Messages).
   */
  readonly maxOutputTokens: number | undefined
  /** The texts of the tool results that end the prompt; undefined when it does not end with any. */
  readonly toolResults: string | undefined
  /** The names of the tools the request offers. */
  readonly tools: ReadonlyArray<string>
}

type Json = Record<string, unknown>

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)
const asArray = (u: unknown): ReadonlyArray<unknown> => (Array.isArray(u) ? u : [])

/** A message's content: a string, or content parts of which the textual ones count. */
export const textOf = (content: unknown): string => {
  if (typeof content === "string") return content
  return asArray(content)
    .map((part) => (isObject(part) && typeof part.text === "string" ? part.text : ""))
    .filter((t) => t !== "")
    .join("\n")
}

const isSystemRole = (role: unknown) => role === "system" || role === "developer"

const messagesView = (messages: ReadonlyArray<unknown>) => {
  const system: Array<string> = []
  const all: Array<string> = []
  let lastUser = ""
  for (const m of messages) {
    if (!isObject(m)) continue
    const text = textOf(m.content)
    if (text !== "") all.push(text)
    if (isSystemRole(m.role)) system.push(text)
    else if (m.role === "user") lastUser = text
  }
  return { system, all, lastUser }
}

/** A tool result's content as text (a string, JSON, or Anthropic's content blocks). */
const resultText = (content: unknown): string =>
  typeof content === "string" ? content : Array.isArray(content) ? textOf(content) : JSON.stringify(content) ?? ""

/** The tool results at the end of the prompt, in each wire's own form. */
const trailingToolResults = (endpoint: Endpoint, b: Json): string | undefined => {
  const texts: Array<string> = []
  if (endpoint === "messages") {
    const last = asArray(b.messages).at(-1)
    if (!isObject(last) || last.role !== "user") return undefined
    for (const part of asArray(last.content)) {
      if (isObject(part) && part.type === "tool_result") texts.push(resultText(part.content))
    }
  } else {
    const items = endpoint === "chat" ? asArray(b.messages) : asArray(b.input)
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i]
      if (!isObject(item)) break
      if (endpoint === "chat" && item.role === "tool") texts.unshift(resultText(item.content))
      else if (endpoint === "responses" && item.type === "function_call_output") texts.unshift(resultText(item.output))
      else break
    }
  }
  return texts.length === 0 ? undefined : texts.join("\n")
}

const toolNames = (endpoint: Endpoint, b: Json): Array<string> =>
  asArray(b.tools).flatMap((t) => {
    if (!isObject(t)) return []
    const name = endpoint === "chat" && isObject(t.function) ? t.function.name : t.name
    return typeof name === "string" ? [name] : []
  })

export const providerOf = (endpoint: Endpoint): Provider => (endpoint === "messages" ? "anthropic" : "openai")

export const viewRequest = (endpoint: Endpoint, body: unknown): RequestView => {
  const b = isObject(body) ? body : {}
  const model = typeof b.model === "string" ? b.model : ""
  const stream = b.stream === true
  const includeUsage = isObject(b.stream_options) && b.stream_options.include_usage === true
  let system: Array<string> = []
  let all: Array<string> = []
  let lastUser = ""
  switch (endpoint) {
    case "chat": {
      ;({ all, lastUser, system } = messagesView(asArray(b.messages)))
      break
    }
    case "responses": {
      // `input` is a string (one user message) or a list of items; `instructions` is a system prompt.
      const view = typeof b.input === "string"
        ? { system: [], all: [b.input], lastUser: b.input }
        : messagesView(asArray(b.input))
      const instructions = typeof b.instructions === "string" ? [b.instructions] : []
      system = [...instructions, ...view.system]
      all = [...instructions, ...view.all]
      lastUser = view.lastUser
      break
    }
    case "messages": {
      // Anthropic keeps the system prompt out of the messages.
      const view = messagesView(asArray(b.messages))
      const sys = textOf(b.system)
      system = sys === "" ? [] : [sys]
      all = [...system, ...view.all]
      lastUser = view.lastUser
      break
    }
  }
  const cap = (u: unknown) => (typeof u === "number" && Number.isFinite(u) && u > 0 ? Math.floor(u) : undefined)
  const maxOutputTokens = endpoint === "responses"
    ? cap(b.max_output_tokens)
    : endpoint === "chat"
    ? cap(b.max_completion_tokens) ?? cap(b.max_tokens)
    : cap(b.max_tokens)
  return {
    endpoint,
    provider: providerOf(endpoint),
    maxOutputTokens,
    model,
    stream,
    includeUsage,
    system: system.join("\n"),
    lastUser,
    promptText: all.join("\n"),
    toolResults: trailingToolResults(endpoint, b),
    tools: toolNames(endpoint, b)
  }
}
