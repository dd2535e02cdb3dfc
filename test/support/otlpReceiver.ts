/**
 * An OTLP/HTTP trace receiver on loopback, for tests: accepts POST /v1/traces in either
 * encoding the spec allows — `application/json` (OTLP/JSON) or `application/x-protobuf`,
 * decoded here field by field from the opentelemetry-proto definitions
 * (ExportTraceServiceRequest → ResourceSpans → ScopeSpans → Span) — and keeps the spans.
 */
import { Effect } from "effect"
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"

export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  /** "" for a root span. */
  readonly parentSpanId: string
  readonly name: string
  readonly kind: number
  readonly startNanos: bigint
  readonly endNanos: bigint
  readonly attributes: Record<string, unknown>
  readonly events: ReadonlyArray<string>
  /** 0 unset, 1 ok, 2 error. */
  readonly statusCode: number
  readonly serviceName: string
}

export interface Receiver {
  /** The base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT). */
  readonly url: string
  readonly spans: () => ReadonlyArray<ReceivedSpan>
  /** Content types of the requests received, in order. */
  readonly contentTypes: () => ReadonlyArray<string>
}

// --- protobuf, the little of it OTLP traces use -----------------------------------------------

interface Field {
  readonly no: number
  readonly wire: number
  readonly varint?: bigint
  readonly bytes?: Uint8Array
}

const fields = (buf: Uint8Array): Array<Field> => {
  const out: Array<Field> = []
  let i = 0
  const varint = () => {
    let result = 0n
    let shift = 0n
    for (;;) {
      const b = buf[i++]!
      result |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return result
      shift += 7n
    }
  }
  while (i < buf.length) {
    const key = Number(varint())
    const no = key >>> 3
    const wire = key & 7
    switch (wire) {
      case 0:
        out.push({ no, wire, varint: varint() })
        break
      case 1:
        out.push({ no, wire, bytes: buf.subarray(i, i + 8) })
        i += 8
        break
      case 2: {
        const len = Number(varint())
        out.push({ no, wire, bytes: buf.subarray(i, i + len) })
        i += len
        break
      }
      case 5:
        out.push({ no, wire, bytes: buf.subarray(i, i + 4) })
        i += 4
        break
      default:
        throw new Error(`protobuf wire type ${wire} at byte ${i}`)
    }
  }
  return out
}

const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b ?? new Uint8Array())
const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? new Uint8Array()).toString("hex")
const fixed64 = (b: Uint8Array | undefined) => (b === undefined ? 0n : Buffer.from(b).readBigUInt64LE(0))

/** AnyValue: string 1, bool 2, int 3, double 4, array 5 (ArrayValue: values 1). */
const anyValue = (b: Uint8Array): unknown => {
  for (const f of fields(b)) {
    switch (f.no) {
      case 1:
        return text(f.bytes)
      case 2:
        return f.varint === 1n
      case 3:
        return Number(BigInt.asIntN(64, f.varint!))
      case 4:
        return Buffer.from(f.bytes!).readDoubleLE(0)
      case 5:
        return fields(f.bytes!).filter((v) => v.no === 1).map((v) => anyValue(v.bytes!))
    }
  }
  return undefined
}

/** KeyValue: key 1, value 2. */
const keyValues = (list: ReadonlyArray<Field>) => {
  const out: Record<string, unknown> = {}
  for (const f of list) {
    const kv = fields(f.bytes!)
    out[text(kv.find((x) => x.no === 1)?.bytes)] = anyValue(kv.find((x) => x.no === 2)?.bytes ?? new Uint8Array())
  }
  return out
}

