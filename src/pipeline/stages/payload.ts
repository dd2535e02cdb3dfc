import type { Diagnostic } from "../../domain/Diagnostic.js"
import { PayloadInvalid } from "../../domain/IngressError.js"
import type { CompiledSchema, XmlEngine } from "../../services/XmlEngine.js"
import type { RouteMatch } from "../Router.js"
import type { Canonical } from "./canonicalize.js"

/**
 * Payload: the payload element is validated against the XSD of every receiver of its route.
 * Receivers share a schema when they take the same type, and each distinct schema is
 * checked once. Undefined when it is valid.
 */
export const payload = (
  engine: XmlEngine.Service,
  canonical: Canonical,
  payloadIndex: number,
  payloadTag: string,
  route: RouteMatch
): PayloadInvalid | undefined => {
  let checked: CompiledSchema | undefined
  const targets = route.targets
  for (let i = 0; i < targets.length; i++) {
    const schema = targets[i]!.schema
    if (schema === undefined || schema === checked) continue
    const errors: ReadonlyArray<Diagnostic> = engine.validateRootChild(schema, canonical.doc, payloadIndex)
    if (errors.length > 0) return new PayloadInvalid({ diagnostics: errors, payloadTag })
    checked = schema
  }
  return undefined
}
