import { Data } from "effect"

/** Ends the CLI with an exit code, after the command has printed what it wanted to. */
export class ExitWith extends Data.TaggedError("ExitWith")<{ readonly code: number }> {}

/** A mistake in how the CLI was called (exit code 2), with a message for the user. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {}
