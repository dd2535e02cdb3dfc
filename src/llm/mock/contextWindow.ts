/**
 * The mock model's context window: a request whose prompt plus requested output cap does not
 * fit is refused the way each real API refuses it — a 400 with the provider's own error body
 * and wording — so a client that sends too much fails here exactly as it would in production.
 * Tokens are the mock's estimate (one per 4 characters of prompt text).
 */
import type { Endpoint } from "../MockScript.js"

export interface WindowRefusal {
  readonly status: 400
  readonly body: unknown
}

/** The refusal for a request over `window`, or undefined when it fits. */
export const refuseOverWindow = (
  endpoint: Endpoint,
  window: number,
  promptTokens: number,
  maxOutputTokens: number | undefined
): WindowRefusal | undefined => {
  const output = maxOutputTokens ?? 0
  if (promptTokens + output <= window) return undefined
  switch (endpoint) {
    case "chat":
      // Chat Completions counts the prompt and the completion's cap together.
      return {
        status: 400,
        body: {
          error: {
            message: output > 0
              ? `This model's maximum context length is ${window} tokens. However, you requested ${promptTokens + output} tokens ` +
                `(${promptTokens} in the messages, ${output} in the completion). Please reduce the length of the messages or completion.`
              : `This model's maximum context length is ${window} tokens. However, your messages resulted in ${promptTokens} tokens. ` +
                `Please reduce the length of the messages.`,
            type: "invalid_request_error",
            param: "messages",
            code: "context_length_exceeded"
          }
        }
      }
    case "responses":
      return {
        status: 400,
        body: {
          error: {
            message: `Your input exceeds the context window of this model (${window} tokens; the input is ${promptTokens} ` +
              `and max_output_tokens ${output}). Please adjust your input and try again.`,
            type: "invalid_request_error",
            param: "input",
            code: "context_length_exceeded"
          }
        }
      }
    case "messages":
      return {
        status: 400,
        body: {
          type: "error",
          error: {
            type: "invalid_request_error",
            message: promptTokens > window
              ? `prompt is too long: ${promptTokens} tokens > ${window} maximum`
              : `input length and \`max_tokens\` exceed context limit: ${promptTokens} + ${output} > ${window}, ` +
                `decrease input length or \`max_tokens\` and try again`
          }
        }
      }
  }
}
