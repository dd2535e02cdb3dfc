/**
 * The organism hostile input is thrown at (adversarial corpus, fuzzing): a sink for Note and
 * free-form Doc, an echo that replies to whoever sent a Ping (so replies to hostile senders go
 * through the pipeline too), and two broadcast listeners of Note.
 */
import { Listener } from "../../src/domain/Listener.js"
import { Organism, type OrganismOptions } from "../../src/domain/Organism.js"
import { Reply } from "../../src/domain/Reply.js"
import { Doc } from "./payloads.js"
import { Note, Ping, Pong } from "./pump.js"

export const ENVELOPE_NS = "https://xml-pipeline.org/ns/envelope/v1"

export const hostileOrganism = (settings: OrganismOptions<never>["settings"] = {}) =>
  Organism.make({
    name: "hostile",
    settings,
    listeners: [
      Listener.make({ name: "sink", payload: Note, accepts: [Doc], handler: () => Reply.none }),
      Listener.make({ name: "echo", payload: Ping, handler: (p) => Reply.respond(new Pong({ n: p.n })) }),
      Listener.make({ name: "fan-a", payload: Note, broadcast: true, handler: () => Reply.none }),
      Listener.make({ name: "fan-b", payload: Note, broadcast: true, handler: () => Reply.none })
    ]
  })

/** Documents no compiled schema owns: parsed messages still alive (0 when idle). */
export const looseDocuments = (handles: { readonly documents: number; readonly schemas: number }) =>
  // Each compiled schema owns one document, and a pump compiles a schema for a type it
  // learns at run time (a reply type no listener declares).
  handles.documents - handles.schemas
