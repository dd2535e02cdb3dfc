/**
 * Loads an organism from YAML: parse with positions, decode with the OrganismConfig schema,
 * check cross-references, import the payload and handler modules, and build the Organism.
 * Every problem found is reported together, each with its file, line and key.
 */
import { Duration, Effect, Either, Schedule } from "effect"
import { readFile } from "node:fs/promises"
import { dirname, resolve } from "node:path"
import type { AgentLimits, StopCondition, StopHandler } from "../domain/AgentLimits.js"
import { builtinPayloads } from "../domain/BuiltinPayloads.js"
import { CustomStage } from "../domain/CustomStage.js"
import { ENVELOPE_NS } from "../domain/Envelope.js"
import { type AgentContextOptions, type Handler, Listener, type SummariserOptions } from "../domain/Listener.js"
import { llmAgent as makeLlmAgent } from "../pipeline/agents/LlmAgent.js"
import { type LlmConfig, providerInfo } from "../domain/LlmConfig.js"
import { type BootMessage, Organism } from "../domain/Organism.js"
import { type ListenerConfig, OrganismConfig, type RetryConfig } from "../domain/OrganismConfig.js"
import type { PayloadType } from "../domain/Payload.js"
import { RawPayload } from "../domain/Reply.js"
import { readCanonical } from "../domain/xml/CanonicalTree.js"
import type { LlmRouter } from "../services/LlmRouter.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { ConfigProblem, OrganismConfigError, unreadableFile } from "./ConfigError.js"
import { closest } from "./suggest.js"
import { loadFunction, loadPayloadType, ModuleLoadError, moduleChanged, outsideFolder } from "./ModuleRef.js"
import { decodeSource, type Path, parseYaml, type YamlSource } from "./YamlSource.js"

export interface LoadedOrganism {
  readonly file: string
  /** The organism file's directory: relative paths in it (a mock LLM script) start here. */
  readonly baseDir: string
  readonly config: OrganismConfig
  /** The file as parsed, with positions: problems found later (an MCP server's tools) name their line. */
  readonly source: YamlSource
  /** The decoded `llm:` section, if the file has one (LlmRouter.layer takes it). */
  readonly llm: LlmConfig | undefined
  /** Its LLM agents need an LlmRouter: `layerForOrganism` provides one with the pump's services. */
  readonly organism: Organism<LlmRouter>
  /**
   * Worth telling whoever loads it, not reasons to refuse it: modules outside the
   * organism's folder (code the file makes run from anywhere on the disk).
   */
  readonly warnings: ReadonlyArray<ConfigProblem>
}

const fail = (file: string, problems: ReadonlyArray<ConfigProblem>) =>
  Effect.fail(new OrganismConfigError({ file, problems: [...problems] }))

export const retrySchedule = (retry: RetryConfig): Schedule.Schedule<unknown, unknown> => {
  const base: Schedule.Schedule<unknown> = retry.backoff === "exponential"
    ? Schedule.exponential(retry.delay)
    : Schedule.spaced(retry.delay)
  const capped = retry.max_delay === undefined
    ? base
    : Schedule.modifyDelay(base, (_, d) => Duration.min(d, retry.max_delay!))
  return Schedule.intersect(capped, Schedule.recurs(retry.times)) as Schedule.Schedule<unknown, unknown>
}

/**
 * What the cross-reference checks read: the decoded config, or — when the file does not
 * decode — whatever of it can be read, so that one run reports every problem.
 */
interface References {
  readonly organism?: { readonly injector?: string | undefined } | undefined
  readonly listeners: ReadonlyArray<{
    readonly name?: string | undefined
    readonly peers?: ReadonlyArray<string | undefined> | undefined
    readonly model?: string | undefined
  }>
  readonly boot?: ReadonlyArray<{ readonly to?: string | undefined }> | undefined
  readonly llm?: { readonly backends: ReadonlyArray<{ readonly models: ReadonlyArray<string> }> } | undefined
  readonly mcp?: ReadonlyArray<{ readonly name?: string | undefined; readonly command?: string | undefined; readonly url?: string | undefined }> | undefined
}

