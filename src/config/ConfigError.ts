import type { PlatformError } from "@effect/platform/Error"
import { Schema } from "effect"

/** One thing wrong in a configuration file, with where it is. */
export class ConfigProblem extends Schema.Class<ConfigProblem>("ConfigProblem")({
  file: Schema.String,
  line: Schema.Number,
  column: Schema.Number,
  /** Where in the document: `organism.max_concurrent_handlers`, `listeners[0].handler`… */
  key: Schema.String,
  message: Schema.String
}) {
  override toString(): string {
    const where = this.line > 0 ? `${this.file}:${this.line}:${this.column}` : this.file
    return this.key === "" ? `${where}: ${this.message}` : `${where}: ${this.key}: ${this.message}`
  }
}

/** A configuration file that could not be read at all (missing, unreadable). */
export const unreadableFile = (file: string, error: PlatformError | NodeJS.ErrnoException): ConfigProblem =>
  new ConfigProblem({
    file,
    line: 0,
    column: 0,
    key: "",
    message: ("_tag" in error && error._tag === "SystemError" && error.reason === "NotFound") ||
        ("code" in error && error.code === "ENOENT")
      ? "no such file"
      : `cannot read: ${error.message}`
  })

/** A configuration file that cannot be used; lists every problem found. */
export class OrganismConfigError extends Schema.TaggedError<OrganismConfigError>()("OrganismConfigError", {
  file: Schema.String,
  problems: Schema.Array(ConfigProblem)
}) {
  override get message(): string {
    return this.problems.map(String).join("\n")
  }
}
