/**
 * What a failed model request means for the router: try again (the backend is busy, down or
 * broke the answer), give up on the request (the provider refused *it*: a 4xx other than
 * 408/409/429 — another attempt or another backend would be refused the same way), or give
 * up because a stream broke after output had started (the caller has seen part of an answer;
 * a second answer from elsewhere would not continue it).
 *
 * The shapes recognised are those `test/mock-llm-clients.test.ts` pins down for the
 * @effect/ai clients: `HttpResponseError` with reason `StatusCode` (status and headers) or
 * `Decode` (a body cut short or not JSON), `HttpRequestError` (`Transport`: the connection
 * went), `MalformedOutput` (an event that does not decode).
 */
import type { AiError } from "@effect/ai"
import { Data } from "effect"

export type FailureKind = "retryable" | "rejected" | "stream-failed"

/** One attempt's failure, inside the router (LlmError is what leaves it). */
export class AttemptFailed extends Data.TaggedError("AttemptFailed")<{
  readonly kind: FailureKind
  readonly status: number | undefined
  /** How long the provider asked us to wait (Retry-After), uncapped. */
  readonly retryAfterMs: number | undefined
  readonly message: string
  /** Text a broken stream delivered before it broke (its tokens were spent). */
  readonly partialText?: string | undefined
}> {}

/** Statuses worth another try: timeout, conflict (OpenAI asks to retry it), rate limit, server errors. */
export const retryableStatus = (status: number): boolean => status === 408 || status === 409 || status === 429 || status >= 500

/**
 * Retry-After in milliseconds: OpenAI's `retry-after-ms` first (finer), then `retry-after`
 * as seconds or as an HTTP date. Undefined when absent or unreadable.
 */
export const retryAfterMillis = (headers: Readonly<Record<string, string | undefined>>, now: number): number | undefined => {
  const ms = headers["retry-after-ms"]
  if (ms !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Number(ms)
  const value = headers["retry-after"]
  if (value === undefined) return undefined
  if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Number(value) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** The provider's own words from an error body (`{error: {message}}` in both formats), shortened. */
const bodyMessage = (body: string | undefined): string | undefined => {
  if (body === undefined || body === "") return undefined
  try {
    const json = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown }
    const m = typeof json.error === "string" ? json.error : json.error?.message ?? json.message
    if (typeof m === "string" && m !== "") return m.slice(0, 300)
  } catch {
    // Not JSON: the text itself, below.
  }
  return body.slice(0, 300)
}

/** `: why`, from a description or the innermost cause that has a message. */
const detail = (description: string | undefined, cause: unknown): string => {
  if (description !== undefined && description !== "") return `: ${description}`
  let c: unknown = cause
  let message: string | undefined
  for (let depth = 0; depth < 5 && c !== null && typeof c === "object"; depth++) {
    const m = (c as { message?: unknown }).message
    if (typeof m === "string" && m !== "") message = m
    c = (c as { cause?: unknown }).cause
  }
  return message === undefined ? "" : `: ${message}`
}

/**
 * Classifies an @effect/ai error; `started` says a stream had produced output before it, and
 * `partialText` is what it had delivered.
 */
export const classify = (error: AiError.AiError, started: boolean, now: number, partialText?: string): AttemptFailed => {
  const broke = (message: string, status?: number, retryAfterMs?: number) =>
    new AttemptFailed({ kind: started ? "stream-failed" : "retryable", status, retryAfterMs, message, partialText })
  switch (error._tag) {
    case "HttpResponseError": {
      const status = error.response.status
      if (error.reason === "StatusCode") {
        const said = bodyMessage(error.body)
        const message = `HTTP ${status}${said !== undefined ? `: ${said}` : ""}`
        const retryAfter = retryAfterMillis(error.response.headers, now)
        if (!retryableStatus(status)) {
          return new AttemptFailed({ kind: "rejected", status, retryAfterMs: undefined, message })
        }
        return broke(message, status, retryAfter)
      }
      return broke(`the response was cut short or is not valid JSON (${error.reason}${detail(error.description, undefined)})`, status)
    }
    case "HttpRequestError":
      return broke(
        error.reason === "Transport"
          ? `the connection failed or was dropped${detail(error.description, error.cause)}`
          : `the request could not be sent (${error.reason}${detail(error.description, error.cause)})`
      )
    case "MalformedOutput":
      return broke(`the response is malformed${error.description ? `: ${error.description}` : ""}`)
    case "MalformedInput":
      // Our prompt could not be put in the provider's format: no backend of that kind can take it.
      return new AttemptFailed({
        kind: "rejected",
        status: undefined,
        retryAfterMs: undefined,
        message: `the request cannot be sent${error.description ? `: ${error.description}` : ""}`
      })
    case "UnknownError":
      return broke(error.message)
  }
}

/** A provider's error event in a stream (`{type, message}` or `{error: {message}}`), in words. */
export const describeStreamError = (error: unknown): string => {
  if (typeof error === "string") return error
  if (error !== null && typeof error === "object") {
    const e = error as { message?: unknown; error?: { message?: unknown }; type?: unknown; code?: unknown }
    const message = typeof e.message === "string" ? e.message : typeof e.error?.message === "string" ? e.error.message : undefined
    const kind = typeof e.code === "string" ? e.code : typeof e.type === "string" ? e.type : undefined
    if (message !== undefined) return kind !== undefined ? `${kind}: ${message}` : message
  }
  return JSON.stringify(error) ?? String(error)
}
