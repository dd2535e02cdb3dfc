import { Effect, type Scope } from "effect"
import { type PayloadType, specOf } from "../domain/Payload.js"
import { type SchemaCompileError, XmlEngine } from "../services/XmlEngine.js"
import type { RouteResolver, RouteTarget } from "./stages/validatePayload.js"

/**
 * Routes by payload tag alone, ignoring `to`: what `organism inspect --payloads` needs to
 * validate and decode payloads before any organism (and its listeners) exists.
 */
export const routesForPayloads = Effect.fn("PayloadRoutes.routesForPayloads")(function*(
  payloads: ReadonlyArray<PayloadType>
) {
  const engine = yield* XmlEngine
  const byTag = new Map<string, RouteTarget>()
  for (const payload of payloads) {
    const spec = specOf(payload)
    if (byTag.has(spec.routeTag)) continue
    const schema = yield* engine.compileSchema(spec.tag, spec.xsd)
    byTag.set(spec.routeTag, { name: undefined, spec, schema })
  }
  const resolver: RouteResolver = {
    resolve: (_to, tag) => {
      const key = tag.toLowerCase()
      const target = byTag.get(key)
      return target === undefined ? undefined : { key, targets: [target] }
    }
  }
  return resolver
}) as (payloads: ReadonlyArray<PayloadType>) => Effect.Effect<RouteResolver, SchemaCompileError, XmlEngine | Scope.Scope>
