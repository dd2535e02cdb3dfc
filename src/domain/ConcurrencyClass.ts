/**
 * How many invocations of a listener may run at once (beyond the organism-wide limit):
 * - `Safe`: any number.
 * - `Exclusive`: one invocation of this listener at a time.
 * - `Category`: one invocation at a time across every listener of the category `name`.
 */
import { Cause, Data } from "effect"

export type ConcurrencyClass = Data.TaggedEnum<{
  Safe: {}
  Exclusive: {}
  Category: { readonly name: string }
}>

const tagged = Data.taggedEnum<ConcurrencyClass>()
const Safe = tagged.Safe
const Exclusive = tagged.Exclusive

/**
 * A category is its name: a blank one would silently put every listener that got it by
 * mistake into one shared lane, so it is refused where it is built.
 */
const Category = (args: { readonly name: string }): ConcurrencyClass => {
  if (typeof args.name !== "string" || args.name.trim() === "") {
    throw new Cause.IllegalArgumentException(
      `a concurrency category needs a name, got ${JSON.stringify(args.name)} (ConcurrencyClass.category("db"), or "category:db" in YAML)`
    )
  }
  // The same Data value `Data.taggedEnum` builds, with `_tag` first: the key order the YAML
  // loader's plain objects have, so both serialize alike (the reload diff compares JSON).
  return Data.struct({ _tag: "Category" as const, name: args.name })
}

export const ConcurrencyClass = {
  Safe,
  Exclusive,
  Category,
  $is: tagged.$is,
  $match: tagged.$match,
  safe: Safe() as ConcurrencyClass,
  exclusive: Exclusive() as ConcurrencyClass,
  /** Throws `IllegalArgumentException` for an empty or blank name. */
  category: (name: string): ConcurrencyClass => Category({ name })
} as const
