/**
 * The registries' errors, in one place: the history (ContextBuffer), todos, budgets and
 * prompts. Each is a `Schema.TaggedError` (it crosses a boundary: a handler, the journal, a
 * remote caller may see it), `RegistryError` is their union, and every one has an `isX`
 * guard built with `Schema.is`, so code holding an `unknown` (a cause's failure, a decoded
 * record) can narrow it without `instanceof` chains.
 *
 * The services' own modules re-export the errors they fail with, where they always were.
 */
import { Schema } from "effect"
import { BudgetExhausted } from "../domain/BudgetPayloads.js"

// ---------------------------------------------------------------------------- history

/** A conversation is full and the policy is to reject. */
export class ContextFull extends Schema.TaggedError<ContextFull>()("ContextFull", {
  root: Schema.String,
  maxSlots: Schema.Number
}) {
  override get message() {
    return `conversation ${this.root} holds its maximum of ${this.maxSlots} messages`
  }
}

// ---------------------------------------------------------------------------- todos

/** No open todo with this id belongs to the requesting agent on this conversation. */
export class TodoNotFound extends Schema.TaggedError<TodoNotFound>()("TodoNotFound", {
  id: Schema.String,
  agent: Schema.String
}) {
  override get message() {
    return `${this.agent} has no open todo with id "${this.id}"`
  }
}

/** The request cannot be registered (empty payload type, too many open todos). */
export class TodoRefused extends Schema.TaggedError<TodoRefused>()("TodoRefused", {
  agent: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

// ---------------------------------------------------------------------------- budgets

// A domain error (the LlmRouter's interface in domain names it): defined there, listed here.
export { BudgetExhausted }

/**
 * A budget limit given to `BudgetRegistry.reconfigure` is not a positive number of tokens
 * (nor `Infinity`). `key` names it as the registry knows it: `maxTokensPerThread` or
 * `perListener.<name>`. Nothing was changed.
 */
export class InvalidBudgetLimit extends Schema.TaggedError<InvalidBudgetLimit>()("InvalidBudgetLimit", {
  key: Schema.String,
  value: Schema.Number
}) {
  override get message() {
    return `${this.key} must be a positive number of tokens, got ${this.value}`
  }
}

// ---------------------------------------------------------------------------- prompts

/** An agent names a peer that is not a listener of the organism. */
export class UnknownPeer extends Schema.Class<UnknownPeer>("UnknownPeer")({
  agent: Schema.String,
  peer: Schema.String,
  /** A listener with a close name, if any. */
  suggestion: Schema.optional(Schema.String)
}) {
  override toString(): string {
    const hint = this.suggestion === undefined ? "" : ` (did you mean "${this.suggestion}"?)`
    return `agent "${this.agent}" names peer "${this.peer}", which is not a listener${hint}`
  }
}

/** The agents' peers do not add up: every unknown peer, at once. */
export class PromptConfigError extends Schema.TaggedError<PromptConfigError>()("PromptConfigError", {
  unknownPeers: Schema.Array(UnknownPeer)
}) {
  override get message() {
    return this.unknownPeers.map(String).join("\n")
  }
}

/** Registration after the organism started. */
export class PromptRegistryFrozen extends Schema.TaggedError<PromptRegistryFrozen>()("PromptRegistryFrozen", {
  listener: Schema.String
}) {
  override get message() {
    return `cannot register "${this.listener}": prompts are frozen once the organism has started`
  }
}

/** Two listeners with the same name (case-insensitively, like routing). */
export class DuplicateListener extends Schema.TaggedError<DuplicateListener>()("DuplicateListener", {
  listener: Schema.String
}) {
  override get message() {
    return `a listener named "${this.listener}" is already registered`
  }
}

// ---------------------------------------------------------------------------- the union

/** Every error a registry fails with. */
export const RegistryError = Schema.Union(
  ContextFull,
  TodoNotFound,
  TodoRefused,
  BudgetExhausted,
  InvalidBudgetLimit,
  PromptConfigError,
  PromptRegistryFrozen,
  DuplicateListener
)
export type RegistryError = typeof RegistryError.Type

export const isContextFull: (u: unknown) => u is ContextFull = Schema.is(ContextFull)
export const isTodoNotFound: (u: unknown) => u is TodoNotFound = Schema.is(TodoNotFound)
export const isTodoRefused: (u: unknown) => u is TodoRefused = Schema.is(TodoRefused)
export const isBudgetExhausted: (u: unknown) => u is BudgetExhausted = Schema.is(BudgetExhausted)
export const isInvalidBudgetLimit: (u: unknown) => u is InvalidBudgetLimit = Schema.is(InvalidBudgetLimit)
export const isUnknownPeer: (u: unknown) => u is UnknownPeer = Schema.is(UnknownPeer)
export const isPromptConfigError: (u: unknown) => u is PromptConfigError = Schema.is(PromptConfigError)
export const isPromptRegistryFrozen: (u: unknown) => u is PromptRegistryFrozen = Schema.is(PromptRegistryFrozen)
export const isDuplicateListener: (u: unknown) => u is DuplicateListener = Schema.is(DuplicateListener)
export const isRegistryError: (u: unknown) => u is RegistryError = Schema.is(RegistryError)
