/**
 * Anthropic Messages (`POST /v1/messages`): a `message` object, or the events
 * `message_start`, `content_block_start`, `ping`, `content_block_delta`…,
 * `content_block_stop`, `message_delta` (stop reason and cumulative output tokens),
 * `message_stop`.
 */
import type { FinishReason } from "../../MockScript.js"
import { argumentsObject, type Completion, frame, type Frame, pieces, type WireFormat } from "./Wire.js"

const stopReason = (r: FinishReason) =>
  r === "stop" ? "end_turn" : r === "length" ? "max_tokens" : r === "tool_calls" ? "tool_use" : "refusal"

const message = (c: Completion, done: boolean) => ({
  id: `msg_${c.id}`,
  type: "message",
  role: "assistant",
  model: c.model,
  content: done
    ? [
      ...(c.text !== "" || c.toolCalls.length === 0 ? [{ type: "text", text: c.text }] : []),
      ...c.toolCalls.map((t) => ({ type: "tool_use", id: t.id, name: t.name, input: argumentsObject(t.arguments) }))
    ]
    : [],
  stop_reason: done ? stopReason(c.finishReason) : null,
  stop_sequence: null,
  usage: {
    input_tokens: c.promptTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    // The real API reports a token or so at message_start; the final count comes in message_delta.
    output_tokens: done ? c.completionTokens : Math.min(1, c.completionTokens)
  }
})

const frames = (c: Completion, chunks: ReadonlyArray<string>): Array<Frame> => {
  const event = (type: string, fields: Record<string, unknown>, delta = false) =>
    frame({ type, ...fields }, { event: type, delta })
  const withText = c.text !== "" || c.toolCalls.length === 0
  const first = withText ? 1 : 0
  return [
    event("message_start", { message: message(c, false) }),
    ...(withText ? [event("content_block_start", { index: 0, content_block: { type: "text", text: "" } })] : []),
    event("ping", {}),
    ...(withText
      ? [
        ...chunks.map((text) => event("content_block_delta", { index: 0, delta: { type: "text_delta", text } }, true)),
        event("content_block_stop", { index: 0 })
      ]
      : []),
    ...c.toolCalls.flatMap((t, i) => {
      const index = first + i
      return [
        event("content_block_start", { index, content_block: { type: "tool_use", id: t.id, name: t.name, input: {} } }),
        ...pieces(t.arguments).map((partial_json) =>
          event("content_block_delta", { index, delta: { type: "input_json_delta", partial_json } }, true)
        ),
        event("content_block_stop", { index })
      ]
    }),
    event("message_delta", {
      delta: { stop_reason: stopReason(c.finishReason), stop_sequence: null },
      usage: { output_tokens: c.completionTokens }
    }),
    event("message_stop", {})
  ]
}

const errorType = (status: number) =>
  status === 400
    ? "invalid_request_error"
    : status === 401
    ? "authentication_error"
    : status === 403
    ? "permission_error"
    : status === 404
    ? "not_found_error"
    : status === 413
    ? "request_too_large"
    : status === 429
    ? "rate_limit_error"
    : status === 529
    ? "overloaded_error"
    : status >= 500
    ? "api_error"
    : "invalid_request_error"

export const AnthropicMessages: WireFormat = {
  body: (c) => message(c, true),
  frames,
  errorBody: (status, message) => ({ type: "error", error: { type: errorType(status), message } }),
  // What the API sends when it is overloaded after the stream has started.
  errorEvent: (message) => frame({ type: "error", error: { type: "overloaded_error", message } }, { event: "error" })
}