/** One listener of a file that did not decode, as far as it can be read. */
interface RawListener {
  readonly name?: string | undefined
  readonly peers?: ReadonlyArray<string | undefined> | undefined
  readonly payload?: string | undefined
  readonly accepts?: ReadonlyArray<string | undefined> | undefined
  readonly handler?: string | undefined
  readonly on_system?: string | undefined
}

const text = (u: unknown): string | undefined => (typeof u === "string" ? u : undefined)
const texts = (u: unknown): ReadonlyArray<string | undefined> | undefined => (Array.isArray(u) ? u.map(text) : undefined)
const field = (u: unknown, key: string): unknown =>
  u !== null && typeof u === "object" && !Array.isArray(u) ? (u as Record<string, unknown>)[key] : undefined

/** The readable parts of a file that did not decode (the model check needs a decoded llm:). */
const readRaw = (value: unknown): References & { readonly listeners: ReadonlyArray<RawListener> } => {
  const listeners = field(value, "listeners")
  const boot = field(value, "boot")
  const mcp = field(value, "mcp")
  return {
    mcp: Array.isArray(mcp)
      ? mcp.map((m) => ({ name: text(field(m, "name")), command: text(field(m, "command")), url: text(field(m, "url")) }))
      : undefined,
    organism: { injector: text(field(field(value, "organism"), "injector")) },
    listeners: Array.isArray(listeners)
      ? listeners.map((l) => ({
        name: text(field(l, "name")),
        peers: texts(field(l, "peers")),
        payload: text(field(l, "payload")),
        accepts: texts(field(l, "accepts")),
        handler: text(field(l, "handler")),
        on_system: text(field(l, "on_system"))
      }))
      : [],
    boot: Array.isArray(boot) ? boot.map((b) => ({ to: text(field(b, "to")) })) : undefined
  }
}

/** Cross-references the schema cannot see: names, peers, boot targets, models. */
const checkReferences = (source: YamlSource, config: References): Array<ConfigProblem> => {
  const problems: Array<ConfigProblem> = []
  const names = new Map<string, number>()
  config.listeners.forEach((l, i) => {
    if (l.name === undefined) return
    const key = l.name.toLowerCase()
    if (l.name === "system") problems.push(source.problem(["listeners", i, "name"], `"system" is reserved for the organism itself`))
    const first = names.get(key)
    if (first !== undefined) {
      problems.push(source.problem(["listeners", i, "name"], `listener "${l.name}" is already defined at listeners[${first}]`))
    } else names.set(key, i)
  })
  const injector = config.organism?.injector ?? "console"
  if (names.has(injector.toLowerCase())) {
    problems.push(source.problem(["organism", "injector"], `the injector "${injector}" has the name of a listener`))
  }
  // An MCP server's tools are listeners named `server.tool`; whether the tool exists is
  // known once the server runs (src/mcp/McpTools.ts checks these names then).
  const mcpServers = new Map<string, number>()
  config.mcp?.forEach((m, i) => {
    if (m.name === undefined) return
    const first = mcpServers.get(m.name.toLowerCase())
    if (first !== undefined) problems.push(source.problem(["mcp", i, "name"], `MCP server "${m.name}" is already defined at mcp[${first}]`))
    else mcpServers.set(m.name.toLowerCase(), i)
    if ((m.command === undefined) === (m.url === undefined)) {
      problems.push(source.problem(["mcp", i], `an MCP server needs either a command (stdio) or a url (streamable HTTP), not ${m.command === undefined ? "neither" : "both"}`))
    }
  })
  const isMcpTool = (name: string) => {
    const dot = name.indexOf(".")
    return dot > 0 && mcpServers.has(name.slice(0, dot).toLowerCase())
  }
  const known = [...config.listeners.flatMap((l) => (l.name === undefined ? [] : [l.name])), "system.boot"]
  const suggestion = (name: string) => {
    const close = known.find((k) => k.toLowerCase() === name.toLowerCase()) ?? closest(name, known)
    return close !== undefined ? ` (did you mean "${close}"?)` : ""
  }
  config.listeners.forEach((l, i) =>
    l.peers?.forEach((peer, j) => {
      if (peer !== undefined && !names.has(peer.toLowerCase()) && peer.toLowerCase() !== "system.boot" && !isMcpTool(peer)) {
        problems.push(source.problem(["listeners", i, "peers", j], `peer "${peer}" is not a listener of this organism${suggestion(peer)}`))
      }
    })
  )
  config.boot?.forEach((b, i) => {
    if (b.to !== undefined && !names.has(b.to.toLowerCase()) && !isMcpTool(b.to)) {
      problems.push(source.problem(["boot", i, "to"], `"${b.to}" is not a listener of this organism${suggestion(b.to)}`))
    }
  })
  // A model no backend serves would only fail at the agent's first call.
  if (config.llm !== undefined) {
    const served = [...new Set(config.llm.backends.flatMap((b) => b.models))]
    config.listeners.forEach((l, i) => {
      if (l.model !== undefined && !served.includes(l.model)) {
        const near = closest(l.model, served)
        problems.push(source.problem(
          ["listeners", i, "model"],
          `no backend in llm: serves the model "${l.model}" (served: ${served.join(", ")})${near === undefined ? "" : ` — did you mean "${near}"?`}`
        ))
      }
    })
  }
  return problems
}