const decodeProtobuf = (body: Uint8Array): Array<ReceivedSpan> => {
  const spans: Array<ReceivedSpan> = []
  for (const rs of fields(body).filter((f) => f.no === 1)) {
    const resourceSpans = fields(rs.bytes!)
    const resource = resourceSpans.find((f) => f.no === 1)
    const resourceAttributes = resource === undefined ? {} : keyValues(fields(resource.bytes!).filter((f) => f.no === 1))
    for (const ss of resourceSpans.filter((f) => f.no === 2)) {
      for (const sp of fields(ss.bytes!).filter((f) => f.no === 2)) {
        const s = fields(sp.bytes!)
        const one = (no: number) => s.find((f) => f.no === no)
        const status = one(15)
        spans.push({
          traceId: hex(one(1)?.bytes),
          spanId: hex(one(2)?.bytes),
          parentSpanId: hex(one(4)?.bytes),
          name: text(one(5)?.bytes),
          kind: Number(one(6)?.varint ?? 0n),
          startNanos: fixed64(one(7)?.bytes),
          endNanos: fixed64(one(8)?.bytes),
          attributes: keyValues(s.filter((f) => f.no === 9)),
          events: s.filter((f) => f.no === 11).map((e) => text(fields(e.bytes!).find((f) => f.no === 2)?.bytes)),
          statusCode: status === undefined ? 0 : Number(fields(status.bytes!).find((f) => f.no === 3)?.varint ?? 0n),
          serviceName: String(resourceAttributes["service.name"] ?? "")
        })
      }
    }
  }
  return spans
}

// --- JSON ---------------------------------------------------------------------------------------

interface JsonAnyValue {
  stringValue?: string
  boolValue?: boolean
  intValue?: number | string
  doubleValue?: number
  arrayValue?: { values: Array<JsonAnyValue> }
}

const jsonValue = (v: JsonAnyValue): unknown =>
  v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ??
    v.arrayValue?.values.map(jsonValue)

const jsonAttributes = (list: Array<{ key: string; value: JsonAnyValue }> | undefined) =>
  Object.fromEntries((list ?? []).map((kv) => [kv.key, jsonValue(kv.value)]))

const decodeJson = (body: Uint8Array): Array<ReceivedSpan> => {
  const data = JSON.parse(text(body)) as {
    resourceSpans: Array<{
      resource?: { attributes?: Array<{ key: string; value: JsonAnyValue }> }
      scopeSpans: Array<{ spans: Array<any> }>
    }>
  }
  return data.resourceSpans.flatMap((rs) =>
    rs.scopeSpans.flatMap((ss) =>
      ss.spans.map((s): ReceivedSpan => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? "",
        name: s.name,
        kind: s.kind,
        startNanos: BigInt(s.startTimeUnixNano),
        endNanos: BigInt(s.endTimeUnixNano),
        attributes: jsonAttributes(s.attributes),
        events: (s.events ?? []).map((e: { name: string }) => e.name),
        statusCode: s.status?.code ?? 0,
        serviceName: String(jsonAttributes(rs.resource?.attributes)["service.name"] ?? "")
      }))
    )
  )
}

const bodyOf = (req: IncomingMessage) =>
  new Promise<Uint8Array>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => resolve(Buffer.concat(chunks)))
    req.on("error", reject)
  })

/** A receiver for the lifetime of the Scope. */
export const otlpReceiver = Effect.acquireRelease(
  Effect.async<{ receiver: Receiver; close: () => Promise<void> }>((resume) => {
    const spans: Array<ReceivedSpan> = []
    const types: Array<string> = []
    const server = createServer((req, res) => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end()
        return
      }
      bodyOf(req).then((body) => {
        const type = String(req.headers["content-type"] ?? "")
        types.push(type)
        try {
          spans.push(...(type.startsWith("application/json") ? decodeJson(body) : decodeProtobuf(body)))
          res.writeHead(200, { "content-type": type }).end(type.startsWith("application/json") ? "{}" : "")
        } catch (e) {
          res.writeHead(400).end(String(e))
        }
      }, () => res.writeHead(400).end())
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port
      resume(Effect.succeed({
        receiver: { url: `http://127.0.0.1:${port}`, spans: () => [...spans], contentTypes: () => [...types] },
        close: () => new Promise<void>((r) => server.close(() => r()))
      }))
    })
  }),
  ({ close }) => Effect.promise(close)
).pipe(Effect.map(({ receiver }) => receiver))
