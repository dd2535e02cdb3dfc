import { Either } from "effect"
import type { Diagnostic } from "../../domain/Diagnostic.js"
import { PayloadInvalid, UnknownRoute } from "../../domain/IngressError.js"
import type { PayloadSpec } from "../../domain/Payload.js"
import type { CompiledSchema, XmlEngine } from "../../services/XmlEngine.js"
import type { Canonical } from "./canonicalize.js"
import type { Extracted } from "./extract.js"

/** One receiver of a route: a listener (or, for `inspect --payloads`, just a payload type). */
export interface RouteTarget {
  readonly listener: string | undefined
  readonly spec: PayloadSpec<any>
  readonly schema: CompiledSchema
}

export interface RouteMatch {
  /** `to.payloadtag` or `payloadtag`, lowercase. */
  readonly key: string
  readonly targets: ReadonlyArray<RouteTarget>
}

export interface RouteResolver {
  readonly resolve: (to: string | undefined, payloadTag: string) => RouteMatch | undefined
}

export const routeKeyOf = (to: string | undefined, payloadTag: string): string =>
  to === undefined ? payloadTag.toLowerCase() : `${to.toLowerCase()}.${payloadTag.toLowerCase()}`

export interface Validated extends Extracted {
  readonly route: RouteMatch
}

/**
 * Validate payload: find the route (`to.payloadtag`, or the payload tag alone for broadcast)
 * and validate the payload subtree against the XSD of the listeners it routes to. Each
 * distinct schema is checked once.
 */
export const validatePayload = (
  engine: XmlEngine.Service,
  canonical: Canonical,
  extracted: Extracted,
  routes: RouteResolver
): Either.Either<Validated, UnknownRoute | PayloadInvalid> => {
  const { envelope } = extracted
  const route = routes.resolve(envelope.to, envelope.payloadTag)
  if (route === undefined || route.targets.length === 0) {
    return Either.left(new UnknownRoute({ diagnostics: [], routeKey: routeKeyOf(envelope.to, envelope.payloadTag) }))
  }
  let checked: CompiledSchema | undefined
  for (const target of route.targets) {
    if (target.schema === checked) continue
    const errors: ReadonlyArray<Diagnostic> = engine.validateRootChild(target.schema, canonical.doc, extracted.payloadIndex)
    if (errors.length > 0) {
      return Either.left(new PayloadInvalid({ diagnostics: errors, payloadTag: envelope.payloadTag }))
    }
    checked = target.schema
  }
  return Either.right({ ...extracted, route })
}