/**
 * The modules a listener of an undecodable file names, imported: a missing module or export
 * is reported in the same run as the file's other mistakes.
 */
const checkRawModules = (source: YamlSource, baseDir: string, listeners: ReadonlyArray<RawListener>) =>
  Effect.gen(function*() {
    const problems: Array<ConfigProblem> = []
    const attempt = (path: Path, effect: Effect.Effect<unknown, { readonly message: string }>) =>
      Effect.catchAll(Effect.asVoid(effect), (e) => Effect.sync(() => void problems.push(source.problem(path, e.message))))
    for (const [i, l] of listeners.entries()) {
      if (l.payload !== undefined) yield* attempt(["listeners", i, "payload"], loadPayloadType(l.payload, baseDir))
      for (const [j, ref] of (l.accepts ?? []).entries()) {
        if (ref !== undefined) yield* attempt(["listeners", i, "accepts", j], loadPayloadType(ref, baseDir))
      }
      if (l.handler !== undefined) yield* attempt(["listeners", i, "handler"], loadFunction(l.handler, baseDir))
      if (l.on_system !== undefined) yield* attempt(["listeners", i, "on_system"], loadFunction(l.on_system, baseDir))
    }
    return problems
  })

/**
 * Every problem once, in the order of the file. A module that failed to load is explained
 * at its first reference; the others point there (a file whose modules cannot load at all —
 * a project without "type": "module" — would otherwise repeat one long error per reference).
 */
const ordered = (problems: ReadonlyArray<ConfigProblem>): Array<ConfigProblem> => {
  const seen = new Set<string>()
  const sorted = problems
    .filter((p) => {
      const key = String(p)
      return seen.has(key) ? false : (seen.add(key), true)
    })
    .sort((a, b) => a.line - b.line || a.column - b.column)
  const explained = new Map<string, ConfigProblem>()
  return sorted.map((p) => {
    const failed = /^module (\S+) (?:failed to load|is not an ES module): /.exec(p.message)
    if (failed === null) return p
    const first = explained.get(failed[1]!)
    if (first === undefined) {
      explained.set(failed[1]!, p)
      return p
    }
    return new ConfigProblem({ ...p, message: `module ${failed[1]} failed to load (see line ${first.line}, ${first.key})` })
  })
}

/**
 * The backends whose API key is not in `env` (what `organism run` would refuse to start
 * with), read from the file as written so that it works whatever else is wrong in it.
 */
