/**
 * `system.buffer`: fans items out to one listener, at most `maxConcurrent` at a time, and
 * collects the results in item order with per-item success or failure (BufferComplete); with
 * `collect: false` it answers BufferDispatched at once.
 *
 * Replies to parallel forwards all come back on the forwarder's own thread, so they cannot be
 * told apart there. Each item therefore travels through `system.buffer.item`, on a hop of its
 * own: that hop knows its item's index, sees the target's reply (or SystemError, or the branch
 * ending without one) and reports BufferItemDone back to the buffer.
 */
import { Effect, Either } from "effect"
import type { ThreadId } from "../../domain/Ids.js"
import { type HandlerMetadata, Listener } from "../../domain/Listener.js"
import {
  BufferComplete,
  BufferDispatched,
  BufferItem,
  BufferItemDone,
  BufferItemResult,
  BufferStart
} from "../../domain/PrimitivePayloads.js"
import { type PayloadValue, Reply } from "../../domain/Reply.js"
import { SystemError } from "../../domain/SystemPayloads.js"
import { Conversation } from "../Conversation.js"
import { payloadFromXml } from "./payloadFromXml.js"

export const BUFFER = "system.buffer"
export const BUFFER_ITEM = "system.buffer.item"
const DEFAULT_MAX_CONCURRENT = 8

interface Run {
  readonly target: string
  readonly items: ReadonlyArray<string>
  readonly collect: boolean
  readonly maxConcurrent: number
  readonly results: Array<BufferItemResult | undefined>
  next: number
  done: number
}

export const bufferListeners = () => {
  const runs = new Map<ThreadId, Run>()

  const dispatchMore = (run: Run, inFlight: number): Array<Reply> => {
    const out: Array<Reply> = []
    while (run.next < run.items.length && inFlight < run.maxConcurrent) {
      const index = run.next++
      const item = run.items[index]!
      const parsed = payloadFromXml(item)
      if (Either.isLeft(parsed)) {
        run.results[index] = new BufferItemResult({ index, success: false, error: `item: ${parsed.left}` })
        run.done++
        continue
      }
      out.push(Reply.forward(BUFFER_ITEM, new BufferItem({ index, target: run.target, payload: item })))
      inFlight++
    }
    return out
  }

  const complete = (run: Run, thread: ThreadId): Array<Reply> => {
    runs.delete(thread)
    if (!run.collect) return []
    const results = run.results as Array<BufferItemResult>
    return [
      Reply.respond(
        new BufferComplete({ total: run.items.length, successful: results.filter((r) => r.success).length, results })
      )
    ]
  }

  const start = (request: BufferStart, meta: HandlerMetadata) =>
    Effect.map(Conversation, (conversation) => startWith(request, meta, conversation))

  const startWith = (request: BufferStart, meta: HandlerMetadata, conversation: Conversation.Service): Reply => {
    const run: Run = {
      target: request.target,
      items: request.items,
      collect: request.collect,
      maxConcurrent: request.maxConcurrent ?? DEFAULT_MAX_CONCURRENT,
      results: new Array(request.items.length).fill(undefined),
      next: 0,
      done: 0
    }
    runs.set(meta.thread, run)
    Effect.runSync(conversation.onComplete(() => runs.delete(meta.thread)))
    const replies = dispatchMore(run, 0)
    if (!run.collect) replies.unshift(Reply.respond(new BufferDispatched({ total: run.items.length })))
    if (run.done === run.items.length) replies.push(...complete(run, meta.thread))
    return Reply.all(...replies)
  }

  const itemDone = (done: BufferItemDone, meta: HandlerMetadata): Reply => {
    const run = runs.get(meta.thread)
    if (run === undefined || run.results[done.index] !== undefined) return Reply.none
    run.results[done.index] = new BufferItemResult({
      index: done.index,
      success: done.success,
      ...(done.result !== undefined ? { result: done.result } : {}),
      ...(done.error !== undefined ? { error: done.error } : {})
    })
    run.done++
    const inFlight = run.next - run.done
    const replies = dispatchMore(run, inFlight)
    if (run.done === run.items.length) replies.push(...complete(run, meta.thread))
    return Reply.all(...replies)
  }

  const buffer = Listener.make({
    name: BUFFER,
    payload: BufferStart,
    accepts: [BufferItemDone],
    description: "Sends each item to a target listener in parallel (bounded) and collects the results in item order.",
    handler: (payload, meta) => (payload instanceof BufferStart ? start(payload, meta) : itemDone(payload, meta))
  })

  // --- one item's hop ------------------------------------------------------------------
  const items = new Map<ThreadId, { readonly index: number; settled: boolean }>()

  const settle = (thread: ThreadId, done: BufferItemDone): Reply => {
    const item = items.get(thread)
    if (item === undefined || item.settled) return Reply.none
    item.settled = true
    items.delete(thread)
    return Reply.respond(done)
  }

  const forwardItem = (request: BufferItem, meta: HandlerMetadata) =>
    Effect.map(Conversation, (conversation) => forwardItemWith(request, meta, conversation))

  const forwardItemWith = (request: BufferItem, meta: HandlerMetadata, conversation: Conversation.Service): Reply => {
    const payload = payloadFromXml(request.payload)
    const item = { index: request.index, settled: false }
    items.set(meta.thread, item)
    if (Either.isLeft(payload)) {
      return settle(meta.thread, new BufferItemDone({ index: request.index, success: false, error: payload.left }))
    }
    Effect.runSync(conversation.onBranchEnd((reply) => {
      if (item.settled) return
      reply(settle(meta.thread, new BufferItemDone({ index: item.index, success: false, error: `${request.target} ended without a reply` })))
    }))
    return Reply.forward(request.target, payload.right)
  }

  const itemReply = (payload: PayloadValue, meta: HandlerMetadata) =>
    Effect.map(Conversation, (conversation) => itemReplyWith(payload, meta, conversation))

  const itemReplyWith = (payload: PayloadValue, meta: HandlerMetadata, conversation: Conversation.Service): Reply => {
    const item = items.get(meta.thread)
    if (item === undefined) return Reply.none
    return settle(
      meta.thread,
      payload instanceof SystemError
        ? new BufferItemDone({ index: item.index, success: false, error: payload.message })
        : new BufferItemDone({ index: item.index, success: true, result: conversation.xmlOf(payload) })
    )
  }

  const bufferItem = Listener.make({
    name: BUFFER_ITEM,
    payload: BufferItem,
    acceptsAny: true,
    description: "One item of a buffer on its own hop (internal to system.buffer).",
    handler: (payload, meta) => (payload instanceof BufferItem ? forwardItem(payload, meta) : itemReply(payload, meta)),
    onSystem: (error, meta) => itemReply(error, meta)
  })

  return [buffer, bufferItem] as const
}
