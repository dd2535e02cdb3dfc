/**
 * What can go wrong talking to an MCP server. Every error names the server (its name in the
 * organism file) so that a message on stderr or in a SystemError's event says which one.
 */
import { Schema } from "effect"

/** The server could not be started, or did not complete the MCP handshake. */
export class McpStartError extends Schema.TaggedError<McpStartError>()("McpStartError", {
  server: Schema.String,
  /** The command line or URL it was started from. */
  target: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `MCP server "${this.server}" (${this.target}) could not be started: ${this.reason}`
  }
}

/** The server's process ended, or its connection broke, while calls were pending or after. */
export class McpServerGone extends Schema.TaggedError<McpServerGone>()("McpServerGone", {
  server: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `MCP server "${this.server}" is gone: ${this.reason}`
  }
}

/** A JSON-RPC error answer (unknown tool, invalid arguments…), or an answer that is not MCP. */
export class McpCallError extends Schema.TaggedError<McpCallError>()("McpCallError", {
  server: Schema.String,
  method: Schema.String,
  code: Schema.Number,
  reason: Schema.String
}) {
  override get message(): string {
    return `MCP server "${this.server}" answered ${this.method} with error ${this.code}: ${this.reason}`
  }
}

export type McpError = McpStartError | McpServerGone | McpCallError
