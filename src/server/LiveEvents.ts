/**
 * Live events for HTTP clients (Server-Sent Events, WebSocket): one pump observer feeds a hub
 * that fans events out to the connected clients. The pump's side must stay cheap however many
 * clients listen and however slowly they read, so the hub works in runs:
 *
 * - `publish` (on the pump's path) appends the event to the current run: one push, whatever
 *   the number of clients. Only clients of one conversation (`?thread=`) look at each event.
 * - Every `FLUSH_MS` the run is sealed and handed, as one shared object, to every client that
 *   takes all events. A run is turned into JSON and into Server-Sent-Event bytes at most once,
 *   by the first client that sends it; every other client writes the same bytes.
 * - A client that reads too slowly (its socket full, so its stream is not pulled) does not
 *   slow the pump and does not grow memory: it holds at most `capacity` events (or one run,
 *   when a single run is larger); a run that does not fit is skipped whole and counted, and
 *   when the client catches up it gets one `{"type":"Skipped","count":N}` marker before the
 *   next events. A client that keeps up is never skipped, however busy the organism.
 */
import { Effect, Stream } from "effect"
import { eventToJson, type PumpEvent } from "../domain/PumpEvent.js"
import { conversationOf } from "./ConversationIndex.js"

/** Events waiting for one client, at most. */
export const CLIENT_BUFFER = 1000

/**
 * Runs are sealed, and clients woken, at most this often: each client then sends what
 * gathered in one write, rather than one write per event per client — with many clients,
 * writes are what the fan-out costs.
 */
export const FLUSH_MS = 20

const encoder = new TextEncoder()

/** Events published together, shared by every client that receives them; encoded once. */
export class Run {
  private json: ReadonlyArray<string> | undefined = undefined
  private sse: Uint8Array | undefined = undefined
  constructor(readonly events: ReadonlyArray<PumpEvent>) {}

  /** Each event in the `organism run --json` shape. */
  jsonTexts(): ReadonlyArray<string> {
    return this.json ??= this.events.map((e) => JSON.stringify(eventToJson(e)))
  }

  /** The events as Server-Sent Events (`data: JSON`), in one buffer. */
  sseBytes(): Uint8Array {
    return this.sse ??= encoder.encode(this.jsonTexts().map((j) => `data: ${j}\n\n`).join(""))
  }
}

/**
 * Idle clients are woken this often with an empty batch marked `idle`, so that they can tell
 * the connection is alive (SSE sends a comment): proxies close connections that say nothing.
 */
export const HEARTBEAT_MS = 15_000

/**
 * What a client is sent: how many events it missed, then the runs waiting for it. `idle`
 * marks a heartbeat: nothing happened for a heartbeat interval.
 */
export interface Batch {
  readonly skipped: number
  readonly runs: ReadonlyArray<Run>
  readonly idle?: true
}

/** The events of a batch, in order. */
export const batchEvents = (batch: Batch): ReadonlyArray<PumpEvent> =>
  batch.runs.length === 1 ? batch.runs[0]!.events : batch.runs.flatMap((r) => r.events)

/** @internal */
class Client {
  runs: Array<Run> = []
  /** Events of one conversation not yet sealed into a run (clients with a filter only). */
  own: Array<PumpEvent> = []
  held = 0
  skipped = 0
  /** Sent something since the last heartbeat; else the next heartbeat wakes it `idle`. */
  active = false
  idle = false
  wake: (() => void) | undefined = undefined
  constructor(readonly conversation: string | undefined, readonly capacity: number) {}

  take(run: Run): void {
    const n = run.events.length
    // A client that has sent everything takes the next run whatever its size: a run is one
    // flush interval's events, shared by every client, so it bounds memory by itself; only a
    // client still holding runs (it reads too slowly) skips.
    if (this.held > 0 && this.held + n > this.capacity) this.skipped += n
    else {
      this.runs.push(run)
      this.held += n
    }
  }

  get waiting(): boolean {
    return this.runs.length > 0 || this.skipped > 0 || this.idle
  }

  /** What waits for the client, taken: a batch of runs, or else a heartbeat. */
  takeBatch(): Batch {
    const batch: Batch = this.runs.length === 0 && this.skipped === 0
      ? IDLE
      : { skipped: this.skipped, runs: this.runs }
    this.runs = []
    this.held = 0
    this.skipped = 0
    this.idle = false
    if (batch !== IDLE) this.active = true
    return batch
  }
}

const IDLE: Batch = { skipped: 0, runs: [], idle: true }

