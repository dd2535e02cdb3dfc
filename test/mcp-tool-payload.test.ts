/**
 * A tool's input JSON Schema as a payload type: names, the mapping of JSON Schema types,
 * and the refusals (with the JSON-Schema path) for what XML cannot carry.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as Payload from "../src/domain/Payload.js"
import { listenerNameOf, payloadTagOf, toolTypes } from "../src/mcp/ToolPayload.js"

const types = (inputSchema: unknown, name = "tool") => toolTypes("srv", { name, inputSchema })
const refusal = (inputSchema: unknown) => {
  const r = types(inputSchema)
  return Either.isLeft(r) ? String(r.left) : "accepted"
}

describe("MCP tool payload types", () => {
  it.effect("names: the listener server.tool, the payload PascalCase, its result …Result", () =>
    Effect.sync(() => {
      expect(listenerNameOf("fs", "read_text_file")).toBe("fs.read_text_file")
      expect(listenerNameOf("ev", "get sum/now")).toBe("ev.get_sum_now")
      expect(payloadTagOf("fs", "read_text_file")).toBe("FsReadTextFile")
      expect(payloadTagOf("ev", "get-sum")).toBe("EvGetSum")
      expect(payloadTagOf("x", "2d.plot")).toBe("X2dPlot")
      const t = Either.getOrThrow(types({ type: "object", properties: {} }, "list-things"))
      expect([t.listener, t.call.payloadTag, t.result.payloadTag]).toEqual(["srv.list-things", "SrvListThings", "SrvListThingsResult"])
      expect(Payload.encode(t.result, new (t.result as any)({ text: "a < b", is_error: false }))).toEqual(
        Either.right("<SrvListThingsResult><Text>a &lt; b</Text><IsError>false</IsError></SrvListThingsResult>")
      )
    }))

  it.effect("JSON Schema types map to fields: scalars, enums, optional, arrays, nested objects, $ref", () =>
    Effect.sync(() => {
      const t = Either.getOrThrow(types({
        type: "object",
        $defs: { Point: { type: "object", properties: { x: { type: "number" }, y: { type: "number" } }, required: ["x", "y"] } },
        properties: {
          path: { type: "string", description: "where" },
          max_depth: { type: "integer" },
          ratio: { type: "number" },
          recursive: { type: "boolean" },
          mode: { enum: ["fast", "slow"] },
          tags: { type: "array", items: { type: "string" } },
          center: { $ref: "#/$defs/Point" },
          note: { type: ["string", "null"] },
          owner: { anyOf: [{ type: "string" }, { type: "null" }] }
        },
        required: ["path", "max_depth", "center", "note"],
        additionalProperties: false
      }))
      const xsd = Payload.xsdOf(t.call)
      expect(xsd).toContain(`name="Path" type="xs:string"`)
      expect(xsd).toMatch(/name="MaxDepth" type="xs:integer"/)
      expect(xsd).toMatch(/name="Ratio" type="xs:double" minOccurs="0"/)
      expect(xsd).toMatch(/name="Tags"[^>]*maxOccurs="unbounded"/)
      expect(xsd).toMatch(/<xs:enumeration value="fast"\/>/)
      const decode = Schema.decodeUnknownSync(t.call as any)
      const value = decode({ path: "/a", max_depth: 2, center: { x: 1, y: 2 }, tags: [], mode: "fast" })
      // Optional lists left empty are not sent; the rest goes as given, keys as the tool named them.
      expect(t.argumentsOf(value)).toEqual({ path: "/a", max_depth: 2, center: { x: 1, y: 2 }, mode: "fast" })
      expect(() => decode({ path: "/a", max_depth: 2.5, center: { x: 1, y: 2 } })).toThrow()
    }))

  it.effect("what XML cannot carry is refused with its JSON-Schema path", () =>
    Effect.sync(() => {
      expect(refusal({ type: "object", properties: { env: { type: "object", additionalProperties: { type: "string" } } } })).toBe(
        "inputSchema.properties.env.additionalProperties: a map of arbitrary keys has no fixed XML elements (give the object its properties, or additionalProperties: false)"
      )
      expect(refusal({ type: "object", properties: { v: { oneOf: [{ type: "string" }, { type: "number" }] } } })).toMatch(
        /^inputSchema\.properties\.v\.oneOf: a union of several schemas has no single XML form/
      )
      expect(refusal({ type: "object", properties: { v: { type: ["string", "number"] } } })).toMatch(/^inputSchema\.properties\.v\.type: several types/)
      expect(refusal({ type: "object", properties: { m: { type: "array", items: { type: "array", items: { type: "number" } } } } })).toMatch(
        /^inputSchema\.properties\.m\.items: an array of arrays/
      )
      expect(refusal({ type: "object", properties: { anything: {} } })).toMatch(/^inputSchema\.properties\.anything: a schema with no type/)
      expect(refusal({ type: "object", properties: { "a b!": { type: "string" } } })).toMatch(/not an XML element name/)
      expect(refusal({ type: "object", properties: { a_b: { type: "string" }, aB: { type: "string" } } })).toMatch(/would both be the element <AB>/)
      expect(refusal({
        type: "object",
        $defs: { Node: { type: "object", properties: { child: { $ref: "#/$defs/Node" } } } },
        properties: { root: { $ref: "#/$defs/Node" } }
      })).toMatch(/recursive/)
      expect(refusal({ type: "string" })).toMatch(/^inputSchema\.type: a tool's input must be an object/)
      expect(refusal(undefined)).toMatch(/^inputSchema: missing/)
    }))
})
