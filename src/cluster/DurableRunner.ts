/**
 * A runner's conversations: one local pump for the organism, in which every durable
 * conversation this runner owns runs all its hops, and the Conversation workflow registered
 * with the cluster's workflow engine.
 *
 * The workflow's body, for one injection: note the conversation as running, inject its
 * payload into the local pump, bind the root thread the pump names to the workflow (so the
 * conversation's model calls become its activities: DurableRouter), wait for the end the
 * pump's events report, and return it — the workflow engine stores it as the injection's
 * reply. After a runner dies, the cluster hands the unanswered injection to another runner,
 * which runs the conversation again from its injection: model calls answered before the
 * crash come from the store.
 *
 * The organism's `boot:` messages are not sent by a runner (every runner would send them
 * again at every start): send them as a client, once (`organism send`).
 */
import type { WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import { Clock, Context, Effect, Either, Layer, Schedule } from "effect"
import { parsePayloadXml } from "../config/loadOrganism.js"
import { Closed, Header, JOURNAL_FORMAT, JOURNAL_VERSION, type LifecycleRecord, micros } from "../domain/JournalRecord.js"
import type { Organism } from "../domain/Organism.js"
import { IoFairness } from "../pipeline/IoFairness.js"
import { Pump, type PumpServices } from "../pipeline/Pump.js"
import { BudgetRegistry } from "../services/BudgetRegistry.js"
import { Events } from "../services/Events.js"
import { LlmRouter } from "../services/LlmRouter.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { type Ended, makeBindings } from "./Bindings.js"
import { ConversationWorkflow } from "./ConversationWorkflow.js"
import { DurableStore } from "./DurableStore.js"
import { type DurableCounters, makeDurableRouter } from "./DurableRouter.js"

export interface RunnerCounters extends DurableCounters {
  conversationsStarted: number
  conversationsCompleted: number
  conversationsFailed: number
}

export declare namespace DurableRunner {
  export interface Service {
    readonly pump: Pump.Service
    /** This runner's counters, with the pump's: what the heartbeat writes. */
    readonly counters: () => Readonly<Record<string, number>>
  }
  export interface Options {
    /** The output cap a request without its own is hashed with (the organism's `llm.max_output_tokens`). */
    readonly maxOutputTokens: number
    /** How often the runner writes its heartbeat and counters. */
    readonly heartbeat?: number | undefined
  }
}

export class DurableRunner extends Context.Tag("xml-organism/DurableRunner")<DurableRunner, DurableRunner.Service>() {
  /**
   * The runner's pump and workflow. Takes the pump's services, the organism's own model
   * router (`LlmRouter`, wrapped here), the store and the cluster's workflow engine from context.
   */
  static readonly layer = (
    organism: Organism<LlmRouter>,
    options: DurableRunner.Options
  ): Layer.Layer<DurableRunner, never, PumpServices | LlmRouter | DurableStore | WorkflowEngine> =>
    Layer.unwrapScoped(Effect.gen(function*() {
      const events = yield* Events
      const engine = yield* XmlEngine
      const store = yield* DurableStore
      const budget = yield* BudgetRegistry
      const inner = yield* LlmRouter
      const injector = organism.settings.injector
      const bindings = makeBindings(injector)
      yield* events.observe(bindings.observe)
      const counters: RunnerCounters = {
        conversationsStarted: 0,
        conversationsCompleted: 0,
        conversationsFailed: 0,
        llmCalls: 0,
        llmReplayed: 0,
        llmRepeated: 0
      }
      const durable = makeDurableRouter({ inner, bindings, budget, store, events, maxOutputTokens: options.maxOutputTokens, counters })
      const pump = yield* Pump.make({ ...organism, boot: [] }).pipe(
        Effect.provideService(LlmRouter, durable.router),
        // The cluster's traffic (shard messages, storage, the runner's socket) gets its turn.
        Effect.provideService(IoFairness, IoFairness.serving),
        Effect.orDie
      )
      const snapshot = () => {
        const c = pump.counters()
        return {
          ...counters,
          conversationsRunning: bindings.live(),
          overheadMedianMs: durable.overheadMedianMs(),
          hopsInjected: c.injected,
          hopsDelivered: c.delivered,
          hopsRejected: c.rejected,
          hopsGuardStopped: c.guardStopped,
          invocations: c.invocations
        }
      }
      yield* Effect.forkScoped(
        Effect.suspend(() => store.heartbeat(snapshot())).pipe(Effect.repeat(Schedule.spaced(options.heartbeat ?? 1000)))
      )
      yield* Effect.addFinalizer(() => Effect.suspend(() => store.heartbeat(snapshot())).pipe(Effect.zipRight(store.stopped)))

      /** The conversation's journal: a header, its records, the closing line (as `organism run --journal` writes). */
      const journalOf = (records: ReadonlyArray<LifecycleRecord>) =>
        Effect.map(Clock.currentTimeMillis, (now): Array<unknown> => [
          new Header({
            type: "header",
            seq: 0,
            time: micros(now),
            format: JOURNAL_FORMAT,
            version: JOURNAL_VERSION,
            organism: organism.settings.name,
            startedAt: new Date(records[0]?.time ?? now).toISOString(),
            source: null
          }, true),
          ...records,
          new Closed({ type: "closed", seq: records.length + 1, time: micros(now) }, true)
        ])
      const failed = (detail: string): Ended => ({ end: { reason: "failed", detail, replies: [] }, records: [] })
      const run = (payload: typeof ConversationWorkflow.payloadSchema.Type, executionId: string) =>
        Effect.gen(function*() {
          const context = yield* Effect.context<WorkflowEngine | WorkflowInstance>()
          yield* store.started({ id: executionId, envelopeId: payload.id, listener: payload.to })
          counters.conversationsStarted++
          const parsed = parsePayloadXml(engine, payload.payload)
          const ended = Either.isLeft(parsed)
            ? failed(`the payload is not XML: ${parsed.left}`)
            : yield* Effect.gen(function*() {
              const slot = { conversation: executionId, context, calls: new Map<string, number>() }
              let root: string | undefined
              const awaitEnd = yield* bindings.injecting(
                pump.inject(payload.to, parsed.right, { from: payload.from }).pipe(
                  Effect.map((id) => bindings.bind(root = id, slot))
                )
              )
              // Interrupted (the runner stops, the shard moves): the local run ends too; the
              // conversation runs again wherever the cluster hands its injection.
              return yield* awaitEnd.pipe(
                Effect.onInterrupt(() => root === undefined ? Effect.void : Effect.asVoid(pump.cancel(root, { by: "runner shutdown" })))
              )
            }).pipe(
              Effect.catchTags({
                PumpStopped: (e) => Effect.die(e),
                // The runner's injections wait for their permit (no maxWait): never refused.
                InboxFull: (e) => Effect.die(e),
                PayloadNotEncodable: (e) => Effect.succeed(failed(`the payload cannot be sent: ${e.reason}`))
              })
            )
          const end = ended.end
          if (end.reason === "completed") counters.conversationsCompleted++
          else counters.conversationsFailed++
          yield* store.ended(executionId, end, yield* journalOf(ended.records))
          return end
        })
      yield* Effect.logDebug("durable runner ready")
      return Layer.merge(
        ConversationWorkflow.toLayer(run),
        Layer.succeed(DurableRunner, { pump, counters: snapshot })
      )
    }))
}
