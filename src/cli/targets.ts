import { closest } from "../config/suggest.js"

/**
 * A console line or --send for a name no listener has: what to tell the user (the message is
 * still sent, and rejected as UnknownRoute, so counts and --strict stay honest).
 */
export const unknownTargetHint = (to: string, listeners: ReadonlyArray<string>): string | undefined => {
  if (listeners.some((l) => l.toLowerCase() === to.toLowerCase())) return undefined
  const names = listeners.filter((l) => !l.startsWith("system."))
  const near = closest(to, names)
  return `organism: no listener is called "${to}"` +
    (near !== undefined ? ` — did you mean "@${near}"?` : names.length > 0 ? ` (listeners: ${names.join(", ")})` : "")
}
