import { Command, Options } from "@effect/cli"
import { Console, Duration, Effect, Option } from "effect"
import { MockLlmServer, type RecordedRequest } from "../llm/MockLlmServer.js"
import { loadMockScript, type MockEntry, type MockReply, MockScript, type MockScriptError } from "../llm/MockScript.js"
import { ExitWith, UsageError } from "./Exit.js"

const script = Options.file("script", { exists: "yes" }).pipe(
  Options.withDescription("the script (YAML or JSON); without it every request is answered with its last user message"),
  Options.optional
)
const port = Options.integer("port").pipe(
  Options.withDescription("the port to listen on; 0 picks a free one"),
  Options.withDefault(0)
)
const host = Options.text("host").pipe(
  Options.withDescription("the address to listen on"),
  Options.withDefault("127.0.0.1")
)

/** What a script entry will do, in a few words. */
export const describeReply = (reply: MockReply | MockEntry): string => {
  const delayed = reply.delay === undefined ? "" : ` after ${Duration.format(reply.delay)}`
  if (reply.fault !== undefined) return `fault ${reply.fault}${delayed}`
  if (reply.status !== undefined) {
    return `status ${reply.status}${reply.retry_after !== undefined ? ` (Retry-After: ${reply.retry_after})` : ""}${delayed}`
  }
  if (reply.echo === true || reply.text === undefined) return `echo${delayed}`
  const oneLine = reply.text.replace(/\s+/g, " ").trim()
  return `text ${JSON.stringify(oneLine.length > 40 ? `${oneLine.slice(0, 39)}…` : oneLine)}${delayed}`
}

/** One line per request: time, order, call, and what the script answers. */
export const requestLine = (script: MockScript, r: RecordedRequest): string => {
  const time = r.time.toISOString().slice(11, 23)
  const call = `${r.method} ${r.path}`
  if (r.served === undefined) return `${time} #${r.index} ${call}`
  const reply = r.served === "default" ? script.default : script.responses[r.served]
  const which = r.served === "default" ? "default" : `responses[${r.served}]`
  return `${time} #${r.index} ${call} ${r.model === "" ? "(no model)" : r.model}${r.stream ? " stream" : ""} → ${which}: ${
    reply === undefined ? "echo" : describeReply(reply)
  }`
}

const reportScriptError = (error: MockScriptError) =>
  Console.error(
    `organism: ${error.problems.length === 1 ? "a problem" : `${error.problems.length} problems`} in ${error.file}:\n` +
      error.problems.map((p) => `  ${String(p)}`).join("\n")
  ).pipe(Effect.zipRight(Effect.fail(new ExitWith({ code: 2 }))))

/** `organism mock-llm`: the mock LLM server, standalone, until Ctrl-C. */
export const mockLlmCommand = Command.make("mock-llm", { script, port, host }, (opts) =>
  Effect.gen(function*() {
    if (opts.port < 0 || opts.port > 65535) return yield* new UsageError({ message: `--port: expected 0 to 65535, got ${opts.port}` })
    const loaded = Option.isSome(opts.script)
      ? yield* loadMockScript(opts.script.value).pipe(Effect.catchTag("MockScriptError", reportScriptError))
      : new MockScript({})
    const server = yield* MockLlmServer.make({
      script: loaded,
      port: opts.port,
      host: opts.host,
      onRequest: (r) => process.stdout.write(`${requestLine(loaded, r)}\n`)
    }).pipe(Effect.catchTag("MockLlmServerError", (e) => Effect.fail(new UsageError({ message: e.reason }))))
    const source = Option.isSome(opts.script)
      ? `${opts.script.value}: ${loaded.responses.length} responses, then ${loaded.default === undefined ? "echo" : describeReply(loaded.default)}`
      : "no script: every request is echoed"
    yield* Console.log(
      `mock-llm listening on ${server.url}\n` +
        `  OpenAI base URL:    ${server.openAiUrl}  (POST /chat/completions, /responses; GET /models)\n` +
        `  Anthropic base URL: ${server.url}  (POST /v1/messages)\n` +
        `  ${source}\n` +
        `Ctrl-C stops.`
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => process.stdout.write(`mock-llm: stopped after ${server.requests().length} requests\n`))
    )
    return yield* Effect.never
  }).pipe(Effect.scoped)).pipe(
    Command.withDescription("Run a mock OpenAI / Anthropic server that answers from a script and injects faults")
  )
