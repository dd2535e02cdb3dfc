import { Args, Command, Options } from "@effect/cli"
import { Console, Effect } from "effect"
import { loadPayloadType } from "../config/ModuleRef.js"
import { specOf } from "../domain/Payload.js"
import { UsageError } from "./Exit.js"

const reference = Args.text({ name: "MODULE#Export" }).pipe(
  Args.withDescription("a payload type, e.g. ./examples/hello/payloads.ts#Greeting")
)
const json = Options.boolean("json").pipe(Options.withDescription("print {\"tag\",\"xsd\",\"example\"} as JSON"))

/** `organism schema MODULE#Export`: a payload type's XSD and example document. */
export const schemaCommand = Command.make("schema", { reference, json }, ({ json, reference }) =>
  Effect.gen(function*() {
    const type = yield* loadPayloadType(reference, process.cwd()).pipe(
      Effect.mapError((e) => new UsageError({ message: e.message }))
    )
    const spec = specOf(type)
    if (json) {
      yield* Console.log(JSON.stringify({ tag: spec.tag, xsd: spec.xsd, example: spec.example }))
      return
    }
    yield* Console.log(`<!-- XSD of ${spec.tag} (${reference}) -->\n${spec.xsd}`)
    yield* Console.log(`<!-- example ${spec.tag} document -->\n${spec.example}`)
  })).pipe(Command.withDescription("Print a payload type's XSD and example document"))
