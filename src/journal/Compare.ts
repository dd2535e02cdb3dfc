/**
 * Comparing two runs of an organism (a journal and its replay) by the shape of their
 * conversations, not by ids or timing.
 *
 * A conversation's shape is its chain tree with thread ids replaced by the chain of names
 * that leads to each thread (`console › greeter › shouter`): every hop adds a fresh id,
 * but a chain node's children have distinct names, so the name path identifies a thread
 * and maps the recorded ids onto the replayed ones. On each thread: every hop (who sent
 * which payload to whom, and its outcome) and every handler failure, compared as a
 * multiset — handlers that suspend may finish in another order, and that is not a
 * difference. Then whether the conversation completed, and after how many invocations.
 *
 * Conversations are paired in the order they started within their kind (the organism's
 * own boot messages, injected input, raw input), since the replay sends the inputs in
 * their recorded order. What never varies between two equal runs is compared exactly; what
 * does is masked: the Boot payload's timestamp, thread ids quoted in rejected text.
 */
import { type Conversation, chainOf, type Hop, inputOf, type Run } from "./Conversations.js"

export interface Difference {
  /** Which conversation: its kind, number and first message. */
  readonly conversation: string
  readonly recordedRoot: string | null
  readonly replayedRoot: string | null
  /** The thread, as its chain of names; null for the conversation as a whole. */
  readonly at: string | null
  readonly change: "missing" | "extra" | "changed"
  readonly recorded: string | null
  readonly replayed: string | null
}

export interface RunStats {
  readonly conversations: number
  readonly messages: number
}

export interface Comparison {
  readonly identical: boolean
  readonly recorded: RunStats
  readonly replayed: RunStats
  readonly differences: ReadonlyArray<Difference>
}

interface Item {
  /** What pairs a changed item with its counterpart: sender, receiver, payload type. */
  readonly head: string
  readonly text: string
}

interface Shape {
  readonly nodes: Map<string, Array<Item>>
  readonly ending: string
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi

/** Payload text as compared: what legitimately changes from run to run is masked. */
export const comparablePayload = (hop: Hop): string => {
  if (hop.payload !== null) {
    return hop.payloadType === "Boot" && hop.from === "system"
      ? hop.payload.replace(/<Timestamp>[^<]*<\/Timestamp>/, "<Timestamp>…</Timestamp>")
      : hop.payload
  }
  const text = hop.outcome._tag === "Rejected" ? hop.outcome.record.payload ?? "" : hop.envelope
  return text.replace(UUID, "…")
}

export const outcomeText = (hop: Hop): string => {
  switch (hop.outcome._tag) {
    case "Pending":
      return "never handled"
    case "Delivered":
      return hop.to === null ? `delivered to ${hop.outcome.deliveries.map((d) => d.record.to).sort().join(", ")}` : "delivered"
    case "Rejected":
      return `rejected at ${hop.outcome.record.stage} (${hop.outcome.record.kind})`
    case "Stopped":
      return `stopped by the ${hop.outcome.record.guard} guard`
  }
}

export const hopHead = (hop: Hop): string => `${hop.from ?? "?"} → ${hop.to ?? "*"} ${hop.payloadType ?? "?"}`

const pathKey = (run: Run, c: Conversation, thread: string | null) =>
  thread === null ? "?" : chainOf(run, thread, c.started?.injector).join(" › ")

const shapeOf = (run: Run, c: Conversation): Shape => {
  const nodes = new Map<string, Array<Item>>()
  const add = (key: string, item: Item) => {
    const list = nodes.get(key)
    if (list === undefined) nodes.set(key, [item])
    else list.push(item)
  }
  for (const hop of c.hops) {
    const head = hopHead(hop)
    add(pathKey(run, c, hop.thread), { head, text: `${head}: ${comparablePayload(hop)} ⇒ ${outcomeText(hop)}` })
  }
  for (const f of c.failures) {
    const head = `⚠ ${f.listener}`
    add(pathKey(run, c, f.thread), { head, text: `${head} ${f.reason}` })
  }
  for (const list of nodes.values()) list.sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0))
  const ending = c.ended === undefined
    ? "not completed"
    : `completed after ${c.ended.invocations} handler invocation${c.ended.invocations === 1 ? "" : "s"}`
  return { nodes, ending }
}

type Kind = "boot" | "injected" | "raw" | "other"

const KINDS: ReadonlyArray<Kind> = ["boot", "injected", "raw", "other"]
const KIND_LABEL: Record<Kind, string> = { boot: "boot", injected: "input", raw: "raw input", other: "conversation" }

const kindOf = (c: Conversation, boot: ReadonlySet<Hop>): Kind => {
  const input = inputOf(c)
  if (input === undefined) return "other"
  if (boot.has(input)) return "boot"
  return input.origin === "raw" ? "raw" : "injected"
}

