/** What the mock LLM server records of each request (`MockLlmServer.requests()`). */
import type { Endpoint, Provider } from "../MockScript.js"

/** How a request ended, as the server saw it. */
export type RequestOutcome = "pending" | "completed" | "dropped" | "client_closed"

/** One request received, in the order of arrival. */
export interface RecordedRequest {
  /** 0-based order of arrival since the start or the last `reset`. */
  readonly index: number
  readonly time: Date
  readonly method: string
  /** The path without the query string (which `url` keeps). */
  readonly path: string
  readonly url: string
  readonly endpoint: Endpoint | "models" | "count_tokens" | "unknown"
  readonly provider: Provider | undefined
  readonly model: string
  readonly stream: boolean
  /** Lower-cased names, as node:http gives them. */
  readonly headers: Readonly<Record<string, string>>
  /** The parsed JSON body; the raw text when it is not JSON; undefined without a body. */
  readonly body: unknown
  readonly system: string
  readonly lastUser: string
  /** The prompt's size as the mock counts it (one token per 4 characters); 0 when not an LLM call. */
  readonly promptTokens: number
  /** The answer's cap the request asked for, if any. */
  readonly maxOutputTokens: number | undefined
  /** Which `responses` entry served it (its index), `"default"`, or undefined (not an LLM call). */
  readonly served: number | "default" | undefined
  /** The status line sent, undefined while none was (or when the connection was dropped first). */
  readonly status: number | undefined
  readonly outcome: RequestOutcome
}
