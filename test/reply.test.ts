/** Reply and ConcurrencyClass as tagged enums, and the Schema that checks what a handler returns. */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Either, Equal, FastCheck as fc, Schema } from "effect"
import { ConcurrencyClass } from "../src/domain/Listener.js"
import { decodeReply, isReply, RawPayload, Reply, ReplySchema } from "../src/domain/Reply.js"
import { Note } from "./support/pump.js"

const note = new Note({ text: "hi" })
const problem = (u: unknown) => Either.flip(decodeReply(u)).pipe(Either.getOrThrow)

describe("Reply", () => {
  it("the constructors build the tagged values, equal by value", () => {
    expect(Reply.none).toEqual({ _tag: "None" })
    expect(Reply.forward("sink", note)).toEqual({ _tag: "Forward", to: "sink", payloads: [note] })
    expect(Reply.respond(note, note)).toEqual({ _tag: "Respond", payloads: [note, note] })
    expect(Reply.broadcast()).toEqual({ _tag: "Broadcast", payloads: [] })
    expect(Reply.all(Reply.none, Reply.respond(note))).toEqual({ _tag: "All", replies: [{ _tag: "None" }, { _tag: "Respond", payloads: [note] }] })
    // Data values: equal by value, like every TaggedEnum.
    expect(Equal.equals(Reply.forward("sink", note), Reply.Forward({ to: "sink", payloads: [note] }))).toBe(false) // payload arrays differ by reference
    const payloads = [note]
    expect(Equal.equals(Reply.Forward({ to: "sink", payloads }), Reply.Forward({ to: "sink", payloads }))).toBe(true)
    expect(Equal.equals(Reply.none, Reply.None())).toBe(true)
    expect(Reply.$is("Forward")(Reply.forward("a"))).toBe(true)
    expect(Reply.$is("Forward")(Reply.none)).toBe(false)
    const describe = Reply.$match({
      None: () => "none",
      Forward: ({ payloads, to }) => `${payloads.length} to ${to}`,
      Respond: ({ payloads }) => `${payloads.length} back`,
      Broadcast: ({ payloads }) => `${payloads.length} to all`,
      All: ({ replies }) => `${replies.length} at once`
    })
    expect([Reply.none, Reply.forward("a", note), Reply.respond(), Reply.broadcast(note), Reply.all(Reply.none)].map(describe)).toEqual([
      "none",
      "1 to a",
      "0 back",
      "1 to all",
      "1 at once"
    ])
  })

  it("isReply looks at the tag: replies built by hand count, other values do not", () => {
    expect(isReply(Reply.respond(note))).toBe(true)
    expect(isReply({ _tag: "Respond", payloads: [note] })).toBe(true)
    for (const u of [undefined, null, 42, "Respond", {}, { _tag: "Nope" }, [], note]) expect(isReply(u)).toBe(false)
  })

  describe("ReplySchema and decodeReply (the dispatch boundary)", () => {
    it("decodes every shape, nested All included; a valid reply comes back as it is", () => {
      const raw = new RawPayload({ tag: "Note", inner: "<Text>x</Text>" })
      const replies = [
        Reply.none,
        Reply.forward("sink", note, raw),
        Reply.respond(note),
        Reply.broadcast(note),
        Reply.all(Reply.respond(note), Reply.all(Reply.forward("a", note), Reply.none)),
        { _tag: "Forward", to: "sink", payloads: [note] }, // by hand, not through the constructors
        { _tag: "None", extra: "ignored" }
      ]
      for (const r of replies) {
        expect(decodeReply(r)).toEqual(Either.right(r))
        expect(Either.getOrThrow(decodeReply(r))).toBe(r)
        expect(Schema.is(ReplySchema)(r)).toBe(true)
      }
      // The Schema's own decoding keeps the payload instances.
      const decoded = Schema.decodeUnknownSync(ReplySchema)({ _tag: "Respond", payloads: [note] })
      expect(decoded._tag === "Respond" && decoded.payloads[0]).toBe(note)
    })

    it("hostile shapes are refused with a message that says what is wrong", () => {
      expect(problem({ _tag: "Forward", to: "sink" })).toMatch(/Reply\.Forward[\s\S]*\["payloads"\][\s\S]*is missing/)
      expect(problem({ _tag: "Forward", payloads: [note] })).toMatch(/Reply\.Forward[\s\S]*\["to"\][\s\S]*is missing/)
      expect(problem({ _tag: "Forward", to: 7, payloads: [] })).toMatch(/\["to"\][\s\S]*Expected string, actual 7/)
      expect(problem({ _tag: "Respond", payloads: 5 })).toMatch(/Reply\.Respond[\s\S]*\["payloads"\][\s\S]*Expected ReadonlyArray<object>, actual 5/)
      expect(problem({ _tag: "Broadcast", payloads: [note, "text"] })).toMatch(/\[1\][\s\S]*Expected object, actual "text"/)
      expect(problem({ _tag: "All", replies: null })).toMatch(/Reply\.All[\s\S]*\["replies"\][\s\S]*actual null/)
      expect(problem({ _tag: "All", replies: [Reply.none, { _tag: "Respond", payloads: [1] }] })).toMatch(
        /Reply\.All[\s\S]*\[1\][\s\S]*Reply\.Respond[\s\S]*Expected object, actual 1/
      )
      expect(problem(42)).toBe("Expected Reply, actual 42")
      expect(problem("x")).toBe(`Expected Reply, actual "x"`)
      expect(problem(null)).toBe("Expected Reply, actual null")
      expect(problem(undefined)).toBe("Expected Reply, actual undefined")
      expect(problem({})).toMatch(/\["_tag"\][\s\S]*is missing/)
      expect(problem([])).toMatch(/\["_tag"\][\s\S]*is missing/)
      expect(problem([Reply.none])).toMatch(/\["_tag"\][\s\S]*is missing/)
      expect(problem({ _tag: "Nope" })).toMatch(/Expected "None" \| "Forward" \| "Respond" \| "Broadcast" \| "All", actual "Nope"/)
      // An inherited _tag is not the value's own: refused like the Schema refuses it.
      expect(Either.isLeft(decodeReply(Object.create({ _tag: "None" })))).toBe(true)
    })

    // decodeReply checks valid replies by hand (the Schema interpreter is too slow for every
    // hop) and runs the Schema only for the rest: it must accept exactly what the Schema
    // decodes, and take the fast path (the value itself, not a copy) exactly for what
    // `Schema.is` accepts.
    const payload = fc.oneof(
      { weight: 4, arbitrary: fc.constant<unknown>(note) },
      { weight: 1, arbitrary: fc.constant<unknown>(() => note) }, // a function is an object too
      { weight: 2, arbitrary: fc.anything() }
    )
    const payloads = fc.oneof(
      { weight: 6, arbitrary: fc.array(payload, { maxLength: 3 }) },
      { weight: 1, arbitrary: fc.anything() }
    )
    // The same fields, inherited rather than own (the Schema reads own properties only).
    const inherited = (r: Record<string, unknown>): unknown => Object.assign(Object.create(r), { _tag: r._tag })
    const { reply } = fc.letrec<{ reply: unknown }>((tie) => ({
      reply: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        fc.anything(),
        fc.record({ _tag: fc.constant("None") }),
        fc.record({ _tag: fc.constantFrom("Forward", "Respond", "Broadcast", "All", "None", "forward"), to: fc.oneof(fc.string(), fc.anything()), payloads }, { requiredKeys: ["_tag"] }),
        fc.record({ _tag: fc.constant("All"), replies: fc.oneof({ weight: 5, arbitrary: fc.array(tie("reply"), { maxLength: 3 }) }, { weight: 1, arbitrary: fc.anything() }) }, { requiredKeys: [] }),
        fc.record({ _tag: fc.constantFrom("Forward", "Respond", "All"), to: fc.string(), payloads: fc.array(payload, { maxLength: 2 }), replies: fc.constant([]) }).map(inherited)
      )
    }))
    const is = Schema.is(ReplySchema)
    const decode = Schema.decodeUnknownEither(ReplySchema)

    it.prop("decodeReply agrees with the Schema, and returns the value itself when it is a Reply", [reply], ([u]) => {
      const decoded = decodeReply(u)
      expect(Either.isRight(decoded)).toBe(Either.isRight(decode(u)))
      expect(Either.isRight(decoded) && decoded.right === u).toBe(is(u))
    }, { fastCheck: { numRuns: 2000 } })
  })
})

