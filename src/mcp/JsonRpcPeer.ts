/**
 * One side of a JSON-RPC 2.0 conversation with an MCP server, whatever carries it: requests
 * wait for the answer with their id, the server's own requests are answered (ping; anything
 * else "method not found", since this client declares no capabilities), notifications are
 * ignored. When the connection ends every waiting request fails with `McpServerGone`, and so
 * does every later one: a dead server never leaves a caller waiting.
 */
import { Deferred, Effect } from "effect"
import { McpCallError, McpServerGone } from "./McpErrors.js"

export type JsonRpcMessage = Record<string, unknown>

export interface JsonRpcPeer {
  readonly request: (method: string, params: unknown) => Effect.Effect<unknown, McpCallError | McpServerGone>
  readonly notify: (method: string, params?: unknown) => Effect.Effect<void, McpServerGone>
  /** A message read from the server. */
  readonly receive: (message: unknown) => Effect.Effect<void>
  /** The connection ended: waiting and later requests fail with this reason. */
  readonly close: (reason: string) => Effect.Effect<void>
  readonly closed: () => McpServerGone | undefined
}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

export const makeJsonRpcPeer = (
  server: string,
  /** Writes one message to the server (and, for HTTP, feeds its answers to `receive`). */
  send: (message: JsonRpcMessage) => Effect.Effect<void, McpServerGone>
): JsonRpcPeer => {
  let nextId = 1
  const pending = new Map<number | string, Deferred.Deferred<unknown, McpCallError | McpServerGone>>()
  const methods = new Map<number | string, string>()
  let gone: McpServerGone | undefined

  const receive = (message: unknown): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (Array.isArray(message)) return Effect.forEach(message, receive, { discard: true })
      if (!isObject(message)) return Effect.void
      const id = message.id
      if (typeof message.method === "string") {
        // A request of the server's own (it has an id) gets an answer; notifications
        // (progress, logging, list changes) need none.
        if (typeof id !== "number" && typeof id !== "string") return Effect.void
        const answer = message.method === "ping"
          ? { jsonrpc: "2.0", id, result: {} }
          : { jsonrpc: "2.0", id, error: { code: -32601, message: `method not found: ${message.method}` } }
        return Effect.ignore(send(answer))
      }
      if (typeof id !== "number" && typeof id !== "string") return Effect.void
      const waiting = pending.get(id)
      if (waiting === undefined) return Effect.void
      const method = methods.get(id) ?? "?"
      if (isObject(message.error)) {
        const error = message.error
        return Deferred.fail(
          waiting,
          new McpCallError({
            server,
            method,
            code: typeof error.code === "number" ? error.code : 0,
            reason: typeof error.message === "string" ? error.message : JSON.stringify(error)
          })
        )
      }
      return Deferred.succeed(waiting, message.result)
    })

  const request: JsonRpcPeer["request"] = (method, params) =>
    Effect.suspend(() => {
      if (gone !== undefined) return Effect.fail(gone)
      const id = nextId++
      return Effect.flatMap(Deferred.make<unknown, McpCallError | McpServerGone>(), (deferred) => {
        pending.set(id, deferred)
        methods.set(id, method)
        return send({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) }).pipe(
          Effect.zipRight(Deferred.await(deferred)),
          // A call abandoned (a handler's timeout, a cancelled conversation) is cancelled at
          // the server too, so it stops working on it.
          Effect.onInterrupt(() =>
            gone === undefined
              ? Effect.ignore(send({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason: "cancelled by the caller" } }))
              : Effect.void
          ),
          Effect.ensuring(Effect.sync(() => {
            pending.delete(id)
            methods.delete(id)
          }))
        )
      })
    })

  const notify: JsonRpcPeer["notify"] = (method, params) =>
    Effect.suspend(() =>
      gone !== undefined ? Effect.fail(gone) : send({ jsonrpc: "2.0", method, ...(params === undefined ? {} : { params }) })
    )

  const close = (reason: string) =>
    Effect.suspend(() => {
      if (gone !== undefined) return Effect.void
      gone = new McpServerGone({ server, reason })
      const error = gone
      return Effect.forEach(pending.values(), (d) => Deferred.fail(d, error), { discard: true })
    })

  return { request, notify, receive, close, closed: () => gone }
}
