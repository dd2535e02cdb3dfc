/**
 * `stop_when`, `loop_detection` and `peer_limits` in an organism file: decoded, checked
 * (mistakes reported with file, line and key), and run against the mock model (provider:
 * mock, on loopback).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { layerForOrganism } from "../src/config/layerForOrganism.js"
import { TextInput, type TextOutput } from "../src/domain/SystemPayloads.js"
import { XmlEngine } from "../src/services/XmlEngine.js"
import { loadOrganism } from "./support/files.js"
import { endingOf } from "./support/mockModel.js"
import { withPump } from "./support/pump.js"

const dir = mkdtempSync(join(tmpdir(), "organism-limits-"))
const modules = relative(dir, join(__dirname, "fixtures", "modules.ts"))
const stops = relative(dir, join(__dirname, "fixtures", "stopWhen.ts"))

const write = (name: string, text: string) => {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

const organismFile = (agentExtra: string, oracleExtra = "") => `organism:
  name: limits
listeners:
  - name: assistant
    agent: true
    payload: TextInput
    accepts: [${modules}#Answer]
    peers: [oracle]
    prompt: You ask the oracle.
${agentExtra}
  - name: oracle
    payload: ${modules}#Question
    handler: ${modules}#answer
${oracleExtra}
llm:
  retries: 0
  backends:
    - name: scripted
      provider: mock
      script: script.yaml
      models: [m]
`

const problems = (file: string) =>
  Effect.map(Effect.either(loadOrganism(file)), (result) => {
    if (Either.isRight(result)) throw new Error("expected the organism file to be refused")
    return result.left.problems.map((p) => ({ line: p.line, key: p.key, message: p.message }))
  }).pipe(Effect.provide(XmlEngine.layer))

describe("agent limits in YAML", () => {
  it.effect("stop_when, loop_detection and peer_limits load, and the agent runs under them", () =>
    Effect.gen(function*() {
      write(
        "script.yaml",
        `responses:
  - match: { user: "at most 1 time" }
    times: always
    text: <Respond>the oracle is busy</Respond>
  - text: <Question><Text>a</Text></Question><Question><Text>b</Text></Question>
`
      )
      const file = write(
        "run.yaml",
        organismFile(`    stop_when:
      steps: 10
      handler: ${stops}#answeredCaller
    loop_detection:
      repeats: 4
      action: stop
    peer_limits:
      oracle: 1`)
      )
      const loaded = yield* loadOrganism(file).pipe(Effect.provide(XmlEngine.layer))
      const agent = loaded.organism.listeners.find((l) => l.name === "assistant")!
      expect(agent.llm?.limits?.loopDetection).toEqual({ repeats: 4, maxPeriod: undefined, action: "stop" })
      expect(agent.llm?.limits?.peerLimits).toEqual({ oracle: 1 })
      expect(agent.llm?.limits?.stopWhen).toHaveLength(2)
      yield* withPump(loaded.organism, ({ events, pump }) =>
        Effect.gen(function*() {
          const thread = yield* Effect.fork(pump.request("assistant", new TextInput({ text: "ask", source: "test", user: "" })))
          const reply = yield* thread
          expect((reply as TextOutput).text).toBe("the oracle is busy")
          yield* pump.awaitIdle
          const all = yield* events()
          const root = all.find((e) => e._tag === "ThreadCreated" && e.to === "assistant")!.thread!
          // The refused call is a guard; the answer to the caller held the handler's condition.
          expect(all.filter((e) => e._tag === "GuardTripped").map((e) => e._tag === "GuardTripped" && e.guard)).toEqual([
            "peer-limit",
            "stop-when"
          ])
          expect(endingOf(all, root)?.reason).toBe("guard")
        }), layerForOrganism(loaded))
    }))

  it.effect("mistakes are reported with their line and key", () =>
    Effect.gen(function*() {
      write("script.yaml", "responses: []\n")
      const empty = yield* problems(write("empty.yaml", organismFile("    stop_when: {}")))
      expect(empty).toEqual([{ line: 10, key: `listeners[0] "assistant".stop_when`, message: "give at least one of produced, steps, tokens or handler" }])

      const action = yield* problems(write("action.yaml", organismFile("    loop_detection:\n      action: halt")))
      expect(action).toMatchObject([{ line: 11, key: `listeners[0] "assistant".loop_detection.action`, message: expect.stringMatching(/expected "stop" or "warn"/) }])

      const peer = yield* problems(write("peer.yaml", organismFile("    peer_limits:\n      orcle: 2")))
      expect(peer).toEqual([{
        line: 11,
        key: `listeners[0] "assistant".peer_limits.orcle`,
        message: `"orcle" is not one of this agent's peers (oracle) — did you mean "oracle"?`
      }])

      const produced = yield* problems(write("produced.yaml", organismFile("    stop_when:\n      produced: [TextOutput, Answr]")))
      expect(produced).toEqual([{
        line: 11,
        key: `listeners[0] "assistant".stop_when.produced[1]`,
        message: "no payload type of this organism is named Answr — did you mean Answer?"
      }])

      const notAgent = yield* problems(write("notagent.yaml", organismFile("", "    stop_when:\n      steps: 3")))
      expect(notAgent).toMatchObject([{ key: `listeners[1] "oracle".stop_when`, message: "stop_when applies to LLM agents (agent: true, a prompt, no handler)" }])

      const missing = yield* problems(write("missing.yaml", organismFile(`    stop_when:\n      handler: ${stops}#nothingHere`)))
      expect(missing).toMatchObject([{ line: 11, key: `listeners[0] "assistant".stop_when.handler` }])
    }))
})
