import { Either } from "effect"
import { MessageTooLarge } from "../../domain/IngressError.js"

/** Ingress: the size limit is enforced on the raw bytes, before any parsing. */
export const checkSize = (bytes: Uint8Array, limit: number): Either.Either<Uint8Array, MessageTooLarge> =>
  bytes.length <= limit
    ? Either.right(bytes)
    : Either.left(new MessageTooLarge({ size: bytes.length, limit, diagnostics: [] }))
