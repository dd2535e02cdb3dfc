import { Schema } from "effect"
import { Payload } from "../../src/index.js"

export class ResearchRequest extends Payload.Class<ResearchRequest>("ResearchRequest", {
  description: "a topic to research"
})({
  topic: Schema.String
}) {}

export class ResearchNotes extends Payload.Class<ResearchNotes>("ResearchNotes", {
  description: "what was found about a topic"
})({
  topic: Schema.String,
  notes: Schema.Array(Schema.String)
}) {}

export class WriteRequest extends Payload.Class<WriteRequest>("WriteRequest", {
  description: "notes to turn into a short text for an audience"
})({
  notes: Schema.Array(Schema.String),
  audience: Schema.String
}) {}

export class Draft extends Payload.Class<Draft>("Draft", { description: "a written text" })({
  title: Schema.String,
  text: Schema.String
}) {}
