/** Building an LlmRouter against loopback mock servers, and the requests the tests send. */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Cause, Effect, Exit, Layer, Option, Schema, type Scope } from "effect"
import { makeThreadId, type ThreadId } from "../../src/domain/Ids.js"
import type { LlmRequest } from "../../src/domain/Llm.js"
import { LlmConfig, type LlmConfigInput } from "../../src/domain/LlmConfig.js"
import { type BudgetConfig, BudgetRegistry } from "../../src/services/BudgetRegistry.js"
import { LlmRouter } from "../../src/services/LlmRouter.js"

/** Short backoffs, so retries cost milliseconds. */
export const fast = { backoff_base: "20ms", backoff_max: "100ms", retry_after_max: "5s", timeout: "5s" } as const

export const decodeConfig = (input: LlmConfigInput): LlmConfig => Schema.decodeUnknownSync(LlmConfig)(input)

export interface RouterOptions {
  readonly budget?: Partial<BudgetConfig>
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly baseDir?: string
}

/** A router (and the budget registry it charges), alive for the enclosing scope. */
export const makeRouter = (input: LlmConfigInput, options: RouterOptions = {}): Effect.Effect<
  { readonly router: LlmRouter.Service; readonly budget: BudgetRegistry.Service },
  unknown,
  Scope.Scope
> =>
  Effect.gen(function*() {
    const budget = yield* BudgetRegistry.make(options.budget)
    // Built in the enclosing scope: provided to make alone, the dispatcher would close with it.
    const http = yield* Layer.build(NodeHttpClient.layerUndici)
    const router = yield* LlmRouter.make(decodeConfig(input), { baseDir: options.baseDir ?? process.cwd(), env: options.env ?? {} }).pipe(
      Effect.provideService(BudgetRegistry, budget),
      Effect.provide(http),
      Effect.provide(NodeContext.layer)
    )
    return { router, budget }
  })

export const ask = (text: string, extra: Partial<LlmRequest> = {}): LlmRequest => ({
  agent: "writer",
  root: makeThreadId(),
  system: "You answer in XML.",
  messages: [{ role: "user", content: text }],
  ...extra
})

export const conversation = (): ThreadId => makeThreadId()

export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
