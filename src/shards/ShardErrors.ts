import { Schema } from "effect"

/**
 * A shard could not start, or its thread ended while the organism ran; `shard` is -1 when no
 * shard could be started at all (an invalid number of shards).
 */
export class ShardFailed extends Schema.TaggedError<ShardFailed>()("ShardFailed", {
  shard: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return this.shard < 0 ? this.reason : `shard ${this.shard}: ${this.reason}`
  }
}

/** A function `Shards.call` ran in a shard threw or rejected. */
export class ShardCallFailed extends Schema.TaggedError<ShardCallFailed>()("ShardCallFailed", {
  shard: Schema.Number,
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.name} failed in shard ${this.shard}: ${this.reason}`
  }
}