const checkApiKeys = (source: YamlSource, env: Readonly<Record<string, string | undefined>>): Array<ConfigProblem> => {
  const backends = field(field(source.value, "llm"), "backends")
  if (!Array.isArray(backends)) return []
  return backends.flatMap((b, i) => {
    const provider = text(field(b, "provider"))
    if (provider === undefined || !Object.hasOwn(providerInfo, provider)) return []
    const info = providerInfo[provider as keyof typeof providerInfo]
    const named = text(field(b, "api_key_env"))
    const variable = named ?? info.keyEnv
    // The same rule as the router's: a key named explicitly is wanted; a provider's default
    // variable only when the provider refuses requests without one.
    if (variable === undefined || (named === undefined && !info.keyRequired)) return []
    const value = env[variable]
    if (value !== undefined && value !== "") return []
    return [source.problem(
      ["llm", "backends", i],
      `backend "${text(field(b, "name")) ?? i}" (${provider}): the environment variable ${variable} that should hold its API key is not set`
    )]
  })
}

export interface LoadOptions {
  /**
   * Hot reload: handler modules whose files changed are imported again. Payload modules
   * cannot be (their classes are shared by every module that imports them): a changed one
   * is reported as a problem, so the organism keeps its last good version.
   */
  readonly reload?: boolean
  /**
   * Also report every model backend whose API key is not set in this environment (as
   * `organism validate` does; `organism run` reports it when the router starts).
   */
  readonly checkApiKeys?: Readonly<Record<string, string | undefined>>
}

const payloadUnchanged = (reference: string, baseDir: string) =>
  Effect.flatMap(moduleChanged(reference, baseDir), (changed) =>
    changed
      ? Effect.fail(
        new ModuleLoadError({
          reference,
          reason: "payload-module-changed",
          detail: `${reference.split("#")[0]} changed, and payload types cannot be reloaded ` +
            `(every module importing them keeps the old classes); restart the organism`
        })
      )
      : Effect.void)

