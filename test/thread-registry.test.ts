/** ThreadRegistry on its own: chains, liveness and hooks, through the Effect interface and its twins. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { makeThreadId } from "../src/domain/Ids.js"
import { type RootThread, ThreadRegistry } from "../src/services/ThreadRegistry.js"

describe("ThreadRegistry", () => {
  it.effect("chains grow by forwarding and shrink by responding; lookups are Options", () =>
    Effect.gen(function*() {
      const threads = yield* ThreadRegistry.make
      const writer = yield* threads.startRoot("console", "writer")
      expect(writer.root.id).toBe(writer.id) // the first hop carries the root id
      const researcher = yield* threads.extend(writer, "researcher")
      const again = yield* threads.extend(writer, "researcher")
      expect(again.id).not.toBe(researcher.id) // every forward is its own hop
      expect(yield* threads.chain(researcher)).toEqual(["console", "writer", "researcher"])
      expect(yield* threads.prune(researcher)).toEqual(Option.some(writer))
      expect(yield* threads.prune(writer.root.top)).toEqual(Option.none())
      expect(yield* threads.lookup(researcher.id)).toEqual(Option.some(researcher))
      expect(yield* threads.lookup(makeThreadId())).toEqual(Option.none())
      expect(yield* threads.stats).toEqual({ roots: 1, nodes: 4 })
      // The twins answer the same.
      expect(threads.unsafeLookup(researcher.id)).toBe(researcher)
      expect(threads.unsafeChain(researcher)).toEqual(["console", "writer", "researcher"])
      expect(threads.unsafePrune(writer.root.top)).toBeUndefined()
      expect(threads.unsafeStats()).toEqual({ roots: 1, nodes: 4 })
    }))

  it.effect("a root completes when nothing is live in it; branch-end and completion hooks run once", () =>
    Effect.gen(function*() {
      const threads = yield* ThreadRegistry.make
      const completed: Array<string> = []
      yield* Effect.scoped(
        Effect.gen(function*() {
          yield* threads.onComplete((root: RootThread) => void completed.push(root.id))
          const writer = yield* threads.startRoot("console", "writer")
          const call = yield* threads.extend(writer, "researcher")
          const ended: Array<string> = []
          yield* threads.onBranchEnd(call, (n) => void ended.push(n.name))
          yield* threads.retain(writer)
          yield* threads.retain(call)
          yield* threads.release(call)
          expect(ended).toEqual(["researcher"])
          expect(completed).toEqual([]) // the writer is still live
          yield* threads.release(writer)
          expect(completed).toEqual([writer.root.id])
          expect(yield* threads.stats).toEqual({ roots: 0, nodes: 0 })
          expect(yield* threads.lookup(writer.id)).toEqual(Option.none())
        })
      )
      // The hook went with its Scope.
      const next = threads.unsafeStartRoot("console", "writer")
      threads.unsafeRetain(next)
      threads.unsafeRelease(next)
      expect(completed).toHaveLength(1)
      // The twin returns the remover instead.
      const remove = threads.unsafeOnComplete((root) => void completed.push(root.id))
      const last = threads.unsafeStartRoot("console", undefined, makeThreadId())
      threads.unsafeRetain(last)
      threads.unsafeRelease(last)
      expect(completed).toEqual([completed[0], last.root.id])
      remove()
    }))

  it.effect("a canonical id from outside becomes the root id unless it is already in use", () =>
    Effect.gen(function*() {
      const threads = yield* ThreadRegistry.make
      const id = makeThreadId()
      const first = yield* threads.startRoot("api", "writer", id)
      expect(first.root.id).toBe(id)
      const second = yield* threads.startRoot("api", "writer", id)
      expect(second.root.id).not.toBe(id)
      // A broadcast from outside: the injector's own node carries the root id.
      const broadcast = yield* threads.startRoot("api", undefined)
      expect(broadcast.id).toBe(broadcast.root.id)
      expect(broadcast.depth).toBe(0)
    }))

  it.effect("every node of a live conversation is found by its id, whenever it was made; none of a completed one", () =>
    Effect.gen(function*() {
      const threads = yield* ThreadRegistry.make
      const a = threads.unsafeStartRoot("console", "writer")
      const b = threads.unsafeStartRoot("console", "writer")
      const a1 = threads.unsafeExtend(a, "researcher")
      expect(threads.unsafeLookup(a1.id)).toBe(a1)
      // Made after a lookup, in both conversations: found too.
      const a2 = threads.unsafeExtend(a1, "critic")
      const b1 = threads.unsafeExtend(b, "researcher")
      expect(threads.unsafeLookup(b1.id)).toBe(b1)
      expect(threads.unsafeLookup(a2.id)).toBe(a2)
      expect(threads.unsafeLookup(a.root.top.id)).toBe(a.root.top)
      const a3 = threads.unsafeExtend(a2, "writer")
      const b2 = threads.unsafeExtend(b1, "critic")
      expect(threads.unsafeStats()).toEqual({ roots: 2, nodes: 9 })
      // `a` completes with a3 never looked up, `b` with b2 never looked up.
      threads.unsafeRetain(a3)
      threads.unsafeRelease(a3)
      expect(threads.unsafeStats()).toEqual({ roots: 1, nodes: 4 })
      for (const n of [a, a1, a2, a3, a.root.top]) expect(threads.unsafeLookup(n.id)).toBeUndefined()
      expect(threads.unsafeLookup(b2.id)).toBe(b2)
      threads.unsafeRetain(b2)
      threads.unsafeRelease(b2)
      for (const n of [b, b1, b2]) expect(threads.unsafeLookup(n.id)).toBeUndefined()
      expect(threads.unsafeStats()).toEqual({ roots: 0, nodes: 0 })
      // A completed conversation's id is free again for a conversation from outside.
      expect(threads.unsafeStartRoot("api", "writer", a.root.id).root.id).toBe(a.root.id)
    }))
})
