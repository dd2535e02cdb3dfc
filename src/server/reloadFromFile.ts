/**
 * `POST /api/reload`: the organism file is loaded again and the pump hot-reloaded with it,
 * the way `organism run --watch` does on a change. A version that does not load, or that the
 * pump refuses, changes nothing: the answer lists its problems (422).
 */
import { Effect, Either } from "effect"
import { loadOrganism } from "../config/loadOrganism.js"
import type { Organism } from "../domain/Organism.js"
import type { OrganismConfig } from "../domain/OrganismConfig.js"
import type { Pump } from "../pipeline/Pump.js"
import type { LlmRouter } from "../services/LlmRouter.js"
import { ReloadFailed } from "./ServeApi.js"

export const makeReload = (
  file: string,
  initial: OrganismConfig,
  pump: Pump.Service,
  prepare: (organism: Organism<LlmRouter>) => Organism<LlmRouter> = (o) => o
) => {
  const failed = (problems: ReadonlyArray<string>) =>
    new ReloadFailed({ message: `reload refused: ${problems.join("; ")}`, problems: [...problems] })
  return Effect.gen(function*() {
    const loaded = yield* Effect.either(loadOrganism(file, { reload: true }))
    if (Either.isLeft(loaded)) return yield* failed(loaded.left.problems.map(String))
    // The model router was built from the llm: section at start.
    if (JSON.stringify(loaded.right.config.llm) !== JSON.stringify(initial.llm)) {
      return yield* failed(["the llm: section changed; restart the server to apply it"])
    }
    // So were the MCP servers, from the mcp: section.
    if (JSON.stringify(loaded.right.config.mcp) !== JSON.stringify(initial.mcp)) {
      return yield* failed(["the mcp: section changed; restart the server to apply it"])
    }
    const diff = yield* Effect.mapError(pump.reload(prepare(loaded.right.organism)), (e) => failed([e.message]))
    return { added: diff.added, removed: diff.removed, updated: diff.updated, details: diff.details }
  })
}
