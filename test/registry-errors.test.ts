/** The registries' errors module: one union, one `is` guard per error. */
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import * as Api from "../src/index.js"
import {
  BudgetExhausted,
  ContextFull,
  DuplicateListener,
  InvalidBudgetLimit,
  isBudgetExhausted,
  isContextFull,
  isDuplicateListener,
  isInvalidBudgetLimit,
  isPromptConfigError,
  isPromptRegistryFrozen,
  isRegistryError,
  isTodoNotFound,
  isTodoRefused,
  isUnknownPeer,
  PromptConfigError,
  PromptRegistryFrozen,
  RegistryError,
  TodoNotFound,
  TodoRefused,
  UnknownPeer
} from "../src/services/errors.js"
import * as BudgetModule from "../src/services/BudgetRegistry.js"
import * as ContextModule from "../src/services/ContextBuffer.js"
import * as PromptModule from "../src/services/PromptRegistry.js"
import * as TodoModule from "../src/services/TodoRegistry.js"

const peer = new UnknownPeer({ agent: "writer", peer: "ghost" })
const samples = [
  [new ContextFull({ root: "r", maxSlots: 3 }), isContextFull],
  [new TodoNotFound({ id: "todo-1", agent: "writer" }), isTodoNotFound],
  [new TodoRefused({ agent: "writer", reason: "full" }), isTodoRefused],
  [new BudgetExhausted({ root: "r", agent: "a", scope: "agent", tokensUsed: 10, maxTokens: 10 }), isBudgetExhausted],
  [new InvalidBudgetLimit({ key: "maxTokensPerThread", value: 0 }), isInvalidBudgetLimit],
  [new PromptConfigError({ unknownPeers: [peer] }), isPromptConfigError],
  [new PromptRegistryFrozen({ listener: "late" }), isPromptRegistryFrozen],
  [new DuplicateListener({ listener: "twin" }), isDuplicateListener]
] as const

describe("registry errors", () => {
  it("each guard recognises its own error and no other; the union recognises them all", () => {
    for (const [error, guard] of samples) {
      for (const [other] of samples) expect(guard(other)).toBe(other === error)
      expect(isRegistryError(error)).toBe(true)
      expect(Schema.is(RegistryError)(error)).toBe(true)
      // Not fooled by a look-alike plain object, nor by other values.
      expect(guard({ ...error, _tag: error._tag })).toBe(false)
      for (const u of [undefined, null, "ContextFull", new Error(error.message)]) expect(guard(u)).toBe(false)
    }
    expect(isUnknownPeer(peer)).toBe(true)
    expect(isRegistryError(peer)).toBe(false) // a detail of PromptConfigError, not an error itself
  })

  it("the errors survive an encode/decode round trip through the union (they cross boundaries)", () => {
    for (const [error, guard] of samples) {
      const decoded = Schema.decodeUnknownSync(RegistryError)(Schema.encodeSync(RegistryError)(error))
      expect(guard(decoded)).toBe(true)
      expect(decoded.message).toBe(error.message)
    }
  })

  it("the services' modules and the library entry point export the same classes", () => {
    expect(ContextModule.ContextFull).toBe(ContextFull)
    expect(TodoModule.TodoNotFound).toBe(TodoNotFound)
    expect(TodoModule.TodoRefused).toBe(TodoRefused)
    expect(BudgetModule.BudgetExhausted).toBe(BudgetExhausted)
    expect(BudgetModule.InvalidBudgetLimit).toBe(InvalidBudgetLimit)
    expect(PromptModule.PromptConfigError).toBe(PromptConfigError)
    expect(PromptModule.DuplicateListener).toBe(DuplicateListener)
    expect(PromptModule.PromptRegistryFrozen).toBe(PromptRegistryFrozen)
    expect(PromptModule.UnknownPeer).toBe(UnknownPeer)
    expect(Api.ContextFull).toBe(ContextFull)
    expect(Api.BudgetExhausted).toBe(BudgetExhausted)
    expect(Api.isRegistryError).toBe(isRegistryError)
    expect(Api.ReplySchema).toBeDefined()
  })
})
