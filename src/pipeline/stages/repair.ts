import { Either } from "effect"
import { DtdForbidden, InvalidEncoding, MalformedXml, TooDeep } from "../../domain/IngressError.js"
import type { XmlDocument, XmlEngine } from "../../services/XmlEngine.js"

export type RepairError = MalformedXml | DtdForbidden | InvalidEncoding | TooDeep

/** libxml2's own nesting limit (without XML_PARSE_HUGE). */
export const LIBXML_MAX_DEPTH = 256

/**
 * Repair: strict parse, falling back to libxml2's recovering parser when `recover` is on
 * (model output often has an unclosed tag). A repaired document carries the errors that
 * were repaired as diagnostics. Encoding errors, DTDs and depth bombs are never repaired.
 */
export const repair = (
  engine: XmlEngine.Service,
  input: Uint8Array | string,
  recover: boolean
): Either.Either<XmlDocument, RepairError> =>
  Either.mapLeft(engine.parse(input, { recover }), (failure): RepairError => {
    const diagnostics = failure.diagnostics
    switch (failure.reason) {
      case "encoding":
        return new InvalidEncoding({ diagnostics })
      case "dtd":
        return new DtdForbidden({ diagnostics })
      case "too-deep":
        return new TooDeep({ diagnostics, limit: LIBXML_MAX_DEPTH, stage: "repair" })
      case "malformed":
        return new MalformedXml({ diagnostics })
    }
  })
