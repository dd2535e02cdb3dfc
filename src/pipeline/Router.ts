/**
 * The route table: `to.payloadtag` (lowercase) → listener, and `payloadtag` → every listener
 * that takes broadcasts of that type. Each payload type's XSD is compiled once, whatever
 * the number of listeners that accept it.
 */
import { Effect, Schema, Scope } from "effect"
import type { Listener } from "../domain/Listener.js"
import { type PayloadSpec, type PayloadType, specOf, type WireMode } from "../domain/Payload.js"
import { BudgetWarning } from "../domain/BudgetPayloads.js"
import { SystemError } from "../domain/SystemPayloads.js"
import { TodoClosed, TodoRegistered } from "../domain/TodoPayloads.js"
import { type CompiledSchema, type SchemaCompileError, XmlEngine } from "../services/XmlEngine.js"
import type { ThreadRegistry } from "../services/ThreadRegistry.js"
import type { RouteMatch, RouteResolver, RouteTarget } from "./stages/validatePayload.js"

/** Listeners that cannot share one route table (duplicate names, two types with one tag). */
export class RouteTableError extends Schema.TaggedError<RouteTableError>()("RouteTableError", { reason: Schema.String }) {
  override get message() {
    return this.reason
  }
}

export interface TypeEntry {
  readonly spec: PayloadSpec<any>
  readonly schema: CompiledSchema
}

/** A registered listener with the payload types it accepts, keyed by lowercase tag. */
export interface ListenerEntry {
  readonly listener: Listener
  readonly types: ReadonlyMap<string, RouteTarget>
  readonly system: ReadonlyMap<string, RouteTarget>
}

export interface Router extends RouteResolver {
  /**
   * Makes a payload type known after start (a handler replied with a type no listener
   * declares): its XSD is compiled once, so an injector receives it typed, not raw.
   */
  readonly learn: (payload: PayloadType) => void
  readonly listeners: ReadonlyMap<string, ListenerEntry>
  /** Every payload type known to the organism, by lowercase tag. */
  readonly types: ReadonlyMap<string, TypeEntry>
  readonly listenerNamed: (name: string) => ListenerEntry | undefined
  /** Broadcast listeners of a payload tag. */
  readonly broadcastTargets: (tag: string) => ReadonlyArray<RouteTarget>
  /** The target for a payload sent to a listener, if it accepts that type. */
  readonly targetOf: (entry: ListenerEntry, tag: string) => RouteTarget | undefined
}

/** Payload types every listener accepts without declaring them. */
export const systemPayloadTypes: ReadonlyArray<PayloadType> = [SystemError, BudgetWarning, TodoRegistered, TodoClosed]

export const makeRouter = Effect.fn("Router.make")(function*(
  listeners: ReadonlyArray<Listener>,
  registry: ThreadRegistry.Service,
  extraTypes: ReadonlyArray<PayloadType> = [],
  /** The organism's wire form: every payload spec (XSD, decoder) is taken in it. */
  wire?: WireMode
) {
  const engine = yield* XmlEngine
  const types = new Map<string, TypeEntry>()
  const typeOf = (payload: PayloadType) =>
    Effect.gen(function*() {
      const spec = specOf(payload, wire)
      const known = types.get(spec.routeTag)
      if (known !== undefined) {
        if (known.spec !== spec && known.spec.xsd !== spec.xsd) {
          return yield* new RouteTableError({
            reason: `two different payload types are named <${spec.tag}>; payload tags must be unique per organism`
          })
        }
        return known
      }
      const entry: TypeEntry = { spec, schema: yield* engine.compileSchema(spec.tag, spec.xsd) }
      types.set(spec.routeTag, entry)
      return entry
    })

  const system = new Map<string, TypeEntry>()
  for (const t of [...systemPayloadTypes, ...extraTypes]) {
    const entry = yield* typeOf(t)
    if (systemPayloadTypes.includes(t)) system.set(entry.spec.routeTag, entry)
  }

  const byName = new Map<string, ListenerEntry>()
  const broadcast = new Map<string, Array<RouteTarget>>()
  for (const listener of listeners) {
    const key = listener.name.toLowerCase()
    if (byName.has(key)) return yield* new RouteTableError({ reason: `listener "${listener.name}" is registered twice` })
    const accepted = new Map<string, RouteTarget>()
    const entry: ListenerEntry = { listener, types: accepted, system: new Map() }
    for (const payload of [listener.payload, ...listener.accepts]) {
      const t = yield* typeOf(payload)
      accepted.set(t.spec.routeTag, { name: listener.name, spec: t.spec, schema: t.schema, entry })
    }
    for (const [tag, t] of system) {
      ;(entry.system as Map<string, RouteTarget>).set(tag, { name: listener.name, spec: t.spec, schema: t.schema, entry })
    }
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

  const resolve: RouteResolver["resolve"] = (to, payloadTag, thread): RouteMatch | undefined => {
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
      return { key, targets: [{ name: entry.listener.name, spec: known?.spec, schema: known?.schema, entry }] }
    }
    // Not a listener: the injector of this conversation (console, API caller) takes any
    // payload; a type the organism knows is validated and decoded, anything else kept raw.
    const node = registry.lookup(thread.thread)
    if (node !== undefined && node.root.injector === to) {
      const known = types.get(tag)
      return { key, targets: [{ name: to, spec: known?.spec, schema: known?.schema }] }
    }
    return undefined
  }

  const scope = yield* Effect.scope
  const learn = (payload: PayloadType) => {
    const spec = specOf(payload, wire)
    if (types.has(spec.routeTag)) return
    const compiled = Effect.runSync(Effect.either(Scope.extend(engine.compileSchema(spec.tag, spec.xsd), scope)))
    if (compiled._tag === "Right") types.set(spec.routeTag, { spec, schema: compiled.right })
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
