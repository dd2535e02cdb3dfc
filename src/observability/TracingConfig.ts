/**
 * When and where traces go: the standard OpenTelemetry variables, or `organism run --otel
 * URL`. Tracing is on only when an endpoint is given; otherwise nothing is built at all.
 *
 *   OTEL_EXPORTER_OTLP_ENDPOINT         base URL; spans go to `<base>/v1/traces`
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  the traces URL itself (wins over the base)
 *   OTEL_EXPORTER_OTLP_PROTOCOL         `http/protobuf` (the default, as in the spec) or `http/json`
 *   OTEL_EXPORTER_OTLP_TRACES_PROTOCOL  the same, for traces only (wins)
 *   OTEL_EXPORTER_OTLP_HEADERS          `key=value,key=value` sent with every export
 *   OTEL_SERVICE_NAME                   the service's name (default: the organism's)
 *   OTEL_SDK_DISABLED=true              tracing off, whatever else is set
 *   OTEL_TRACES_SAMPLER                 always_on (default), always_off, traceidratio,
 *                                       parentbased_* of these: conversations traced
 *   OTEL_TRACES_SAMPLER_ARG             the ratio (0–1) for traceidratio (default 1)
 *   OTEL_BSP_SCHEDULE_DELAY             milliseconds between exports (default 2000)
 *   ORGANISM_OTEL_HOPS                  share of conversations (0–1) whose hops get spans too (default 0)
 *
 * `--otel URL` is a base URL like OTEL_EXPORTER_OTLP_ENDPOINT, and wins over the variables.
 */
import { Config, Effect, Option } from "effect"

export type OtlpProtocol = "http/protobuf" | "http/json"

export interface TracingOptions {
  /** Where spans are POSTed (the full `/v1/traces` URL). */
  readonly url: string
  readonly protocol: OtlpProtocol
  readonly serviceName: string
  readonly serviceVersion?: string | undefined
  readonly headers: Readonly<Record<string, string>>
  /**
   * Share of conversations (0–1) whose every hop (a message from written to delivered) gets
   * a span as well; decided per conversation, so a sampled one is traced whole. 0: none.
   */
  readonly hopSampleRatio: number
  /**
   * Share of conversations (0–1) traced at all (OTEL_TRACES_SAMPLER): decided per
   * conversation; the others cost a set lookup per event. Default 1.
   */
  readonly sampleRatio?: number | undefined
  /** How often spans are sent (they wait in memory in between, and are all sent at the end); default 2 s. */
  readonly exportIntervalMs?: number | undefined
}

/** `<base>/v1/traces`, as the spec builds the traces URL from the base endpoint. */
export const tracesUrlOf = (base: string) => `${base.replace(/\/+$/, "")}/v1/traces`

const parseHeaders = (text: string): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const pair of text.split(",")) {
    const eq = pair.indexOf("=")
    if (eq <= 0) continue
    headers[decodeURIComponent(pair.slice(0, eq).trim())] = decodeURIComponent(pair.slice(eq + 1).trim())
  }
  return headers
}

const optionalString = (name: string) => Config.option(Config.string(name))

/**
 * The tracing options from the ConfigProvider (process.env by default) and `--otel`; None
 * when tracing is off. Fails with a ConfigError for a protocol or ratio that makes no sense.
 */
export const tracingOptions = (flags: { readonly otel?: string | undefined; readonly serviceName: string; readonly serviceVersion?: string | undefined }) =>
  Effect.gen(function*() {
    const disabled = yield* Config.withDefault(Config.boolean("OTEL_SDK_DISABLED"), false)
    const base = flags.otel ?? Option.getOrUndefined(yield* optionalString("OTEL_EXPORTER_OTLP_ENDPOINT"))
    const tracesUrl = flags.otel === undefined ? Option.getOrUndefined(yield* optionalString("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) : undefined
    if ((disabled && flags.otel === undefined) || (base === undefined && tracesUrl === undefined)) return Option.none<TracingOptions>()
    const protocol = yield* Config.literal("http/protobuf", "http/json")("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").pipe(
      Config.orElse(() => Config.literal("http/protobuf", "http/json")("OTEL_EXPORTER_OTLP_PROTOCOL")),
      Config.withDefault("http/protobuf" as const)
    )
    const ratio = yield* Config.number("ORGANISM_OTEL_HOPS").pipe(
      Config.validate({ message: "expected a number from 0 to 1", validation: (n) => n >= 0 && n <= 1 }),
      Config.withDefault(0)
    )
    const interval = yield* Config.option(Config.integer("OTEL_BSP_SCHEDULE_DELAY").pipe(
      Config.validate({ message: "expected a positive number of milliseconds", validation: (n) => n > 0 })
    ))
    const sampler = yield* Config.literal(
      "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"
    )("OTEL_TRACES_SAMPLER").pipe(Config.withDefault("always_on" as const))
    // A conversation is a root span here: the parent-based samplers decide the same way.
    const sampleRatio = sampler.endsWith("always_on")
      ? 1
      : sampler.endsWith("always_off")
      ? 0
      : yield* Config.number("OTEL_TRACES_SAMPLER_ARG").pipe(
        Config.validate({ message: "expected a number from 0 to 1", validation: (n) => n >= 0 && n <= 1 }),
        Config.withDefault(1)
      )
    const headers = parseHeaders(Option.getOrElse(yield* optionalString("OTEL_EXPORTER_OTLP_HEADERS"), () => ""))
    const serviceName = Option.getOrElse(yield* optionalString("OTEL_SERVICE_NAME"), () => flags.serviceName)
    const options: TracingOptions = {
      url: tracesUrl ?? tracesUrlOf(base!),
      protocol,
      serviceName,
      serviceVersion: flags.serviceVersion,
      headers,
      hopSampleRatio: ratio,
      sampleRatio,
      exportIntervalMs: Option.getOrUndefined(interval)
    }
    return Option.some(options)
  })
