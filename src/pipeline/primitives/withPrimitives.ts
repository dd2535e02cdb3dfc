import type { Listener } from "../../domain/Listener.js"
import { bufferListeners } from "./Buffer.js"
import type { PrimitiveContext } from "./PrimitiveContext.js"
import { sequenceListener } from "./Sequence.js"

/** The organism's listeners plus the built-in primitives it does not define itself. */
export const withPrimitives = (listeners: ReadonlyArray<Listener>, ctx: PrimitiveContext): ReadonlyArray<Listener> => {
  const taken = new Set(listeners.map((l) => l.name.toLowerCase()))
  const builtIn: ReadonlyArray<Listener> = [sequenceListener(ctx), ...bufferListeners(ctx)]
  return [...listeners, ...builtIn.filter((l) => !taken.has(l.name.toLowerCase()))]
}