describe("ConcurrencyClass", () => {
  it("the constructors build the tagged values", () => {
    expect(ConcurrencyClass.safe).toEqual({ _tag: "Safe" })
    expect(ConcurrencyClass.exclusive).toEqual({ _tag: "Exclusive" })
    expect(ConcurrencyClass.category("db")).toEqual({ _tag: "Category", name: "db" })
    expect(Equal.equals(ConcurrencyClass.category("db"), ConcurrencyClass.Category({ name: "db" }))).toBe(true)
    expect(Equal.equals(ConcurrencyClass.category("db"), ConcurrencyClass.category("io"))).toBe(false)
    expect(ConcurrencyClass.$is("Category")(ConcurrencyClass.category("db"))).toBe(true)
    // Serialized like the YAML loader's values (the reload diff compares listeners as JSON).
    expect(JSON.stringify(ConcurrencyClass.category("db"))).toBe(JSON.stringify({ _tag: "Category", name: "db" }))
    const lane = ConcurrencyClass.$match({ Safe: () => "any", Exclusive: () => "one", Category: ({ name }) => `one per ${name}` })
    expect([ConcurrencyClass.safe, ConcurrencyClass.exclusive, ConcurrencyClass.category("db")].map(lane)).toEqual(["any", "one", "one per db"])
  })

  it("a category without a name is refused where it is built", () => {
    for (const name of ["", "   ", "\t"]) {
      expect(() => ConcurrencyClass.category(name)).toThrow(Cause.IllegalArgumentException)
      expect(() => ConcurrencyClass.Category({ name })).toThrow(/a concurrency category needs a name/)
    }
  })
})
