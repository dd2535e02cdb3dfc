import { Either } from "effect"
import { UnknownRoute } from "../../domain/IngressError.js"
import { type RouteMatch, type RouteResolver, routeKeyOf } from "../Router.js"
import type { Envelope } from "../../domain/Envelope.js"

/**
 * Route: the receivers of a message — `to.payloadtag` (lowercase) for a message addressed to
 * a listener or an injector, the payload tag alone for a broadcast.
 */
export const route = (
  routes: RouteResolver,
  envelope: Envelope,
  thread: string
): Either.Either<RouteMatch, UnknownRoute> => {
  const match = routes.resolve(envelope.to, envelope.payloadTag, thread)
  return match === undefined || match.targets.length === 0
    ? Either.left(new UnknownRoute({ diagnostics: [], routeKey: routeKeyOf(envelope.to, envelope.payloadTag) }))
    : Either.right(match)
}
