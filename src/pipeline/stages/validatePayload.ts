import { Either } from "effect"
import type { Diagnostic } from "../../domain/Diagnostic.js"
import { PayloadInvalid, UnknownRoute } from "../../domain/IngressError.js"
import type { PayloadSpec } from "../../domain/Payload.js"
import type { CompiledSchema, XmlEngine } from "../../services/XmlEngine.js"
import type { AssignedThread } from "./assignThread.js"
import type { Canonical } from "./canonicalize.js"
import type { Extracted } from "./extract.js"

/** One receiver of a route: a listener, an injector, or (for `inspect --payloads`) a type. */
export interface RouteTarget {
  /** Listener or injector name; undefined when routing by payload type only. */
  readonly name: string | undefined
  /** The payload type; undefined = accept any payload as raw XML (unvalidated). */
  readonly spec: PayloadSpec<any> | undefined
  readonly schema: CompiledSchema | undefined
  /** Whatever the resolver's owner attaches (the pump: its listener entry). */
  readonly entry?: unknown
}

export interface RouteMatch {
  /** `to.payloadtag` or `payloadtag`, lowercase. */
  readonly key: string
  readonly targets: ReadonlyArray<RouteTarget>
}

export interface RouteResolver {
  readonly resolve: (to: string | undefined, payloadTag: string, thread: AssignedThread) => RouteMatch | undefined
}

export const routeKeyOf = (to: string | undefined, payloadTag: string): string =>
  to === undefined ? payloadTag.toLowerCase() : `${to.toLowerCase()}.${payloadTag.toLowerCase()}`

export interface Validated extends Extracted {
  readonly route: RouteMatch
  readonly thread: AssignedThread
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
  thread: AssignedThread,
  routes: RouteResolver
): Either.Either<Validated, UnknownRoute | PayloadInvalid> => {
  const { envelope } = extracted
  const route = routes.resolve(envelope.to, envelope.payloadTag, thread)
  if (route === undefined || route.targets.length === 0) {
    return Either.left(new UnknownRoute({ diagnostics: [], routeKey: routeKeyOf(envelope.to, envelope.payloadTag) }))
  }
  let checked: CompiledSchema | undefined
  const targets = route.targets
  for (let i = 0; i < targets.length; i++) {
    const schema = targets[i]!.schema
    if (schema === undefined || schema === checked) continue
    const errors: ReadonlyArray<Diagnostic> = engine.validateRootChild(schema, canonical.doc, extracted.payloadIndex)
    if (errors.length > 0) {
      return Either.left(new PayloadInvalid({ diagnostics: errors, payloadTag: envelope.payloadTag }))
    }
    checked = schema
  }
  return Either.right({
    envelope,
    payload: extracted.payload,
    payloadIndex: extracted.payloadIndex,
    route,
    thread
  })
}
