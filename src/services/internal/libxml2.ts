/**
 * A thin, allocation-conscious binding to libxml2 compiled to WebAssembly (libxml2-wasm).
 *
 * We instantiate our own copy of the module instead of using libxml2-wasm's object API:
 * that API wraps every document and node in a JavaScript object registered with a
 * FinalizationRegistry, re-creates parser and validation contexts per call, and in recover
 * mode throws away the recovered document — which is exactly what the repair stage needs.
 * Here every handle is a plain pointer owned by XmlEngine, freed explicitly, and counted so
 * tests can prove nothing leaks.
 *
 * Everything here is synchronous and single-threaded, like the wasm module itself.
 *
 * `instantiate` creates a fresh WebAssembly instance each time (the Emscripten factory
 * compiles and instantiates anew: its own linear memory, parser context, buffers, error sink
 * and counters), so each XmlEngine layer owns one and two layers share nothing.
 */
import moduleLoader from "libxml2-wasm/lib/libxml2raw.mjs"

export type DocPtr = number & { readonly _doc: unique symbol }
export type NodePtr = number & { readonly _node: unique symbol }

export interface RawError {
  /** libxml2's xmlParserErrors code (which rule was broken). */
  readonly code: number
  readonly message: string
  /** 1 warning, 2 error, 3 fatal */
  readonly level: number
  readonly line: number
  readonly column: number
  readonly path: string | undefined
}

export const ParseFlags = {
  RECOVER: 1,
  NONET: 2048,
  NOCDATA: 16384,
  BIG_LINES: 4194304,
  IGNORE_ENC: 2097152,
  NO_XXE: 8388608,
  NO_SYS_CATALOG: 33554432
} as const

/**
 * Hardened defaults: no entity substitution (no NOENT), no DTD loading (no DTDLOAD),
 * no external entities, no network, no catalogs, and the input is always read as UTF-8.
 * libxml2's own limits stay on (no HUGE): nesting depth 256, entity amplification.
 */
export const hardenedFlags = ParseFlags.NONET | ParseFlags.NO_XXE | ParseFlags.NO_SYS_CATALOG |
  ParseFlags.IGNORE_ENC | ParseFlags.BIG_LINES | ParseFlags.NOCDATA

export const C14N_EXCLUSIVE_1_0 = 1

export type CanonicalizeResult =
  | { readonly _tag: "Canonical"; readonly text: string }
  | { readonly _tag: "Failed"; readonly message: string }

export interface RawSchema {
  readonly doc: DocPtr
  readonly schema: number
  /** Reused across validations; recreated periodically to bound its internal dictionary. */
  validCtxt: number
  uses: number
  freed: boolean
}

export type CompileResult =
  | { readonly _tag: "Compiled"; readonly schema: RawSchema }
  | { readonly _tag: "Failed"; readonly errors: ReadonlyArray<RawError> }

/** One libxml2 instance: every operation on its own heap. */
export interface Libxml2 {
  readonly lastErrors: () => ReadonlyArray<RawError>
  readonly liveHandles: () => { readonly documents: number; readonly schemas: number }
  readonly heapBytes: () => number
  readonly heapBytesInUse: () => number
  readonly readDocument: (bytes: Uint8Array, flags: number) => DocPtr
  readonly readDocumentString: (text: string, flags: number) => DocPtr
  readonly freeDocument: (doc: DocPtr) => void
  readonly hasInternalSubset: (doc: DocPtr) => boolean
  readonly rootElement: (doc: DocPtr) => NodePtr
  readonly nthElementChild: (node: NodePtr, n: number) => NodePtr
  readonly canonicalize: (doc: DocPtr) => CanonicalizeResult
  readonly serialize: (doc: DocPtr, options?: { readonly format?: boolean }) => string
  readonly compileSchema: (xsd: string) => CompileResult
  readonly validateDocument: (s: RawSchema, doc: DocPtr) => ReadonlyArray<RawError>
  readonly validateElement: (s: RawSchema, node: NodePtr) => ReadonlyArray<RawError>
  readonly freeSchema: (s: RawSchema) => void
  /** Frees what the instance keeps between calls (parser context, input buffer). */
  readonly dispose: () => void
}

