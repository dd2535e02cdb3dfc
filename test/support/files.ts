/**
 * The loaders that read files, on Node's FileSystem and Path (`@effect/platform-node`): the
 * same functions the CLI runs under `NodeContext.layer`.
 */
import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { loadOrganism as loadOrganismFrom } from "../../src/config/loadOrganism.js"
import { loadMockScript as loadMockScriptFrom } from "../../src/llm/MockScript.js"

export const loadOrganism = (...args: Parameters<typeof loadOrganismFrom>) => Effect.provide(loadOrganismFrom(...args), NodeContext.layer)

export const loadMockScript = (path: string) => Effect.provide(loadMockScriptFrom(path), NodeContext.layer)
