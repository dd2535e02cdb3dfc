/**
 * The layers of src/ form a DAG (DESIGN.md §6), checked by `npm run lint:deps` (part of
 * `npm test`):
 *
 *   domain   Schema types, payload codec, errors, events — imports only `effect`
 *   llm      model wire clients, failure classification, rate limits, the mock model — domain only
 *   services Layers (XmlEngine, registries, LlmRouter, Events, Journal) — llm, domain
 *   pipeline the pump — services, llm, domain
 *   observability tracing from the pump's events — services, llm, domain (the pump never imports it)
 *   config · journal — pipeline and below
 *   mcp      MCP servers' tools as listeners, listeners as MCP tools — config and below
 *   cluster  durable organisms (@effect/cluster, @effect/workflow, Postgres) — config, journal and below
 *   shards   one organism on several threads, each shard a whole pump — config and below
 *   cli, main.ts, index.ts — everything; nothing in src/ imports cli or main.ts
 *
 * Three config files are file-reading utilities every layer that reads a user's file uses
 * (`ConfigError`: a problem with its line and key; `YamlSource`: YAML with positions;
 * `suggest`: "did you mean"). They are allowed from below on the condition, checked by the
 * last rule, that they import nothing but `effect`, `@effect/platform`, `yaml` and each other: they cannot close
 * a cycle.
 *
 * Type-only imports count: a type import is a dependency of the source as a reader sees it.
 */
const FILE_UTILITIES = "^src/config/(ConfigError|YamlSource|suggest)\\.ts$"

/** A rule forbidding imports from `from` into the folders of `to`. */
const layer = (name, comment, from, to, pathNot) => ({
  name,
  comment,
  severity: "error",
  from: { path: from },
  to: pathNot === undefined ? { path: to } : { path: to, pathNot }
})

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "An import cycle: the modules in it cannot be loaded, tested or understood one at a time.",
      severity: "error",
      from: {},
      to: { circular: true }
    },
    {
      name: "domain-imports-only-effect",
      comment: "domain is Schema types and pure functions: it imports only effect and itself.",
      severity: "error",
      from: { path: "^src/domain/" },
      to: { pathNot: ["^src/domain/", "^(node_modules/)?effect(/|$)"] }
    },
    layer(
      "llm-below-services",
      "llm (wire clients, failure kinds, rate limits, the mock model) is what the LlmRouter service is built from.",
      "^src/llm/",
      "^src/(services|pipeline|config|journal|cluster|cli|main\\.ts|index\\.ts)",
      FILE_UTILITIES
    ),
    layer(
      "services-below-pipeline",
      "Services are Layers the pump uses; they never reach up into the pump, config or the CLI.",
      "^src/services/",
      "^src/(pipeline|observability|config|journal|cluster|cli|main\\.ts|index\\.ts)",
      FILE_UTILITIES
    ),
    layer(
      "observability-beside-the-pipeline",
      "Tracing watches the pump's events (services and domain); the pump never knows it.",
      "^src/observability/",
      "^src/(pipeline|config|journal|cluster|cli|main\\.ts|index\\.ts)",
      FILE_UTILITIES
    ),
    layer(
      "pipeline-below-config",
      "The pump is configured from above: it never imports config, journal or the CLI.",
      "^src/pipeline/",
      "^src/(config|journal|observability|cluster|cli|main\\.ts|index\\.ts)",
      FILE_UTILITIES
    ),
    layer(
      "mcp-above-config",
      "MCP (src/mcp) is built on the loaded organism and the pump; only the CLI and the package's index use it.",
      "^src/(?!mcp/|cli/|main\\.ts|index\\.ts)",
      "^src/mcp/"
    ),
    layer(
      "cluster-above-config-and-journal",
      "Durable organisms run the pump configured from above; config and journal never depend on them.",
      "^src/(config|journal)/",
      "^src/cluster/",
      FILE_UTILITIES
    ),
    layer(
      "cluster-below-the-cli-and-server",
      "The cluster is what the runner, send and status commands use; it never reaches up into them.",
      "^src/cluster/",
      "^src/(server|cli|main\\.ts|index\\.ts)"
    ),
    layer(
      "shards-above-config",
      "Shards (src/shards) load an organism in worker threads as a module or a file: config and below; only the CLI, the server and the package's index use them.",
      "^src/(?!shards/|cli/|server/|main\\.ts|index\\.ts)",
      "^src/shards/"
    ),
    layer(
      "shards-below-the-cli",
      "Shards never reach up into the CLI, the server, the cluster or MCP.",
      "^src/shards/",
      "^src/(server|cli|cluster|mcp|main\\.ts|index\\.ts)"
    ),
    layer(
      "nothing-imports-the-cli",
      "cli and main.ts are the top: nothing else in src/ depends on them.",
      "^src/(?!cli/|main\\.ts|index\\.ts)",
      "^src/(cli/|main\\.ts)"
    ),
    {
      name: "file-utilities-are-leaves",
      comment: "The config file utilities that lower layers may use import only effect, @effect/platform, yaml and each other.",
      severity: "error",
      from: { path: FILE_UTILITIES },
      to: { pathNot: [FILE_UTILITIES, "^(node_modules/)?(effect|yaml|@effect/platform)(/|$)"], dependencyTypesNot: ["core"] }
    }
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js"]
    },
    moduleSystems: ["es6", "cjs"]
  }
}
