/**
 * What an organism loaded from a file needs to run: the pump's embedded services configured
 * from its settings (history limits, token budgets), and the model router its `llm:` section
 * describes — sharing the pump's BudgetRegistry, so a conversation's budget is the same one
 * whether a handler or the router charges it.
 */
import { Layer } from "effect"
import type { LlmConfigError } from "../domain/Llm.js"
import { Pump, type PumpServices } from "../pipeline/Pump.js"
import { LlmRouter } from "../services/LlmRouter.js"
import type { LoadedOrganism } from "./loadOrganism.js"

export interface LayerForOrganismOptions {
  /** Where API keys are read (`Config.redacted`): this map, or else the ConfigProvider (process.env by default). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined
}

export const layerForOrganism = (
  loaded: LoadedOrganism,
  options: LayerForOrganismOptions = {}
): Layer.Layer<PumpServices | LlmRouter, LlmConfigError> => {
  const services = Pump.layerServicesFor(loaded.organism)
  const router = loaded.llm === undefined
    ? LlmRouter.layerNone(`${loaded.file} has no llm: section, so no model can be called`)
    : LlmRouter.layer(loaded.llm, { baseDir: loaded.baseDir, env: options.env })
  return Layer.provideMerge(router, services)
}
