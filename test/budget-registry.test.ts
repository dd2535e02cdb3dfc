import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, FastCheck as fc, Option } from "effect"
import { BudgetWarning } from "../src/domain/BudgetPayloads.js"
import { makeThreadId } from "../src/domain/Ids.js"
import * as Payload from "../src/domain/Payload.js"
import { BudgetExhausted, BudgetRegistry, makeBudgetRegistry, thresholds } from "../src/services/BudgetRegistry.js"
import { InvalidBudgetLimit, isBudgetExhausted, isInvalidBudgetLimit } from "../src/services/errors.js"

const root = makeThreadId()
const use = (n: number, model?: string) => ({ promptTokens: n, completionTokens: 0, model })
const severities = (ws: ReadonlyArray<BudgetWarning>) => ws.map((w) => w.severity)

describe("BudgetRegistry", () => {
  it("each threshold warns once, in order, with the numbers", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000 })
    expect(budgets.unsafeConsume(root, "a", use(749))).toEqual([])
    const [w] = budgets.unsafeConsume(root, "a", { promptTokens: 0, completionTokens: 1 })
    expect(w).toBeInstanceOf(BudgetWarning)
    expect(w).toMatchObject({ severity: "warning", percentUsed: 75, tokensUsed: 750, tokensRemaining: 250, maxTokens: 1000 })
    expect(w!.message).toContain("75% of this conversation's token budget is used (750 of 1000 tokens, 250 left)")
    expect(budgets.unsafeConsume(root, "a", use(100))).toEqual([]) // 85 %: nothing new
    expect(severities(budgets.unsafeConsume(root, "a", use(50)))).toEqual(["critical"])
    expect(severities(budgets.unsafeConsume(root, "a", use(50)))).toEqual(["final"])
    expect(budgets.unsafeConsume(root, "a", use(500))).toEqual([]) // past 100 %: nothing more to say
  })

  it("one call crossing several thresholds yields each, in order", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000 })
    const ws = budgets.unsafeConsume(root, "a", { promptTokens: 600, completionTokens: 360, model: "m" })
    expect(severities(ws)).toEqual(["warning", "critical", "final"])
    expect(ws.map((w) => w.percentUsed)).toEqual([96, 96, 96])
  })

  it("the warning payload is a valid PascalCase payload", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 3 })
    const [w] = budgets.unsafeConsume(root, "a", use(3))
    expect(Either.getOrThrow(Payload.encode(BudgetWarning, w!))).toMatch(
      /^<BudgetWarning><PercentUsed>100<\/PercentUsed><TokensUsed>3<\/TokensUsed><TokensRemaining>0<\/TokensRemaining><MaxTokens>3<\/MaxTokens><Severity>warning<\/Severity><Message>.+<\/Message><\/BudgetWarning>$/
    )
  })

  it.effect("check refuses the next model call once the conversation's budget is used up", () =>
    Effect.gen(function*() {
      const budgets = yield* BudgetRegistry.make({ maxTokensPerThread: 100 })
      expect(yield* budgets.check(root, "a")).toMatchObject({ scope: "conversation", tokensUsed: 0, tokensRemaining: 100, exhausted: false })
      yield* budgets.consume(root, "a", use(99))
      yield* budgets.check(root, "a")
      yield* budgets.consume(root, "a", use(5)) // a call in flight may overrun: spent is spent
      const exit = yield* Effect.exit(budgets.check(root, "b"))
      expect(exit).toStrictEqual(
        Exit.fail(new BudgetExhausted({ root, agent: "b", scope: "conversation", tokensUsed: 104, maxTokens: 100 }))
      )
      const error = yield* Effect.flip(budgets.check(root, "a"))
      expect(error.message).toBe(`the conversation's token budget is exhausted on ${root}: 104 of 100 tokens used`)
      expect(budgets.unsafeStatus(root, "a")).toMatchObject({ tokensRemaining: 0, exhausted: true, percentUsed: 104 })
      // Other conversations are not affected.
      yield* budgets.check(makeThreadId(), "a")
    }))

  describe("per-listener caps", () => {
    it.effect("an agent's cap limits what it alone spends in a conversation; others go on", () =>
      Effect.gen(function*() {
        const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000, perListener: { Researcher: 100 } })
        const ws = yield* budgets.consume(root, "researcher", use(80))
        expect(ws).toMatchObject([{ severity: "warning", tokensUsed: 80, maxTokens: 100, tokensRemaining: 20 }])
        expect(ws[0]!.message).toContain("your own token budget for this conversation")
        yield* budgets.consume(root, "researcher", use(20))
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
        yield* budgets.consume(root, "writer", use(900))
        expect(yield* budgets.status(root, "researcher")).toMatchObject({ scope: "conversation", tokensRemaining: 100 })
        yield* budgets.consume(root, "researcher", use(100))
        expect(yield* Effect.flip(budgets.check(root, "researcher"))).toMatchObject({ scope: "conversation", tokensUsed: 1000 })
      }))

    it("a cap larger than the conversation's budget never limits", () => {
      const budgets = makeBudgetRegistry({ maxTokensPerThread: 100, perListener: { big: 10_000 } })
      budgets.unsafeConsume(root, "big", use(100))
      expect(budgets.unsafeStatus(root, "big")).toMatchObject({ scope: "conversation", exhausted: true })
    })

    it("the status at rest names the smaller budget", () => {
      const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000, perListener: { small: 10 } })
      expect(budgets.unsafeStatus(root, "small")).toMatchObject({ scope: "agent", maxTokens: 10, tokensRemaining: 10 })
    })
  })

  it("an agent joining a conversation past a threshold hears it on its first call", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 1000 })
    expect(severities(budgets.unsafeConsume(root, "a", use(920)))).toEqual(["warning", "critical"])
    expect(severities(budgets.unsafeConsume(root, "b", use(1)))).toEqual(["warning", "critical"])
    expect(severities(budgets.unsafeConsume(root, "a", use(40)))).toEqual(["final"])
    expect(severities(budgets.unsafeConsume(root, "b", use(1)))).toEqual(["final"])
  })

  it("unlimited budgets never warn nor refuse", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: Infinity })
    expect(budgets.unsafeConsume(root, "a", use(1e12))).toEqual([])
    expect(budgets.unsafeStatus(root, "a")).toMatchObject({ scope: "unlimited", tokensUsed: 1e12, maxTokens: Infinity, exhausted: false })
    expect(Effect.runSync(Effect.either(budgets.check(root, "a")))._tag).toBe("Right")
    // …except where an agent has its own cap.
    const capped = makeBudgetRegistry({ maxTokensPerThread: Infinity, perListener: { a: 10 } })
    expect(severities(capped.unsafeConsume(root, "a", use(10)))).toEqual(["warning", "critical", "final"])
    expect(capped.unsafeStatus(root, "b").scope).toBe("unlimited")
  })

  it("usage per conversation, per agent and per model; token counts that are not counts are 0", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 10_000 })
    budgets.unsafeConsume(root, "a", { promptTokens: 100, completionTokens: 20, model: "gpt" })
    budgets.unsafeConsume(root, "b", { promptTokens: 50, completionTokens: 5, model: "claude" })
    budgets.unsafeConsume(root, "a", { promptTokens: 10, completionTokens: 1 })
    budgets.unsafeConsume(root, "a", { promptTokens: -5, completionTokens: Number.NaN, model: "gpt" })
    budgets.unsafeConsume(root, "a", { promptTokens: 2.9, completionTokens: Infinity, model: "gpt" })
    expect(budgets.unsafeUsage(root)).toEqual({
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
    expect(budgets.unsafeUsageOf(root, "b")).toEqual({ promptTokens: 50, completionTokens: 5, totalTokens: 55, requests: 1 })
    expect(budgets.unsafeUsageOf(root, "nobody")).toBeUndefined()
  })

  it("cleanup returns the final usage and forgets the conversation; organism totals remain", () => {
    const budgets = makeBudgetRegistry({ maxTokensPerThread: 100 })
    budgets.unsafeConsume(root, "a", use(90))
    expect(budgets.unsafeCleanup(root)).toMatchObject({ totalTokens: 90 })
    expect(budgets.unsafeUsage(root)).toBeUndefined()
    expect(budgets.unsafeCleanup(root)).toBeUndefined()
    expect(budgets.unsafeStats()).toEqual({ conversations: 0, promptTokens: 90, completionTokens: 0, totalTokens: 90, requests: 1 })
    // A conversation reusing the id starts with a fresh budget and fresh warnings.
    expect(severities(budgets.unsafeConsume(root, "a", use(80)))).toEqual(["warning"])
  })

  it("limits must be positive numbers of tokens", () => {
    for (const bad of [0, -1, Number.NaN, 0.5]) {
      expect(() => makeBudgetRegistry({ maxTokensPerThread: bad })).toThrow(RangeError)
      expect(() => makeBudgetRegistry({ perListener: { a: bad } })).toThrow(/perListener\.a/)
    }
  })

  it.effect("the Effect interface: usage, usageOf and cleanup as Options; check agrees with unsafeCheck", () =>
    Effect.gen(function*() {
      const budgets = yield* BudgetRegistry.make({ maxTokensPerThread: 100 })
      expect(yield* budgets.usage(root)).toEqual(Option.none())
      expect(yield* budgets.consume(root, "a", use(80))).toMatchObject([{ severity: "warning" }])
      expect((yield* budgets.usage(root)).pipe(Option.map((u) => u.totalTokens))).toEqual(Option.some(80))
      expect(yield* budgets.usageOf(root, "a")).toEqual(Option.some({ promptTokens: 80, completionTokens: 0, totalTokens: 80, requests: 1 }))
      expect(yield* budgets.usageOf(root, "b")).toEqual(Option.none())
      expect(budgets.unsafeCheck(root, "a")).toEqual(Either.right(yield* budgets.check(root, "a")))
      yield* budgets.consume(root, "a", use(20))
      const refused = budgets.unsafeCheck(root, "a")
      expect(refused).toEqual(Either.left(yield* Effect.flip(budgets.check(root, "a"))))
      expect(Either.isLeft(refused) && isBudgetExhausted(refused.left)).toBe(true)
      expect((yield* budgets.cleanup(root)).pipe(Option.map((u) => u.totalTokens))).toEqual(Option.some(100))
      expect(yield* budgets.cleanup(root)).toEqual(Option.none())
      expect(yield* budgets.stats).toMatchObject({ conversations: 0, totalTokens: 100, requests: 2 })
    }))

  describe("reconfigure (hot reload)", () => {
    it.effect("the current limits are readable, and replaced by reconfigure", () =>
      Effect.gen(function*() {
        const budgets = yield* BudgetRegistry.make({ maxTokensPerThread: 1000, perListener: { a: 10 } })
        expect(yield* budgets.config).toEqual({ maxTokensPerThread: 1000, perListener: { a: 10 } })
        yield* budgets.reconfigure({ maxTokensPerThread: 500 })
        // perListener left out: kept.
        expect(yield* budgets.config).toEqual({ maxTokensPerThread: 500, perListener: { a: 10 } })
        yield* budgets.reconfigure({ perListener: { b: 20 } })
        // perListener given: replaced whole.
        expect(budgets.unsafeConfig()).toEqual({ maxTokensPerThread: 500, perListener: { b: 20 } })
      }))

    it.effect("a lowered conversation budget applies to running conversations from the next check", () =>
      Effect.gen(function*() {
        const budgets = yield* BudgetRegistry.make({ maxTokensPerThread: 10_000 })
        yield* budgets.consume(root, "a", use(600))
        yield* budgets.check(root, "a")
        yield* budgets.reconfigure({ maxTokensPerThread: 500 })
        expect(yield* Effect.flip(budgets.check(root, "a"))).toMatchObject({
          _tag: "BudgetExhausted",
          scope: "conversation",
          tokensUsed: 600,
          maxTokens: 500
        })
        expect(yield* budgets.usage(root)).toMatchObject(Option.some({ maxTokens: 500, tokensRemaining: 0 }))
        // New conversations get the new budget too.
        const other = makeThreadId()
        expect(yield* budgets.check(other, "a")).toMatchObject({ maxTokens: 500, tokensRemaining: 500 })
        // Raised again: room from the next check on.
        yield* budgets.reconfigure({ maxTokensPerThread: 1000 })
        expect(yield* budgets.check(root, "a")).toMatchObject({ tokensUsed: 600, tokensRemaining: 400 })
      }))

    it.effect("the next charge warns of the thresholds a lowered budget has reached; none is heard twice", () =>
      Effect.gen(function*() {
        const budgets = yield* BudgetRegistry.make({ maxTokensPerThread: 1000 })
        expect(severities(yield* budgets.consume(root, "a", use(760)))).toEqual(["warning"])
        yield* budgets.reconfigure({ maxTokensPerThread: 800 })
        // 770 of 800 = 96 %: critical and final, not warning again.
        expect(severities(yield* budgets.consume(root, "a", use(10)))).toEqual(["critical", "final"])
        yield* budgets.reconfigure({ maxTokensPerThread: 100_000 })
        expect(yield* budgets.consume(root, "a", use(10))).toEqual([])
      }))

    it.effect("per-listener caps: added, changed and removed caps apply to running conversations", () =>
      Effect.gen(function*() {
        const budgets = yield* BudgetRegistry.make({ maxTokensPerThread: 1000, perListener: { researcher: 500 } })
        yield* budgets.consume(root, "researcher", use(200))
        yield* budgets.consume(root, "writer", use(200))
        yield* budgets.reconfigure({ perListener: { Researcher: 150, writer: 300 } })
        expect(yield* Effect.flip(budgets.check(root, "researcher"))).toMatchObject({ scope: "agent", tokensUsed: 200, maxTokens: 150 })
        expect(yield* budgets.check(root, "writer")).toMatchObject({ scope: "agent", tokensRemaining: 100 })
        expect(yield* budgets.consume(root, "writer", use(100))).toMatchObject([
          { severity: "warning", maxTokens: 300 },
          { severity: "critical" },
          { severity: "final" }
        ])
        expect(yield* Effect.flip(budgets.check(root, "writer"))).toMatchObject({ scope: "agent", maxTokens: 300 })
        // Caps removed: only the conversation's budget is left (500 of 1000 used).
        yield* budgets.reconfigure({ perListener: {} })
        expect(yield* budgets.check(root, "researcher")).toMatchObject({ scope: "conversation", tokensRemaining: 500 })
        expect(yield* budgets.check(root, "writer")).toMatchObject({ scope: "conversation", tokensRemaining: 500 })
      }))

    it.effect("configFor: the budgets an organism declares, whole, so a reload also removes caps", () =>
      Effect.gen(function*() {
        const organism = (caps: Record<string, number | undefined>) => ({
          settings: { maxTokensPerThread: 900 },
          listeners: Object.entries(caps).map(([name, maxTokensPerThread]) => ({ name, maxTokensPerThread }))
        })
        expect(BudgetRegistry.configFor(organism({ writer: 100, sink: undefined }))).toEqual({
          maxTokensPerThread: 900,
          perListener: { writer: 100 }
        })
        const budgets = yield* BudgetRegistry.make(BudgetRegistry.configFor(organism({ writer: 100 })))
        expect(yield* budgets.status(root, "writer")).toMatchObject({ scope: "agent", maxTokens: 100 })
        yield* budgets.reconfigure(BudgetRegistry.configFor(organism({ writer: undefined })))
        expect(yield* budgets.status(root, "writer")).toMatchObject({ scope: "conversation", maxTokens: 900 })
      }))

    it.effect("an invalid limit fails with InvalidBudgetLimit naming it, and changes nothing", () =>
      Effect.gen(function*() {
        const budgets = yield* BudgetRegistry.make({ maxTokensPerThread: 1000, perListener: { a: 10 } })
        for (const bad of [0, -1, Number.NaN, 0.5]) {
          const error = yield* Effect.flip(budgets.reconfigure({ maxTokensPerThread: 200, perListener: { a: 20, b: bad } }))
          expect(error).toBeInstanceOf(InvalidBudgetLimit)
          expect(isInvalidBudgetLimit(error)).toBe(true)
          expect(error.key).toBe("perListener.b")
          expect(error.message).toBe(`perListener.b must be a positive number of tokens, got ${bad}`)
          expect((yield* Effect.flip(budgets.reconfigure({ maxTokensPerThread: bad }))).key).toBe("maxTokensPerThread")
          expect(Either.isLeft(budgets.unsafeReconfigure({ maxTokensPerThread: bad }))).toBe(true)
        }
        // Not half-applied: the valid maxTokensPerThread given alongside was not taken either.
        expect(yield* budgets.config).toEqual({ maxTokensPerThread: 1000, perListener: { a: 10 } })
        expect(yield* budgets.status(root, "a")).toMatchObject({ scope: "agent", maxTokens: 10 })
        yield* budgets.reconfigure({ maxTokensPerThread: Infinity })
        expect(yield* budgets.status(root, "b")).toMatchObject({ scope: "unlimited" })
      }))
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
        const warnings = budgets.unsafeConsume(root, c.agent, c)
        heard.get(c.agent)!.push(...severities(warnings))
        const usage = budgets.unsafeUsage(root)!
        for (const t of [usage, ...Object.values(usage.byAgent), ...Object.values(usage.byModel)]) {
          if (t.promptTokens < 0 || t.completionTokens < 0 || t.totalTokens !== t.promptTokens + t.completionTokens) {
            problems.push(`negative or inconsistent usage ${JSON.stringify(t)}`)
          }
        }
        if (Object.values(usage.byAgent).reduce((n, t) => n + t.totalTokens, 0) !== usage.totalTokens) {
          problems.push("agents' usage does not add up to the conversation's")
        }
        for (const agent of agents) {
          const s = budgets.unsafeStatus(root, agent)
          // Exhausted exactly when nothing is left.
          if (s.exhausted !== (s.tokensRemaining === 0)) problems.push(`${agent}: exhausted=${s.exhausted} with ${s.tokensRemaining} left`)
          if (s.exhausted ? s.tokensRemaining !== 0 : s.tokensRemaining + s.tokensUsed !== s.maxTokens) {
            problems.push(`${agent}: ${JSON.stringify(s)}`)
          }
        }
        const s = budgets.unsafeStatus(root, c.agent)
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
