/**
 * Live events for HTTP clients (Server-Sent Events, WebSocket): one pump observer fans each
 * event out to the connected clients' own bounded buffers. A client that reads too slowly
 * (its socket full, so its stream is not pulled) does not slow the pump and does not grow
 * memory: once its buffer is full, further events are skipped and counted, and when it
 * catches up it gets one `{"type":"Skipped","count":N}` marker before the next event.
 *
 * Each event is turned into JSON (the `organism run --json` shape) at most once, by the
 * first client that sends it, however many clients receive it.
 */
import { Effect, Stream } from "effect"
import { eventToJson, type PumpEvent } from "../domain/PumpEvent.js"
import { conversationOf } from "./ConversationIndex.js"

/** Events waiting for one client, at most. */
export const CLIENT_BUFFER = 1000

const encoder = new TextEncoder()

/** What a client is sent: the events waiting for it, and how many it missed before them. */
export interface Batch {
  readonly skipped: number
  readonly events: ReadonlyArray<PumpEvent>
}

/** @internal */
export class Client {
  buffer: Array<PumpEvent> = []
  skipped = 0
  wake: (() => void) | undefined = undefined
  closed = false
  constructor(readonly hub: LiveEvents, readonly conversation: string | undefined, readonly capacity: number) {}

  offer(e: PumpEvent): void {
    if (this.conversation !== undefined && conversationOf(e) !== this.conversation) return
    if (this.buffer.length >= this.capacity) {
      this.skipped++
      return
    }
    this.buffer.push(e)
    if (this.wake !== undefined) this.hub.wakeSoon(this)
  }
}

/**
 * Clients are woken at most this often: each then sends what gathered in one write, rather
 * than one write per event per client — with many clients, writes are what the fan-out costs.
 */
export const FLUSH_MS = 20

export class LiveEvents {
  private clients: ReadonlyArray<Client> = []
  private readonly toWake = new Set<Client>()
  private timer: ReturnType<typeof setTimeout> | undefined = undefined

  /** @internal */
  wakeSoon(client: Client): void {
    this.toWake.add(client)
    if (this.timer === undefined) this.timer = setTimeout(this.flush, FLUSH_MS)
  }

  private readonly flush = () => {
    this.timer = undefined
    for (const client of this.toWake) {
      const w = client.wake
      if (w !== undefined) {
        client.wake = undefined
        w()
      }
    }
    this.toWake.clear()
  }
  private readonly json = new WeakMap<PumpEvent, string>()

  get connected(): number {
    return this.clients.length
  }

  /** Called by the pump's observer for every event. */
  readonly publish = (e: PumpEvent): void => {
    const clients = this.clients
    for (let i = 0; i < clients.length; i++) clients[i]!.offer(e)
  }

  private readonly sse = new WeakMap<PumpEvent, Uint8Array>()

  /** The event as one Server-Sent Event (`data: JSON`), encoded once for every client. */
  sseOf(e: PumpEvent): Uint8Array {
    let bytes = this.sse.get(e)
    if (bytes === undefined) {
      bytes = encoder.encode(`data: ${this.jsonOf(e)}\n\n`)
      this.sse.set(e, bytes)
    }
    return bytes
  }

  jsonOf(e: PumpEvent): string {
    let text = this.json.get(e)
    if (text === undefined) {
      text = JSON.stringify(eventToJson(e))
      this.json.set(e, text)
    }
    return text
  }

  /**
   * A client's events as JSON texts, for as long as the stream runs, restricted to one
   * conversation when given. The first batch is empty and says the subscription is live:
   * no event published after it is missed. Later batches hold what was waiting.
   */
  stream(conversation: string | undefined, capacity: number = CLIENT_BUFFER): Stream.Stream<Batch> {
    return Stream.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => {
            const client = new Client(this, conversation, capacity)
            this.clients = [...this.clients, client]
            return client
          }),
          (client) =>
            Effect.sync(() => {
              client.closed = true
              this.toWake.delete(client)
              this.clients = this.clients.filter((c) => c !== client)
            })
        ),
        // An empty batch first: the subscription is in place, the client may start sending.
        (client) =>
          Stream.concat(
            Stream.succeed<Batch>({ skipped: 0, events: [] }),
            Stream.repeatEffect(
              Effect.zipRight(
                Effect.async<void>((resume) => {
                  if (client.buffer.length > 0) return resume(Effect.void)
                  client.wake = () => resume(Effect.void)
                  return Effect.sync(() => void (client.wake = undefined))
                }),
                Effect.sync((): Batch => {
                  const events = client.buffer
                  const skipped = client.skipped
                  client.buffer = []
                  client.skipped = 0
                  return { skipped, events }
                })
              )
            )
          )
      )
    )
  }

  /** A batch as JSON texts, the skip marker first when events were missed. */
  jsonBatch(batch: Batch): Array<string> {
    const out: Array<string> = []
    if (batch.skipped > 0) out.push(skippedJson(batch.skipped))
    for (const e of batch.events) out.push(this.jsonOf(e))
    return out
  }

  /** A batch as Server-Sent Events in one buffer. */
  sseBatch(batch: Batch): Uint8Array {
    const parts: Array<Uint8Array> = []
    if (batch.skipped > 0) parts.push(encoder.encode(`data: ${skippedJson(batch.skipped)}\n\n`))
    for (const e of batch.events) parts.push(this.sseOf(e))
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }
}

/** Said to a client that read too slowly, before the next event it gets. */
const skippedJson = (count: number) => JSON.stringify({ type: "Skipped", thread: null, count })
