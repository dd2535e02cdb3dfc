/**
 * OpenAI Chat Completions (`POST /v1/chat/completions`): a `chat.completion` object, or
 * `chat.completion.chunk` events ending with `data: [DONE]`. With
 * `stream_options.include_usage`, every chunk carries `usage: null` and one last chunk with
 * no choices carries the usage.
 */
import { type Completion, frame, type Frame, pieces, type WireFormat } from "./Wire.js"

const usage = (c: Completion) => ({
  prompt_tokens: c.promptTokens,
  completion_tokens: c.completionTokens,
  total_tokens: c.promptTokens + c.completionTokens,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: c.reasoningTokens, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 }
})

const body = (c: Completion) => ({
  id: `chatcmpl-${c.id}`,
  object: "chat.completion",
  created: c.created,
  model: c.model,
  choices: [{
    index: 0,
    message: {
      role: "assistant",
      content: c.text === "" && c.toolCalls.length > 0 ? null : c.text,
      refusal: null,
      annotations: [],
      ...(c.toolCalls.length > 0
        ? { tool_calls: c.toolCalls.map((t) => ({ id: t.id, type: "function", function: { name: t.name, arguments: t.arguments } })) }
        : {})
    },
    logprobs: null,
    finish_reason: c.finishReason
  }],
  usage: usage(c),
  service_tier: "default",
  system_fingerprint: "fp_mock"
})

const frames = (c: Completion, chunks: ReadonlyArray<string>, options: { readonly includeUsage: boolean }) => {
  // Every chunk of one completion carries the same header.
  const header = {
    id: `chatcmpl-${c.id}`,
    object: "chat.completion.chunk",
    created: c.created,
    model: c.model,
    service_tier: "default",
    system_fingerprint: "fp_mock"
  }
  const chunk = (choice: Record<string, unknown>, delta = false): Frame =>
    frame({
      ...header,
      choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }],
      ...(options.includeUsage ? { usage: null } : {})
    }, { delta })
  const out: Array<Frame> = [chunk({ delta: { role: "assistant", content: "", refusal: null } })]
  for (const text of chunks) out.push(chunk({ delta: { content: text } }, true))
  // Each call opens with its id, type and name, then its arguments arrive in pieces.
  for (const [index, t] of c.toolCalls.entries()) {
    out.push(chunk({ delta: { tool_calls: [{ index, id: t.id, type: "function", function: { name: t.name, arguments: "" } }] } }))
    for (const part of pieces(t.arguments)) out.push(chunk({ delta: { tool_calls: [{ index, function: { arguments: part } }] } }, true))
  }
  out.push(chunk({ delta: {}, finish_reason: c.finishReason }))
  if (options.includeUsage) out.push(frame({ ...header, choices: [], usage: usage(c) }))
  out.push(frame("[DONE]"))
  return out
}

/** OpenAI's error body; 429 is spelled as the API spells a request rate limit. */
export const openAiErrorBody = (status: number, message: string) => ({
  error: {
    message,
    type: status === 429 ? "requests" : status >= 500 ? "server_error" : "invalid_request_error",
    param: null,
    code: status === 429 ? "rate_limit_exceeded" : null
  }
})

export const OpenAiChat: WireFormat = {
  body,
  frames,
  errorBody: openAiErrorBody,
  // Chat Completions has no error event type: the error object comes as a data line.
  errorEvent: (message) => frame(openAiErrorBody(500, message))
}
