/**
 * Loads an organism from YAML: parse with positions, decode with the OrganismConfig schema,
 * check cross-references, import the payload and handler modules, and build the Organism.
 * Every problem found is reported together, each with its file, line and key.
 */
import { FileSystem, Path as Paths } from "@effect/platform"
import { Duration, Effect, Either, Schedule } from "effect"
import { ENVELOPE_NS } from "../domain/Envelope.js"
import { type Handler, Listener } from "../domain/Listener.js"
import type { LlmConfig } from "../domain/LlmConfig.js"
import { type BootMessage, Organism } from "../domain/Organism.js"
import { type ListenerConfig, OrganismConfig, type RetryConfig } from "../domain/OrganismConfig.js"
import type { PayloadType } from "../domain/Payload.js"
import { RawPayload } from "../domain/Reply.js"
import { readCanonical } from "../domain/xml/CanonicalTree.js"
import type { LlmRouter } from "../services/LlmRouter.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { type ConfigProblem, OrganismConfigError, unreadableFile } from "./ConfigError.js"
import { closest } from "./suggest.js"
import { loadFunction, loadPayloadType, ModuleLoadError, moduleChanged } from "./ModuleRef.js"
import { decodeSource, type Path, parseYaml, type YamlSource } from "./YamlSource.js"

export interface LoadedOrganism {
  readonly file: string
  /** The organism file's directory: relative paths in it (a mock LLM script) start here. */
  readonly baseDir: string
  readonly config: OrganismConfig
  /** The decoded `llm:` section, if the file has one (LlmRouter.layer takes it). */
  readonly llm: LlmConfig | undefined
  /** Its LLM agents need an LlmRouter: `layerForOrganism` provides one with the pump's services. */
  readonly organism: Organism<LlmRouter>
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

/** Cross-references the schema cannot see: names, peers, boot targets. */
const checkReferences = (source: YamlSource, config: OrganismConfig): Array<ConfigProblem> => {
  const problems: Array<ConfigProblem> = []
  const names = new Map<string, number>()
  config.listeners.forEach((l, i) => {
    const key = l.name.toLowerCase()
    if (l.name === "system") problems.push(source.problem(["listeners", i, "name"], `"system" is reserved for the organism itself`))
    const first = names.get(key)
    if (first !== undefined) {
      problems.push(source.problem(["listeners", i, "name"], `listener "${l.name}" is already defined at listeners[${first}]`))
    } else names.set(key, i)
  })
  const injector = config.organism.injector ?? "console"
  if (names.has(injector.toLowerCase())) {
    problems.push(source.problem(["organism", "injector"], `the injector "${injector}" has the name of a listener`))
  }
  const known = [...config.listeners.map((l) => l.name), "system.boot"]
  const suggestion = (name: string) => {
    const close = known.find((k) => k.toLowerCase() === name.toLowerCase())
    return close !== undefined ? ` (did you mean "${close}"?)` : ""
  }
  config.listeners.forEach((l, i) =>
    l.peers?.forEach((peer, j) => {
      if (!names.has(peer.toLowerCase()) && peer.toLowerCase() !== "system.boot") {
        problems.push(source.problem(["listeners", i, "peers", j], `peer "${peer}" is not a listener of this organism${suggestion(peer)}`))
      }
    })
  )
  config.boot?.forEach((b, i) => {
    if (!names.has(b.to.toLowerCase())) {
      problems.push(source.problem(["boot", i, "to"], `"${b.to}" is not a listener of this organism`))
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

export interface LoadOptions {
  /**
   * Hot reload: handler modules whose files changed are imported again. Payload modules
   * cannot be (their classes are shared by every module that imports them): a changed one
   * is reported as a problem, so the organism keeps its last good version.
   */
  readonly reload?: boolean
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
  hasLlm: boolean
) =>
  Effect.gen(function*() {
    const problems: Array<ConfigProblem> = []
    const at = (key: string, ...rest: Array<string | number>): Path => ["listeners", index, key, ...rest]
    const attempt = <A, R>(path: Path, effect: Effect.Effect<A, { readonly message: string }, R>) =>
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
      maxTokensPerThread: config.max_tokens_per_thread
    }
    if (llmAgent) {
      return Either.right(
        Listener.llmAgent({
          ...common,
          prompt: config.prompt!,
          model: config.model,
          maxOutputTokens: config.max_output_tokens
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
  const fs = yield* FileSystem.FileSystem
  const paths = yield* Paths.Path
  const file = paths.resolve(path)
  const text = yield* Effect.mapError(
    fs.readFileString(file),
    (e) => new OrganismConfigError({ file: path, problems: [unreadableFile(path, e)] })
  )
  const parsed = parseYaml(path, text)
  if (Either.isLeft(parsed)) return yield* fail(path, parsed.left)
  const source = parsed.right
  if (source.value === null || typeof source.value !== "object" || Array.isArray(source.value)) {
    return yield* fail(path, [source.problem([], "expected a mapping with the keys organism and listeners (optionally boot and llm)")])
  }
  const decoded = decodeSource(source, OrganismConfig)
  if (Either.isLeft(decoded)) return yield* fail(path, decoded.left)
  const config = decoded.right
  const referenceProblems = checkReferences(source, config)
  if (referenceProblems.length > 0) return yield* fail(path, referenceProblems)

  const baseDir = paths.dirname(file)
  const problems: Array<ConfigProblem> = []
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
    if (problems.length > 0) return yield* fail(path, problems)
  }
  const listeners: Array<Listener<any, LlmRouter>> = []
  for (const [i, l] of config.listeners.entries()) {
    const loaded = yield* loadListener(source, baseDir, l, i, options, config.llm !== undefined)
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

  const engine = yield* XmlEngine
  const boot: Array<BootMessage> = []
  for (const [i, b] of (config.boot ?? []).entries()) {
    const payload = parsePayloadXml(engine, b.payload)
    if (Either.isLeft(payload)) problems.push(source.problem(["boot", i, "payload"], payload.left))
    else boot.push({ to: b.to, payload: payload.right })
  }
  if (problems.length > 0) return yield* fail(path, problems)

  const o = config.organism
  const organism = Organism.make<LlmRouter>({
    name: o.name,
    listeners,
    boot,
    settings: {
      ...(o.injector !== undefined ? { injector: o.injector } : {}),
      ...(o.max_concurrent_handlers !== undefined ? { maxConcurrentHandlers: o.max_concurrent_handlers } : {}),
      ...(o.max_concurrent_per_agent !== undefined ? { maxConcurrentPerAgent: o.max_concurrent_per_agent } : {}),
      ...(o.inbox_capacity !== undefined ? { inboxCapacity: o.inbox_capacity } : {}),
      ...(o.handler_timeout !== undefined ? { handlerTimeout: o.handler_timeout } : {}),
      ...(o.dead_letter_capacity !== undefined ? { deadLetterCapacity: o.dead_letter_capacity } : {}),
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
        ...(o.repair !== undefined ? { recover: o.repair } : {})
      }
    }
  })
  const loaded: LoadedOrganism = { file, baseDir, config, llm: config.llm, organism }
  return loaded
})
