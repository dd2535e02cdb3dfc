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
 * A message held for a person's approval parks the conversation (DurableApprovals.ts): the
 * local run is cancelled, the workflow awaits the approval's DurableDeferred and suspends;
 * the decision resumes it, and the run that follows finds the decision where it holds the
 * message again.
 *
 * The organism's `boot:` messages are not sent by a runner (every runner would send them
 * again at every start): send them as a client, once (`organism send`).
 */
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import type { WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import { Clock, Context, Effect, Either, Layer, Option, Schedule } from "effect"
import { parsePayloadXml } from "../config/loadOrganism.js"
import { Closed, Header, JOURNAL_FORMAT, JOURNAL_VERSION, type LifecycleRecord, micros } from "../domain/JournalRecord.js"
import type { Organism } from "../domain/Organism.js"
import { IoFairness } from "../pipeline/IoFairness.js"
import { Pump, type PumpServices } from "../pipeline/Pump.js"
import { Approvals } from "../services/Approvals.js"
import { BudgetRegistry } from "../services/BudgetRegistry.js"
import { Events } from "../services/Events.js"
import { LlmRouter } from "../services/LlmRouter.js"
import { XmlEngine } from "../services/XmlEngine.js"
import { approvalDeferred } from "./ApprovalDeferred.js"
import { type Ended, makeBindings, type Slot } from "./Bindings.js"
import { ConversationWorkflow } from "./ConversationWorkflow.js"
import { DurableApprovalDesk, makeRunnerApprovals } from "./DurableApprovals.js"
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
      // Messages held for approval wait durably (DurableApprovals.ts); people decide through
      // the desk (a runner of `organism runner` has one; the in-memory cluster's tests need none).
      const desk = yield* Effect.serviceOption(DurableApprovalDesk)
      const approvals = makeRunnerApprovals({ bindings, store, memory: yield* Approvals.makeMemory, desk: Option.getOrUndefined(desk) })
      const pump = yield* Pump.make({ ...organism, boot: [] }).pipe(
        Effect.provideService(LlmRouter, durable.router),
        // The cluster's traffic (shard messages, storage, the runner's socket) gets its turn.
        Effect.provideService(IoFairness, IoFairness.serving),
        Effect.provideService(Approvals, approvals),
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

      /**
       * One local run of the conversation, from its injection to its end — or to a message
       * held for a person, when the run stops there (`parked`: the deferred's name).
       */
      const runOnce = (
        payload: typeof ConversationWorkflow.payloadSchema.Type,
        executionId: string,
        context: Context.Context<WorkflowEngine | WorkflowInstance>
      ) =>
        Effect.gen(function*() {
          let root: string | undefined
          let parked: string | undefined
          const slot: Slot = {
            conversation: executionId,
            context,
            calls: new Map(),
            held: new Map(),
            denials: [],
            park: (name) =>
              Effect.suspend(() => {
                if (parked !== undefined || root === undefined) return Effect.void
                parked = name
                return Effect.asVoid(pump.cancel(root, { by: "a held message: waiting for approval" }))
              })
          }
          const parsed = parsePayloadXml(engine, payload.payload)
          if (Either.isLeft(parsed)) return { ended: failed(`the payload is not XML: ${parsed.left}`), parked, slot }
          const ended = yield* Effect.gen(function*() {
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
          return { ended, parked, slot }
        })

      const run = (payload: typeof ConversationWorkflow.payloadSchema.Type, executionId: string) =>
        Effect.gen(function*() {
          const context = yield* Effect.context<WorkflowEngine | WorkflowInstance>()
          yield* store.started({ id: executionId, envelopeId: payload.id, listener: payload.to })
          counters.conversationsStarted++
          while (true) {
            const { ended, parked, slot } = yield* runOnce(payload, executionId, context)
            if (parked !== undefined) {
              // A message waits for a person: the workflow awaits its deferred and suspends
              // (nothing stays in this runner). The decision resumes it, on whichever runner
              // owns it then; the new run holds the message again and finds the decision.
              yield* store.waiting(executionId)
              yield* DurableDeferred.await(approvalDeferred(parked))
              // Decided while this run stopped: run again at once.
              continue
            }
            const denied = slot.denials.length > 0 && ended.end.detail === ""
            const end = denied ? { ...ended.end, detail: `denied by an approver: ${slot.denials.join("; ")}` } : ended.end
            if (end.reason === "completed") counters.conversationsCompleted++
            else counters.conversationsFailed++
            yield* store.ended(executionId, end, yield* journalOf(ended.records))
            return end
          }
        })
      yield* Effect.logDebug("durable runner ready")
      return Layer.merge(
        ConversationWorkflow.toLayer(run),
        Layer.succeed(DurableRunner, { pump, counters: snapshot })
      )
    }))
}
