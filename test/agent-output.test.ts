import { describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { findElements, parseAgentOutput, unfence } from "../src/pipeline/agents/AgentOutput.js"
import { XmlEngine } from "../src/services/XmlEngine.js"

const vocabulary = {
  peers: ["searcher", "writer", "writer-2"],
  peersByTag: new Map([
    ["search", ["searcher"]],
    ["draft", ["writer", "writer-2"]]
  ])
}

layer(XmlEngine.layer)("agent output", (it) => {
  const parse = (text: string) => Effect.map(XmlEngine, (engine) => parseAgentOutput(engine, text, vocabulary))

  it.effect("a peer's payload in prose and a code fence goes to that peer", () =>
    Effect.gen(function*() {
      const out = yield* parse("Let me look that up.\n```xml\n<Search>\n  <Query>effect &amp; xml</Query>\n</Search>\n```\nDone.")
      expect(out.problems).toEqual([])
      expect(out.actions).toHaveLength(1)
      expect(out.actions[0]).toMatchObject({ _tag: "Forward", to: "searcher" })
      expect(out.actions[0]!.payload.xml).toBe("<Search>\n  <Query>effect &amp; xml</Query>\n</Search>")
    }))

  it.effect("several payloads are several parallel sends; Respond answers the caller", () =>
    Effect.gen(function*() {
      const out = yield* parse(
        `<Search><Query>a</Query></Search> and <Search><Query>b</Query></Search>\n<Respond><Answer><Text>x</Text></Answer></Respond>`
      )
      expect(out.actions.map((a) => [a._tag, a._tag === "Forward" ? a.to : "", a.payload.tag])).toEqual([
        ["Forward", "searcher", "Search"],
        ["Forward", "searcher", "Search"],
        ["Respond", "", "Answer"]
      ])
    }))

  it.effect("an ambiguous type needs <Send to>; unknown peers and tags are reported, not sent", () =>
    Effect.gen(function*() {
      const ambiguous = yield* parse("<Draft><Text>hi</Text></Draft>")
      expect(ambiguous.actions).toEqual([])
      expect(ambiguous.problems[0]).toMatch(/accepted by writer and writer-2/)
      const named = yield* parse(`<Send to="Writer-2"><Draft><Text>hi</Text></Draft></Send>`)
      expect(named.actions[0]).toMatchObject({ _tag: "Forward", to: "writer-2" })
      const stranger = yield* parse(`<Send to="nobody"><Draft/></Send>`)
      expect(stranger.problems[0]).toMatch(/nobody is not one of your peers/)
    }))

  it.effect("broken XML from the model is repaired and reported", () =>
    Effect.gen(function*() {
      const out = yield* parse("<Search><Query>unclosed")
      expect(out.actions[0]).toMatchObject({ _tag: "Forward", to: "searcher" })
      expect(out.actions[0]!.payload.xml).toBe("<Search><Query>unclosed</Query></Search>")
      expect(out.repairs[0]).toMatch(/repaired/)
    }))

  it.effect("an answer without any payload is text for the caller", () =>
    Effect.gen(function*() {
      const out = yield* parse("  The answer is 42 (I checked <nothing> special).  ")
      expect(out.actions).toEqual([])
      expect(out.text).toBe("The answer is 42 (I checked <nothing> special).")
      const respondText = yield* parse("<Respond>just text &amp; more</Respond>")
      expect(respondText.actions[0]!.payload.xml).toBe("<TextOutput><Text>just text &amp; more</Text></TextOutput>")
    }))
})

describe("scanning", () => {
  const known = (n: string) => ["A", "Respond"].includes(n)
  it.effect("nested same-name elements and self-closing tags", () =>
    Effect.sync(() => {
      expect(findElements("x <A><A>1</A></A> y <A/> <B>no</B>", known)).toEqual(["<A><A>1</A></A>", "<A/>"])
      expect(findElements("<Ab>not A</Ab><A>", known)).toEqual(["<A>"])
      expect(unfence("prose ```xml\n<A/>\n``` more ```\nplain\n```")).toBe("<A/>\n")
    }))
})
