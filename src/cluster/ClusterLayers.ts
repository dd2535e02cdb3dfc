/**
 * The cluster under durable organisms: @effect/cluster's sharding over sockets between
 * runners, its message, runner and shard storage in Postgres, and @effect/workflow's engine
 * on top (ClusterWorkflowEngine). The same code runs on the in-memory layers in tests.
 *
 * Failover settings (DESIGN.md §11, the README's "Durable organisms"): the library's
 * defaults take over a minute to move a dead runner's conversations; these resume them
 * within about 10 seconds:
 * - shard locks are Postgres advisory locks, released when a killed runner's connection
 *   closes; runners re-read the shard assignments every second and check each other's
 *   health every 2 s, so a survivor takes the dead runner's shards within a few seconds;
 * - a runner polls storage for unanswered messages every second, so the injections of
 *   conversations that were running on the dead runner start again soon after;
 * - clients poll for replies every 100 ms.
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import { RunnerAddress } from "@effect/cluster/RunnerAddress"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import * as TestRunner from "@effect/cluster/TestRunner"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { SqlClient } from "@effect/sql/SqlClient"
import { Duration, Effect, Layer, Option } from "effect"

/**
 * Every runner and client of one database must agree on these (the shard count above all:
 * it decides which shard owns a conversation).
 */
export const failoverSettings: Partial<ShardingConfig.ShardingConfig["Type"]> = {
  shardsPerGroup: 64,
  shardLockRefreshInterval: Duration.seconds(1),
  shardLockExpiration: Duration.seconds(5),
  refreshAssignmentsInterval: Duration.seconds(1),
  runnerHealthCheckInterval: Duration.seconds(2),
  entityMessagePollInterval: Duration.seconds(1),
  entityReplyPollInterval: Duration.millis(100),
  sendRetryInterval: Duration.millis(100),
  entityTerminationTimeout: Duration.seconds(5),
  // A conversation waits for its model calls: it is not idle while it runs.
  entityMaxIdleTime: Duration.minutes(10)
}

/**
 * Creates the cluster's tables, one process at a time: the storage layers create them when
 * they start, and two runners starting together on an empty database would race (Postgres
 * refuses the second `CREATE TABLE IF NOT EXISTS` of the same table). Under a session
 * advisory lock (held on a connection of its own while the layers start on others), the
 * first creates them and the others find them there.
 */
export const ensureClusterTables = Effect.scoped(Effect.gen(function*() {
  const sql = yield* SqlClient
  const lock = yield* sql.reserve
  yield* Effect.acquireRelease(
    lock.executeRaw("SELECT pg_advisory_lock(4242014)", []),
    () => Effect.ignore(lock.executeRaw("SELECT pg_advisory_unlock(4242014)", []))
  )
  yield* Effect.scoped(Layer.build(
    Layer.merge(SqlMessageStorage.layer, SqlRunnerStorage.layer).pipe(Layer.provide(ShardingConfig.layer(failoverSettings)))
  ))
}))

/** A runner listening on `host:port` for the other runners, its storage in the SqlClient's database. */
export const layerRunner = (host: string, port: number) =>
  ClusterWorkflowEngine.layer.pipe(
    Layer.provideMerge(
      NodeClusterSocket.layer({
        storage: "sql",
        shardingConfig: { ...failoverSettings, runnerAddress: Option.some(RunnerAddress.make({ host, port })) }
      })
    )
  ) satisfies Layer.Layer<WorkflowEngine, unknown, SqlClient>

/** A client: sends injections and reads replies through storage; runs no conversation. */
export const layerClient = ClusterWorkflowEngine.layer.pipe(
  Layer.provideMerge(NodeClusterSocket.layer({ clientOnly: true, storage: "sql", shardingConfig: failoverSettings }))
)

/** One process, storage in memory: the tests' cluster. */
export const layerMemory = ClusterWorkflowEngine.layer.pipe(Layer.provideMerge(TestRunner.layer))
