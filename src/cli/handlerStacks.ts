/**
 * `organism run --verbose`: a failing handler's stack. The pump reports a failure as one
 * line (`⚠ shouter failed: boom`); with --verbose each handler the file names is wrapped so
 * that its error, with the stack (of the user's TypeScript, through tsx's source maps), or
 * the whole Effect Cause, goes to standard error too. The outcome is passed on unchanged.
 */
import { Cause, Effect } from "effect"
import type { Handler, Listener } from "../domain/Listener.js"
import type { Organism } from "../domain/Organism.js"

/** The error's stack down to the handler: the frames below it are the pump's. */
const describe = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const lines = (error.stack ?? `${error.name}: ${error.message}`).split("\n")
  const ours = lines.findIndex((l) => /handlerStacks\.(ts|js)/.test(l))
  return (ours === -1 ? lines : lines.slice(0, ours)).join("\n")
}

const traced = <A, R>(listener: string, handler: Handler<A, R>, report: (listener: string, text: string) => void): Handler<A, R> =>
(payload, meta) => {
  let result: ReturnType<Handler<A, R>>
  try {
    result = handler(payload, meta)
  } catch (e) {
    report(listener, describe(e))
    throw e
  }
  if (Effect.isEffect(result)) {
    return Effect.tapErrorCause(result, (cause) =>
      Cause.isInterruptedOnly(cause) ? Effect.void : Effect.sync(() => report(listener, Cause.pretty(cause, { renderErrorCause: true }))))
  }
  if (result instanceof Promise) {
    return result.catch((e: unknown) => {
      report(listener, describe(e))
      throw e
    })
  }
  return result
}

/**
 * One wrapper per listener and handler function: a hot reload that keeps a handler keeps its
 * wrapper, so the pump does not count the listener as updated.
 */
const wrappers = new WeakMap<Function, Map<string, Function>>()

const wrapped = <A, R>(listener: string, handler: Handler<A, R>, report: (listener: string, text: string) => void) => {
  let byListener = wrappers.get(handler)
  if (byListener === undefined) wrappers.set(handler, byListener = new Map())
  const known = byListener.get(listener)
  if (known !== undefined) return known as Handler<A, R>
  const made = traced(listener, handler, report)
  byListener.set(listener, made)
  return made
}

/** The organism with its code handlers wrapped (LLM agents' handlers are the framework's). */
export const withStackReports = <R>(
  organism: Organism<R>,
  report: (listener: string, text: string) => void
): Organism<R> => ({
  ...organism,
  listeners: organism.listeners.map((l): Listener<any, R> =>
    l.llm !== undefined
      ? l
      : {
        ...l,
        handler: wrapped(l.name, l.handler, report),
        onSystem: l.onSystem === undefined ? undefined : wrapped(l.name, l.onSystem, report)
      }
  )
})

/** Writes a report: the listener, then the stack, indented. */
export const reportToStderr = (listener: string, text: string): void => {
  process.stderr.write(`organism: ${listener} failed:\n${text.split("\n").map((l) => `  ${l}`).join("\n")}\n`)
}
