/** Payload types covering every supported shape, shared by the tests. */
import { Schema } from "effect"
import * as Payload from "../../src/domain/Payload.js"

export class Text extends Payload.Class<Text>("Text")({ text: Schema.String }) {}
export class Num extends Payload.Class<Num>("Num")({ value: Schema.Number }) {}
export class Int extends Payload.Class<Int>("Int")({ value: Schema.Int }) {}
export class Flag extends Payload.Class<Flag>("Flag")({ value: Schema.Boolean }) {}
export class Choice extends Payload.Class<Choice>("Choice")({
  color: Schema.Literal("red", "green", "blue"),
  level: Schema.Literal(1, 2, 3)
}) {}
export class Maybe extends Payload.Class<Maybe>("Maybe")({
  note: Schema.optional(Schema.String),
  count: Schema.optional(Schema.Int)
}) {}
export class Lists extends Payload.Class<Lists>("Lists")({
  tags: Schema.Array(Schema.String),
  scores: Schema.NonEmptyArray(Schema.Number)
}) {}
export class Point extends Schema.Class<Point>("Point")({ x: Schema.Int, y: Schema.Int, label: Schema.optional(Schema.String) }) {}
export class Shape extends Payload.Class<Shape>("Shape")({
  center: Point,
  corners: Schema.Array(Point),
  bounds: Schema.Struct({ min: Schema.Number, max: Schema.Number })
}) {}
export class Doc extends Payload.Class<Doc>("Doc")({ title: Schema.String, body: Payload.Xml }) {}
export class Everything extends Payload.Class<Everything>("Everything")({
  message: Schema.String,
  original_sender: Schema.String,
  count: Schema.optional(Schema.Int),
  ratio: Schema.Number,
  ok: Schema.Boolean,
  mood: Schema.Literal("happy", "sad"),
  tags: Schema.Array(Schema.String),
  center: Point,
  corners: Schema.Array(Point),
  body: Payload.Xml
}) {}

/** xml-pipeline's own example payload. */
export class Greeting extends Payload.Class<Greeting>("Greeting")({ name: Schema.String }) {}

export const allPayloads = [Text, Num, Int, Flag, Choice, Maybe, Lists, Shape, Doc, Everything, Greeting] as const
