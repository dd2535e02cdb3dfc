import type { Listener } from "../../domain/Listener.js"
import { bufferListeners } from "./Buffer.js"
import type { PrimitiveContext } from "./PrimitiveContext.js"
import { sequenceListener } from "./Sequence.js"

/** The built-in orchestration listeners, built once per pump (they keep run state). */
export const primitiveListeners = (ctx: PrimitiveContext): ReadonlyArray<Listener> => [
  sequenceListener(ctx),
  ...bufferListeners(ctx)
]

/** The organism's listeners plus the built-in ones it does not define itself. */
export const withPrimitives = (
  listeners: ReadonlyArray<Listener>,
  builtIn: ReadonlyArray<Listener>
): ReadonlyArray<Listener> => {
  const taken = new Set(listeners.map((l) => l.name.toLowerCase()))
  return [...listeners, ...builtIn.filter((l) => !taken.has(l.name.toLowerCase()))]
}
