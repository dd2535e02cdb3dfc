/**
 * XmlEngine: every libxml2 operation the framework performs — hardened strict and
 * recovering parse, Exclusive C14N, XSD compilation and validation, serialization — behind
 * one service that owns every native handle.
 *
 * The per-message operations are synchronous functions (the pipeline runs them back to back
 * inside one step; wrapping each in an Effect would cost more than the work itself). Handles
 * that outlive a message — compiled schemas — are scoped resources released with their
 * Scope; documents are released by whoever parsed them (`withDocument` does it for you).
 */
import { Context, Data, Effect, Either, Layer, type Scope } from "effect"
import { isUtf8 } from "node:buffer"
import { Diagnostic } from "../domain/Diagnostic.js"
import * as Raw from "./internal/libxml2.js"

export interface ParseOptions {
  /** Fall back to libxml2's recovering parser when the strict parse fails. */
  readonly recover: boolean
}

/** A parsed document. Release it exactly once (`XmlEngine.release`). */
export class XmlDocument {
  released = false
  constructor(
    readonly ptr: Raw.DocPtr,
    /** True when only the recovering parser could read the input. */
    readonly repaired: boolean,
    /** Warnings, and for repaired documents the errors that were repaired. */
    readonly diagnostics: ReadonlyArray<Diagnostic>
  ) {}
}

/** Why bytes could not become a document. */
export class XmlParseFailure extends Data.TaggedError("XmlParseFailure")<{
  readonly reason: "encoding" | "malformed" | "dtd" | "too-deep"
  readonly diagnostics: ReadonlyArray<Diagnostic>
}> {}

/** A well-formed document that Exclusive C14N cannot represent (e.g. a relative namespace URI). */
export class XmlCanonicalizeFailure extends Data.TaggedError("XmlCanonicalizeFailure")<{
  readonly diagnostics: ReadonlyArray<Diagnostic>
}> {}

/** An XSD that libxml2 refused to compile. */
export class SchemaCompileError extends Data.TaggedError("SchemaCompileError")<{
  readonly name: string
  readonly diagnostics: ReadonlyArray<Diagnostic>
}> {
  override get message(): string {
    return `XSD for ${this.name} does not compile: ${this.diagnostics.map(String).join("; ")}`
  }
}

/** A compiled XSD, valid while the Scope that compiled it is open. */
export class CompiledSchema {
  constructor(readonly name: string, readonly raw: Raw.RawSchema) {}
}

export const toDiagnostic = (e: Raw.RawError): Diagnostic =>
  new Diagnostic(
    {
      message: e.message,
      ...(e.line > 0 ? { line: e.line, column: e.column } : {}),
      ...(e.path !== undefined ? { path: e.path } : {})
    },
    true
  )

const isFatal = (e: Raw.RawError) => e.level >= 2

