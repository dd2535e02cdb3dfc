import { Schema } from "effect"

/** A shard could not start, or its thread ended while the organism ran. */
export class ShardFailed extends Schema.TaggedError<ShardFailed>()("ShardFailed", {
  shard: Schema.Number,
  reason: Schema.String
}) {
  override get message() {
    return `shard ${this.shard}: ${this.reason}`
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
