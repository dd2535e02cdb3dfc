/**
 * The organism, run in the test's process: `npm test` type-checks, then runs this with
 * Node's test runner (tsx compiles the TypeScript).
 */
import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect } from "effect"
import { layerForOrganism, loadOrganism, Pump, TextInput, TextOutput, XmlEngine } from "xml-organism"
import { Greeting, GreetingReply } from "../payloads.js"

/** Loads organism.yaml, starts it on the services its file describes, and runs `f` with its pump. */
const withOrganism = <A, E>(f: (pump: Pump.Service) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const loaded = yield* loadOrganism("organism.yaml")
    return yield* Effect.gen(function*() {
      const pump = yield* Pump.make(loaded.organism)
      return yield* f(pump)
    }).pipe(Effect.scoped, Effect.provide(layerForOrganism(loaded)))
  }).pipe(Effect.provide(XmlEngine.layer), Effect.runPromise)

test("the greeter greets by name", async () => {
  const reply = await withOrganism((pump) => pump.request("greeter", new Greeting({ name: "Grace" })))
  assert.ok(reply instanceof GreetingReply)
  assert.equal(reply.message, "Hello, Grace!")
})

test("the assistant asks the greeter, then answers in words", async () => {
  const reply = await withOrganism((pump) => pump.request("assistant", new TextInput({ text: "Please greet Ada." })))
  assert.ok(reply instanceof TextOutput)
  assert.match(reply.text, /greeter says hello to Ada/)
})
