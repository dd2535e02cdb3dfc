/**
 * A pool of ingress workers: `node:worker_threads` threads, each with its own libxml2
 * instance and compiled schemas, that run the libxml2 half of the ingress stages for whole
 * chunks (IngressFront.ts) while the pump's thread delivers the chunk before. Moving a chunk
 * costs about 1 µs per message in chunks of 50 (≈19 µs one at a time), so only chunks of
 * `threshold` messages or more are sent; smaller ones stay inline.
 *
 * A worker that dies is replaced, and the chunks it held are sent again (to the new worker);
 * a chunk that has killed two workers is given back undone (`Option.none`), and the pump runs
 * it inline: every message still ends in exactly one outcome. The workers end with the Scope.
 */
import { Effect, Option, type Scope } from "effect"
import { Worker } from "node:worker_threads"
import type { IngressConfig } from "../../domain/IngressConfig.js"
import type { CompiledSchema } from "../../services/XmlEngine.js"
import type { Router } from "../Router.js"
import type { Front, PayloadSchemas } from "./IngressFront.js"
import { workerSource } from "./WorkerSource.js"
import { type FromWorker, unpackFronts, type VersionMessage, type WorkerData } from "./XmlWorkerProtocol.js"

export interface XmlWorkersOptions {
  /** How many worker threads. */
  readonly workers: number
  /** Chunks smaller than this stay inline. */
  readonly threshold?: number
  /** Test hooks (see XmlWorkerProtocol.ts). */
  readonly testing?: WorkerData
}

/** A version of the pump as the workers know it. */
export interface WorkerVersion {
  readonly id: number
  /** The id of a payload schema in the workers' table (-1: not in it). */
  readonly schemaId: (schema: CompiledSchema) => number
  /** The same table over this thread's schemas, for the chunks this thread runs itself. */
  readonly payloads: PayloadSchemas
}

export interface XmlWorkers {
  readonly size: number
  readonly threshold: number
  /** Compiles a version's payload schemas in every worker; undefined if a worker refused. */
  readonly register: (routes: Router, config: IngressConfig) => Effect.Effect<WorkerVersion | undefined>
  /**
   * Sends a chunk to a worker now (a side effect: call it inside an Effect) and returns the
   * wait for its front stages' results; none when the chunk could not be run there.
   */
  readonly start: (
    version: WorkerVersion,
    inputs: ReadonlyArray<Uint8Array | string>,
    known: ReadonlyArray<boolean>
  ) => Started
  /** Chunks sent and not yet answered. */
  readonly outstanding: () => number
  /** Workers started so far, replacements included (tests). */
  readonly started: () => number
}

/**
 * The number of ingress workers for these settings: `workers` when set, else the default
 * (none: see the README's "Ingress workers" for the measurements behind it).
 */
export const workersFor = (config: IngressConfig): number => Math.max(0, Math.floor(config.workers ?? DEFAULT_WORKERS))

export const DEFAULT_WORKERS = 0

/** A chunk sent to a worker. */
export interface Started {
  /** Its answer is here (`result` will not wait). */
  readonly done: () => boolean
  readonly result: Effect.Effect<Option.Option<ReadonlyArray<Front>>>
}

const gaveBack: Started = { done: () => true, result: Effect.succeedNone }

/** Chunks below this size stay inline: moving them would cost more than it saves. */
export const DEFAULT_THRESHOLD = 8

interface Pending {
  readonly seq: number
  readonly version: number
  readonly inputs: ReadonlyArray<Uint8Array | string>
  readonly known: ReadonlyArray<boolean>
  readonly resume: (fronts: Option.Option<ReadonlyArray<Front>>) => void
  attempts: number
}

interface Slot {
  worker: Worker
  readonly pending: Map<number, Pending>
}

/** Workers that die one after another without finishing a chunk: the pool gives up. */
const MAX_DEATHS_IN_A_ROW = 3

