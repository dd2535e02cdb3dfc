/**
 * `Listener` as the package exports it: `Listener.make` for a listener with a handler of
 * yours, and `Listener.llmAgent` for an agent whose handler is a model (it lives with the
 * agent's code, which the domain may not import).
 */
import { Listener as DomainListener } from "../domain/Listener.js"
import { llmAgent } from "./agents/LlmAgent.js"

export type Listener<A = any, R = any> = DomainListener<A, R>

export const Listener = { make: DomainListener.make, llmAgent } as const
