/**
 * `system.todo` and `system.todo-complete`: an agent registers a watcher ("tell me when a
 * <Review> arrives from reviewer") and closes it. The registry lives in TodoRegistry; these
 * listeners only say who is asking — the agent that sent the request, on its own hop.
 */
import { Effect, Option } from "effect"
import { Listener } from "../../domain/Listener.js"
import { Reply } from "../../domain/Reply.js"
import { SystemErrors } from "../../domain/SystemPayloads.js"
import { TodoComplete, TodoUntil } from "../../domain/TodoPayloads.js"
import { handleTodoComplete, handleTodoUntil, TodoRegistry } from "../../services/TodoRegistry.js"
import { Conversation } from "../Conversation.js"

export const TODO = "system.todo"
export const TODO_COMPLETE = "system.todo-complete"

export const todoListeners = () => {
  const requester = (conversation: Conversation.Service) => ({
    agent: conversation.from,
    root: conversation.root,
    // The agent's own hop: the one this request was forwarded from.
    thread: Option.getOrElse(conversation.caller, () => conversation.thread)
  })
  const handle = <A extends object, E extends { readonly message: string }>(
    run: (todos: TodoRegistry.Service, conversation: Conversation.Service) => Effect.Effect<A, E>
  ) => Effect.flatMap(Effect.all([TodoRegistry, Conversation]), ([todos, conversation]) => answer(run(todos, conversation)))
  const answer = <A extends object, E extends { readonly message: string }>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.map((reply) => Reply.respond(reply)),
      Effect.catchAll((e) => Effect.succeed(Reply.respond(SystemErrors.invalid(e.message))))
    )
  return [
    Listener.make({
      name: TODO,
      payload: TodoUntil,
      description: "Registers a todo: you are reminded once a message of the given type (optionally from a given listener) arrives in this conversation. Answers TodoRegistered with the id to close it.",
      handler: (request) => handle((todos, conversation) => handleTodoUntil(todos, request, requester(conversation)))
    }),
    Listener.make({
      name: TODO_COMPLETE,
      payload: TodoComplete,
      description: "Closes one of your todos by id. Answers TodoClosed.",
      handler: (request) => handle((todos, conversation) => handleTodoComplete(todos, request, requester(conversation)))
    })
  ] as const
}
