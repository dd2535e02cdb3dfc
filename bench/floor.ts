/**
 * The floor: the bare libxml2 work of one message — parse, envelope XSD, Exclusive C14N,
 * payload XSD — through the same binding the engine uses, with no framework around it.
 * Everything the pump adds is measured against this, in the same run.
 */
import { ENVELOPE_XSD } from "../src/domain/Envelope.js"
import { hardenedFlags, instantiate } from "../src/services/internal/libxml2.js"

/** Its own libxml2 instance, like each XmlEngine layer. */
const Raw = await instantiate()

export interface Floor {
  readonly perSecond: number
  readonly microseconds: number
}

const compile = (xsd: string) => {
  const r = Raw.compileSchema(xsd)
  if (r._tag !== "Compiled") throw new Error(`floor: XSD does not compile: ${JSON.stringify(r.errors)}`)
  return r.schema
}

/** Measures the floor for `envelope` whose payload validates against `payloadXsd`. */
export const measureFloor = (envelope: Uint8Array, payloadXsd: string, seconds = 1.5): Floor => {
  const env = compile(ENVELOPE_XSD)
  const pay = compile(payloadXsd)
  const once = () => {
    const doc = Raw.readDocument(envelope, hardenedFlags)
    if (Raw.validateDocument(env, doc).length > 0) throw new Error("floor: envelope invalid")
    if (Raw.canonicalize(doc)._tag !== "Canonical") throw new Error("floor: no canonical form")
    if (Raw.validateElement(pay, Raw.nthElementChild(Raw.rootElement(doc), 1)).length > 0) {
      throw new Error("floor: payload invalid")
    }
    Raw.freeDocument(doc)
  }
  for (let i = 0; i < 5000; i++) once()
  let n = 0
  const started = performance.now()
  const until = started + seconds * 1000
  while (performance.now() < until) {
    for (let i = 0; i < 1000; i++) once()
    n += 1000
  }
  const elapsed = (performance.now() - started) / 1000
  Raw.freeSchema(env)
  Raw.freeSchema(pay)
  return { perSecond: n / elapsed, microseconds: (elapsed * 1e6) / n }
}
