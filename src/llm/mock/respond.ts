/**
 * Writing one scripted reply to the socket — the well-formed ones and the faults. Each
 * function notes on the request's record what it sent (`status`) and how it ended (`outcome`).
 */
import { Clock, Effect } from "effect"
import type { ServerResponse } from "node:http"
import type { RecordedRequest } from "./RecordedRequest.js"
import { type Endpoint, millisOf, type MockEntry, type MockReply } from "../MockScript.js"
import type { RequestView } from "./requestView.js"
import { AnthropicMessages } from "./wire/AnthropicMessages.js"
import { OpenAiChat } from "./wire/OpenAiChat.js"
import { OpenAiResponses } from "./wire/OpenAiResponses.js"
import { chunkText, type Completion, estimateTokens, type Frame, sse, statusMessage, type WireFormat } from "./wire/Wire.js"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }
/** A request being served: its record is filled in as the reply goes out. */
export type LogEntry = Mutable<RecordedRequest>

const DEFAULT_CHUNK_SIZE = 16

export const wireOf: Record<Endpoint, WireFormat> = {
  chat: OpenAiChat,
  responses: OpenAiResponses,
  messages: AnthropicMessages
}

export const send = (res: ServerResponse, rec: LogEntry, status: number, headers: Record<string, string>, body: string) =>
  Effect.sync(() => {
    rec.status = status
    res.writeHead(status, { "content-length": String(Buffer.byteLength(body)), ...headers })
    res.end(body)
  })

export const sendJson = (res: ServerResponse, rec: LogEntry, status: number, body: unknown, headers: Record<string, string> = {}) =>
  send(res, rec, status, { "content-type": "application/json", ...headers }, JSON.stringify(body))

const drop = (res: ServerResponse, rec: LogEntry) =>
  Effect.sync(() => {
    rec.outcome = "dropped"
    res.socket?.destroy()
    res.destroy()
  })

/** Lets what was written reach the client before the connection goes. */
const flushPause = Effect.sleep(10)

/**
 * Where in the stream a fault strikes: before the text event number `after` (default: half of
 * them, rounded up, so some text has gone through), or after the last one.
 */
const faultIndex = (frames: ReadonlyArray<Frame>, after: number | undefined): number => {
  const deltaIndexes = frames.flatMap((f, i) => (f.delta ? [i] : []))
  if (deltaIndexes.length === 0) return Math.floor(frames.length / 2)
  const n = after ?? Math.ceil(deltaIndexes.length / 2)
  return n < deltaIndexes.length ? deltaIndexes[n]! : deltaIndexes[deltaIndexes.length - 1]! + 1
}

const cutShort = (f: Frame): Frame => ({ ...f, data: f.data.slice(0, Math.max(1, Math.floor(f.data.length / 2))) })

/** `sequence` numbers the reply: ids and `x-request-id` stay unique across resets. */
export const respond = (res: ServerResponse, rec: LogEntry, view: RequestView, reply: MockReply | MockEntry, sequence: number) =>
  Effect.gen(function*() {
    const wire = wireOf[view.endpoint]
    const headers: Record<string, string> = { "x-request-id": `req_mock_${sequence}`, ...reply.headers }
    if (reply.delay !== undefined) yield* Effect.sleep(reply.delay)
    if (reply.fault === "drop") return yield* drop(res, rec)
    if (reply.status !== undefined) {
      const retryAfter = reply.retry_after === undefined ? {} : { "retry-after": String(reply.retry_after) }
      const body = wire.errorBody(reply.status, reply.error ?? statusMessage(reply.status))
      return yield* sendJson(res, rec, reply.status, body, { ...headers, ...retryAfter })
    }
    // A request that is not streamed has no stream to fail in: it fails as a whole.
    if (reply.fault === "stream_error" && !view.stream) {
      return yield* sendJson(res, rec, 500, wire.errorBody(500, reply.error ?? statusMessage(500)), headers)
    }

    // Without text, a reply echoes, like the default one.
    const toolCalls = (reply.tool_calls ?? []).map((t, i) => ({
      id: t.id ?? `${view.endpoint === "messages" ? "toolu" : "call"}_mock${sequence}_${i}`,
      name: t.name,
      arguments: typeof t.arguments === "string" ? t.arguments : JSON.stringify(t.arguments ?? {})
    }))
    const full = reply.echo === true ? view.lastUser : reply.text !== undefined ? reply.text : toolCalls.length > 0 ? "" : view.lastUser
    // The requested output cap is honoured as a real model does: the answer stops there,
    // finishing with `length` (`max_output_tokens`, `max_tokens`).
    const cut = reply.ignore_max_tokens !== true && view.maxOutputTokens !== undefined && estimateTokens(full) > view.maxOutputTokens
    const text = cut ? Array.from(full).slice(0, view.maxOutputTokens! * 4).join("") : full
    const completion: Completion = {
      id: `mock${String(sequence).padStart(4, "0")}`,
      model: view.model === "" ? "mock-llm" : view.model,
      created: Math.floor((yield* Clock.currentTimeMillis) / 1000),
      text,
      toolCalls,
      finishReason: reply.finish_reason ?? (cut ? "length" : toolCalls.length > 0 ? "tool_calls" : "stop"),
      promptTokens: reply.usage?.prompt_tokens ?? estimateTokens(view.promptText),
      completionTokens: reply.usage?.completion_tokens ?? estimateTokens(text + toolCalls.map((t) => t.name + t.arguments).join("")),
      reasoningTokens: reply.usage?.reasoning_tokens ?? 0
    }

    if (!view.stream) {
      const json = { "content-type": "application/json", ...headers }
      const body = JSON.stringify(wire.body(completion))
      const half = body.slice(0, Math.floor(body.length / 2))
      if (reply.fault === "malformed") return yield* send(res, rec, 200, json, half)
      if (reply.fault === "drop_mid_response") {
        // The length announces the whole body, so the client knows it was cut short.
        rec.status = 200
        res.writeHead(200, { ...json, "content-length": String(Buffer.byteLength(body)) })
        res.write(half)
        yield* flushPause
        return yield* drop(res, rec)
      }
      return yield* send(res, rec, 200, json, body)
    }

    const frames = wire.frames(completion, chunkText(text, reply.chunk_size ?? DEFAULT_CHUNK_SIZE), {
      includeUsage: view.includeUsage
    })
    const faultAt = reply.fault === undefined ? -1 : faultIndex(frames, reply.fault_after)
    rec.status = 200
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      ...headers
    })
    // Headers go now, so that a chunk delay is a delay between chunks, not before the headers.
    res.flushHeaders()
    const chunkDelay = millisOf(reply.chunk_delay)
    let deltas = 0
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!
      if (f.delta && deltas++ > 0 && chunkDelay > 0) yield* Effect.sleep(chunkDelay)
      if (i === faultAt) {
        switch (reply.fault) {
          case "drop_mid_response":
            yield* flushPause
            return yield* drop(res, rec)
          case "stream_error":
            res.end(sse(wire.errorEvent(reply.error ?? statusMessage(529), i)))
            return
          case "malformed":
            res.write(sse(cutShort(f)))
            continue
        }
      }
      res.write(sse(f))
    }
    res.end()
  })
