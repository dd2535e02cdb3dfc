/**
 * OpenAI Responses (`POST /v1/responses`), the API `@effect/ai-openai`'s language model speaks:
 * a `response` object, or typed events (`response.created` … `response.output_text.delta` …
 * `response.completed`), each with a `sequence_number`. A length or content-filter finish is
 * an `incomplete` response with its reason.
 */
import { type Completion, frame, type Frame, type WireFormat } from "./Wire.js"
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
    output: done ? [message(c, true)] : [],
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
  return [
    event("response.created", { response: response(c, false) }),
    event("response.in_progress", { response: response(c, false) }),
    event("response.output_item.added", { output_index: 0, item: message(c, false) }),
    event("response.content_part.added", { ...at, part: { ...part, text: "" } }),
    ...chunks.map((delta) => event("response.output_text.delta", { ...at, delta, logprobs: [] }, true)),
    event("response.output_text.done", { ...at, text: c.text, logprobs: [] }),
    event("response.content_part.done", { ...at, part }),
    event("response.output_item.done", { output_index: 0, item: message(c, true) }),
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
