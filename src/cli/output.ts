/**
 * Standard output for a long run (`organism run`): writes that wait while the reader is
 * behind, and a reader that goes away (EPIPE, ENOBUFS…) as an event the run handles — it
 * stops in order, closing its journal — rather than an exit or an uncaught exception.
 */
import { Deferred, Effect } from "effect"

/** Streams whose errors a command handles itself; main's "EPIPE: exit 0" skips them. */
const owned = new WeakSet<NodeJS.WritableStream>()

/** Does a command handle this stream's errors? (Asked by main's error listener.) */
export const ownsErrors = (stream: NodeJS.WritableStream): boolean => owned.has(stream)

export interface Output {
  /**
   * Writes text. When the stream's buffer is over its high-water mark, waits until it has
   * drained: a slow reader slows the writer down instead of growing the process's memory.
   * Does nothing once the output is gone.
   */
  readonly write: (text: string) => Effect.Effect<void>
  /** Completes, with what happened, when the reader went away or the stream failed. */
  readonly gone: Deferred.Deferred<string>
  readonly isGone: () => boolean
  /** True while a write waits for the reader (the stream's buffer is full). */
  readonly isBlocked: () => boolean
}

/** Takes over `stream`'s errors for the life of the Scope. */
export const makeOutput = (stream: NodeJS.WritableStream & { writableNeedDrain?: boolean }) =>
  Effect.gen(function*() {
    const gone = yield* Deferred.make<string>()
    let isGone = false
    const onError = (e: NodeJS.ErrnoException) => {
      if (isGone) return
      isGone = true
      Deferred.unsafeDone(gone, Effect.succeed(e.code === "EPIPE" ? "the reader of standard output went away" : `standard output failed: ${e.code ?? e.message}`))
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        owned.add(stream)
        stream.on("error", onError)
      }),
      () =>
        Effect.sync(() => {
          owned.delete(stream)
          stream.off("error", onError)
        })
    )
    let blocked = false
    const waitForDrain = Effect.async<void>((resume) => {
      blocked = true
      const done = () => {
        blocked = false
        stream.off("drain", done)
        stream.off("error", done)
        stream.off("close", done)
        resume(Effect.void)
      }
      stream.on("drain", done)
      stream.on("error", done)
      stream.on("close", done)
      return Effect.sync(() => {
        blocked = false
        stream.off("drain", done)
        stream.off("error", done)
        stream.off("close", done)
      })
    })
    const output: Output = {
      gone,
      isGone: () => isGone,
      isBlocked: () => blocked,
      write: (text) =>
        Effect.suspend(() => {
          if (isGone || text === "") return Effect.void
          return stream.write(text) || isGone ? Effect.void : waitForDrain
        })
    }
    return output
  })