/** Items only in `a`, only in `b` (multisets, both sorted). */
const subtract = (a: ReadonlyArray<Item>, b: ReadonlyArray<Item>) => {
  const onlyA: Array<Item> = []
  const onlyB: Array<Item> = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    if (j >= b.length || (i < a.length && a[i]!.text < b[j]!.text)) onlyA.push(a[i++]!)
    else if (i >= a.length || b[j]!.text < a[i]!.text) onlyB.push(b[j++]!)
    else {
      i++
      j++
    }
  }
  return { onlyA, onlyB }
}

const describe = (kind: Kind, n: number, c: Conversation): string => {
  const input = inputOf(c) ?? c.hops[0]
  return `${KIND_LABEL[kind]} ${n}${input !== undefined ? ` (${hopHead(input)})` : ""}`
}

const compareShapes = (
  recordedRun: Run,
  replayedRun: Run,
  a: Conversation,
  b: Conversation,
  label: string
): Array<Difference> => {
  const sa = shapeOf(recordedRun, a)
  const sb = shapeOf(replayedRun, b)
  const out: Array<Difference> = []
  const base = { conversation: label, recordedRoot: a.root, replayedRoot: b.root }
  const paths = [...new Set([...sa.nodes.keys(), ...sb.nodes.keys()])]
    .sort((x, y) => x.split(" › ").length - y.split(" › ").length || (x < y ? -1 : x > y ? 1 : 0))
  for (const at of paths) {
    const { onlyA, onlyB } = subtract(sa.nodes.get(at) ?? [], sb.nodes.get(at) ?? [])
    for (const x of onlyA) {
      const k = onlyB.findIndex((y) => y.head === x.head)
      if (k === -1) out.push({ ...base, at, change: "missing", recorded: x.text, replayed: null })
      else {
        out.push({ ...base, at, change: "changed", recorded: x.text, replayed: onlyB[k]!.text })
        onlyB.splice(k, 1)
      }
    }
    for (const y of onlyB) out.push({ ...base, at, change: "extra", recorded: null, replayed: y.text })
  }
  if (sa.ending !== sb.ending) out.push({ ...base, at: null, change: "changed", recorded: sa.ending, replayed: sb.ending })
  return out
}

const statsOf = (run: Run): RunStats => ({
  conversations: run.conversations.length,
  messages: run.conversations.reduce((n, c) => n + c.hops.length, 0) + run.rootless.length
})

/**
 * Compares a recorded run with its replay. `recordedBoot` / `replayedBoot`: the inputs each
 * organism sent by itself while starting.
 */
export const compareRuns = (
  recorded: Run,
  replayed: Run,
  recordedBoot: ReadonlySet<Hop>,
  replayedBoot: ReadonlySet<Hop>
): Comparison => {
  const differences: Array<Difference> = []
  for (const kind of KINDS) {
    const a = recorded.conversations.filter((c) => kindOf(c, recordedBoot) === kind)
    const b = replayed.conversations.filter((c) => kindOf(c, replayedBoot) === kind)
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const x = a[i]
      const y = b[i]
      if (x !== undefined && y !== undefined) differences.push(...compareShapes(recorded, replayed, x, y, describe(kind, i + 1, x)))
      else if (x !== undefined) {
        differences.push({
          conversation: describe(kind, i + 1, x),
          recordedRoot: x.root,
          replayedRoot: null,
          at: null,
          change: "missing",
          recorded: `a conversation of ${x.hops.length} message${x.hops.length === 1 ? "" : "s"}`,
          replayed: null
        })
      } else if (y !== undefined) {
        differences.push({
          conversation: describe(kind, i + 1, y),
          recordedRoot: null,
          replayedRoot: y.root,
          at: null,
          change: "extra",
          recorded: null,
          replayed: `a conversation of ${y.hops.length} message${y.hops.length === 1 ? "" : "s"}`
        })
      }
    }
  }
  // Raw input refused before it had a conversation.
  const loose = (run: Run) =>
    run.rootless
      .map((hop): Item => ({ head: hopHead(hop), text: `${hopHead(hop)}: ${comparablePayload(hop)} ⇒ ${outcomeText(hop)}` }))
      .sort((x, y) => (x.text < y.text ? -1 : x.text > y.text ? 1 : 0))
  const { onlyA, onlyB } = subtract(loose(recorded), loose(replayed))
  const none = { conversation: "raw input without a conversation", recordedRoot: null, replayedRoot: null, at: null }
  for (const x of onlyA) differences.push({ ...none, change: "missing", recorded: x.text, replayed: null })
  for (const y of onlyB) differences.push({ ...none, change: "extra", recorded: null, replayed: y.text })
  return { identical: differences.length === 0, recorded: statsOf(recorded), replayed: statsOf(replayed), differences }
}

