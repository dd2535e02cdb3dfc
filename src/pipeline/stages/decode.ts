import { Either } from "effect"
import { diagnostic } from "../../domain/Diagnostic.js"
import { DecodeFailed } from "../../domain/IngressError.js"
import type { PayloadSpec } from "../../domain/Payload.js"
import { RawPayload } from "../../domain/Reply.js"
import type { Canonical } from "./canonicalize.js"
import type { RouteTarget, Validated } from "./validatePayload.js"

export interface Delivery {
  readonly target: RouteTarget
  readonly payload: unknown
}

export interface Decoded extends Validated {
  readonly deliveries: ReadonlyArray<Delivery>
}

/** Decode: the payload element becomes a typed value through its Schema (once per type). */
export const decode = (canonical: Canonical, validated: Validated): Either.Either<Decoded, DecodeFailed> => {
  const targets = validated.route.targets
  const deliveries: Array<Delivery> = []
  let lastSpec: PayloadSpec<any> | undefined | null = null
  let lastValue: unknown
  for (const target of targets) {
    if (target.spec === undefined) {
      // Accepted as raw XML (an injector receiving a type the organism does not declare).
      const el = validated.payload
      deliveries.push({
        target,
        payload: new RawPayload({ tag: el.localName, inner: canonical.text.slice(el.contentStart, el.contentEnd) })
      })
      continue
    }
    if (target.spec !== lastSpec) {
      const result = target.spec.decode(canonical.text, validated.payload)
      if (Either.isLeft(result)) {
        return Either.left(
          new DecodeFailed({ diagnostics: [diagnostic(result.left.message)], payloadTag: validated.envelope.payloadTag })
        )
      }
      lastSpec = target.spec
      lastValue = result.right
    }
    deliveries.push({ target, payload: lastValue })
  }
  return Either.right({ ...validated, deliveries })
}