export const instantiate = async (): Promise<Libxml2> => {
  const lib = await moduleLoader()
  lib._xmlSetWinPathEnabled(0)
  lib._xmlInitParser()


  // --- errors --------------------------------------------------------------------------
  // libxml2 reports through a structured-error callback. Calls are synchronous, so one sink
  // shared by all calls is enough: cleared before a call, read after. The common case — no
  // diagnostics — allocates nothing.
  let sink: Array<RawError> | null = null
  const pending: Array<RawError> = []
  const NO_ERRORS: ReadonlyArray<RawError> = Object.freeze([])
  let last: ReadonlyArray<RawError> = NO_ERRORS

  const begin = () => {
    pending.length = 0
    sink = pending
  }
  const end = (): ReadonlyArray<RawError> => {
    sink = null
    last = pending.length === 0 ? NO_ERRORS : pending.splice(0)
    return last
  }

  const readCString = (ptr: number): string => (ptr === 0 ? "" : lib.UTF8ToString(ptr))

  const errorCallback = lib.addFunction((_data: number, err: number) => {
    if (sink === null) return
    const node = lib.getValue(err + 48, "*")
    let path: string | undefined
    if (node !== 0) {
      const p = lib._xmlGetNodePath(node)
      if (p !== 0) {
        path = lib.UTF8ToString(p)
        lib._free(p)
      }
    }
    sink.push({
      code: lib.getValue(err + 4, "i32"),
      message: readCString(lib.getValue(err + 8, "*")).trim(),
      level: lib.getValue(err + 12, "i32"),
      line: lib.getValue(err + 20, "i32"),
      column: lib.getValue(err + 40, "i32"),
      path
    })
  }, "vii")

  /** The diagnostics of the last parse, validation or compilation. */
  const lastErrors = (): ReadonlyArray<RawError> => last

  // --- live handle accounting ---------------------------------------------------------
  const live = { documents: 0, schemas: 0 }

  /** Documents and schemas currently allocated in the wasm heap (leak checks). */
  const liveHandles = (): { readonly documents: number; readonly schemas: number } => ({ ...live })

  /** Bytes of wasm linear memory (grows, never shrinks). */
  const heapBytes = (): number => lib.HEAPU8.byteLength

  /**
   * Bytes of wasm linear memory in use, to 16 KiB: fills the free space with probe blocks
   * until the heap has to grow, then frees them. The heap only ever grows, so a leak hides in
   * its free space until that runs out; this sees it at once. For leak tests (libxml2-wasm
   * exports no mallinfo); each call grows the heap by one step.
   */
  const heapBytesInUse = (): number => {
    const size = 16384
    const before = lib.HEAPU8.byteLength
    const blocks: Array<number> = []
    while (lib.HEAPU8.byteLength === before) {
      const p = lib._malloc(size)
      if (p === 0) break
      blocks.push(p)
    }
    for (const p of blocks) lib._free(p)
    // The last block is the one that did not fit.
    return before - Math.max(0, blocks.length - 1) * size
  }

  // --- parsing --------------------------------------------------------------------------
  const utf8Name = (() => {
    const p = lib._malloc(6)
    lib.stringToUTF8("UTF-8", p, 6)
    return p
  })()

  // One input buffer reused across parses: libxml2 reads it only during the call.
  let inputPtr = 0
  let inputCapacity = 0
  const reserveInput = (size: number): number => {
    if (size > inputCapacity) {
      if (inputPtr !== 0) lib._free(inputPtr)
      inputCapacity = Math.max(4096, 2 ** Math.ceil(Math.log2(size)))
      inputPtr = lib._malloc(inputCapacity)
      if (inputPtr === 0) throw new Error("libxml2: out of memory for the input buffer")
    } else if (inputCapacity > 1 << 22 && size < 4096) {
      // Do not keep a huge buffer around after one huge message.
      lib._free(inputPtr)
      inputCapacity = 4096
      inputPtr = lib._malloc(inputCapacity)
    }
    return inputPtr
  }
  const stageInput = (bytes: Uint8Array): number => {
    const ptr = reserveInput(bytes.length + 1)
    const memory = lib.HEAPU8
    memory.set(bytes, ptr)
    memory[ptr + bytes.length] = 0
    return ptr
  }

  // One parser context serves many parses (it is reset by each read; a fresh one per parse
  // costs ~0.8 µs). A context keeps a name dictionary that hostile input with ever-new names
  // could grow, so it is replaced after a bounded number of parses or bytes.
  const CTXT_MAX_PARSES = 256
  const CTXT_MAX_BYTES = 1 << 20
  let ctxt = 0
  let ctxtParses = 0
  let ctxtBytes = 0

  const parserContext = (size: number): number => {
    if (ctxt === 0 || ctxtParses >= CTXT_MAX_PARSES || ctxtBytes >= CTXT_MAX_BYTES) {
      if (ctxt !== 0) lib._xmlFreeParserCtxt(ctxt)
      ctxt = lib._xmlNewParserCtxt()
      if (ctxt === 0) throw new Error("libxml2: out of memory creating a parser context")
      lib._xmlCtxtSetErrorHandler(ctxt, errorCallback, 0)
      ctxtParses = 0
      ctxtBytes = 0
    }
    ctxtParses++
    ctxtBytes += size
    return ctxt
  }

  /** Parses bytes into a document (0 when libxml2 produced none); see `lastErrors`. */
  const readDocument = (bytes: Uint8Array, flags: number): DocPtr => {
    const c = parserContext(bytes.length)
    const buf = stageInput(bytes)
    return read(c, buf, bytes.length, flags)
  }

  // The wasm memory as a Node Buffer, kept until the memory grows (which detaches every view
  // of it). Buffer's ranged write/copy/toString move text in and out of the heap without a
  // view object per message (those were a tenth of the bytes the pump allocated per hop).
  let heapBuffer: Buffer | undefined
  const heap = (): Buffer => {
    const memory = lib.HEAPU8.buffer as ArrayBuffer
    if (heapBuffer === undefined || heapBuffer.buffer !== memory) heapBuffer = Buffer.from(memory)
    return heapBuffer
  }

  /** Parses a string (encoded straight into the wasm heap, no intermediate buffer). */
  const readDocumentString = (text: string, flags: number): DocPtr => {
    const buf = reserveInput(text.length * 3 + 1)
    const h = heap()
    const written = h.write(text, buf, inputCapacity - 1, "utf8")
    h[buf + written] = 0
    return read(parserContext(written), buf, written, flags)
  }

  const read = (c: number, buf: number, length: number, flags: number): DocPtr => {
    begin()
    const doc = lib._xmlCtxtReadMemory(c, buf, length, 0, utf8Name, flags)
    end()
    if (doc !== 0) live.documents++
    return doc as DocPtr
  }

  const freeDocument = (doc: DocPtr): void => {
    if (doc === 0) return
    lib._xmlFreeDoc(doc)
    live.documents--
  }

  const hasInternalSubset = (doc: DocPtr): boolean => lib._xmlGetIntSubset(doc) !== 0

  const rootElement = (doc: DocPtr): NodePtr => lib._xmlDocGetRootElement(doc) as NodePtr

  const ELEMENT_NODE = 1

  /** The n-th element child (0-based) of an element, or 0. Reads xmlNode fields directly. */
  const nthElementChild = (node: NodePtr, n: number): NodePtr => {
    const heap = lib.HEAP32
    let cur = heap[(node + 12) >> 2]! // children
    let i = 0
    while (cur !== 0) {
      if (heap[(cur + 4) >> 2] === ELEMENT_NODE) { // type
        if (i === n) return cur as NodePtr
        i++
      }
      cur = heap[(cur + 24) >> 2]! // next
    }
    return 0 as NodePtr
  }

  // --- canonicalization -----------------------------------------------------------------

  // Output is copied into one reusable scratch buffer and decoded once: libxml2 may split its
  // output anywhere, even inside a multi-byte character, and decoding once is also faster
  // than a streaming decode per chunk.
  let scratch = Buffer.allocUnsafe(16384)
  let scratchLength = 0

  const collectWrite = lib.addFunction((_ctx: number, buf: number, len: number) => {
    if (scratchLength + len > scratch.length) {
      const grown = Buffer.allocUnsafe(Math.max(scratch.length * 2, scratchLength + len))
      scratch.copy(grown, 0, 0, scratchLength)
      scratch = grown
    }
    heap().copy(scratch, scratchLength, buf, buf + len)
    scratchLength += len
    return len
  }, "iiii")
  const collectClose = lib.addFunction(() => 0, "ii")

  const takeCollected = (): string => {
    const text = scratch.toString("utf8", 0, scratchLength)
    scratchLength = 0
    if (scratch.length > 1 << 20) scratch = Buffer.allocUnsafe(16384) // do not keep a huge buffer
    return text
  }

  /**
   * Exclusive C14N 1.0 without comments, as a string. libxml2 refuses some well-formed trees
   * (a relative namespace URI, an entity reference left by the recovering parser): that is a
   * property of the input, so it is a result, not an exception.
   */
  const canonicalize = (doc: DocPtr): CanonicalizeResult => {
    scratchLength = 0
    const out = lib._xmlOutputBufferCreateIO(collectWrite, collectClose, 0, 0)
    if (out === 0) throw new Error("libxml2: out of memory creating an output buffer")
    let rc = -1
    lib._xmlResetLastError()
    try {
      rc = lib._xmlC14NExecute(doc, 0, 0, C14N_EXCLUSIVE_1_0, 0, 0, out)
    } finally {
      lib._xmlOutputBufferClose(out)
    }
    const text = takeCollected()
    if (rc >= 0) return { _tag: "Canonical", text }
    // C14N reports through libxml2's global "last error", not a context we own.
    const err = lib._xmlGetLastError()
    const message = err === 0 ? "" : readCString(lib.getValue(err + 8, "*")).trim()
    return { _tag: "Failed", message: message === "" ? "canonicalization failed" : message }
  }

  // --- serialization ---------------------------------------------------------------------
  const XML_SAVE_FORMAT = 1
  const XML_SAVE_NO_DECL = 2

  /** Serializes a document (optionally indented, without the XML declaration). */
  const serialize = (doc: DocPtr, options: { readonly format?: boolean } = {}): string => {
    scratchLength = 0
    const flags = (options.format === true ? XML_SAVE_FORMAT : 0) | XML_SAVE_NO_DECL
    const ctxt = lib._xmlSaveToIO(collectWrite, collectClose, 0, 0, flags)
    if (ctxt === 0) throw new Error("libxml2: cannot create a save context")
    lib._xmlSaveDoc(ctxt, doc)
    lib._xmlSaveClose(ctxt)
    return takeCollected()
  }

  // --- XSD ------------------------------------------------------------------------------
  const VALID_CTXT_REUSE = 4096

  const compileSchema = (xsd: string): CompileResult => {
    const doc = readDocumentString(xsd, hardenedFlags)
    const parseErrors = lastErrors()
    if (doc === 0 || parseErrors.some((e) => e.level >= 2)) {
      freeDocument(doc)
      return { _tag: "Failed", errors: parseErrors }
    }
    const pctxt = lib._xmlSchemaNewDocParserCtxt(doc)
    lib._xmlSchemaSetParserStructuredErrors(pctxt, errorCallback, 0)
    begin()
    const schema = lib._xmlSchemaParse(pctxt)
    const errors = end()
    lib._xmlSchemaFreeParserCtxt(pctxt)
    if (schema === 0) {
      freeDocument(doc)
      return { _tag: "Failed", errors }
    }
    live.schemas++
    return { _tag: "Compiled", schema: { doc, schema, validCtxt: newValidCtxt(schema), uses: 0, freed: false } }
  }

  const newValidCtxt = (schema: number): number => {
    const v = lib._xmlSchemaNewValidCtxt(schema)
    lib._xmlSchemaSetValidStructuredErrors(v, errorCallback, 0)
    return v
  }

  const validCtxtOf = (s: RawSchema): number => {
    if (s.freed) throw new Error("libxml2: schema used after release")
    if (++s.uses >= VALID_CTXT_REUSE) {
      lib._xmlSchemaFreeValidCtxt(s.validCtxt)
      s.validCtxt = newValidCtxt(s.schema)
      s.uses = 0
    }
    return s.validCtxt
  }

  /** Validates a whole document; an empty list means valid. */
  const validateDocument = (s: RawSchema, doc: DocPtr): ReadonlyArray<RawError> => {
    const v = validCtxtOf(s)
    begin()
    const rc = lib._xmlSchemaValidateDoc(v, doc)
    const errors = end()
    if (rc === 0) return NO_ERRORS
    return errors.length > 0 ? errors : [internalError(rc)]
  }

  /** Validates the subtree rooted at an element; an empty list means valid. */
  const validateElement = (s: RawSchema, node: NodePtr): ReadonlyArray<RawError> => {
    const v = validCtxtOf(s)
    begin()
    const rc = lib._xmlSchemaValidateOneElement(v, node)
    const errors = end()
    if (rc === 0) return NO_ERRORS
    return errors.length > 0 ? errors : [internalError(rc)]
  }

  const internalError = (rc: number): RawError => ({
    code: 1,
    message: `validation failed (libxml2 code ${rc})`,
    level: 2,
    line: 0,
    column: 0,
    path: undefined
  })

  const freeSchema = (s: RawSchema): void => {
    if (s.freed) return
    s.freed = true
    lib._xmlSchemaFreeValidCtxt(s.validCtxt)
    lib._xmlSchemaFree(s.schema)
    freeDocument(s.doc)
    live.schemas--
  }

  const dispose = () => {
    if (ctxt !== 0) lib._xmlFreeParserCtxt(ctxt)
    ctxt = 0
    if (inputPtr !== 0) lib._free(inputPtr)
    inputPtr = 0
    inputCapacity = 0
    heapBuffer = undefined
  }

  return {
    lastErrors,
    liveHandles,
    heapBytes,
    heapBytesInUse,
    readDocument,
    readDocumentString,
    freeDocument,
    hasInternalSubset,
    rootElement,
    nthElementChild,
    canonicalize,
    serialize,
    compileSchema,
    validateDocument,
    validateElement,
    freeSchema,
    dispose
  }
}
