import { Effect } from "effect"
import { loadOrganism } from "../config/loadOrganism.js"
import type { Listener } from "../domain/Listener.js"
import { makeRouter } from "../pipeline/Router.js"
import { ThreadRegistry } from "../services/ThreadRegistry.js"
import { reportConfigError } from "./configErrors.js"
import { UsageError } from "./Exit.js"

/** The routes of an organism file, for `inspect --organism`: its listeners, not running. */
export const organismRoutes = (file: string) =>
  Effect.gen(function*() {
    const loaded = yield* loadOrganism(file).pipe(Effect.catchTag("OrganismConfigError", reportConfigError(2)))
    const registry = yield* ThreadRegistry.make
    return yield* makeRouter(loaded.organism.listeners as ReadonlyArray<Listener>, registry, [], loaded.organism.settings.wire).pipe(
      Effect.mapError((e) => new UsageError({ message: `${file}: ${e.message}` }))
    )
  })
