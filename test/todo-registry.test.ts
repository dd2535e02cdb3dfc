import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, FastCheck as fc, Option, TestClock } from "effect"
import { makeThreadId, type ThreadId } from "../src/domain/Ids.js"
import * as Payload from "../src/domain/Payload.js"
import { TodoClosed, TodoComplete, TodoRegistered, TodoUntil } from "../src/domain/TodoPayloads.js"
import {
  handleTodoComplete,
  handleTodoUntil,
  makeTodoRegistry,
  TodoNotFound,
  TodoRefused,
  TodoRegistry,
  type TodoRequester
} from "../src/services/TodoRegistry.js"
import { isTodoNotFound, isTodoRefused } from "../src/services/errors.js"

const root = makeThreadId()
const otherRoot = makeThreadId()
const writer: TodoRequester = { agent: "writer", root, thread: makeThreadId() }
const editor: TodoRequester = { agent: "editor", root, thread: makeThreadId() }

const seen = (r: ThreadId, payloadType: string, from: string) => ({ root: r, thread: makeThreadId(), payloadType, from })

describe("todo payloads", () => {
  it("are PascalCase on the wire, with FromListener optional", () => {
    expect(Either.getOrThrow(Payload.encode(TodoUntil, new TodoUntil({ waitFor: "ShoutedResponse", description: "wait" }))))
      .toBe("<TodoUntil><WaitFor>ShoutedResponse</WaitFor><Description>wait</Description></TodoUntil>")
    expect(Payload.xsdOf(TodoUntil)).toContain(`<xs:element name="FromListener" type="xs:string" minOccurs="0">`)
    expect(Either.getOrThrow(Payload.encode(TodoComplete, new TodoComplete({ id: "todo-1" })))).toBe(
      "<TodoComplete><Id>todo-1</Id></TodoComplete>"
    )
    expect(Either.getOrThrow(Payload.encode(TodoClosed, new TodoClosed({ id: "todo-1", wasRaised: true })))).toBe(
      "<TodoClosed><Id>todo-1</Id><WasRaised>true</WasRaised></TodoClosed>"
    )
  })
})

