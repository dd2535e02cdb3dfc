/** A ready-built ingress (envelope XSD + routes for the test payloads) as a test Layer. */
import { Context, Effect, Layer } from "effect"
import { writeEnvelope } from "../../src/domain/Envelope.js"
import { type PayloadType, specOf, type WireMode } from "../../src/domain/Payload.js"
import { defaultIngressConfig, type Ingress, type IngressConfig, Ingress as IngressModule } from "../../src/pipeline/Ingress.js"
import { type RouteResolver, routesForPayloads } from "../../src/pipeline/Router.js"
import { XmlEngine } from "../../src/services/XmlEngine.js"
import { allPayloads } from "./payloads.js"

export class IngressFixture extends Context.Tag("test/IngressFixture")<IngressFixture, {
  readonly ingress: Ingress
  readonly routes: RouteResolver
  readonly engine: XmlEngine.Service
}>() {
  static readonly layerWith = (config: IngressConfig) =>
    Layer.scoped(
      IngressFixture,
      Effect.gen(function*() {
        const engine = yield* XmlEngine
        const ingress = yield* IngressModule.make(config)
        const routes = yield* routesForPayloads(allPayloads)
        return { ingress, routes, engine }
      })
    ).pipe(Layer.provide(XmlEngine.layer))

  static readonly layer = IngressFixture.layerWith(defaultIngressConfig)
}

export const THREAD = "550e8400-e29b-41d4-a716-446655440000"

/** An envelope around a payload value, as the pump writes it. */
export const envelopeOf = <A>(
  payload: PayloadType<A>,
  value: A,
  meta: { from?: string; to?: string; thread?: string } = {},
  wire?: WireMode
): Uint8Array => {
  const spec = specOf(payload, wire)
  return Buffer.from(writeEnvelope({
    from: meta.from ?? "tester",
    to: meta.to ?? "receiver",
    thread: meta.thread ?? THREAD,
    payloadTag: spec.tag,
    payloadInner: spec.encodeInner(value)
  }))
}

export const bytes = (s: string): Uint8Array => Buffer.from(s, "utf8")