/**
 * The hub. Its clock is Node's timers, not the Effect Clock: `publish` is called
 * synchronously from the pump's observer, and one timer serves every client (a stream merged
 * with a ticker per client cost more CPU than the events themselves with 100 clients).
 */
export class LiveEvents {
  /** Clients that take every event, and clients of one conversation. */
  private all: ReadonlyArray<Client> = []
  private filtered: ReadonlyArray<Client> = []
  private current: Array<PumpEvent> = []
  private timer: ReturnType<typeof setTimeout> | undefined = undefined
  private heartbeat: ReturnType<typeof setInterval> | undefined = undefined

  constructor(private readonly heartbeatMs: number = HEARTBEAT_MS) {}

  get connected(): number {
    return this.all.length + this.filtered.length
  }

  /** Called by the pump's observer for every event. */
  readonly publish = (e: PumpEvent): void => {
    const filtered = this.filtered
    if (filtered.length > 0) {
      const c = conversationOf(e)
      for (let i = 0; i < filtered.length; i++) {
        const client = filtered[i]!
        if (client.conversation === c) {
          client.own.push(e)
          this.flushSoon()
        }
      }
    }
    if (this.all.length > 0) {
      this.current.push(e)
      this.flushSoon()
    }
  }

  /** Wakes, with a heartbeat, every client that was sent nothing since the last one. */
  private readonly beat = () => {
    for (const clients of [this.all, this.filtered]) {
      for (const client of clients) {
        if (!client.active) {
          client.idle = true
          wake(client)
        }
        client.active = false
      }
    }
  }

  private flushSoon(): void {
    if (this.timer === undefined) this.timer = setTimeout(this.flush, FLUSH_MS)
  }

  private readonly flush = () => {
    this.timer = undefined
    if (this.current.length > 0) {
      const run = new Run(this.current)
      this.current = []
      for (const client of this.all) client.take(run)
    }
    for (const client of this.filtered) {
      if (client.own.length > 0) {
        const run = new Run(client.own)
        client.own = []
        client.take(run)
      }
    }
    for (const client of this.all) wake(client)
    for (const client of this.filtered) wake(client)
  }

  /**
   * A client's events, for as long as the stream runs, restricted to one conversation when
   * given. The first batch is empty and says the subscription is live: no event published
   * after it is missed. Later batches hold what was waiting.
   */
  stream(conversation: string | undefined, capacity: number = CLIENT_BUFFER): Stream.Stream<Batch> {
    return Stream.unwrapScoped(
      Effect.map(
        Effect.acquireRelease(
          Effect.sync(() => {
            const client = new Client(conversation, capacity)
            if (conversation === undefined) this.all = [...this.all, client]
            else this.filtered = [...this.filtered, client]
            this.heartbeat ??= setInterval(this.beat, this.heartbeatMs).unref()
            return client
          }),
          (client) =>
            Effect.sync(() => {
              this.all = this.all.filter((c) => c !== client)
              this.filtered = this.filtered.filter((c) => c !== client)
              if (this.connected === 0 && this.heartbeat !== undefined) {
                clearInterval(this.heartbeat)
                this.heartbeat = undefined
              }
            })
        ),
        // An empty batch first: the subscription is in place, the client may start sending.
        (client) =>
          Stream.concat(
            Stream.succeed<Batch>({ skipped: 0, runs: [] }),
            Stream.repeatEffect(
              Effect.zipRight(
                Effect.async<void>((resume) => {
                  if (client.waiting) return resume(Effect.void)
                  client.wake = () => resume(Effect.void)
                  return Effect.sync(() => void (client.wake = undefined))
                }),
                Effect.sync(() => client.takeBatch())
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
    for (const run of batch.runs) out.push(...run.jsonTexts())
    return out
  }

  /**
   * A batch as Server-Sent Events: the skip marker when events were missed, then each run's
   * shared bytes — written as they are, never copied per client.
   */
  sseParts(batch: Batch): ReadonlyArray<Uint8Array> {
    const parts = batch.runs.map((run) => run.sseBytes())
    if (batch.skipped > 0) parts.unshift(encoder.encode(`data: ${skippedJson(batch.skipped)}\n\n`))
    return parts
  }
}

const wake = (client: Client) => {
  const w = client.wake
  if (w !== undefined && client.waiting) {
    client.wake = undefined
    w()
  }
}

/** Said to a client that read too slowly, before the next event it gets. */
const skippedJson = (count: number) => JSON.stringify({ type: "Skipped", thread: null, count })