const loadListener = (
  source: YamlSource,
  baseDir: string,
  config: ListenerConfig,
  index: number,
  options: LoadOptions,
  hasLlm: boolean,
  all: ReadonlyArray<ListenerConfig> = [],
  llmMaxOutputTokens: number | undefined = undefined
) =>
  Effect.gen(function*() {
    const problems: Array<ConfigProblem> = []
    const at = (key: string, ...rest: Array<string | number>): Path => ["listeners", index, key, ...rest]
    const attempt = <A>(path: Path, effect: Effect.Effect<A, { readonly message: string }>) =>
      effect.pipe(
        Effect.map((a): A | undefined => a),
        Effect.catchAll((e) => Effect.sync(() => void problems.push(source.problem(path, e.message))))
      )
    const payload = yield* attempt(at("payload"), loadPayloadType(config.payload, baseDir))
    const accepts: Array<PayloadType> = []
    for (const [j, ref] of (config.accepts ?? []).entries()) {
      const t = yield* attempt(at("accepts", j), loadPayloadType(ref, baseDir))
      if (t !== undefined) accepts.push(t)
    }
    const llmAgent = config.handler === undefined
    if (llmAgent && config.agent !== true) {
      problems.push(source.problem(at("handler"), `missing required key "handler" (only an LLM agent — agent: true with a prompt — has none)`))
    } else if (llmAgent && (config.prompt === undefined || config.prompt.trim() === "")) {
      problems.push(source.problem(at("prompt"), `an agent without a handler is an LLM agent and needs a "prompt"`))
    } else if (llmAgent && !hasLlm) {
      problems.push(source.problem(
        ["listeners", index],
        `an LLM agent (agent: true, a prompt, no handler) needs the file's llm: section naming a model backend, ` +
          `and there is none (see "Models: the LLM router" in the README; provider: mock needs no API key)`
      ))
    }
    const limitKey = (["stop_when", "loop_detection", "peer_limits"] as const).find((k) => config[k] !== undefined)
    if (limitKey !== undefined && !llmAgent) {
      problems.push(source.problem(at(limitKey), `${limitKey} applies to LLM agents (agent: true, a prompt, no handler)`, true))
    }
    for (const peer of Object.keys(config.peer_limits ?? {})) {
      const peers = config.peers ?? []
      if (!peers.some((p) => p.toLowerCase() === peer.toLowerCase())) {
        const near = closest(peer, [...peers])
        problems.push(source.problem(
          at("peer_limits", peer),
          `"${peer}" is not one of this agent's peers (${peers.length === 0 ? "it has none" : peers.join(", ")})` +
            (near === undefined ? "" : ` — did you mean "${near}"?`),
          true
        ))
      }
    }
    const stopHandler = config.stop_when?.handler === undefined
      ? undefined
      : yield* attempt(at("stop_when", "handler"), loadFunction(config.stop_when.handler, baseDir, options))
    if (!llmAgent && config.protocol !== undefined) {
      problems.push(source.problem(at("protocol"), `protocol is how an LLM agent (no handler) talks to its model; a handler speaks for itself`))
    }
    if (config.max_tool_calls !== undefined && config.protocol !== "tools") {
      problems.push(source.problem(at("max_tool_calls"), `max_tool_calls goes with protocol: tools`))
    }
    const handler = llmAgent ? undefined : yield* attempt(at("handler"), loadFunction(config.handler!, baseDir, options))
    const onSystem = config.on_system === undefined
      ? undefined
      : yield* attempt(at("on_system"), loadFunction(config.on_system, baseDir, options))
    if (problems.length > 0 || payload === undefined || (!llmAgent && handler === undefined)) return Either.left(problems)
    const common = {
      name: config.name,
      payload,
      accepts,
      description: config.description,
      peers: config.peers,
      broadcast: config.broadcast,
      timeout: config.timeout,
      retry: config.retry === undefined ? undefined : retrySchedule(config.retry),
      concurrency: config.concurrency,
      maxConcurrent: config.max_concurrent,
      maxTokensPerThread: config.max_tokens_per_thread,
      approval: config.approval
    }
    if (llmAgent) {
      const context = agentContextOf(source, config, index, all, llmMaxOutputTokens)
      if (Either.isLeft(context)) return Either.left(context.left)
      return Either.right(
        makeLlmAgent({
          ...common,
          prompt: config.prompt!,
          model: config.model,
          maxOutputTokens: config.max_output_tokens,
          ...agentLimitsOf(config, stopHandler as StopHandler | undefined),
          stream: config.stream,
          maxReasoningTokens: config.max_reasoning_tokens,
          context: context.right,
          protocol: config.protocol,
          maxToolCalls: config.max_tool_calls
        }) as Listener<any, LlmRouter>
      )
    }
    return Either.right(Listener.make({
      ...common,
      handler: handler as Handler<unknown, never>,
      onSystem: onSystem as Handler<any, never> | undefined,
      agent: config.agent,
      prompt: config.prompt
    }))
  })

/** An LLM agent's `stop_when`, `loop_detection` and `peer_limits` as the agent takes them. */
const agentLimitsOf = (config: ListenerConfig, stopHandler: StopHandler | undefined): AgentLimits => {
  const when = config.stop_when
  const conditions: Array<StopCondition> = []
  if (when !== undefined && (when.produced !== undefined || when.steps !== undefined || when.tokens !== undefined)) {
    conditions.push({ produced: when.produced, steps: when.steps, tokens: when.tokens })
  }
  if (stopHandler !== undefined) conditions.push(stopHandler)
  const loop = config.loop_detection
  return {
    stopWhen: conditions.length === 0 ? undefined : conditions,
    loopDetection: loop === undefined ? undefined : { repeats: loop.repeats, maxPeriod: loop.max_period, action: loop.action },
    peerLimits: config.peer_limits
  }
}

/**
 * An LLM agent's `context:` as library options: its summariser (named) resolved to that
 * agent's prompt and model, the answer's reserve defaulting to the agent's output cap (or
 * the llm section's).
 */
