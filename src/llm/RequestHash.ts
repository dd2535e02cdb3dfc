/**
 * The identity of a model request, for recording and offline replay: a SHA-256 over its
 * canonical JSON — the asking agent, the model asked for (not the backend that served it),
 * the system prompt, the messages and the output cap — and a short hash per part, so two
 * requests that differ can say where.
 */
import { createHash } from "node:crypto"
import type { LlmRequest } from "../domain/Llm.js"

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

export interface RequestHashes {
  readonly requestHash: string
  /** System prompt first, then each message (`role:` prefixed before hashing), 12 hex digits each. */
  readonly messageHashes: ReadonlyArray<string>
}

export const requestHashes = (request: LlmRequest, maxOutputTokens: number): RequestHashes => {
  const canonical = JSON.stringify([
    request.agent,
    request.model ?? null,
    request.system,
    request.messages.map((m) => [m.role, m.content]),
    maxOutputTokens
  ])
  return {
    requestHash: sha256(canonical),
    messageHashes: [sha256(`system:${request.system}`), ...request.messages.map((m) => sha256(`${m.role}:${m.content}`))].map((h) =>
      h.slice(0, 12)
    )
  }
}
