import { Duration, Effect, Either, Queue } from "effect"
import { unwatchFile, watchFile } from "node:fs"
import { dirname, isAbsolute, resolve } from "node:path"
import { loadOrganism } from "../config/loadOrganism.js"
import { parseReference } from "../config/ModuleRef.js"
import { ReloadEvent } from "../domain/PumpEvent.js"
import type { Pump } from "../pipeline/Pump.js"
import type { Events } from "../services/Events.js"
import type { Organism } from "../domain/Organism.js"
import type { OrganismConfig } from "../domain/OrganismConfig.js"
import type { LlmRouter } from "../services/LlmRouter.js"

/** The organism file and every module file it references (built-in payload names excluded). */
const filesOf = (file: string, config: OrganismConfig): Array<string> => {
  const base = dirname(resolve(file))
  const refs = config.listeners.flatMap((l) => [
    l.payload,
    ...(l.accepts ?? []),
    ...(l.handler !== undefined ? [l.handler] : []),
    ...(l.on_system !== undefined ? [l.on_system] : [])
  ])
  const paths = refs.filter((r) => r.includes("#")).map((r) => parseReference(r).path)
  return [resolve(file), ...new Set(paths.map((p) => (isAbsolute(p) ? p : resolve(base, p))))]
}

/**
 * `organism run --watch`: polls the organism file and the modules it names (polling survives
 * editors that replace files on save), and on a change loads the new version and hot-reloads
 * the pump. A version that does not load is rejected with its problems; the organism keeps
 * running on the last good one. The `llm:` section is read once, at start: a version that
 * changes it is rejected with a note to restart. Runs until interrupted.
 */
export const watchOrganism = (
  file: string,
  initial: OrganismConfig,
  pump: Pump.Service,
  events: Events.Service,
  /** What `run` does to every version before the pump gets it (--verbose wraps handlers). */
  prepare: (organism: Organism<LlmRouter>) => Organism<LlmRouter> = (o) => o
) =>
  Effect.gen(function*() {
    const changes = yield* Queue.sliding<void>(1)
    let watched: Array<string> = []
    const listener = () => void changes.unsafeOffer(undefined)
    const watch = (files: Array<string>) => {
      for (const f of watched) unwatchFile(f, listener)
      watched = files
      for (const f of watched) watchFile(f, { interval: 250 }, listener)
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => watch([])))
    watch(filesOf(file, initial))
    const clock = yield* Effect.clock
    const reject = (problems: ReadonlyArray<string>) =>
      events.publish(
        new ReloadEvent({
          thread: null,
          time: clock.unsafeCurrentTimeMillis(),
          outcome: "rejected",
          added: [],
          removed: [],
          updated: [],
          details: [],
          problems: [...problems]
        }, true)
      )
    for (;;) {
      yield* Queue.take(changes)
      // Editors write in several steps: let the burst settle.
      yield* Effect.sleep(Duration.millis(150))
      yield* Queue.takeAll(changes)
      const loaded = yield* Effect.either(loadOrganism(file, { reload: true }))
      if (Either.isLeft(loaded)) {
        reject(loaded.left.problems.map(String))
        continue
      }
      // The model router was built from the llm: section at start (its backends, limits and
      // mock servers live for the whole run): a changed section needs a restart.
      if (JSON.stringify(loaded.right.config.llm) !== JSON.stringify(initial.llm)) {
        reject(["the llm: section changed; restart the organism to apply it (listeners were not reloaded)"])
        continue
      }
      // Its MCP servers too (mcp:).
      if (JSON.stringify(loaded.right.config.mcp) !== JSON.stringify(initial.mcp)) {
        reject(["the mcp: section changed; restart the organism to apply it (listeners were not reloaded)"])
        continue
      }
      const applied = yield* Effect.either(pump.reload(prepare(loaded.right.organism)))
      if (Either.isLeft(applied)) reject([applied.left.message])
      watch(filesOf(file, loaded.right.config))
    }
  }).pipe(Effect.scoped)