const agentContextOf = (
  source: YamlSource,
  config: ListenerConfig,
  index: number,
  all: ReadonlyArray<ListenerConfig>,
  llmMaxOutputTokens: number | undefined
): Either.Either<AgentContextOptions | undefined, Array<ConfigProblem>> => {
  const c = config.context
  const reserveOutput = config.max_output_tokens ?? llmMaxOutputTokens
  // Without a context: key, a backend's window still applies: the answer's reserve is the router's cap.
  if (c === undefined) return Either.right(reserveOutput === undefined ? undefined : { reserveOutput })
  const at = (key: string): Path => ["listeners", index, "context", key]
  let summariser: SummariserOptions | undefined
  if (c.summariser !== undefined) {
    const s = all.find((l) => l.name === c.summariser)
    if (s === undefined || s.handler !== undefined || s.agent !== true || s.prompt === undefined) {
      const names = all.filter((l) => l.handler === undefined && l.agent === true && l.prompt !== undefined && l.name !== config.name)
        .map((l) => l.name)
      return Either.left([source.problem(
        at("summariser"),
        `"${c.summariser}" is not an LLM agent of this file (agent: true with a prompt)` +
          (names.length > 0 ? `; LLM agents: ${names.join(", ")}` : "")
      )])
    }
    summariser = { name: s.name, prompt: s.prompt, model: s.model, maxOutputTokens: s.max_output_tokens }
  }
  if (c.strategy === "summarise" && summariser === undefined) {
    return Either.left([source.problem(at("strategy"), `strategy summarise needs a summariser: the name of an LLM agent that writes the summaries`)])
  }
  if (c.strategy !== "summarise" && summariser !== undefined) {
    return Either.left([source.problem(at("summariser"), `a summariser goes with strategy: summarise`)])
  }
  return Either.right({
    window: c.window,
    reserveOutput: c.reserve_output ?? reserveOutput,
    strategy: c.strategy,
    summariser,
    maxToolResultTokens: c.max_tool_result_tokens
  })
}

/** `<Greeting><Name>World</Name></Greeting>` → RawPayload, checked for well-formedness. */
export const parsePayloadXml = (engine: XmlEngine.Service, xml: string): Either.Either<RawPayload, string> => {
  const parsed = Either.flatMap(
    engine.withDocument(Buffer.from(xml, "utf8"), { recover: false }, (doc) => engine.canonicalize(doc)),
    (canonical) => canonical
  )
  if (Either.isLeft(parsed)) return Either.left(`not well-formed XML: ${parsed.left.diagnostics.map(String).join("; ")}`)
  const root = readCanonical(parsed.right)
  if (root.namespace === ENVELOPE_NS) return Either.left("give the payload element itself, not an envelope")
  if (root.namespace !== "") return Either.left(`payloads live in no namespace (found ${root.namespace})`)
  return Either.right(new RawPayload({ tag: root.localName, inner: parsed.right.slice(root.contentStart, root.contentEnd) }))
}