/** Offset of the first byte that breaks UTF-8 (cold path, for the diagnostic only). */
const firstInvalidUtf8 = (bytes: Uint8Array): number => {
  let i = 0
  while (i < bytes.length) {
    const b = bytes[i]!
    const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0
    if (len === 0 || i + len > bytes.length) return i
    for (let k = 1; k < len; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return i
    // Overlong forms, surrogates and code points past U+10FFFF.
    const b1 = bytes[i + 1]!
    if ((b === 0xe0 && b1 < 0xa0) || (b === 0xed && b1 > 0x9f) || (b === 0xf0 && b1 < 0x90) || (b === 0xf4 && b1 > 0x8f)) {
      return i
    }
    i += len
  }
  return i
}

const DOCTYPE = new TextEncoder().encode("<!DOCTYPE")

// Comments, CDATA sections and processing instructions may quote `<!DOCTYPE` (a model
// writing about HTML) without declaring anything.
const QUOTING_MARKUP = /<!--[\s\S]*?(?:-->|$)|<!\[CDATA\[[\s\S]*?(?:\]\]>|$)|<\?[\s\S]*?(?:\?>|$)/g

const hasDoctype = (input: Uint8Array | string): boolean => {
  const bytes = typeof input === "string" ? undefined : Buffer.from(input.buffer, input.byteOffset, input.byteLength)
  if (bytes === undefined ? !(input as string).includes("<!DOCTYPE") : bytes.indexOf(DOCTYPE) === -1) return false
  // Cold path (the strict parse failed): the markup is ASCII, so latin1 is a faithful view.
  const text = bytes === undefined ? (input as string) : bytes.toString("latin1")
  return text.replace(QUOTING_MARKUP, "").includes("<!DOCTYPE")
}

const classify = (input: Uint8Array | string, errors: ReadonlyArray<Raw.RawError>): XmlParseFailure["reason"] => {
  if (errors.some((e) => e.message.includes("Excessive depth"))) return "too-deep"
  return hasDoctype(input) ? "dtd" : "malformed"
}

/**
 * libxml2 errors (xmlParserErrors codes) recovery must not paper over. Recovery may close,
 * truncate or drop *markup* — the typos a model makes — but for these it would silently
 * change characters (a NUL dropped turns `ad\0min` into `admin`), pick one of two values of
 * an attribute, keep an entity reference nothing can resolve, or build a tree that is not
 * namespace-well-formed (whose "canonical" form is not XML). Each is a place where two
 * parsers disagree about what a message says, so the message is refused instead.
 */
const UNREPAIRABLE: ReadonlySet<number> = new Set([
  6, // XML_ERR_INVALID_HEX_CHARREF
  7, // XML_ERR_INVALID_DEC_CHARREF
  8, // XML_ERR_INVALID_CHARREF
  9, // XML_ERR_INVALID_CHAR (NUL, control characters, U+FFFE…)
  26, // XML_ERR_UNDECLARED_ENTITY
  42, // XML_ERR_ATTRIBUTE_REDEFINED
  110, // XML_ERR_NAME_TOO_LONG (a limit, like depth)
  200, // XML_NS_ERR_XML_NAMESPACE
  201, // XML_NS_ERR_UNDEFINED_NAMESPACE
  202, // XML_NS_ERR_QNAME
  203, // XML_NS_ERR_ATTRIBUTE_REDEFINED
  204, // XML_NS_ERR_EMPTY
  205 // XML_NS_ERR_COLON
])
const unrepairable = (e: Raw.RawError) => UNREPAIRABLE.has(e.code)
const notRepaired = new Diagnostic({
  message: "not repaired: recovery would alter characters, attributes, entities or namespaces"
})

export declare namespace XmlEngine {
  export interface Service {
    /** Hardened parse: UTF-8 only, no DTD, no entity expansion, no network, depth ≤ 256. */
    readonly parse: (input: Uint8Array | string, options: ParseOptions) => Either.Either<XmlDocument, XmlParseFailure>
    /** Parses, runs `use`, and releases the document whatever happens. */
    readonly withDocument: <A>(
      input: Uint8Array | string,
      options: ParseOptions,
      use: (doc: XmlDocument) => A
    ) => Either.Either<A, XmlParseFailure>
    readonly release: (doc: XmlDocument) => void
    /** Exclusive C14N 1.0, comments dropped. */
    readonly canonicalize: (doc: XmlDocument) => Either.Either<string, XmlCanonicalizeFailure>
    readonly serialize: (doc: XmlDocument, options?: { readonly format?: boolean }) => string
    /** Compiles an XSD once; released when the Scope closes. */
    readonly compileSchema: (name: string, xsd: string) => Effect.Effect<CompiledSchema, SchemaCompileError, Scope.Scope>
    /** Validates the whole document; an empty list means valid. */
    readonly validateDocument: (schema: CompiledSchema, doc: XmlDocument) => ReadonlyArray<Diagnostic>
    /**
     * Validates the subtree of the `index`-th element child (0-based) of the root element;
     * an empty list means valid.
     */
    readonly validateRootChild: (schema: CompiledSchema, doc: XmlDocument, index: number) => ReadonlyArray<Diagnostic>
    /** Effectful parse whose document is released with the Scope. */
    readonly parseScoped: (
      input: Uint8Array | string,
      options: ParseOptions
    ) => Effect.Effect<XmlDocument, XmlParseFailure, Scope.Scope>
    /** Native handles currently alive (for leak checks). */
    readonly liveHandles: () => { readonly documents: number; readonly schemas: number }
    /** Bytes of this instance's wasm memory (it grows, never shrinks). */
    readonly heapBytes: () => number
    /** Bytes of that memory in use, to 16 KiB (leak checks; grows the heap by one step). */
    readonly heapBytesInUse: () => number
  }
}

/** What a valid document's validation returns: shared, never mutated. */
const NO_DIAGNOSTICS: ReadonlyArray<Diagnostic> = Object.freeze([])

/** The service over one libxml2 instance. */
const engineOf = (raw: Raw.Libxml2): XmlEngine.Service => {
  const read = (input: Uint8Array | string, flags: number): Raw.DocPtr =>
    typeof input === "string" ? raw.readDocumentString(input, flags) : raw.readDocument(input, flags)

  /**
   * Bytes must be UTF-8. A string (what the pump writes itself) is encoded as UTF-8 on its
   * way into libxml2, so it needs no check.
   */
  const parse = (input: Uint8Array | string, options: ParseOptions): Either.Either<XmlDocument, XmlParseFailure> => {
    if (typeof input !== "string" && !isUtf8(input)) {
      const bytes = input
      const at = firstInvalidUtf8(bytes)
      return Either.left(
        new XmlParseFailure({
          reason: "encoding",
          diagnostics: [new Diagnostic({ message: `invalid UTF-8 byte sequence at byte offset ${at}` })]
        })
      )
    }
    let doc = read(input, Raw.hardenedFlags)
    const strictErrors = raw.lastErrors()
    let repaired = false
    if (doc === 0 || strictErrors.some(isFatal)) {
      raw.freeDocument(doc)
      doc = 0 as Raw.DocPtr
      const reason = classify(input, strictErrors)
      let diagnostics = strictErrors.map(toDiagnostic)
      // Never "repair" around a DTD or a depth bomb: those are refusals, not typos.
      if (options.recover && reason === "malformed") {
        if (strictErrors.some(unrepairable)) {
          diagnostics = [notRepaired, ...diagnostics]
        } else {
          const recovered = read(input, Raw.hardenedFlags | Raw.ParseFlags.RECOVER)
          // The strict parse stops at the first fatal error; recovery reads on and may meet
          // what it must not repair further down.
          const recoveryErrors = raw.lastErrors()
          if (recoveryErrors.some(unrepairable)) {
            raw.freeDocument(recovered)
            diagnostics = [notRepaired, ...recoveryErrors.map(toDiagnostic)]
          } else if (recovered !== 0 && raw.rootElement(recovered) !== 0) {
            doc = recovered
            repaired = true
          } else {
            raw.freeDocument(recovered)
          }
        }
      }
      if (doc === 0) return Either.left(new XmlParseFailure({ reason, diagnostics }))
    }
    const notes = strictErrors
    if (raw.hasInternalSubset(doc)) {
      raw.freeDocument(doc)
      return Either.left(
        new XmlParseFailure({
          reason: "dtd",
          diagnostics: [new Diagnostic({ message: "the document has a DOCTYPE declaration" })]
        })
      )
    }
    return Either.right(new XmlDocument(doc, repaired, notes.length === 0 ? [] : notes.map(toDiagnostic)))
  }

  const release = (doc: XmlDocument): void => {
    if (doc.released) return
    doc.released = true
    raw.freeDocument(doc.ptr)
  }

  const checkLive = (doc: XmlDocument): void => {
    if (doc.released) throw new Error("XmlEngine: document used after release")
  }

  const service: XmlEngine.Service = {
    parse,
    withDocument: (input, options, use) =>
      Either.map(parse(input, options), (doc) => {
        try {
          return use(doc)
        } finally {
          release(doc)
        }
      }),
    release,
    canonicalize: (doc) => {
      checkLive(doc)
      const result = raw.canonicalize(doc.ptr)
      return result._tag === "Canonical"
        ? Either.right(result.text)
        : Either.left(new XmlCanonicalizeFailure({ diagnostics: [new Diagnostic({ message: result.message })] }))
    },
    serialize: (doc, options) => {
      checkLive(doc)
      return raw.serialize(doc.ptr, options)
    },
    compileSchema: (name, xsd) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          const result = raw.compileSchema(xsd)
          return result._tag === "Compiled"
            ? Effect.succeed(new CompiledSchema(name, result.schema))
            : Effect.fail(new SchemaCompileError({ name, diagnostics: result.errors.map(toDiagnostic) }))
        }),
        (schema) => Effect.sync(() => raw.freeSchema(schema.raw))
      ).pipe(Effect.withSpan("XmlEngine.compileSchema", { attributes: { name } })),
    validateDocument: (schema, doc) => {
      checkLive(doc)
      const errors = raw.validateDocument(schema.raw, doc.ptr)
      return errors.length === 0 ? NO_DIAGNOSTICS : errors.map(toDiagnostic)
    },
    validateRootChild: (schema, doc, index) => {
      checkLive(doc)
      const el = raw.nthElementChild(raw.rootElement(doc.ptr), index)
      if (el === 0) return [new Diagnostic({ message: `no element child at index ${index}` })]
      const errors = raw.validateElement(schema.raw, el)
      return errors.length === 0 ? NO_DIAGNOSTICS : errors.map(toDiagnostic)
    },
    parseScoped: (input, options) =>
      Effect.acquireRelease(
        Effect.suspend(() => parse(input, options)),
        (doc) => Effect.sync(() => release(doc))
      ),
    liveHandles: raw.liveHandles,
  heapBytes: raw.heapBytes,
  heapBytesInUse: raw.heapBytesInUse
  }
  return service
}

export class XmlEngine extends Context.Tag("xml-organism/XmlEngine")<XmlEngine, XmlEngine.Service>() {
  /**
   * An engine on its own libxml2 instance (a fresh WebAssembly instance: its own heap,
   * contexts and counters), released with the Scope. Handles still alive then are the
   * caller's leak: the instance's memory goes with it.
   */
  static readonly make: Effect.Effect<XmlEngine.Service, never, Scope.Scope> = Effect.map(
    Effect.acquireRelease(Effect.promise(Raw.instantiate), (raw) => Effect.sync(raw.dispose)),
    engineOf
  )

  /** Each build of the layer acquires its own libxml2 instance: two layers share nothing. */
  static readonly layer: Layer.Layer<XmlEngine> = Layer.scoped(XmlEngine, XmlEngine.make)
}
