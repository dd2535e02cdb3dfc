/**
 * OpenAI Responses (`POST /v1/responses`), the API `@effect/ai-openai`'s language model speaks:
 * a `response` object, or typed events (`response.created` … `response.output_text.delta` …
 * `response.completed`), each with a `sequence_number`. A length or content-filter finish is
 * an `incomplete` response with its reason.
 */
import { type Completion, frame, type Frame, pieces, type WireFormat } from "./Wire.js"
import { openAiErrorBody } from "./OpenAiChat.js"

const incompleteReason = (c: Completion) =>
  c.finishReason === "length" ? "max_output_tokens" : c.finishReason === "content_filter" ? "content_filter" : undefined

const message = (c: Completion, done: boolean) => ({
  id: `msg_${c.id}`,
  type: "message",
  status: done ? "completed" : "in_progress",
  role: "assistant",
  content: done ? [{ type: "output_text", text: c.text, annotations: [], logprobs: [] }] : []
})

const functionCall = (t: Completion["toolCalls"][number], done: boolean) => ({
  id: `fc_${t.id}`,
  type: "function_call",
  status: done ? "completed" : "in_progress",
  call_id: t.id,
  name: t.name,
  arguments: done ? t.arguments : ""
})

/** The output items: the message when there is text (or nothing else), then each function call. */
const outputOf = (c: Completion) => [
  ...(c.text !== "" || c.toolCalls.length === 0 ? [message(c, true)] : []),
  ...c.toolCalls.map((t) => functionCall(t, true))
]

const response = (c: Completion, done: boolean) => {
  const reason = incompleteReason(c)
  return {
    id: `resp_${c.id}`,
    object: "response",
    created_at: c.created,
    status: !done ? "in_progress" : reason === undefined ? "completed" : "incomplete",
    error: null,
    incomplete_details: done && reason !== undefined ? { reason } : null,
    instructions: null,
    max_output_tokens: null,
    model: c.model,
    output: done ? outputOf(c) : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: false,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    usage: done
      ? {
        input_tokens: c.promptTokens,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: c.completionTokens,
        output_tokens_details: { reasoning_tokens: c.reasoningTokens },
        total_tokens: c.promptTokens + c.completionTokens
      }
      : null,
    user: null,
    metadata: {}
  }
}

const frames = (c: Completion, chunks: ReadonlyArray<string>) => {
  let sequence = 0
  const event = (type: string, fields: Record<string, unknown>, delta = false): Frame =>
    frame({ type, sequence_number: sequence++, ...fields }, { event: type, delta })
  const at = { item_id: `msg_${c.id}`, output_index: 0, content_index: 0 }
  const part = { type: "output_text", text: c.text, annotations: [], logprobs: [] }
  const final = response(c, true)
  const withMessage = c.text !== "" || c.toolCalls.length === 0
  const first = withMessage ? 1 : 0
  return [
    event("response.created", { response: response(c, false) }),
    event("response.in_progress", { response: response(c, false) }),
    ...(withMessage
      ? [
        event("response.output_item.added", { output_index: 0, item: message(c, false) }),
        event("response.content_part.added", { ...at, part: { ...part, text: "" } }),
        ...chunks.map((delta) => event("response.output_text.delta", { ...at, delta, logprobs: [] }, true)),
        event("response.output_text.done", { ...at, text: c.text, logprobs: [] }),
        event("response.content_part.done", { ...at, part }),
        event("response.output_item.done", { output_index: 0, item: message(c, true) })
      ]
      : []),
    ...c.toolCalls.flatMap((t, i) => {
      const output_index = first + i
      const item_id = `fc_${t.id}`
      return [
        event("response.output_item.added", { output_index, item: functionCall(t, false) }),
        ...pieces(t.arguments).map((delta) => event("response.function_call_arguments.delta", { item_id, output_index, delta }, true)),
        event("response.function_call_arguments.done", { item_id, output_index, arguments: t.arguments }),
        event("response.output_item.done", { output_index, item: functionCall(t, true) })
      ]
    }),
    event(final.status === "completed" ? "response.completed" : "response.incomplete", { response: final })
  ]
}

export const OpenAiResponses: WireFormat = {
  body: (c) => response(c, true),
  frames,
  errorBody: openAiErrorBody,
  errorEvent: (message, sequence) =>
    frame({ type: "error", sequence_number: sequence, code: "server_error", message, param: null }, { event: "error" })
}