describe("TodoRegistry", () => {
  it.effect("system.todo registers a watcher and answers TodoRegistered with its id", () =>
    Effect.gen(function*() {
      const todos = yield* TodoRegistry.make()
      const reply = yield* handleTodoUntil(
        todos,
        new TodoUntil({ waitFor: "ShoutedResponse", fromListener: "shouter", description: "the shout" }),
        writer
      )
      expect(reply).toBeInstanceOf(TodoRegistered)
      expect(reply).toMatchObject({ id: "todo-1", waitFor: "ShoutedResponse", description: "the shout" })
      expect(yield* todos.openFor("writer", root)).toMatchObject([
        { id: "todo-1", agent: "writer", root, thread: writer.thread, waitFor: "ShoutedResponse", fromListener: "shouter", raisedBy: undefined }
      ])
      expect(yield* todos.nudgeFor("writer", root)).toEqual(Option.none()) // registered, not raised
    }))

  it.effect("raises on the exact payload type (case-insensitive) from the named sender (case-insensitive), once", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(42)
      const todos = yield* TodoRegistry.make()
      yield* todos.register(writer, { waitFor: "ShoutedResponse", fromListener: "Shouter", description: "the shout" })
      expect(yield* todos.observe(seen(root, "ShoutedResponses", "shouter"))).toEqual([]) // not a prefix match
      expect(yield* todos.observe(seen(root, "Shouted", "shouter"))).toEqual([])
      expect(yield* todos.observe(seen(root, "ShoutedResponse", "greeter"))).toEqual([]) // wrong sender
      expect(yield* todos.observe(seen(otherRoot, "ShoutedResponse", "shouter"))).toEqual([]) // another conversation
      const message = seen(root, "shoutedresponse", "SHOUTER")
      const raised = yield* todos.observe(message)
      expect(raised).toMatchObject([{ id: "todo-1", raisedBy: { payloadType: "shoutedresponse", from: "SHOUTER", thread: message.thread, time: 42 } }])
      expect(yield* todos.observe(seen(root, "ShoutedResponse", "shouter"))).toEqual([]) // raised once
      expect(yield* todos.stats).toEqual({ threads: 1, open: 1, raised: 1 })
    }))

  it.effect("without fromListener any sender counts", () =>
    Effect.gen(function*() {
      const todos = yield* TodoRegistry.make()
      yield* todos.register(writer, { waitFor: "Done", description: "anything done" })
      expect(yield* todos.observe(seen(root, "Done", "whoever"))).toHaveLength(1)
    }))

  it.effect("nudgeFor lists only that agent's raised, open todos, with the XML that closes each", () =>
    Effect.gen(function*() {
      const todos = yield* TodoRegistry.make()
      yield* todos.register(writer, { waitFor: "ResearchResult", fromListener: "researcher", description: "the research" })
      yield* todos.register(writer, { waitFor: "Review", description: "a review" })
      yield* todos.register(writer, { waitFor: "Never", description: "never comes" })
      yield* todos.register(editor, { waitFor: "Review", description: "editor's own" })
      yield* todos.observe(seen(root, "ResearchResult", "researcher"))
      yield* todos.observe(seen(root, "Review", "critic"))
      const nudge = Option.getOrThrow(yield* todos.nudgeFor("Writer", root))
      expect(nudge.todos.map((t) => t.id)).toEqual(["todo-1", "todo-2"])
      expect(nudge.text).toContain("todo-1: the research (waiting for ResearchResult from researcher)")
      expect(nudge.text).toContain("a ResearchResult from researcher has arrived")
      expect(nudge.text).toContain("<TodoComplete><Id>todo-1</Id></TodoComplete>")
      expect(nudge.text).toContain("<TodoComplete><Id>todo-2</Id></TodoComplete>")
      expect(nudge.text).not.toContain("todo-3")
      expect(nudge.text).not.toContain("todo-4")
      expect(nudge.text).toContain("system.todo-complete")
      expect(Option.getOrThrow(yield* todos.nudgeFor("editor", root)).todos.map((t) => t.id)).toEqual(["todo-4"])
      expect(yield* todos.nudgeFor("writer", otherRoot)).toEqual(Option.none())
      expect(yield* todos.nudgeFor("nobody", root)).toEqual(Option.none())
    }))

  it.effect("system.todo-complete closes the agent's own todo and says whether it had been raised", () =>
    Effect.gen(function*() {
      const todos = yield* TodoRegistry.make()
      const a = yield* handleTodoUntil(todos, new TodoUntil({ waitFor: "X", description: "x" }), writer)
      const b = yield* handleTodoUntil(todos, new TodoUntil({ waitFor: "Y", description: "y" }), writer)
      yield* todos.observe(seen(root, "X", "peer"))
      const closedA = yield* handleTodoComplete(todos, new TodoComplete({ id: a.id }), writer)
      expect(closedA).toBeInstanceOf(TodoClosed)
      expect(closedA).toMatchObject({ id: a.id, wasRaised: true })
      expect(yield* todos.nudgeFor("writer", root)).toEqual(Option.none())
      expect(yield* handleTodoComplete(todos, new TodoComplete({ id: ` ${b.id} ` }), writer)).toMatchObject({ id: b.id, wasRaised: false })
      expect(yield* todos.stats).toEqual({ threads: 0, open: 0, raised: 0 })
    }))

  it.effect("closing another agent's todo, another conversation's, an unknown or closed one: TodoNotFound", () =>
    Effect.gen(function*() {
      const todos = yield* TodoRegistry.make()
      const { id } = yield* handleTodoUntil(todos, new TodoUntil({ waitFor: "X", description: "x" }), writer)
      const attempts = [
        handleTodoComplete(todos, new TodoComplete({ id }), editor),
        handleTodoComplete(todos, new TodoComplete({ id }), { ...writer, root: otherRoot }),
        handleTodoComplete(todos, new TodoComplete({ id: "todo-99" }), writer)
      ]
      const agents = ["editor", "writer", "writer"]
      for (const [i, attempt] of attempts.entries()) {
        const exit = yield* Effect.exit(attempt)
        const id2 = i === 2 ? "todo-99" : id
        expect(exit).toStrictEqual(Exit.fail(new TodoNotFound({ id: id2, agent: agents[i]! })))
      }
      expect(yield* todos.openFor("writer", root)).toHaveLength(1)
      yield* handleTodoComplete(todos, new TodoComplete({ id }), writer)
      const again = yield* Effect.flip(handleTodoComplete(todos, new TodoComplete({ id }), writer))
      expect(again).toBeInstanceOf(TodoNotFound)
      expect(again.message).toBe(`writer has no open todo with id "${id}"`)
    }))

  it.effect("refuses an empty payload type and more than maxPerThread open todos", () =>
    Effect.gen(function*() {
      const todos = yield* TodoRegistry.make({ maxPerThread: 2 })
      const empty = yield* Effect.flip(handleTodoUntil(todos, new TodoUntil({ waitFor: "  ", description: "?" }), writer))
      expect(empty).toBeInstanceOf(TodoRefused)
      yield* todos.register(writer, { waitFor: "A", description: "" })
      yield* todos.register(editor, { waitFor: "B", description: "" })
      const full = yield* Effect.flip(todos.register(writer, { waitFor: "C", description: "" }))
      expect(full.message).toContain("2 open todos")
      // Another conversation has its own allowance.
      yield* todos.register({ ...writer, root: otherRoot }, { waitFor: "C", description: "" })
    }))

  it.effect("ids are numbered per conversation and never reused within it", () =>
    Effect.gen(function*() {
      const todos = yield* TodoRegistry.make()
      const a = yield* todos.register(writer, { waitFor: "X", description: "" })
      const b = yield* todos.register({ ...writer, root: otherRoot }, { waitFor: "X", description: "" })
      expect([a.id, b.id]).toEqual(["todo-1", "todo-1"])
      yield* todos.close(writer, a.id)
      expect((yield* todos.register(writer, { waitFor: "Y", description: "" })).id).toBe("todo-2")
      // A stale close of the first todo does not close the second.
      expect(yield* Effect.flip(todos.close(writer, "todo-1"))).toBeInstanceOf(TodoNotFound)
      expect((yield* todos.openFor("writer", root)).map((t) => t.id)).toEqual(["todo-2"])
      expect((yield* todos.openFor("writer", otherRoot)).map((t) => t.id)).toEqual(["todo-1"])
    }))

  it.effect("watchers go with their conversation", () =>
    Effect.gen(function*() {
      const todos = yield* TodoRegistry.make()
      yield* todos.register(writer, { waitFor: "X", description: "" })
      yield* todos.register({ ...writer, root: otherRoot }, { waitFor: "X", description: "" })
      yield* todos.cleanup(root)
      expect(yield* todos.observe(seen(root, "X", "p"))).toEqual([])
      expect(yield* todos.openFor("writer", root)).toEqual([])
      expect(yield* todos.stats).toEqual({ threads: 1, open: 1, raised: 0 })
    }))

  it("the synchronous twins answer as the Effects do, with errors as Either lefts", () => {
    const todos = makeTodoRegistry({ maxPerThread: 1 })
    const refused = todos.unsafeRegister(writer, { waitFor: " ", description: "" })
    expect(Either.isLeft(refused) && isTodoRefused(refused.left)).toBe(true)
    const w = Either.getOrThrow(todos.unsafeRegister(writer, { waitFor: "X", description: "x" }))
    expect(Either.isLeft(todos.unsafeRegister(editor, { waitFor: "Y", description: "" }))).toBe(true) // maxPerThread
    expect(todos.unsafeOpenFor("writer", root).map((t) => t.id)).toEqual([w.id])
    expect(todos.unsafeNudgeFor("writer", root)).toBeUndefined()
    expect(todos.unsafeObserve(seen(root, "x", "anyone")).map((t) => t.id)).toEqual([w.id])
    expect(todos.unsafeNudgeFor("writer", root)!.todos.map((t) => t.id)).toEqual([w.id])
    expect(todos.unsafeStats()).toEqual({ threads: 1, open: 1, raised: 1 })
    const notFound = todos.unsafeClose(editor, w.id)
    expect(Either.isLeft(notFound) && isTodoNotFound(notFound.left)).toBe(true)
    expect(Either.getOrThrow(todos.unsafeClose(writer, w.id)).raisedBy).toBeDefined()
    Either.getOrThrow(todos.unsafeRegister(writer, { waitFor: "Z", description: "" }))
    todos.unsafeCleanup(root)
    expect(todos.unsafeStats()).toEqual({ threads: 0, open: 0, raised: 0 })
  })

  describe("properties", () => {
    const roots = [root, otherRoot]
    const types = ["Alpha", "ALPHA", "beta", "Gamma"]
    const names = ["ann", "Ann", "bob", "cy"]
    type Op =
      | { readonly op: "register"; readonly agent: number; readonly root: number; readonly waitFor: string; readonly from: string | undefined }
      | { readonly op: "observe"; readonly root: number; readonly type: string; readonly from: string }
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constant("register" as const),
        agent: fc.nat(2),
        root: fc.nat(1),
        waitFor: fc.constantFrom(...types),
        from: fc.option(fc.constantFrom(...names), { nil: undefined })
      }),
      fc.record({ op: fc.constant("observe" as const), root: fc.nat(1), type: fc.constantFrom(...types), from: fc.constantFrom(...names) })
    )

    it.prop("a watcher is raised exactly by the first later message of its type, from its sender, on its conversation", [fc.array(op, { minLength: 10, maxLength: 80, size: "max" })], ([ops]) => {
      const todos = makeTodoRegistry({ maxPerThread: 1000 })
      const model: Array<{ id: string; agent: string; root: number; waitFor: string; from: string | undefined; raised: boolean }> = []
      for (const o of ops) {
        if (o.op === "register") {
          const agent = `agent${o.agent}`
          const w = Either.getOrThrow(todos.unsafeRegister({ agent, root: roots[o.root]!, thread: makeThreadId() }, { waitFor: o.waitFor, fromListener: o.from, description: "" }))
          model.push({ id: w.id, agent, root: o.root, waitFor: o.waitFor, from: o.from, raised: false })
          continue
        }
        const expected = model.filter((m) =>
          !m.raised && m.root === o.root && m.waitFor.toLowerCase() === o.type.toLowerCase() &&
          (m.from === undefined || m.from.toLowerCase() === o.from.toLowerCase())
        )
        for (const m of expected) m.raised = true
        expect(todos.unsafeObserve(seen(roots[o.root]!, o.type, o.from)).map((w) => w.id)).toEqual(expected.map((m) => m.id))
      }
      for (const [i, r] of roots.entries()) {
        for (const a of [0, 1, 2]) {
          const agent = `agent${a}`
          const raised = model.filter((m) => m.root === i && m.agent === agent && m.raised).map((m) => m.id)
          expect(todos.unsafeNudgeFor(agent, r)?.todos.map((t) => t.id) ?? []).toEqual(raised)
        }
      }
    }, { fastCheck: { numRuns: 200 } })
  })
})