export const makeXmlWorkers = (options: XmlWorkersOptions): Effect.Effect<XmlWorkers, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const code = workerSource(import.meta.url, "XmlWorker")
      const threshold = options.threshold ?? DEFAULT_THRESHOLD
      let seq = 0
      let versionSeq = 0
      let startedCount = 0
      let closed = false
      /** Workers keep dying (they cannot start here): every chunk runs inline from now on. */
      let broken = false
      let deaths = 0
      let inFlight = 0
      let current = -1
      /** Live versions (full schema lists, to replay to a replacement worker). */
      const versions = new Map<number, VersionMessage>()
      const versionUse = new Map<number, number>()
      const schemaIds = new WeakMap<CompiledSchema, number>()
      let schemaSeq = 0

      const slots: Array<Slot> = []

      /** Versions being compiled: the workers' answers are awaited. */
      let registering = 0
      // A worker keeps the process alive only while it holds a chunk or compiles a version: an
      // idle pool never stops a program from exiting.
      const refresh = () => {
        for (const s of slots) {
          if (s.pending.size > 0 || registering > 0) s.worker.ref()
          else s.worker.unref()
        }
      }

      const send = (slot: Slot, p: Pending) => {
        slot.pending.set(p.seq, p)
        slot.worker.postMessage({ kind: "chunk", seq: p.seq, version: p.version, inputs: p.inputs, known: p.known })
      }

      const settle = (p: Pending, fronts: Option.Option<ReadonlyArray<Front>>) => {
        inFlight--
        versionUse.set(p.version, (versionUse.get(p.version) ?? 1) - 1)
        p.resume(fronts)
      }

      const spawn = (slot: Slot | undefined): Slot => {
        startedCount++
        const worker = new Worker(code, { eval: true, workerData: options.testing ?? {} })
        const s: Slot = slot ?? { worker, pending: new Map() }
        s.worker = worker
        // Every live version first, then the chunks this worker's predecessor held (a port
        // queues what is posted before the worker listens).
        for (const v of versions.values()) worker.postMessage(v)
        worker.on("message", (m: FromWorker) => {
          if (m.kind === "done") {
            const p = s.pending.get(m.seq)
            if (p === undefined) return
            deaths = 0
            s.pending.delete(m.seq)
            settle(p, Option.some(unpackFronts(m.fronts)))
            refresh()
          } else if (m.kind === "ready") readies.get(worker)?.(m.version, m.error)
        })
        let gone = false
        const died = () => {
          if (gone || s.worker !== worker) return
          gone = true
          // Its replacement compiles the version from the replay.
          readies.get(worker)?.(-1, undefined)
          readies.delete(worker)
          if (!closed && ++deaths >= MAX_DEATHS_IN_A_ROW) broken = true
          if (closed || broken) {
            for (const p of s.pending.values()) settle(p, Option.none())
            s.pending.clear()
            return
          }
          const held = [...s.pending.values()]
          s.pending.clear()
          spawn(s)
          for (const p of held) {
            p.attempts++
            // A chunk that has killed two workers is run inline instead.
            if (p.attempts > 2) settle(p, Option.none())
            else send(s, p)
          }
          refresh()
        }
        worker.on("error", died)
        worker.on("exit", died)
        refresh()
        return s
      }

      /** Per worker: the callback waiting for its answer to a version message. */
      const readies = new Map<Worker, (version: number, error: string | undefined) => void>()

      for (let i = 0; i < options.workers; i++) slots.push(spawn(undefined))

      const register: XmlWorkers["register"] = (routes, config) =>
        Effect.async<WorkerVersion | undefined>((resume) => {
          const id = ++versionSeq
          const schemas: Array<readonly [number, string, string]> = []
          const tags: Array<readonly [string, number]> = []
          const known = new Map<CompiledSchema, number>()
          const byTag = new Map<string, { readonly id: number; readonly schema: CompiledSchema }>()
          for (const [tag, entry] of routes.types) {
            let sid = schemaIds.get(entry.schema)
            if (sid === undefined) schemaIds.set(entry.schema, sid = ++schemaSeq)
            known.set(entry.schema, sid)
            byTag.set(tag, { id: sid, schema: entry.schema })
            schemas.push([sid, entry.spec.tag, entry.spec.xsd])
            tags.push([tag, sid])
          }
          const retire: Array<number> = []
          for (const v of versions.keys()) {
            if (v !== current && (versionUse.get(v) ?? 0) === 0) retire.push(v)
          }
          for (const v of retire) {
            versions.delete(v)
            versionUse.delete(v)
          }
          const limits = { maxBytes: config.maxBytes, maxDepth: config.maxDepth, recover: config.recover }
          const message: VersionMessage = { kind: "version", version: id, config: limits, schemas, tags, retire }
          versions.set(id, { ...message, retire: [] })
          let waiting = slots.length
          let failed = false
          const version: WorkerVersion = { id, schemaId: (schema) => known.get(schema) ?? -1, payloads: { byTag } }
          if (waiting === 0 || broken) return resume(Effect.succeed(broken ? undefined : version))
          registering++
          refresh()
          for (const s of slots) {
            const worker = s.worker
            readies.set(worker, (_v, error) => {
              readies.delete(worker)
              if (error !== undefined) failed = true
              if (--waiting === 0) {
                registering--
                refresh()
                if (!failed) current = id
                resume(Effect.succeed(failed ? undefined : version))
              }
            })
            worker.postMessage(message)
          }
        })

      const start: XmlWorkers["start"] = (version, inputs, known) => {
        if (closed || broken || slots.length === 0) return gaveBack
        // The answer, once here, and whoever waits for it.
        let answer: Option.Option<ReadonlyArray<Front>> | undefined
        let waiter: ((a: Option.Option<ReadonlyArray<Front>>) => void) | undefined
        // The worker with the fewest chunks.
        let slot = slots[0]!
        for (const s of slots) if (s.pending.size < slot.pending.size) slot = s
        inFlight++
        versionUse.set(version.id, (versionUse.get(version.id) ?? 0) + 1)
        const resume = (a: Option.Option<ReadonlyArray<Front>>) => {
          answer = a
          waiter?.(a)
        }
        send(slot, { seq: ++seq, version: version.id, inputs, known, resume, attempts: 1 })
        refresh()
        return {
          done: () => answer !== undefined,
          result: Effect.async<Option.Option<ReadonlyArray<Front>>>((k) => {
            if (answer !== undefined) return k(Effect.succeed(answer))
            waiter = (a) => k(Effect.succeed(a))
          })
        }
      }

      return {
        size: options.workers,
        threshold,
        register,
        start,
        started: () => startedCount,
        outstanding: () => inFlight,
        close: () =>
          Effect.promise(async () => {
            closed = true
            await Promise.all(slots.map((s) => s.worker.terminate()))
          }),
      }
    }),
    (pool) => pool.close()
  )
