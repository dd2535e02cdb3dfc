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
import type { ShardingConfig } from "@effect/cluster/ShardingConfig"
import * as TestRunner from "@effect/cluster/TestRunner"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { Duration, Layer, Option } from "effect"
import type { SqlClient } from "@effect/sql/SqlClient"

/**
 * Every runner and client of one database must agree on these (the shard count above all:
 * it decides which shard owns a conversation).
 */
export const failoverSettings: Partial<ShardingConfig["Type"]> = {
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
