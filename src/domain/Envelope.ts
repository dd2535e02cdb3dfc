/**
 * The wire envelope, compatible with xml-pipeline:
 *
 * <message xmlns="https://xml-pipeline.org/ns/envelope/v1">
 *   <meta><from>…</from><to>…</to><thread>…</thread>…extras…</meta>
 *   <Payload xmlns="">…</Payload>
 * </message>
 */
import { Schema } from "effect"
import { escapeText } from "./xml/escape.js"

export const ENVELOPE_NS = "https://xml-pipeline.org/ns/envelope/v1"

/**
 * The envelope XSD, as xml-pipeline ships it: `from`, optional `to`, `thread`, then any
 * foreign-namespace extras (signatures…), then at most one payload of any namespace. The
 * pump demands exactly one payload; the extract stage says which rule was broken.
 */
export const ENVELOPE_XSD = `<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
           targetNamespace="${ENVELOPE_NS}"
           elementFormDefault="qualified">
  <xs:element name="message">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="meta">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="from" type="xs:string" minOccurs="1"/>
              <xs:element name="to" type="xs:string" minOccurs="0"/>
              <xs:element name="thread" type="xs:string" minOccurs="1"/>
              <xs:any namespace="##other" processContents="lax" minOccurs="0" maxOccurs="unbounded"/>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="1"/>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
</xs:schema>
`

/**
 * The meta and payload of an envelope, as read by the extract stage. A Struct (plain
 * objects), not a Class: one is made per message, and a class instance costs more to build
 * than the rest of the extract stage.
 */
export const Envelope = Schema.Struct({
  from: Schema.String,
  to: Schema.optional(Schema.String),
  /** The thread as written on the wire (thread decides what it becomes). */
  thread: Schema.String,
  /** Canonical XML of each foreign-namespace element in meta (signatures…). */
  extras: Schema.Array(Schema.String),
  payloadTag: Schema.String,
  payloadNamespace: Schema.String,
  /** Canonical XML of the payload element (without the `xmlns=""` the envelope needs). */
  payloadXml: Schema.String
}).annotations({ identifier: "Envelope" })
export type Envelope = typeof Envelope.Type

export interface EnvelopeParts {
  readonly from: string
  readonly to?: string | undefined
  readonly thread: string
  readonly extras?: ReadonlyArray<string>
  readonly payloadTag: string
  /** The payload element's content (fields), already XML. */
  readonly payloadInner: string
}

/**
 * Writes an envelope. Meta fields are escaped like any text; the result is already in
 * canonical form, so the canonicalize stage reproduces these exact bytes.
 */
export const writeEnvelope = (p: EnvelopeParts): string => {
  const to = p.to === undefined ? "" : `<to>${escapeText(p.to)}</to>`
  const extras = p.extras === undefined || p.extras.length === 0 ? "" : p.extras.join("")
  return `<message xmlns="${ENVELOPE_NS}"><meta><from>${escapeText(p.from)}</from>${to}<thread>${
    escapeText(p.thread)
  }</thread>${extras}</meta><${p.payloadTag} xmlns="">${p.payloadInner}</${p.payloadTag}></message>`
}
