import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, FastCheck as fc } from "effect"
import { BudgetWarning } from "../src/domain/BudgetPayloads.js"
import { makeThreadId } from "../src/domain/Ids.js"
import * as Payload from "../src/domain/Payload.js"
import { BudgetExhausted, BudgetRegistry, makeBudgetRegistry, thresholds } from "../src/services/BudgetRegistry.js"

const root = makeThreadId()
const use = (n: number, model?: string) => ({ promptTokens: n, completionTokens: 0, model })
const severities = (ws: ReadonlyArray<BudgetWarning>) => ws.map((w) => w.severity)

describe("BudgetRegistry", () => {
  it("each threshold warns once, in order, with the numbers", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000 })
    expect(budgets.consume(root, "a", use(749))).toEqual([])
    const [w] = budgets.consume(root, "a", { promptTokens: 0, completionTokens: 1 })
    expect(w).toBeInstanceOf(BudgetWarning)
    expect(w).toMatchObject({ severity: "warning", percentUsed: 75, tokensUsed: 750, tokensRemaining: 250, maxTokens: 1000 })
    expect(w!.message).toContain("75% of this conversation's token budget is used (750 of 1000 tokens, 250 left)")
    expect(budgets.consume(root, "a", use(100))).toEqual([]) // 85 %: nothing new
    expect(severities(budgets.consume(root, "a", use(50)))).toEqual(["critical"])
    expect(severities(budgets.consume(root, "a", use(50)))).toEqual(["final"])
    expect(budgets.consume(root, "a", use(500))).toEqual([]) // past 100 %: nothing more to say
  })

  it("one call crossing several thresholds yields each, in order", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000 })
    const ws = budgets.consume(root, "a", { promptTokens: 600, completionTokens: 360, model: "m" })
    expect(severities(ws)).toEqual(["warning", "critical", "final"])
    expect(ws.map((w) => w.percentUsed)).toEqual([96, 96, 96])
  })

  it("the warning payload is a valid PascalCase payload", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 3 })
    const [w] = budgets.consume(root, "a", use(3))
    expect(Either.getOrThrow(Payload.encode(BudgetWarning, w!))).toMatch(
      /^<BudgetWarning><PercentUsed>100<\/PercentUsed><TokensUsed>3<\/TokensUsed><TokensRemaining>0<\/TokensRemaining><MaxTokens>3<\/MaxTokens><Severity>warning<\/Severity><Message>.+<\/Message><\/BudgetWarning>$/
    )
  })

  it.effect("check refuses the next model call once the conversation's budget is used up", () =>
    Effect.gen(function*() {
      const budgets = yield* BudgetRegistry.make({ maxTokensPerThread: 100 })
      expect(yield* budgets.check(root, "a")).toMatchObject({ scope: "conversation", tokensUsed: 0, tokensRemaining: 100, exhausted: false })
      budgets.consume(root, "a", use(99))
      yield* budgets.check(root, "a")
      budgets.consume(root, "a", use(5)) // a call in flight may overrun: spent is spent
      const exit = yield* Effect.exit(budgets.check(root, "b"))
      expect(exit).toStrictEqual(
        Exit.fail(new BudgetExhausted({ root, agent: "b", scope: "conversation", tokensUsed: 104, maxTokens: 100 }))
      )
      const error = yield* Effect.flip(budgets.check(root, "a"))
      expect(error.message).toBe(`the conversation's token budget is exhausted on ${root}: 104 of 100 tokens used`)
      expect(budgets.status(root, "a")).toMatchObject({ tokensRemaining: 0, exhausted: true, percentUsed: 104 })
      // Other conversations are not affected.
      yield* budgets.check(makeThreadId(), "a")
    }))

  describe("per-listener caps", () => {
    it.effect("an agent's cap limits what it alone spends in a conversation; others go on", () =>
      Effect.gen(function*() {
        const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000, perListener: { Researcher: 100 } })
        const ws = budgets.consume(root, "researcher", use(80))
        expect(ws).toMatchObject([{ severity: "warning", tokensUsed: 80, maxTokens: 100, tokensRemaining: 20 }])
        expect(ws[0]!.message).toContain("your own token budget for this conversation")
        budgets.consume(root, "researcher", use(20))
        const error = yield* Effect.flip(budgets.check(root, "researcher"))
        expect(error).toMatchObject({ scope: "agent", agent: "researcher", tokensUsed: 100, maxTokens: 100 })
        expect(error.message).toContain("researcher's own token budget is exhausted")
        expect(yield* budgets.check(root, "writer")).toMatchObject({ scope: "conversation", tokensUsed: 100, tokensRemaining: 900 })
        // In another conversation the researcher starts afresh.
        yield* budgets.check(makeThreadId(), "researcher")
      }))

    it.effect("the conversation's budget still applies to a capped agent: whichever runs out first", () =>
      Effect.gen(function*() {
        const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000, perListener: { researcher: 500 } })
        budgets.consume(root, "writer", use(900))
        expect(budgets.status(root, "researcher")).toMatchObject({ scope: "conversation", tokensRemaining: 100 })
        budgets.consume(root, "researcher", use(100))
        expect(yield* Effect.flip(budgets.check(root, "researcher"))).toMatchObject({ scope: "conversation", tokensUsed: 1000 })
      }))

    it("a cap larger than the conversation's budget never limits", () => {
      const budgets = makeBudgetRegistry({ maxTokensPerThread: 100, perListener: { big: 10_000 } })
      budgets.consume(root, "big", use(100))
      expect(budgets.status(root, "big")).toMatchObject({ scope: "conversation", exhausted: true })
    })

    it("the status at rest names the smaller budget", () => {
      const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000, perListener: { small: 10 } })
      expect(budgets.status(root, "small")).toMatchObject({ scope: "agent", maxTokens: 10, tokensRemaining: 10 })
    })
  })

  it("an agent joining a conversation past a threshold hears it on its first call", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000 })
    expect(severities(budgets.consume(root, "a", use(920)))).toEqual(["warning", "critical"])
    expect(severities(budgets.consume(root, "b", use(1)))).toEqual(["warning", "critical"])
    expect(severities(budgets.consume(root, "a", use(40)))).toEqual(["final"])
    expect(severities(budgets.consume(root, "b", use(1)))).toEqual(["final"])
  })

  it("unlimited budgets never warn nor refuse", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: Infinity })
    expect(budgets.consume(root, "a", use(1e12))).toEqual([])
    expect(budgets.status(root, "a")).toMatchObject({ scope: "unlimited", tokensUsed: 1e12, maxTokens: Infinity, exhausted: false })
    expect(Effect.runSync(Effect.either(budgets.check(root, "a")))._tag).toBe("Right")
    // …except where an agent has its own cap.
    const capped = makeBudgetRegistry({ maxTokensPerThread: Infinity, perListener: { a: 10 } })
    expect(severities(capped.consume(root, "a", use(10)))).toEqual(["warning", "critical", "final"])
    expect(capped.status(root, "b").scope).toBe("unlimited")
  })

  it("usage per conversation, per agent and per model; token counts that are not counts are 0", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 10_000 })
    budgets.consume(root, "a", { promptTokens: 100, completionTokens: 20, model: "gpt" })
    budgets.consume(root, "b", { promptTokens: 50, completionTokens: 5, model: "claude" })
    budgets.consume(root, "a", { promptTokens: 10, completionTokens: 1 })
    budgets.consume(root, "a", { promptTokens: -5, completionTokens: Number.NaN, model: "gpt" })
    budgets.consume(root, "a", { promptTokens: 2.9, completionTokens: Infinity, model: "gpt" })
    expect(budgets.usage(root)).toEqual({
      root,
      promptTokens: 162,
      completionTokens: 26,
      totalTokens: 188,
      requests: 5,
      maxTokens: 10_000,
      tokensRemaining: 9_812,
      byAgent: {
        a: { promptTokens: 112, completionTokens: 21, totalTokens: 133, requests: 4 },
        b: { promptTokens: 50, completionTokens: 5, totalTokens: 55, requests: 1 }
      },
      byModel: {
        gpt: { promptTokens: 102, completionTokens: 20, totalTokens: 122, requests: 3 },
        claude: { promptTokens: 50, completionTokens: 5, totalTokens: 55, requests: 1 },
        unknown: { promptTokens: 10, completionTokens: 1, totalTokens: 11, requests: 1 }
      }
    })
    expect(budgets.usageOf(root, "b")).toEqual({ promptTokens: 50, completionTokens: 5, totalTokens: 55, requests: 1 })
    expect(budgets.usageOf(root, "nobody")).toBeUndefined()
  })

  it("cleanup returns the final usage and forgets the conversation; organism totals remain", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 100 })
    budgets.consume(root, "a", use(90))
    expect(budgets.cleanup(root)).toMatchObject({ totalTokens: 90 })
    expect(budgets.usage(root)).toBeUndefined()
    expect(budgets.cleanup(root)).toBeUndefined()
    expect(budgets.stats()).toEqual({ conversations: 0, promptTokens: 90, completionTokens: 0, totalTokens: 90, requests: 1 })
    // A conversation reusing the id starts with a fresh budget and fresh warnings.
    expect(severities(budgets.consume(root, "a", use(80)))).toEqual(["warning"])
  })

  it("limits must be positive numbers of tokens", () => {
    for (const bad of [0, -1, Number.NaN, 0.5]) {
      expect(() => makeBudgetRegistry({ maxTokensPerThread: bad })).toThrow(RangeError)
      expect(() => makeBudgetRegistry({ perListener: { a: bad } })).toThrow(/perListener\.a/)
    }
  })

  describe("properties", () => {
    const agents = ["a", "b", "c"]
    // Round numbers make exact hits (used == max, used == 75 % of max) likely, not lucky.
    const call = fc.record({
      agent: fc.constantFrom(...agents),
      promptTokens: fc.oneof(
        { weight: 4, arbitrary: fc.nat(30).map((n) => n * 10) },
        { weight: 2, arbitrary: fc.nat(300) },
        { weight: 1, arbitrary: fc.integer({ min: -50, max: -1 }) }
      ),
      completionTokens: fc.oneof(fc.nat(10).map((n) => n * 5), fc.nat(100)),
      /** Instead: exactly what takes the agent's budget to this percentage. */
      fill: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(75, 90, 95, 100) })
    })
    const limit = fc.oneof(fc.integer({ min: 1, max: 40 }).map((n) => n * 100), fc.integer({ min: 1, max: 3000 }))
    const limits = fc.record({
      conversation: fc.oneof({ weight: 4, arbitrary: limit }, { weight: 1, arbitrary: fc.constant(Infinity) }),
      caps: fc.dictionary(fc.constantFrom(...agents), limit, { maxKeys: 2 })
    })

    it.prop("usage is never negative, remaining + used = max until exhausted, each threshold at most once and in order", [limits, fc.array(call, { minLength: 1, maxLength: 60, size: "max" })], ([limit, calls]) => {
      const budgets = makeBudgetRegistry({ maxTokensPerThread: limit.conversation, perListener: limit.caps })
      const heard = new Map<string, Array<string>>(agents.map((a) => [a, []]))
      // Plain checks collected per step (cheap); any problem fails with the list.
      const problems: Array<string> = []
      for (const c of calls) {
        const warnings = budgets.consume(root, c.agent, c)
        heard.get(c.agent)!.push(...severities(warnings))
        const usage = budgets.usage(root)!
        for (const t of [usage, ...Object.values(usage.byAgent), ...Object.values(usage.byModel)]) {
          if (t.promptTokens < 0 || t.completionTokens < 0 || t.totalTokens !== t.promptTokens + t.completionTokens) {
            problems.push(`negative or inconsistent usage ${JSON.stringify(t)}`)
          }
        }
        if (Object.values(usage.byAgent).reduce((n, t) => n + t.totalTokens, 0) !== usage.totalTokens) {
          problems.push("agents' usage does not add up to the conversation's")
        }
        for (const agent of agents) {
          const s = budgets.status(root, agent)
          // Exhausted exactly when nothing is left.
          if (s.exhausted !== (s.tokensRemaining === 0)) problems.push(`${agent}: exhausted=${s.exhausted} with ${s.tokensRemaining} left`)
          if (s.exhausted ? s.tokensRemaining !== 0 : s.tokensRemaining + s.tokensUsed !== s.maxTokens) {
            problems.push(`${agent}: ${JSON.stringify(s)}`)
          }
        }
        const s = budgets.status(root, c.agent)
        const checked = Effect.runSync(Effect.either(budgets.check(root, c.agent)))
        if (checked._tag !== (s.exhausted ? "Left" : "Right")) problems.push(`check ${checked._tag} for ${JSON.stringify(s)}`)
        // The consuming agent has now heard exactly the thresholds its budget has reached.
        const reached = s.scope === "unlimited"
          ? []
          : thresholds.filter((t) => s.tokensUsed * 100 >= t.percent * s.maxTokens).map((t) => t.severity)
        if (heard.get(c.agent)!.join() !== reached.join()) problems.push(`${c.agent} heard ${heard.get(c.agent)} at ${s.percentUsed}%`)
        if (problems.length > 0) break
      }
      expect(problems).toEqual([])
      // Never more than once, always in order.
      for (const list of heard.values()) expect(list).toEqual(["warning", "critical", "final"].slice(0, list.length))
    }, { fastCheck: { numRuns: 100 } })
  })
})
