/**
 * The command line's help and usage lines, read from the commands' own definitions (their
 * options, arguments, descriptions and defaults) so they cannot drift from what is parsed.
 * @effect/cli's built-in help prints `$ run …`, a type blurb per option, no defaults and ANSI
 * codes even into a pipe; this prints `organism run …`, the defaults, and plain text.
 *
 * The definitions are read through @effect/cli's descriptor objects (Options / Args trees of
 * Single, WithDefault, Map, Both, Variadic…): stable data for the pinned version.
 */
import { HelpDoc } from "@effect/cli"
import type { Command } from "@effect/cli"
import { Option } from "effect"
import { closest } from "../config/suggest.js"

export interface OptionHelp {
  readonly flag: string
  readonly aliases: ReadonlyArray<string>
  /** `text`, `integer`, `file`…; undefined for a flag (boolean). */
  readonly placeholder: string | undefined
  readonly description: string
  readonly default: string | undefined
  readonly repeated: boolean
}

export interface ArgHelp {
  readonly name: string
  readonly description: string
  readonly default: string | undefined
  readonly optional: boolean
}

export interface CommandHelp {
  readonly name: string
  readonly description: string
  readonly options: ReadonlyArray<OptionHelp>
  readonly args: ReadonlyArray<ArgHelp>
}

type Node = { readonly _tag: string; readonly [key: string]: any }

