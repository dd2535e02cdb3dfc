import { Args, Command, Options } from "@effect/cli"
import { Console, Effect, Option } from "effect"
import { loadPayloadTypes } from "../config/ModuleRef.js"
import { Ingress } from "../pipeline/Ingress.js"
import { type RouteResolver, routesForPayloads } from "../pipeline/Router.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { ExitWith, UsageError } from "./Exit.js"
import { readInput } from "./input.js"
import { organismRoutes } from "./organismRoutes.js"
import { renderVerdict, verdictOf } from "./Verdict.js"

const file = Args.text({ name: "FILE" }).pipe(
  Args.withDescription("envelope file to inspect, or - for standard input"),
  Args.withDefault("-")
)
const organism = Options.text("organism").pipe(
  Options.withDescription("validate and decode the payload against this organism's listeners"),
  Options.optional
)
const payloads = Options.text("payloads").pipe(
  Options.withDescription("validate and decode against the payload types a module exports (./module.ts)"),
  Options.optional
)
const c14n = Options.boolean("c14n").pipe(Options.withDescription("also print the canonical (Exclusive C14N) form"))
const json = Options.boolean("json").pipe(Options.withDescription("print one JSON object"))

/**
 * `organism inspect`: runs the ingress stages on one envelope and prints the verdict.
 * Exit code 0 when accepted, 1 when rejected, 2 for usage errors.
 */
export const inspectCommand = Command.make(
  "inspect",
  { file, organism, payloads, c14n, json },
  (opts) =>
    Effect.gen(function*() {
      if (Option.isSome(opts.organism) && Option.isSome(opts.payloads)) {
        return yield* new UsageError({ message: "use either --organism or --payloads, not both" })
      }
      const bytes = yield* readInput(opts.file)
      const ingress = yield* Ingress.make()
      let routes: RouteResolver | undefined
      if (Option.isSome(opts.payloads)) {
        const types = yield* loadPayloadTypes(opts.payloads.value, process.cwd()).pipe(
          Effect.mapError((e) => new UsageError({ message: e.message }))
        )
        routes = yield* routesForPayloads(types)
      } else if (Option.isSome(opts.organism)) {
        routes = yield* organismRoutes(opts.organism.value)
      }
      const verdict = verdictOf(ingress.run(bytes, routes), opts.c14n)
      yield* Console.log(opts.json ? JSON.stringify(verdict) : renderVerdict(verdict))
      if (!verdict.accepted) return yield* new ExitWith({ code: 1 })
    }).pipe(Effect.scoped, Effect.provide(XmlEngine.layer))
).pipe(Command.withDescription("Run the ingress stages on one envelope and print the verdict"))
