/**
 * `organism prompt FILE AGENT`: the system prompt an LLM agent's model is sent — its own
 * prompt, the usage instructions generated from its peers, and the answer format — for
 * writing mock scripts (`match: { system: … }`) and for reviewing what a model is told.
 */
import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Layer } from "effect"
import { closest } from "../config/suggest.js"
import { loadOrganism } from "../config/loadOrganism.js"
import { withMcpTools } from "../mcp/McpTools.js"
import { OUTPUT_FORMAT } from "../pipeline/agents/LlmAgent.js"
import { DEFAULT_MAX_TOOL_CALLS, toolsOutputFormat } from "../pipeline/agents/ToolAgent.js"
import { Pump } from "../pipeline/Pump.js"
import { LlmRouter } from "../services/LlmRouter.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { reportConfigError } from "./configErrors.js"
import { UsageError } from "./Exit.js"

const file = Args.text({ name: "organism.yaml" }).pipe(Args.withDescription("the organism"))
const agent = Args.text({ name: "AGENT" }).pipe(Args.withDescription("the agent (a listener with agent: true)"))
const json = Options.boolean("json").pipe(
  Options.withDescription(`print {"agent","system","prompt","usage"}: the whole, the agent's own prompt, the generated part`)
)

export const promptCommand = Command.make("prompt", { file, agent, json }, (opts) =>
  Effect.gen(function*() {
    // Its MCP servers' tools are peers an agent's prompt describes: they are started to list them.
    const loaded = yield* loadOrganism(opts.file).pipe(
      Effect.flatMap(withMcpTools),
      Effect.catchTag("OrganismConfigError", reportConfigError(2))
    )
    // The prompts are rendered by the pump from its listeners, built-in ones included. No
    // boot messages, and a model router that calls nothing (no API key is needed to read a
    // prompt): making the pump runs no handler and no model.
    const prompts = yield* Effect.gen(function*() {
      const pump = yield* Pump.make({ ...loaded.organism, boot: [] })
      return pump.prompts()
    }).pipe(
      Effect.scoped,
      Effect.provide(Layer.provideMerge(LlmRouter.layerNone("organism prompt calls no model"), Pump.layerServicesFor(loaded.organism))),
      Effect.mapError((e) => new UsageError({ message: `${opts.file}: ${e.message}` }))
    )
    const found = prompts.unsafePromptFor(opts.agent)
    if (found === undefined) {
      const agents = prompts.unsafeAgents()
      const near = closest(opts.agent, agents)
      return yield* new UsageError({
        message: `"${opts.agent}" is not an agent of ${opts.file}` +
          (near !== undefined ? ` (did you mean "${near}"?)` : "") +
          (agents.length > 0 ? `; its agents: ${agents.join(", ")}` : "; it has no agents")
      })
    }
    // An agent on tool calls is told how to answer with them instead.
    const llm = loaded.organism.listeners.find((l) => l.name.toLowerCase() === found.agent.toLowerCase())?.llm
    const format = llm?.protocol === "tools" ? toolsOutputFormat(llm.maxToolCalls ?? DEFAULT_MAX_TOOL_CALLS) : OUTPUT_FORMAT
    const system = `${found.system}\n\n${format}`
    yield* Console.log(
      opts.json ? JSON.stringify({ agent: found.agent, system, prompt: found.prompt, usage: found.usage }) : system
    )
  }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer))).pipe(Command.withDescription("Print the system prompt an LLM agent's model is sent (for mock scripts and review)"))
