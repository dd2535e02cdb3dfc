/**
 * Routing, in one module: which receivers a message goes to, and which payload types (with
 * their compiled XSDs) an organism knows.
 *
 * - A route key is `to.payloadtag` (lowercase) for a message addressed to a listener, or the
 *   payload tag alone for a broadcast, which reaches every listener that takes broadcasts of
 *   that type.
 * - A message addressed to a conversation's injector (console, API caller) reaches it with
 *   any payload: typed when the organism knows the type, raw XML otherwise.
 * - Each payload type's XSD is compiled once per route table, whatever the number of
 *   listeners that accept it. A type that only appears in replies is learned explicitly
 *   (`learn`), and a failure to compile it is returned, never swallowed.
 */
import { Effect, Either, Schema, Scope } from "effect"
import { BudgetWarning } from "../domain/BudgetPayloads.js"
import type { Listener } from "../domain/Listener.js"
import { type PayloadSpec, type PayloadType, specOf, type WireMode } from "../domain/Payload.js"
import { SystemError } from "../domain/SystemPayloads.js"
import { TodoClosed, TodoRegistered } from "../domain/TodoPayloads.js"
import type { ThreadRegistry } from "../services/ThreadRegistry.js"
import { type CompiledSchema, type SchemaCompileError, XmlEngine } from "../services/XmlEngine.js"

/** Listeners that cannot share one route table (duplicate names, two types with one tag). */
export class RouteTableError extends Schema.TaggedError<RouteTableError>()("RouteTableError", { reason: Schema.String }) {
  override get message() {
    return this.reason
  }
}

/** A payload type the organism knows: its spec and its compiled XSD. */
export interface TypeEntry {
  readonly spec: PayloadSpec<any>
  readonly schema: CompiledSchema
}

/** A registered listener with the payload types it accepts, keyed by lowercase tag. */
export interface ListenerEntry {
  readonly listener: Listener
  readonly types: ReadonlyMap<string, RouteTarget>
  /** The payload types every listener accepts without declaring them (SystemError…). */
  readonly system: ReadonlyMap<string, RouteTarget>
}

/** One receiver of a route: a listener, an injector, or (routing by type alone) nobody yet. */
export interface RouteTarget {
  /** Listener or injector name; undefined when routing by payload type only. */
  readonly name: string | undefined
  /** The payload type; undefined = accepted as raw XML (unvalidated). */
  readonly spec: PayloadSpec<any> | undefined
  readonly schema: CompiledSchema | undefined
  /** The receiving listener; undefined for an injector or a route by type. */
  readonly listener: ListenerEntry | undefined
}

export interface RouteMatch {
  /** `to.payloadtag` or `payloadtag`, lowercase. */
  readonly key: string
  readonly targets: ReadonlyArray<RouteTarget>
}

/** What the `route` stage asks: the receivers of a message, given its thread. */
export interface RouteResolver {
  readonly resolve: (to: string | undefined, payloadTag: string, thread: string) => RouteMatch | undefined
}

export const routeKeyOf = (to: string | undefined, payloadTag: string): string =>
  to === undefined ? payloadTag.toLowerCase() : `${to.toLowerCase()}.${payloadTag.toLowerCase()}`

export interface Router extends RouteResolver {
  readonly listeners: ReadonlyMap<string, ListenerEntry>
  /** Every payload type known to the organism, by lowercase tag. */
  readonly types: ReadonlyMap<string, TypeEntry>
  readonly listenerNamed: (name: string) => ListenerEntry | undefined
  /** Broadcast listeners of a payload tag. */
  readonly broadcastTargets: (tag: string) => ReadonlyArray<RouteTarget>
  /** The target for a payload sent to a listener, if it accepts that type. */
  readonly targetOf: (entry: ListenerEntry, tag: string) => RouteTarget | undefined
  /**
   * Makes a payload type known after start (a handler replies with a type no listener
   * declares), so that an injector receives it typed rather than raw. Its XSD is compiled
   * once; a type that does not compile, or that clashes with another type of the same tag,
   * is an error for the caller to report.
   */
  readonly learn: (payload: PayloadType) => Either.Either<TypeEntry, SchemaCompileError | RouteTableError>
}

/** Payload types every listener accepts without declaring them. */
export const systemPayloadTypes: ReadonlyArray<PayloadType> = [SystemError, BudgetWarning, TodoRegistered, TodoClosed]

/**
 * The type table shared by the route tables below: compile each tag once, refuse clashes.
 * Every spec (XSD, decoder) is taken in the organism's wire form.
 */
const makeTypeTable = (engine: XmlEngine.Service, scope: Scope.Scope, wire: WireMode | undefined) => {
  const types = new Map<string, TypeEntry>()
  const learn = (payload: PayloadType): Either.Either<TypeEntry, SchemaCompileError | RouteTableError> => {
    const spec = specOf(payload, wire)
    const known = types.get(spec.routeTag)
    if (known !== undefined) {
      if (known.spec !== spec && known.spec.xsd !== spec.xsd) {
        return Either.left(
          new RouteTableError({
            reason: `two different payload types are named <${spec.tag}>; payload tags must be unique per organism`
          })
        )
      }
      return Either.right(known)
    }
    // Compiling an XSD is synchronous libxml2 work; the schema lives as long as the pump.
    const compiled = Effect.runSync(Effect.either(Scope.extend(engine.compileSchema(spec.tag, spec.xsd), scope)))
    if (Either.isLeft(compiled)) return Either.left(compiled.left)
    const entry: TypeEntry = { spec, schema: compiled.right }
    types.set(spec.routeTag, entry)
    return Either.right(entry)
  }
  return { types, learn }
}

