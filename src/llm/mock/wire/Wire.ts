/**
 * What the three wire formats share: the completion to send, stream frames, token estimates.
 */
import type { FinishReason } from "../../MockScript.js"

/** One reply, provider-neutral; each wire format renders it as a body or as stream frames. */
export interface Completion {
  /** Unique per request, so clients that key on ids see distinct responses. */
  readonly id: string
  readonly model: string
  /** Unix seconds. */
  readonly created: number
  readonly text: string
  /** Tool calls after the text, in order; `arguments` is the JSON text as sent. */
  readonly toolCalls: ReadonlyArray<MockToolCallOut>
  readonly finishReason: FinishReason
  readonly promptTokens: number
  readonly completionTokens: number
  /** Among the completion tokens; reported where the wire has a field for them. */
  readonly reasoningTokens: number
}

export interface MockToolCallOut {
  readonly id: string
  readonly name: string
  readonly arguments: string
}

/** The arguments as an object, for the wires that send objects (Anthropic); a string when not JSON. */
export const argumentsObject = (args: string): unknown => {
  try {
    return JSON.parse(args)
  } catch {
    return args
  }
}

/** One server-sent event. `delta` frames carry text: chunk delays and faults count them. */
export interface Frame {
  readonly event?: string
  readonly data: string
  readonly delta: boolean
}

export interface WireFormat {
  readonly body: (c: Completion) => unknown
  readonly frames: (c: Completion, chunks: ReadonlyArray<string>, options: { readonly includeUsage: boolean }) => Array<Frame>
  readonly errorBody: (status: number, message: string) => unknown
  /** The event a provider sends when it fails after the stream has started (then it hangs up). */
  readonly errorEvent: (message: string, sequence: number) => Frame
}

export const frame = (data: unknown, options: { readonly event?: string; readonly delta?: boolean } = {}): Frame => ({
  ...(options.event !== undefined ? { event: options.event } : {}),
  data: typeof data === "string" ? data : JSON.stringify(data),
  delta: options.delta ?? false
})

export const sse = (f: Frame): string => `${f.event !== undefined ? `event: ${f.event}\n` : ""}data: ${f.data}\n\n`

/** About one token per four characters, the usual rule of thumb for English text. */
export const estimateTokens = (text: string): number => Math.ceil(text.length / 4)

/** Splits by code points so that no chunk ends inside a surrogate pair. */
export const chunkText = (text: string, size: number): Array<string> => {
  const points = Array.from(text)
  const chunks: Array<string> = []
  for (let i = 0; i < points.length; i += size) chunks.push(points.slice(i, i + size).join(""))
  return chunks
}

/** Default messages of the error statuses, as the real APIs phrase them. */
export const statusMessage = (status: number): string =>
  status === 429
    ? "Rate limit reached for requests (mock)"
    : status === 529
    ? "Overloaded (mock)"
    : status >= 500
    ? "The server had an error while processing your request (mock)"
    : `Request failed with status ${status} (mock)`

/** A tool call's arguments in stream pieces (a few, so that clients must join them). */
export const pieces = (text: string): Array<string> => (text === "" ? [] : chunkText(text, Math.max(4, Math.ceil(text.length / 3))))
