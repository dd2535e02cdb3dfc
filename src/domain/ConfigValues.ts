/**
 * Values the configuration files share — integers, durations — and the way their schemas
 * word a mistake ("expected …, got …"). A module of its own so that the organism file's
 * schema and the sections it includes (LlmConfig) can both use them without importing
 * each other.
 */
import { Duration, Either, ParseResult, Schema } from "effect"

export const shown = (u: unknown) => (typeof u === "string" ? JSON.stringify(u) : u === undefined ? "nothing" : JSON.stringify(u))

/** A message that says what was expected and what was found. */
export const expected = (what: string) => ({
  message: (issue: ParseResult.ParseIssue) =>
    "actual" in issue ? `expected ${what}, got ${shown(issue.actual)}` : `expected ${what}`
})

/** For unions and literals: one message for the whole choice instead of one per member. */
export const expectedOneOf = (what: string) => ({
  message: (issue: ParseResult.ParseIssue) => ({
    message: "actual" in issue ? `expected ${what}, got ${shown(issue.actual)}` : `expected ${what}`,
    override: true
  })
})

// The message goes on the base type too, so a string where a number belongs reads the same.
const integer = (what: string, refine: (s: Schema.Schema<number>) => Schema.Schema<number>) =>
  refine(Schema.Number.annotations(expected(what)).pipe(Schema.int())).annotations(expected(what))
export const PositiveInt = integer("a positive integer", (s) => s.pipe(Schema.positive()))
export const integerAtLeast = (min: number) =>
  integer(`an integer of at least ${min}`, (s) => s.pipe(Schema.greaterThanOrEqualTo(min)))
export const NonNegativeInt = integer("a non-negative integer", (s) => s.pipe(Schema.nonNegative()))

const units: Record<string, number> = {
  ms: 1,
  millis: 1,
  s: 1000,
  sec: 1000,
  seconds: 1000,
  second: 1000,
  m: 60_000,
  min: 60_000,
  minutes: 60_000,
  minute: 60_000,
  h: 3_600_000,
  hours: 3_600_000,
  hour: 3_600_000
}

/** "500ms", "10s", "1.5 minutes", "2h", or a bare number of seconds. */
export const parseDuration = (input: string | number): Either.Either<Duration.Duration, string> => {
  if (typeof input === "number") {
    return Number.isFinite(input) && input >= 0 ? Either.right(Duration.seconds(input)) : Either.left("negative or not finite")
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*$/i.exec(input)
  if (m === null) return Either.left("not a duration")
  const unit = (m[2] ?? "s").toLowerCase()
  const factor = units[unit]
  return factor === undefined ? Either.left(`unknown unit "${m[2]}"`) : Either.right(Duration.millis(Number(m[1]) * factor))
}

export const DurationConfig = Schema.transformOrFail(
  Schema.Union(Schema.Number, Schema.String).annotations(expected("a duration like 500ms, 10s, 2m, or a number of seconds")),
  Schema.DurationFromSelf,
  {
    strict: true,
    decode: (input, _, ast) =>
      Either.mapLeft(
        parseDuration(input),
        () => new ParseResult.Type(ast, input, `expected a duration like 500ms, 10s, 2m, or a number of seconds, got ${shown(input)}`)
      ),
    encode: (d) => Either.right(Duration.toMillis(d) / 1000)
  }
).annotations(expected("a duration like 500ms, 10s, 2m, or a number of seconds"))
