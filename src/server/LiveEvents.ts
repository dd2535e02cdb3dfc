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

class Client {
  buffer: Array<PumpEvent> = []
  skipped = 0
  wake: (() => void) | undefined = undefined
  closed = false
  constructor(readonly conversation: string | undefined, readonly capacity: number) {}

  offer(e: PumpEvent): void {
    if (this.conversation !== undefined && conversationOf(e) !== this.conversation) return
    if (this.buffer.length >= this.capacity) {
      this.skipped++
      return
    }
    this.buffer.push(e)
    const w = this.wake
    if (w !== undefined) {
      this.wake = undefined
      w()
    }
  }
}

export class LiveEvents {
  private clients: ReadonlyArray<Client> = []
  private readonly json = new WeakMap<PumpEvent, string>()

  get connected(): number {
    return this.clients.length
  }

  /** Called by the pump's observer for every event. */
  readonly publish = (e: PumpEvent): void => {
    const clients = this.clients
    for (let i = 0; i < clients.length; i++) clients[i]!.offer(e)
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
  stream(conversation: string | undefined, capacity: number = CLIENT_BUFFER): Stream.Stream<ReadonlyArray<string>> {
    return Stream.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => {
            const client = new Client(conversation, capacity)
            this.clients = [...this.clients, client]
            return client
          }),
          (client) =>
            Effect.sync(() => {
              client.closed = true
              this.clients = this.clients.filter((c) => c !== client)
            })
        ),
        // An empty batch first: the subscription is in place, the client may start sending.
        (client) =>
          Stream.concat(Stream.make([] as ReadonlyArray<string>), Stream.repeatEffect(
            Effect.zipRight(
              Effect.async<void>((resume) => {
                if (client.buffer.length > 0) return resume(Effect.void)
                client.wake = () => resume(Effect.void)
                return Effect.sync(() => void (client.wake = undefined))
              }),
              Effect.sync(() => {
                const batch = client.buffer
                client.buffer = []
                const out: Array<string> = []
                if (client.skipped > 0) {
                  out.push(JSON.stringify({ type: "Skipped", thread: null, count: client.skipped }))
                  client.skipped = 0
                }
                for (const e of batch) out.push(this.jsonOf(e))
                return out as ReadonlyArray<string>
              })
            )
          ))
      )
    )
  }
}
