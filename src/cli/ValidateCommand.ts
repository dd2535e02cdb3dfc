/**
 * `organism validate FILE [--json]`: everything `organism run` would check before it starts,
 * without running — the file, every module and export it names, every XSD, the mock scripts
 * and the API keys of the model backends — with every problem found listed in one run.
 * Exit 0 when valid, 1 with the problems, 2 for usage errors.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Either } from "effect"
import { relative, resolve } from "node:path"
import { ConfigProblem } from "../config/ConfigError.js"
import { loadOrganism } from "../config/loadOrganism.js"
import { withMcpTools } from "../mcp/McpTools.js"
import type { Listener } from "../domain/Listener.js"
import { loadMockScript } from "../llm/MockScript.js"
import { makeRouter } from "../pipeline/Router.js"
import { ThreadRegistry } from "../services/ThreadRegistry.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { ExitWith } from "./Exit.js"

const file = Args.text({ name: "organism.yaml" }).pipe(Args.withDescription("the organism to check"))
const json = Options.boolean("json").pipe(
  Options.withDescription(`print one JSON object: {"file","ok","organism","listeners","payloadTypes","problems":[{file,line,column,key,message}]}`)
)

interface Summary {
  readonly organism: string
  readonly listeners: number
  readonly payloadTypes: number
}

/** The organism's name and counts when it is valid, otherwise every problem found. */
export const validateOrganism = (file: string, env: Readonly<Record<string, string | undefined>>) =>
  Effect.gen(function*() {
    // Its MCP servers (mcp:) are started to list their tools, and stopped once checked.
    const loaded = yield* Effect.either(Effect.flatMap(loadOrganism(file, { checkApiKeys: env }), withMcpTools))
    if (Either.isLeft(loaded)) return Either.left(loaded.left.problems)
    const problems: Array<ConfigProblem> = []
    const whole = (message: string) => new ConfigProblem({ file, line: 0, column: 0, key: "", message })
    // The mock scripts the router would load at start.
    for (const b of loaded.right.llm?.backends ?? []) {
      if (b.provider !== "mock" || b.script === undefined) continue
      const script = relative(process.cwd(), resolve(loaded.right.baseDir, b.script))
      const checked = yield* Effect.either(loadMockScript(script))
      if (Either.isLeft(checked)) problems.push(...checked.left.problems)
    }
    // Building the pump's router compiles every payload XSD.
    const router = yield* Effect.either(
      makeRouter(loaded.right.organism.listeners as ReadonlyArray<Listener>, yield* ThreadRegistry.make, [], loaded.right.organism.settings.wire)
    )
    if (Either.isLeft(router)) problems.push(whole(router.left.message))
    if (problems.length > 0 || Either.isLeft(router)) return Either.left(problems)
    return Either.right<Summary>({
      organism: loaded.right.organism.settings.name,
      listeners: router.right.listeners.size,
      payloadTypes: router.right.types.size
    })
  }).pipe(Effect.scoped)

export const validateCommand = Command.make("validate", { file, json }, ({ file, json }) =>
  Effect.gen(function*() {
    const result = yield* validateOrganism(file, process.env)
    if (json) {
      yield* Console.log(JSON.stringify({
        file,
        ok: Either.isRight(result),
        organism: Either.isRight(result) ? result.right.organism : null,
        listeners: Either.isRight(result) ? result.right.listeners : null,
        payloadTypes: Either.isRight(result) ? result.right.payloadTypes : null,
        problems: Either.isLeft(result)
          ? result.left.map((p) => ({ file: p.file, line: p.line, column: p.column, key: p.key, message: p.message }))
          : []
      }))
    } else if (Either.isRight(result)) {
      const s = result.right
      yield* Console.log(`${file}: ok — organism "${s.organism}", ${s.listeners} listeners, ${s.payloadTypes} payload types compiled`)
    } else {
      const problems = result.left
      yield* Console.error(
        `organism: ${problems.length === 1 ? "a problem" : `${problems.length} problems`} in ${file}:\n` +
          problems.map((p) => `  ${String(p)}`).join("\n")
      )
    }
    if (Either.isLeft(result)) return yield* new ExitWith({ code: 1 })
  }).pipe(Effect.provide(XmlEngine.layer))).pipe(
    Command.withDescription(
      "Check an organism without running it: the file, its modules and exports, every XSD, mock scripts and API keys"
    )
  )
