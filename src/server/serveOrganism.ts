/**
 * Runs a loaded organism behind the HTTP server until interrupted: the pump, the conversation
 * index and the live-event hub fed by one observer of its events, the server; on the way
 * out the server stops taking requests and the pump drains.
 */
import { Duration, Effect, type Layer } from "effect"
import { type LoadedOrganism, parsePayloadXml } from "../config/loadOrganism.js"
import type { Organism } from "../domain/Organism.js"
import { IoFairness } from "../pipeline/IoFairness.js"
import { Pump } from "../pipeline/Pump.js"
import { Events } from "../services/Events.js"
import { LlmRouter } from "../services/LlmRouter.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { ConversationIndex } from "./ConversationIndex.js"
import { LiveEvents } from "./LiveEvents.js"
import { makeReload } from "./reloadFromFile.js"
import { type ServeOptions, startServer } from "./Server.js"
import { ReloadFailed } from "./ServeApi.js"
import type { ServeState } from "./ServeHandlers.js"

export interface ServeRunOptions extends ServeOptions {
  /** On interruption, how long in-flight work may take to finish. */
  readonly drainTimeout: Duration.Duration
  /** How long an injection waits for an inbox permit before 429. */
  readonly admissionWait?: Duration.Duration
  /** Told the address once the server listens. */
  readonly onListening: (url: string) => Effect.Effect<void>
  /** What a reloaded version gets before the pump takes it (the MCP tools of the running one). */
  readonly prepare?: (organism: Organism<LlmRouter>) => Organism<LlmRouter>
  /** More routes for the running pump (the MCP endpoint of `serve --mcp`). */
  readonly routesFor?: ((pump: Pump.Service) => Layer.Layer<never>) | undefined
}

/**
 * The conversation index and the live-event hub, fed by one observer of the pump's events
 * for the Scope's lifetime. Made before the pump starts, so its boot conversation is indexed.
 */
export const observeForServer = Effect.gen(function*() {
  const events = yield* Events
  const index = new ConversationIndex()
  const live = new LiveEvents()
  yield* events.observe((e) => {
    index.record(e)
    live.publish(e)
  })
  return { index, live }
})

/**
 * What the server works with: a running pump, what observes it, the engine and the models.
 * Without `reload` (an organism not loaded from a file), a reload is refused.
 */
export const makeServeState = (
  pump: Pump.Service,
  observed: { readonly index: ConversationIndex; readonly live: LiveEvents },
  options: {
    readonly file: string
    readonly reload?: ServeState["reload"]
    readonly admissionWait?: Duration.Duration | undefined
  }
) =>
  Effect.gen(function*() {
    const engine = yield* XmlEngine
    const models = yield* LlmRouter
    const state: ServeState = {
      file: options.file,
      pump,
      engine,
      models,
      index: observed.index,
      live: observed.live,
      parsePayloadXml: (xml) => parsePayloadXml(engine, xml),
      reload: options.reload ?? Effect.fail(new ReloadFailed({ message: `${options.file} was not loaded from a file: nothing to reload`, problems: [] })),
      admissionWait: options.admissionWait ?? Duration.seconds(1)
    }
    return state
  })

export const serveOrganism = (loaded: LoadedOrganism, options: ServeRunOptions) =>
  Effect.gen(function*() {
    const observed = yield* observeForServer
    // A server's requests and live clients get their turn while conversations run.
    const pump = yield* Pump.make(loaded.organism).pipe(Effect.provideService(IoFairness, IoFairness.serving))
    // Finalizers run last-added first: the server closes, then the pump drains.
    yield* Effect.addFinalizer(() => Effect.asVoid(pump.drain(options.drainTimeout)))
    const context = yield* Effect.context<XmlEngine>()
    const state = yield* makeServeState(pump, observed, {
      file: loaded.file,
      reload: makeReload(loaded.file, loaded.config, pump, options.prepare).pipe(Effect.provide(context)),
      admissionWait: options.admissionWait
    })
    const { url } = yield* startServer(state, { ...options, routes: options.routesFor?.(pump) })
    yield* options.onListening(url)
    return yield* Effect.never
  }).pipe(Effect.scoped)
