import { Console, Effect } from "effect"
import type { ConfigProblem, OrganismConfigError } from "../config/ConfigError.js"
import type { LlmConfigError } from "../domain/Llm.js"
import { ExitWith } from "./Exit.js"

/** Prints every problem of a broken organism file and exits with `code`. */
export const reportConfigError = (code: number) => (error: OrganismConfigError) =>
  Console.error(
    `organism: ${error.problems.length === 1 ? "a problem" : `${error.problems.length} problems`} in ${error.file}:\n` +
      error.problems.map((p) => `  ${String(p)}`).join("\n")
  ).pipe(Effect.zipRight(Effect.fail(new ExitWith({ code }))))

/** A model backend that cannot start (a missing API key, a mock script that does not load). */
export const reportLlmConfigError = (file: string) => (error: LlmConfigError) =>
  Console.error(`organism: ${file}: llm: ${error.message}`).pipe(
    Effect.zipRight(Effect.fail(new ExitWith({ code: 2 })))
  )

/** Things about a loaded organism file worth knowing (modules outside its folder). */
export const reportConfigWarnings = (warnings: ReadonlyArray<ConfigProblem>) =>
  Effect.forEach(warnings, (w) => Console.error(`organism: warning: ${String(w)}`), { discard: true })
