/**
 * `organism run` with tracing, as a real process: the standard variables or `--otel` send the
 * agents example's spans to a loopback OTLP/HTTP receiver; without them nothing is sent.
 */
import { describe, expect, it, vi } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { join } from "node:path"
import { otlpReceiver, type ReceivedSpan } from "./support/otlpReceiver.js"

vi.setConfig({ testTimeout: 120_000 })

const root = join(__dirname, "..")

const run = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  Effect.async<{ code: number | null; stdout: string; stderr: string }>((resume) => {
    // Only what the test sets: no OTEL_* variable of the machine running the tests leaks in.
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTEL_")))
    const child = spawn(process.execPath, [join(root, "bin", "organism.js"), ...args], { cwd: root, env: { ...clean, ...env }, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

const agents = ["run", "examples/agents/organism.yaml", "--until-idle"]

/** The agents example's conversation: coordinator, researcher, writer, five model calls. */
const checkAgentsTrace = (spans: ReadonlyArray<ReceivedSpan>) => {
  const byId = new Map(spans.map((s) => [s.spanId, s]))
  const chats = spans.filter((s) => s.name === "chat mock-1")
  expect(chats).toHaveLength(5)
  const callers = chats.map((c) => {
    const handler = byId.get(c.parentSpanId)!
    expect(handler.name).toMatch(/^handler /)
    expect(byId.get(handler.parentSpanId)!.name).toBe("conversation")
    expect(c.attributes["gen_ai.system"]).toBe("mock")
    expect(c.attributes["gen_ai.usage.input_tokens"]).toBeGreaterThan(0)
    return handler.attributes["organism.listener"]
  })
  expect(callers).toEqual(["coordinator", "researcher", "coordinator", "writer", "coordinator"])
  // One trace for the conversation, another for the boot.
  expect(new Set(chats.map((c) => c.traceId)).size).toBe(1)
}

describe("organism run with OpenTelemetry", () => {
  it.live("OTEL_EXPORTER_OTLP_ENDPOINT + OTEL_SERVICE_NAME: spans arrive (protobuf by default)", () =>
    Effect.gen(function*() {
      const receiver = yield* otlpReceiver
      const r = yield* run(agents, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: "agents-under-test" })
      expect(r.code, r.stderr).toBe(0)
      expect(receiver.contentTypes().every((t) => t === "application/x-protobuf")).toBe(true)
      const spans = receiver.spans()
      checkAgentsTrace(spans)
      expect(new Set(spans.map((s) => s.serviceName))).toEqual(new Set(["agents-under-test"]))
    }).pipe(Effect.scoped))

  it.live("--otel URL with OTEL_EXPORTER_OTLP_PROTOCOL=http/json; the service is named after the organism", () =>
    Effect.gen(function*() {
      const receiver = yield* otlpReceiver
      const r = yield* run([...agents, "--otel", receiver.url], { OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" })
      expect(r.code, r.stderr).toBe(0)
      expect(receiver.contentTypes().every((t) => t === "application/json")).toBe(true)
      checkAgentsTrace(receiver.spans())
      expect(receiver.spans()[0]!.serviceName).toBe("agents")
    }).pipe(Effect.scoped))

  it.live("OTEL_SDK_DISABLED=true turns it off, endpoint or not", () =>
    Effect.gen(function*() {
      const receiver = yield* otlpReceiver
      const r = yield* run(agents, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SDK_DISABLED: "true" })
      expect(r.code, r.stderr).toBe(0)
      expect(receiver.contentTypes()).toEqual([])
    }).pipe(Effect.scoped))
})