/** A HelpDoc as one line of plain text. */
const plain = (doc: HelpDoc.HelpDoc): string =>
  HelpDoc.isEmpty(doc) ? "" : HelpDoc.toAnsiText(doc).replace(/\x1b\[[0-9;]*m/g, "").replace(/\s+/g, " ").trim()

/** How a default value reads in help: none for "nothing" (Option.none) and for false flags. */
const shownDefault = (fallback: unknown): string | undefined => {
  if (Option.isOption(fallback)) return undefined
  if (fallback === false) return undefined
  if (Array.isArray(fallback)) return fallback.length === 0 ? undefined : fallback.join(", ")
  return String(fallback)
}

const optionsOf = (node: Node, fallback?: { readonly value: unknown }, repeated = false): Array<OptionHelp> => {
  switch (node._tag) {
    case "Single":
      return [{
        flag: node.fullName,
        aliases: (node.aliases as ReadonlyArray<string>).map((a) => (a.length === 1 ? `-${a}` : `--${a}`)),
        placeholder: node.primitiveType._tag === "Bool" ? undefined : node.placeholder,
        description: plain(node.description),
        default: fallback === undefined ? undefined : shownDefault(fallback.value),
        repeated
      }]
    case "WithDefault":
      return optionsOf(node.options, { value: node.fallback }, repeated)
    case "Map":
      return optionsOf(node.options, fallback, repeated)
    case "Both":
      return [...optionsOf(node.left), ...optionsOf(node.right)]
    case "Variadic":
      return optionsOf(node.argumentOption, fallback, true)
    default:
      return []
  }
}

const argsOf = (node: Node, fallback?: { readonly value: unknown }): Array<ArgHelp> => {
  switch (node._tag) {
    case "Single":
      return [{
        name: Option.isSome(node.pseudoName) ? node.pseudoName.value : node.name,
        description: plain(node.description),
        default: fallback === undefined ? undefined : shownDefault(fallback.value),
        optional: fallback !== undefined
      }]
    case "WithDefault":
      return argsOf(node.args, { value: node.fallback })
    case "Map":
      return argsOf(node.args, fallback)
    case "Both":
      return [...argsOf(node.left), ...argsOf(node.right)]
    case "Variadic":
      return argsOf(node.args, fallback).map((a) => ({ ...a, name: `${a.name}...` }))
    default:
      return []
  }
}

const standardOf = (node: Node): Node | undefined =>
  node._tag === "Standard" ? node : node._tag === "Map" ? standardOf(node.command) : undefined

/** A command's name, description, options and arguments. */
export const commandHelp = (command: Command.Command<any, any, any, any>): CommandHelp => {
  const descriptor = standardOf((command as unknown as { descriptor: Node }).descriptor)
  if (descriptor === undefined) return { name: "", description: "", options: [], args: [] }
  return {
    name: descriptor.name,
    description: plain(descriptor.description),
    options: optionsOf(descriptor.options),
    args: argsOf(descriptor.args)
  }
}

const argUsage = (a: ArgHelp) => (a.optional ? `[${a.name}]` : a.name)

/** `organism run [options] organism.yaml` */
export const usageLine = (program: string, c: CommandHelp): string =>
  [program, c.name, ...(c.options.length > 0 ? ["[options]"] : []), ...c.args.map(argUsage)].join(" ")

const table = (rows: ReadonlyArray<readonly [string, string]>): Array<string> => {
  const width = Math.min(28, Math.max(...rows.map(([left]) => left.length)) + 2)
  return rows.map(([left, right]) =>
    right === "" ? `  ${left}` : left.length + 2 > width ? `  ${left}\n  ${" ".repeat(width)}${right}` : `  ${left.padEnd(width)}${right}`
  )
}

const withDefault = (description: string, value: string | undefined) =>
  value === undefined ? description : `${description} (default: ${value})`

/** `organism run --help`. */
export const renderCommandHelp = (program: string, c: CommandHelp): string => {
  const lines = [`usage: ${usageLine(program, c)}`, "", c.description]
  if (c.args.length > 0) {
    lines.push("", "arguments:", ...table(c.args.map((a) => [a.name, withDefault(a.description, a.default)])))
  }
  const options: Array<readonly [string, string]> = c.options.map((o) => [
    [...o.aliases, o.flag].join(", ") + (o.placeholder === undefined ? "" : ` ${o.placeholder}`),
    withDefault(o.description, o.default) + (o.repeated && !o.description.includes("repeatable") ? " (repeatable)" : "")
  ])
  options.push(
    ["--log-level level", "the least severe log lines shown on stderr: all, trace, debug, info, warning, error, fatal, none (default: info)"],
    ["-h, --help", "show this help"]
  )
  lines.push("", "options:", ...table(options))
  return lines.join("\n")
}

/** `organism --help`: the commands, one line each. */
export const renderProgramHelp = (
  program: string,
  version: string,
  description: string,
  commands: ReadonlyArray<CommandHelp>
): string =>
  [
    `${program} ${version} — ${description}`,
    "",
    `usage: ${program} <command> [options]`,
    "",
    "commands:",
    ...table(commands.map((c) => [[c.name, ...c.args.map(argUsage)].join(" "), c.description])),
    "",
    `"${program} <command> --help" shows a command's options and their defaults; "${program} --version" the version.`
  ].join("\n")

/** Options every command takes (handled by @effect/cli itself). */
const builtInFlags = ["--help", "-h", "--version", "--log-level", "--completions", "--wizard"]

/**
 * What is wrong with the arguments before @effect/cli sees them, in words: an unknown
 * command or option, with the closest known one. Undefined: nothing found.
 */
export const checkArguments = (
  program: string,
  args: ReadonlyArray<string>,
  commands: ReadonlyArray<CommandHelp>
): string | undefined => {
  const first = args[0]
  if (first === undefined || first.startsWith("-")) return undefined
  const command = commands.find((c) => c.name === first)
  if (command === undefined) {
    const near = closest(first, commands.map((c) => c.name))
    return `unknown command "${first}"${near !== undefined ? ` (did you mean "${near}"?)` : ""}; ` +
      `the commands are ${commands.map((c) => c.name).join(", ")}`
  }
  const flags = command.options.flatMap((o) => [o.flag, ...o.aliases])
  for (const arg of args.slice(1)) {
    if (arg === "--") break
    if (!arg.startsWith("--")) continue
    const flag = arg.split("=")[0]!
    if (flags.includes(flag) || builtInFlags.includes(flag)) continue
    const near = closest(flag.slice(2), flags.map((f) => f.replace(/^-+/, "")))
    return `${program} ${command.name} has no option ${flag}` +
      (near !== undefined ? ` (did you mean --${near}?)` : "") +
      `; see "${program} ${command.name} --help"`
  }
  return undefined
}
