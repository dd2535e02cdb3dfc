import { Either } from "effect"
import { diagnostic } from "../../domain/Diagnostic.js"
import { DecodeFailed } from "../../domain/IngressError.js"
import type { PayloadSpec } from "../../domain/Payload.js"
import { RawPayload } from "../../domain/Reply.js"
import type { CanonicalElement } from "../../domain/xml/CanonicalTree.js"
import type { RouteMatch, RouteTarget } from "../Router.js"

/** One receiver of a message with the payload as it receives it. */
export interface Delivery {
  readonly target: RouteTarget
  readonly payload: unknown
}

/**
 * Decode: the payload element becomes a typed value through its Schema — once per type,
 * however many receivers share it. A receiver without a type (an injector receiving a type
 * the organism does not declare) gets the element as raw XML.
 */
export const decode = (
  text: string,
  element: CanonicalElement,
  payloadTag: string,
  route: RouteMatch
): Either.Either<ReadonlyArray<Delivery>, DecodeFailed> => {
  const deliveries: Array<Delivery> = []
  let lastSpec: PayloadSpec<any> | undefined | null = null
  let lastValue: unknown
  for (const target of route.targets) {
    if (target.spec === undefined) {
      deliveries.push({
        target,
        payload: new RawPayload({ tag: element.localName, inner: text.slice(element.contentStart, element.contentEnd) })
      })
      continue
    }
    if (target.spec !== lastSpec) {
      const result = target.spec.decode(text, element)
      if (Either.isLeft(result)) {
        return Either.left(new DecodeFailed({ diagnostics: [diagnostic(result.left.message)], payloadTag }))
      }
      lastSpec = target.spec
      lastValue = result.right
    }
    deliveries.push({ target, payload: lastValue })
  }
  return Either.right(deliveries)
}