export const makeRouter = Effect.fn("Router.make")(function*(
  listeners: ReadonlyArray<Listener>,
  registry: ThreadRegistry.Service,
  extraTypes: ReadonlyArray<PayloadType> = [],
  /** The organism's wire form. */
  wire?: WireMode
) {
  const engine = yield* XmlEngine
  const { learn, types } = makeTypeTable(engine, yield* Effect.scope, wire)

  const system = new Map<string, TypeEntry>()
  for (const t of systemPayloadTypes) {
    const entry = yield* learn(t)
    system.set(entry.spec.routeTag, entry)
  }
  for (const t of extraTypes) yield* learn(t)

  const byName = new Map<string, ListenerEntry>()
  const broadcast = new Map<string, Array<RouteTarget>>()
  for (const listener of listeners) {
    const key = listener.name.toLowerCase()
    if (byName.has(key)) return yield* new RouteTableError({ reason: `listener "${listener.name}" is registered twice` })
    const accepted = new Map<string, RouteTarget>()
    const implicit = new Map<string, RouteTarget>()
    const entry: ListenerEntry = { listener, types: accepted, system: implicit }
    for (const payload of [listener.payload, ...listener.accepts]) {
      const t = yield* learn(payload)
      accepted.set(t.spec.routeTag, { name: listener.name, spec: t.spec, schema: t.schema, listener: entry })
    }
    for (const [tag, t] of system) implicit.set(tag, { name: listener.name, spec: t.spec, schema: t.schema, listener: entry })
    byName.set(key, entry)
    if (listener.broadcast) {
      for (const [tag, target] of accepted) {
        const list = broadcast.get(tag) ?? []
        list.push(target)
        broadcast.set(tag, list)
      }
    }
  }

  const targetOf = (entry: ListenerEntry, tag: string): RouteTarget | undefined =>
    entry.types.get(tag) ?? entry.system.get(tag)

  const resolve: RouteResolver["resolve"] = (to, payloadTag, thread) => {
    const tag = payloadTag.toLowerCase()
    if (to === undefined) {
      const targets = broadcast.get(tag)
      return targets === undefined ? undefined : { key: tag, targets }
    }
    const name = to.toLowerCase()
    const key = `${name}.${tag}`
    const entry = byName.get(name)
    if (entry !== undefined) {
      const target = targetOf(entry, tag)
      if (target !== undefined) return { key, targets: [target] }
      if (!entry.listener.acceptsAny) return undefined
      const known = types.get(tag)
      return { key, targets: [{ name: entry.listener.name, spec: known?.spec, schema: known?.schema, listener: entry }] }
    }
    // Not a listener: the injector of this conversation (console, API caller) takes any
    // payload; a type the organism knows is validated and decoded, anything else kept raw.
    const node = registry.unsafeLookup(thread)
    if (node !== undefined && node.root.injector === to) {
      const known = types.get(tag)
      return { key, targets: [{ name: to, spec: known?.spec, schema: known?.schema, listener: undefined }] }
    }
    return undefined
  }

  const router: Router = {
    learn,
    listeners: byName,
    types,
    listenerNamed: (name) => byName.get(name.toLowerCase()),
    broadcastTargets: (tag) => broadcast.get(tag.toLowerCase()) ?? [],
    targetOf,
    resolve
  }
  return router
}) as (
  listeners: ReadonlyArray<Listener>,
  registry: ThreadRegistry.Service,
  extraTypes?: ReadonlyArray<PayloadType>,
  wire?: WireMode
) => Effect.Effect<Router, SchemaCompileError | RouteTableError, XmlEngine | Scope.Scope>

/**
 * Routes by payload tag alone, ignoring `to`: what `organism inspect --payloads` needs to
 * validate and decode payloads before any organism (and its listeners) exists.
 */
export const routesForPayloads = Effect.fn("Router.routesForPayloads")(function*(
  payloads: ReadonlyArray<PayloadType>,
  wire?: WireMode
) {
  const { learn, types } = makeTypeTable(yield* XmlEngine, yield* Effect.scope, wire)
  for (const payload of payloads) yield* learn(payload)
  const resolver: RouteResolver = {
    resolve: (_to, tag) => {
      const key = tag.toLowerCase()
      const known = types.get(key)
      return known === undefined
        ? undefined
        : { key, targets: [{ name: undefined, spec: known.spec, schema: known.schema, listener: undefined }] }
    }
  }
  return resolver
}) as (
  payloads: ReadonlyArray<PayloadType>,
  wire?: WireMode
) => Effect.Effect<RouteResolver, SchemaCompileError | RouteTableError, XmlEngine | Scope.Scope>
