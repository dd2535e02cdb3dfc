/**
 * A shard's organism, loaded inside its worker thread: from an ES module's export (an
 * `Organism`, or a function of the source's `args` returning one) with the pump's embedded
 * services, or from an organism file as `organism run` loads it (its model router included).
 * Boot messages are sent by shard 0 only: an organism boots once however many shards run it.
 */
import { Effect, Layer } from "effect"
import { layerForOrganism } from "../config/layerForOrganism.js"
import { loadOrganism } from "../config/loadOrganism.js"
import type { Organism } from "../domain/Organism.js"
import { Pump, type PumpServices } from "../pipeline/Pump.js"
import { XmlEngine } from "../services/XmlEngine.js"
import type { ShardInit } from "./ShardProtocol.js"

export interface LoadedShard {
  readonly organism: Organism<any>
  readonly services: Layer.Layer<PumpServices, unknown>
  /** The module's exports (`Shards.call` runs its functions); empty for an organism file. */
  readonly module: Record<string, unknown>
}

const isOrganism = (value: unknown): value is Organism<any> =>
  value !== null && typeof value === "object" && "settings" in value && "listeners" in value &&
  Array.isArray((value as Organism<any>).listeners)

const bootOnce = (organism: Organism<any>, index: number): Organism<any> => index === 0 ? organism : { ...organism, boot: [] }

export const loadShardSource = (source: ShardInit["source"], index: number): Effect.Effect<LoadedShard, unknown> =>
  "yaml" in source
    ? Effect.map(Effect.provide(loadOrganism(source.yaml), XmlEngine.layer), (loaded) => ({
      organism: bootOnce(loaded.organism, index),
      // Its LLM agents' model router comes with the pump's services.
      services: layerForOrganism(loaded) as Layer.Layer<PumpServices, unknown>,
      module: {}
    }))
    : Effect.tryPromise({
      try: async () => {
        const module = await import(source.module) as Record<string, unknown>
        if (!(source.export in module)) {
          throw new Error(`${source.module} has no export ${source.export} (it exports ${Object.keys(module).join(", ") || "nothing"})`)
        }
        const exported = module[source.export]
        const value = typeof exported === "function" ? await exported(...source.args) : exported
        if (!isOrganism(value)) {
          throw new Error(`${source.module}#${source.export} is not an Organism${typeof exported === "function" ? " (the function's result)" : ""}: make it with Organism.make`)
        }
        return { organism: bootOnce(value, index), services: Pump.layerServicesFor(value) as Layer.Layer<PumpServices, unknown>, module }
      },
      catch: (e) => e
    })
