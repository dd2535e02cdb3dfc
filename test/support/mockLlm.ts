/** Talking to the mock LLM server over real HTTP, as a provider's client would. */
import { Effect, type Scope } from "effect"
import { MockLlmServer } from "../../src/llm/MockLlmServer.js"
import type { MockScriptInput } from "../../src/llm/MockScript.js"

export const withMock = <A, E>(
  script: MockScriptInput | undefined,
  f: (server: MockLlmServer.Service) => Effect.Effect<A, E, Scope.Scope>
) => Effect.scoped(Effect.flatMap(MockLlmServer.make({ script }), f))

export const post = (url: string, body: unknown, init: RequestInit = {}) =>
  Effect.promise(() =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
      ...init
    })
  )

export const json = (res: Response) => Effect.promise(() => res.json() as Promise<any>)
export const text = (res: Response) => Effect.promise(() => res.text())

export interface SseEvent {
  readonly event: string | undefined
  readonly data: string
}

/** Server-sent events as the spec frames them: blocks separated by a blank line. */
export const parseSse = (body: string): Array<SseEvent> =>
  body.split("\n\n").filter((b) => b.trim() !== "").map((block) => {
    let event: string | undefined
    const data: Array<string> = []
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7)
      else if (line.startsWith("data: ")) data.push(line.slice(6))
    }
    return { event, data: data.join("\n") }
  })

/** Reads a body chunk by chunk, noting when each arrived, until it ends or breaks. */
export const readChunks = (res: Response) =>
  Effect.promise(async () => {
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    const chunks: Array<{ readonly at: number; readonly text: string }> = []
    try {
      while (true) {
        const { done, value } = await reader.read()
        if (done) return { chunks, error: undefined as unknown }
        chunks.push({ at: performance.now(), text: decoder.decode(value, { stream: true }) })
      }
    } catch (error) {
      return { chunks, error }
    }
  })

export const chatRequest = (user: string, extra: Record<string, unknown> = {}) => ({
  model: "gpt-4o",
  messages: [{ role: "system", content: "You are terse." }, { role: "user", content: user }],
  ...extra
})

export const anthropicRequest = (user: string, extra: Record<string, unknown> = {}) => ({
  model: "claude-sonnet-4-5",
  max_tokens: 1024,
  system: "You answer in XML.",
  messages: [{ role: "user", content: user }],
  ...extra
})

export const responsesRequest = (user: string, extra: Record<string, unknown> = {}) => ({
  model: "gpt-4o",
  instructions: "You are terse.",
  input: [{ role: "user", content: [{ type: "input_text", text: user }] }],
  ...extra
})

/** The token estimate the server uses when the script gives none. */
export const estimate = (s: string) => Math.ceil(s.length / 4)

/** Polls until the condition holds (the server notices a closed connection a moment later). */
export const eventually = (check: () => boolean, timeoutMs = 2000) =>
  Effect.promise(async () => {
    const until = Date.now() + timeoutMs
    while (!check() && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
    return check()
  })
