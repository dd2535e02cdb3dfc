/**
 * Counting a prompt's tokens the way its provider does, with `@effect/ai`'s `Tokenizer`:
 * - `openai` models that gpt-tokenizer knows (gpt-4o, gpt-4.1, o-series…): `OpenAiTokenizer`,
 *   exact for OpenAI's chat encodings;
 * - `anthropic`: Anthropic's published tokenizer (`@anthropic-ai/tokenizer`, the one
 *   `AnthropicTokenizer` uses), kept alive between calls — `AnthropicTokenizer` builds it anew
 *   for every count (about 120 ms), which would make fitting a long history take seconds. It
 *   is the tokenizer of Claude's earlier models: an approximation for today's;
 * - anything else (the mock, local servers, unknown models): an approximation on the safe
 *   side — one token per 3 characters, plus 4 per message — which never counts fewer tokens
 *   than the mock model does (one per 4 characters).
 *
 * The tokenizer modules load on first use: gpt-tokenizer's encodings alone take half a
 * second to load, which a run without context fitting should not pay.
 */
import { AiError, Prompt, Tokenizer } from "@effect/ai"
import { Effect } from "effect"
import type { LlmProvider } from "../domain/LlmConfig.js"

export type TokenizerKind = "openai" | "anthropic" | "approximate"

export interface ProviderTokenizer {
  readonly kind: TokenizerKind
  readonly tokenizer: Tokenizer.Service
}

/** Characters per token of the approximate tokenizer (on the safe side for English and code). */
export const APPROXIMATE_CHARS_PER_TOKEN = 3
/** Tokens a message costs beyond its text (role and separators), in the approximation. */
export const APPROXIMATE_MESSAGE_OVERHEAD = 4

const textOf = (message: Prompt.Message): string => {
  if (message.role === "system") return message.content
  let text = ""
  for (const part of message.content) {
    if (part.type === "text" || part.type === "reasoning") text += part.text
    else if (part.type === "tool-call") text += JSON.stringify(part.params)
    else if (part.type === "tool-result") text += JSON.stringify(part.result)
  }
  return text
}

/** The approximation: token counts only (the "tokens" are zeros — nothing reads them). */
export const approximateTokenizer: Tokenizer.Service = Tokenizer.make({
  tokenize: (prompt) =>
    Effect.sync(() => {
      let n = 0
      for (const message of prompt.content) {
        n += APPROXIMATE_MESSAGE_OVERHEAD + Math.ceil(textOf(message).length / APPROXIMATE_CHARS_PER_TOKEN)
      }
      return new Array<number>(n).fill(0)
    })
})

interface AnthropicEncoder {
  readonly encode: (text: string, allowedSpecial: "all") => Uint32Array
}

let anthropicEncoder: Promise<AnthropicEncoder> | undefined

const anthropicTokenizer: Tokenizer.Service = Tokenizer.make({
  tokenize: (prompt) =>
    Effect.tryPromise({
      try: async () => {
        anthropicEncoder ??= import("@anthropic-ai/tokenizer").then((m) => m.getTokenizer())
        const encoder = await anthropicEncoder
        const tokens: Array<number> = []
        for (const message of prompt.content) {
          for (const t of encoder.encode(textOf(message).normalize("NFKC"), "all")) tokens.push(t)
        }
        return tokens
      },
      catch: (cause) => new AiError.UnknownError({ module: "Tokenizers", method: "tokenize", description: "Could not tokenize", cause })
    })
})

const cache = new Map<string, Promise<ProviderTokenizer>>()

const openAiProviders = new Set<LlmProvider>(["openai"])

const select = async (provider: LlmProvider, model: string): Promise<ProviderTokenizer> => {
  if (provider === "anthropic") return { kind: "anthropic", tokenizer: anthropicTokenizer }
  if (openAiProviders.has(provider)) {
    const { OpenAiTokenizer } = await import("@effect/ai-openai")
    const tokenizer = OpenAiTokenizer.make({ model })
    // gpt-tokenizer knows OpenAI's chat models by name; for any other it throws.
    const probe = await Effect.runPromise(Effect.either(tokenizer.tokenize(Prompt.make("probe"))))
    if (probe._tag === "Right") return { kind: "openai", tokenizer }
  }
  return { kind: "approximate", tokenizer: approximateTokenizer }
}

/** The tokenizer for a provider's model (see the module comment for which). */
export const tokenizerFor = (provider: LlmProvider, model: string): Effect.Effect<ProviderTokenizer> =>
  Effect.promise(() => {
    const key = `${provider}\u0000${model}`
    let found = cache.get(key)
    if (found === undefined) {
      found = select(provider, model)
      cache.set(key, found)
    }
    return found
  })
