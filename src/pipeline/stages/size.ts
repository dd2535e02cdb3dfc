import { Either } from "effect"
import { MessageTooLarge } from "../../domain/IngressError.js"

/** Ingress: the size limit is enforced on the raw bytes (UTF-8 size of a string), before parsing. */
export const checkSize = <I extends Uint8Array | string>(input: I, limit: number): Either.Either<I, MessageTooLarge> => {
  // A string of n UTF-16 units is at most 3n UTF-8 bytes: count only when it could matter.
  const size = typeof input === "string"
    ? (input.length * 3 <= limit ? input.length : Buffer.byteLength(input, "utf8"))
    : input.length
  return size <= limit ? Either.right(input) : Either.left(new MessageTooLarge({ size, limit, diagnostics: [] }))
}
