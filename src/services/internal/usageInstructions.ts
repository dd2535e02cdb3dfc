/**
 * The text an LLM agent gets besides its own prompt: how messages work, what its replies do
 * to the call chain, and for each peer its description, the exact XML it accepts (an example
 * document) and the XSD it is validated against.
 *
 * Written for a model, not a person: short imperative sentences, one rule per line, the
 * XML shown verbatim in fenced blocks so it can be copied element for element.
 */
import type { Listener } from "../../domain/Listener.js"
import * as Payload from "../../domain/Payload.js"

/** One peer as the agent sees it. */
export interface PeerUsage {
  readonly name: string
  readonly description: string
  readonly payloadTag: string
  readonly example: string
  readonly xsd: string
}

export const peerUsage = (peer: Listener): PeerUsage => ({
  name: peer.name,
  description: peer.description.trim() || Payload.specOf(peer.payload).description || "",
  payloadTag: Payload.tagOf(peer.payload),
  example: Payload.exampleOf(peer.payload),
  xsd: Payload.xsdOf(peer.payload).replace(/^<\?xml[^>]*\?>\s*/, "")
})

const fence = (xml: string) => "```xml\n" + xml.trim() + "\n```"

const rules = (agent: Listener, hasPeers: boolean): string => {
  const receives = [agent.payload, ...agent.accepts].map(Payload.tagOf)
  return [
    "# How you communicate",
    "",
    `You are "${agent.name}", an agent in an organism of listeners that talk to each other only by sending XML payloads.`,
    "",
    "- Every message you send is one payload: a single XML element named after its payload type, with one child element per field, in the order shown. Element names are PascalCase and case-sensitive; write them exactly as in the examples, with no namespace and no XML declaration.",
    "- Fields marked optional may be left out; repeated fields are written once per item. Escape `&` as `&amp;` and `<` as `&lt;` in text.",
    "- The organism adds the sender, the recipient and the thread to every message. Never write them yourself.",
    `- You receive payloads of these types: ${receives.join(", ")}. The organism may also send you a SystemError (something you sent failed or was refused) or a BudgetWarning (your token budget is running out).`,
    "",
    "What your reply does to the call chain:",
    ...(hasPeers
      ? [
        "- Calling a peer (sending it one of the payloads below) extends the call chain by that peer. Its answer comes back to you later, as a new message.",
        "- You may call several peers at once; each answer arrives as its own message."
      ]
      : []),
    "- Responding sends your result to whoever called you and prunes the call chain by one hop: your step ends and control returns to your caller.",
    ...(hasPeers
      ? ["- Complete your sub-tasks before you respond: wait for the answers of the peers you called and use them. Once you have responded, your caller moves on."]
      : []),
    "- Sending nothing ends your branch of the conversation."
  ].join("\n")
}

const peerSection = (p: PeerUsage): string =>
  [
    `## ${p.name}`,
    "",
    p.description === "" ? `(no description)` : p.description,
    "",
    `To call ${p.name}, send it a ${p.payloadTag}:`,
    "",
    fence(p.example),
    "",
    `The ${p.payloadTag} schema (XSD) it is validated against:`,
    "",
    fence(p.xsd)
  ].join("\n")

/** The usage instructions for `agent`, given its peers (in the agent's order). */
export const usageInstructions = (agent: Listener, peers: ReadonlyArray<PeerUsage>): string => {
  const sections = [rules(agent, peers.length > 0), ""]
  if (peers.length === 0) {
    sections.push("# Your peers", "", "You have no peers: you cannot call anyone. Respond to your caller.")
  } else {
    sections.push(
      "# Your peers",
      "",
      `You may call only these listeners: ${peers.map((p) => p.name).join(", ")}. Anything else is refused.`
    )
    // Two peers taking the same payload type are told apart by name only.
    const byTag = new Map<string, Array<string>>()
    for (const p of peers) byTag.set(p.payloadTag, [...(byTag.get(p.payloadTag) ?? []), p.name])
    for (const [tag, names] of byTag) {
      if (names.length > 1) {
        sections.push(`${names.slice(0, -1).join(", ")} and ${names.at(-1)} all accept ${tag}: say which one you are calling.`)
      }
    }
    for (const p of peers) sections.push("", peerSection(p))
  }
  return sections.join("\n")
}
