import { Either } from "effect"
import { DtdForbidden, InvalidEncoding, MalformedXml, TooDeep } from "../../domain/IngressError.js"
import type { XmlDocument, XmlEngine } from "../../services/XmlEngine.js"

export type ParseError = MalformedXml | DtdForbidden | InvalidEncoding | TooDeep

/** libxml2's own nesting limit (without XML_PARSE_HUGE). */
export const LIBXML_MAX_DEPTH = 256

/**
 * Parse: strict parse, falling back to libxml2's recovering parser when `recover` is on
 * (model output often has an unclosed tag). A repaired document carries the errors that
 * were repaired as diagnostics. Encoding errors, DTDs and depth bombs are never repaired.
 */
export const parse = (
  engine: XmlEngine.Service,
  input: Uint8Array | string,
  recover: boolean
): Either.Either<XmlDocument, ParseError> =>
  Either.mapLeft(engine.parse(input, { recover }), (failure): ParseError => {
    const diagnostics = failure.diagnostics
    switch (failure.reason) {
      case "encoding":
        return new InvalidEncoding({ diagnostics })
      case "dtd":
        return new DtdForbidden({ diagnostics })
      case "too-deep":
        return new TooDeep({ diagnostics, limit: LIBXML_MAX_DEPTH, stage: "parse" })
      case "malformed":
        return new MalformedXml({ diagnostics })
    }
  })