export const loadOrganism = Effect.fn("loadOrganism")(function*(path: string, options: LoadOptions = {}) {
  const file = resolve(path)
  const text = yield* Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (e) => new OrganismConfigError({ file: path, problems: [unreadableFile(path, e as NodeJS.ErrnoException)] })
  })
  const parsed = parseYaml(path, text)
  if (Either.isLeft(parsed)) return yield* fail(path, parsed.left)
  const source = parsed.right
  if (source.value === null || typeof source.value !== "object" || Array.isArray(source.value)) {
    return yield* fail(path, [source.problem([], "expected a mapping with the keys organism and listeners (optionally boot, stages, llm and mcp)")])
  }
  const baseDir = dirname(file)
  const keyProblems = options.checkApiKeys === undefined ? [] : checkApiKeys(source, options.checkApiKeys)
  const decoded = decodeSource(source, OrganismConfig)
  if (Either.isLeft(decoded)) {
    // Carry on with what can be read: names, peers and modules are checked too, so one run
    // lists every mistake rather than one stage of them.
    const raw = readRaw(source.value)
    const moduleProblems = options.reload === true ? [] : yield* checkRawModules(source, baseDir, raw.listeners)
    return yield* fail(path, ordered([...decoded.left, ...checkReferences(source, raw), ...moduleProblems, ...keyProblems]))
  }
  const config = decoded.right
  const problems: Array<ConfigProblem> = [...checkReferences(source, config), ...keyProblems]
  config.listeners.forEach((l, i) => {
    // "category:" alone would put the listener in a category named "" with no one knowing.
    if (l.concurrency?._tag === "Category" && l.concurrency.name.trim() === "") {
      problems.push(source.problem(["listeners", i, "concurrency"], `"category:" needs a name after the colon (category:NAME)`))
    }
  })
  if (options.reload === true) {
    // Before any import: re-importing a changed handler module would also refresh the
    // recorded source of a payload module that lives in the same file.
    for (const [i, l] of config.listeners.entries()) {
      const refs: Array<[Path, string]> = [[["listeners", i, "payload"], l.payload]]
      for (const [j, ref] of (l.accepts ?? []).entries()) refs.push([["listeners", i, "accepts", j], ref])
      for (const [at, ref] of refs) {
        if (!ref.includes("#")) continue
        const unchanged = yield* Effect.either(payloadUnchanged(ref, baseDir))
        if (unchanged._tag === "Left") problems.push(source.problem(at, unchanged.left.message))
      }
    }
    if (problems.length > 0) return yield* fail(path, ordered(problems))
  }
  const listeners: Array<Listener<any, LlmRouter>> = []
  for (const [i, l] of config.listeners.entries()) {
    const loaded = yield* loadListener(source, baseDir, l, i, options, config.llm !== undefined, config.listeners, config.llm?.max_output_tokens)
    if (Either.isLeft(loaded)) problems.push(...loaded.left)
    else listeners.push(loaded.right)
  }
  // Two different payload classes may not share a tag: routing is by tag.
  const byTag = new Map<string, { type: PayloadType; index: number }>()
  listeners.forEach((l, i) => {
    for (const t of [l.payload, ...l.accepts]) {
      const seen = byTag.get(t.payloadTag.toLowerCase())
      if (seen !== undefined && seen.type !== t) {
        problems.push(source.problem(["listeners", i, "payload"], `another payload type is also named <${t.payloadTag}> (listeners[${seen.index}])`))
      } else byTag.set(t.payloadTag.toLowerCase(), { type: t, index: i })
    }
  })

  // A stop condition on a payload nobody in the organism knows could never hold.
  config.listeners.forEach((l, i) => {
    const produced = l.stop_when?.produced
    if (produced === undefined) return
    const known = [...byTag.values()].map((t) => t.type.payloadTag).concat(Object.keys(builtinPayloads))
    const names = typeof produced === "string" ? [produced] : produced
    names.forEach((name, j) => {
      if (known.some((k) => k.toLowerCase() === name.toLowerCase())) return
      const near = closest(name, known)
      problems.push(source.problem(
        typeof produced === "string" ? ["listeners", i, "stop_when", "produced"] : ["listeners", i, "stop_when", "produced", j],
        `no payload type of this organism is named ${name}${near === undefined ? "" : ` — did you mean ${near}?`}`
      ))
    })
  })

  const engine = yield* XmlEngine
  const boot: Array<BootMessage> = []
  for (const [i, b] of (config.boot ?? []).entries()) {
    const payload = parsePayloadXml(engine, b.payload)
    if (Either.isLeft(payload)) problems.push(source.problem(["boot", i, "payload"], payload.left))
    else boot.push({ to: b.to, payload: payload.right })
  }
  const stages: Array<CustomStage> = []
  for (const [i, s] of (config.stages ?? []).entries()) {
    const run = yield* Effect.either(loadFunction(s.run, baseDir, options))
    if (Either.isLeft(run)) problems.push(source.problem(["stages", i, "run"], run.left.message))
    else stages.push(CustomStage.fromFunction(s.name ?? s.run.slice(s.run.lastIndexOf("#") + 1), s.at, run.right))
  }
  if (problems.length > 0) return yield* fail(path, ordered(problems))

  const o = config.organism
  const organism = Organism.make<LlmRouter>({
    name: o.name,
    listeners,
    boot,
    stages,
    settings: {
      ...(o.injector !== undefined ? { injector: o.injector } : {}),
      ...(o.max_concurrent_handlers !== undefined ? { maxConcurrentHandlers: o.max_concurrent_handlers } : {}),
      ...(o.max_concurrent_per_agent !== undefined ? { maxConcurrentPerAgent: o.max_concurrent_per_agent } : {}),
      ...(o.inbox_capacity !== undefined ? { inboxCapacity: o.inbox_capacity } : {}),
      ...(o.handler_timeout !== undefined ? { handlerTimeout: o.handler_timeout } : {}),
      ...(o.dead_letter_capacity !== undefined ? { deadLetterCapacity: o.dead_letter_capacity } : {}),
      ...(o.wire !== undefined ? { wire: o.wire } : {}),
      ...(o.max_tokens_per_thread !== undefined
        ? { maxTokensPerThread: o.max_tokens_per_thread === "unlimited" ? Infinity : o.max_tokens_per_thread }
        : {}),
      ...(o.context !== undefined
        ? {
          context: {
            ...(o.context.max_slots_per_thread !== undefined ? { maxSlotsPerThread: o.context.max_slots_per_thread } : {}),
            ...(o.context.max_threads !== undefined ? { maxThreads: o.context.max_threads } : {}),
            ...(o.context.on_full !== undefined ? { onFull: o.context.on_full } : {}),
            ...(o.context.retain_completed !== undefined ? { retainCompleted: o.context.retain_completed } : {}),
            ...(o.context.retain_for !== undefined ? { retainFor: o.context.retain_for } : {})
          }
        }
        : {}),
      guards: {
        ...(o.guards?.max_chain_depth !== undefined ? { maxChainDepth: o.guards.max_chain_depth } : {}),
        ...(o.guards?.max_invocations_per_thread !== undefined
          ? { maxInvocationsPerThread: o.guards.max_invocations_per_thread }
          : {}),
        ...(o.guards?.max_agent_steps !== undefined ? { maxAgentSteps: o.guards.max_agent_steps } : {}),
        ...(o.guards?.loop_threshold !== undefined ? { loopThreshold: o.guards.loop_threshold } : {}),
        ...(o.guards?.max_thread_duration !== undefined ? { maxThreadDuration: o.guards.max_thread_duration } : {})
      },
      ingress: {
        ...(o.max_message_bytes !== undefined ? { maxBytes: o.max_message_bytes } : {}),
        ...(o.max_xml_depth !== undefined ? { maxDepth: o.max_xml_depth } : {}),
        ...(o.repair !== undefined ? { recover: o.repair } : {}),
        ...(o.ingress?.workers !== undefined ? { workers: o.ingress.workers } : {})
      }
    }
  })
  const warnings: Array<ConfigProblem> = []
  const warned = new Set<string>()
  config.listeners.forEach((l, i) => {
    const refs: Array<[Path, string | undefined]> = [
      [["listeners", i, "payload"], l.payload],
      ...(l.accepts ?? []).map((ref, j): [Path, string] => [["listeners", i, "accepts", j], ref]),
      [["listeners", i, "handler"], l.handler],
      [["listeners", i, "on_system"], l.on_system]
    ]
    for (const [at, ref] of refs) {
      const outside = ref === undefined ? undefined : outsideFolder(ref, baseDir)
      if (outside !== undefined && !warned.has(outside)) {
        warned.add(outside)
        warnings.push(source.problem(at, `module ${outside} is outside the organism's folder (${baseDir}): it runs with the organism`))
      }
    }
  })
  const loaded: LoadedOrganism = { file, baseDir, config, source, llm: config.llm, organism, warnings }
  return loaded
})
