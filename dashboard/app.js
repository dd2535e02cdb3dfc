// The dashboard of `organism serve`: plain JavaScript over the server's own API (no build
// step). Everything the organism says is shown as text (textContent), never as HTML.

const params = new URLSearchParams(location.search)
// A server started with --token: open the dashboard as /?access_token=TOKEN.
const token = params.get("access_token") ?? new URLSearchParams(location.hash.slice(1)).get("access_token")
const headers = token ? { authorization: `Bearer ${token}` } : {}
const withToken = (url) => (token ? `${url}${url.includes("?") ? "&" : "?"}access_token=${encodeURIComponent(token)}` : url)

const $ = (id) => document.getElementById(id)
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v
    else if (k === "text") node.textContent = v
    else if (k === "indent") node.style.marginLeft = `${v * 1.2}rem`
    else if (k.startsWith("data-")) node.setAttribute(k, v)
    else node[k] = v
  }
  for (const c of children) if (c !== undefined && c !== null) node.append(c)
  return node
}

const api = async (path, init = {}) => {
  const response = await fetch(path, { ...init, headers: { ...headers, ...(init.headers ?? {}) } })
  const body = await response.json().catch(() => null)
  if (!response.ok) throw new Error(body?.message ?? `${response.status} ${response.statusText}`)
  return body
}

let selected = null
let payloadTypes = []

// --- counters ----------------------------------------------------------------------------
const COUNTERS = [
  ["injected", "injected"],
  ["delivered", "delivered"],
  ["rejected", "rejected"],
  ["guardStopped", "guard-stopped"],
  ["inFlight", "in flight"],
  ["pendingApprovals", "awaiting approval"],
  ["invocations", "invocations"]
]
const renderCounters = (c) => {
  const list = $("counters")
  list.replaceChildren(
    ...COUNTERS.map(([key, label]) => el("div", { "data-counter": key }, el("dt", { text: label }), el("dd", { text: String(c[key]) }))),
    el("div", { "data-counter": "models" }, el("dt", { text: "model calls" }), el("dd", { text: String(c.models.requests) })),
    ...(c.models.costUsd > 0 ? [el("div", {}, el("dt", { text: "cost" }), el("dd", { text: `$${c.models.costUsd.toFixed(4)}` }))] : [])
  )
}
const refreshCounters = () => api("api/counters").then(renderCounters).catch(() => {})

// --- conversations -----------------------------------------------------------------------
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`
const time = (ms) => new Date(ms).toLocaleTimeString()
const reasonText = (reason) => {
  if (reason === null || reason === undefined) return ""
  if (typeof reason === "string") return reason
  return reason.kind ?? reason._tag ?? reason.type ?? JSON.stringify(reason)
}

const renderConversations = (list) => {
  $("conversation-count").textContent = `(${list.length})`
  $("conversations").replaceChildren(
    ...list.map((c) => {
      const problems = c.rejections + c.guardTrips + c.failures
      const item = el(
        "li",
        { "data-thread": c.thread, "data-state": c.state, class: c.thread === selected ? "selected" : "" },
        el(
          "div",
          {},
          el("b", { text: c.payloadType ?? "?" }),
          " → ",
          el("span", { text: c.to ?? "?" }),
          " ",
          el("span", { class: `state ${c.state}`, text: c.state + (c.reason ? `: ${reasonText(c.reason)}` : "") }),
          problems > 0 ? el("span", { class: "badge", text: `${problems} problem${problems === 1 ? "" : "s"}` }) : null
        ),
        el("div", {
          class: "meta",
          text: `${time(c.startedAt)} · ${plural(c.messages, "message")} · ${plural(c.invocations, "invocation")}` +
            (c.modelCalls > 0 ? ` · ${c.modelCalls} model calls, ${c.tokens} tokens` : "") +
            (c.costUsd > 0 ? `, $${c.costUsd.toFixed(4)}` : "") +
            ` · ${c.thread.slice(0, 8)}`
        })
      )
      item.addEventListener("click", () => select(c.thread))
      return item
    })
  )
}
const refreshConversations = () => api("api/conversations?limit=200").then(renderConversations).catch(() => {})

// --- approvals ---------------------------------------------------------------------------
// Messages to listeners with `approval: required` wait here. Approve sends the envelope
// shown, so the server refuses (409) a decision about any other message.
const decide = async (p, verb, item) => {
  const result = item.querySelector("output")
  const reason = item.querySelector("input").value.trim()
  if (verb === "deny" && reason === "") {
    result.className = "error"
    result.textContent = "a denial needs a reason (the sender hears it)"
    return
  }
  const body = JSON.stringify(verb === "deny" ? { reason, envelope: p.envelope, by: "dashboard" } : { envelope: p.envelope, by: "dashboard" })
  try {
    await api(`api/approvals/${p.id}/${verb}`, { method: "POST", headers: { "content-type": "application/json" }, body })
    item.remove()
    refreshApprovals()
  } catch (e) {
    result.className = "error"
    result.textContent = e.message
  }
}

const renderApprovals = (list) => {
  $("approvals-panel").hidden = list.length === 0
  $("approval-count").textContent = `(${list.length})`
  // A list being typed in (a reason) is not redrawn under the cursor.
  const typing = document.activeElement?.closest?.("#approvals") && document.activeElement.value !== ""
  if (typing) return
  $("approvals").replaceChildren(
    ...list.map((p) => {
      const item = el(
        "li",
        { "data-approval": p.id, "data-thread": p.root },
        el("div", { class: "head" }, el("b", { text: p.from }), " → ", el("b", { text: p.to ?? "(broadcast)" }), ` ${p.payloadType}`, el("span", { class: "time", text: time(p.requestedAt) })),
        el("pre", { class: "payload", text: p.payload }),
        el("div", { class: "meta", text: `id ${p.id.slice(0, 16)}… · conversation ${p.root.slice(0, 8)}` }),
        el("input", { type: "text", placeholder: "reason (to deny)", "aria-label": "reason" }),
        el("div", { class: "actions" }, el("button", { type: "button", class: "approve", text: "Approve" }), el("button", { type: "button", class: "deny", text: "Deny" })),
        el("output", { role: "status" })
      )
      item.querySelector("button.approve").addEventListener("click", () => decide(p, "approve", item))
      item.querySelector("button.deny").addEventListener("click", () => decide(p, "deny", item))
      return item
    })
  )
}
// Answers can arrive out of order (one after a click, one after an event): only the answer
// to the latest question is shown, or an older, emptier list could hide a new request.
let approvalsAsked = 0
const refreshApprovals = () => {
  const asked = ++approvalsAsked
  return api("api/approvals").then((list) => asked === approvalsAsked && renderApprovals(list)).catch(() => {})
}

// --- one conversation --------------------------------------------------------------------
const eventItem = (e, depthOf) => {
  const at = el("span", { class: "time", text: time(e.time) })
  switch (e.type) {
    case "MessageSent": {
      const depth = depthOf.get(e.thread) ?? 0
      return el(
        "li",
        { class: "message", "data-kind": "message", "data-payload-type": e.payloadType, indent: depth },
        el("div", { class: "head" }, el("b", { text: e.from }), " → ", el("b", { text: e.to ?? "(broadcast)" }), ` ${e.payloadType}`, at),
        el("pre", { class: "payload", text: e.payload })
      )
    }
    case "MessageRejected":
      return el(
        "li",
        { class: "rejected", "data-kind": "rejected" },
        el("div", { class: "head" }, el("b", { text: `rejected at ${e.stage}` }), ` (${e.kind}): ${e.reason}`, at),
        e.payload ? el("pre", { class: "payload", text: e.payload }) : null
      )
    case "GuardTripped":
      return el("li", { class: "guard", "data-kind": "guard" }, el("div", { class: "head" }, el("b", { text: `guard ${e.guard}` }), ` ${e.listener ?? ""}: ${e.detail}`, at))
    case "HandlerFailed":
      return el("li", { class: "failed", "data-kind": "failed" }, el("div", { class: "head" }, el("b", { text: `${e.listener} ${e.reason}` }), `: ${e.detail}`, at))
    case "LlmCallStarted":
    case "LlmCallCompleted":
    case "LlmCallFailed": {
      const parts = [e.backend, e.model, e.attempt !== undefined ? `attempt ${e.attempt}` : null, e.latencyMs !== undefined ? `${Math.round(e.latencyMs)} ms` : null]
      const tokens = e.promptTokens !== undefined ? `${e.promptTokens} + ${e.completionTokens} tokens` : null
      const cost = typeof e.costUsd === "number" ? `$${e.costUsd.toFixed(4)}` : null
      return el(
        "li",
        { class: e.type === "LlmCallFailed" ? "failed" : "model", "data-kind": "model" },
        el("div", { class: "head" }, el("b", { text: `model call ${e.type.slice(7).toLowerCase()}` }), ` ${[...parts, tokens, cost, e.finishReason, e.reason].filter((p) => p !== null && p !== undefined).join(" · ")}`, at)
      )
    }
    case "ApprovalRequested":
      return el("li", { class: "guard", "data-kind": "approval" }, el("div", { class: "head" }, el("b", { text: "waits for approval" }), ` by ${e.listener} · id ${e.id.slice(0, 12)}`, at))
    case "ApprovalDecided":
      return el("li", { class: e.decision === "approved" ? "message" : "rejected", "data-kind": "approval" }, el("div", { class: "head" }, el("b", { text: e.decision }), e.decision === "approved" ? ` by ${e.by}` : ` by ${e.by}: ${e.reason}`, at))
    case "ThreadCompleted":
      return el("li", { class: "ended", "data-kind": "ended" }, el("div", { class: "head" }, el("b", { text: "ended" }), e.reason ? `: ${reasonText(e.reason)}` : "", ` (${e.invocations} invocations)`, at))
    default:
      return null
  }
}

// Streamed answers still arriving (LlmOutputDelta events), by call, for the selected conversation.
let streaming = new Map()
const streamingItem = (call, s) =>
  el(
    "li",
    { class: "model streaming", "data-kind": "streaming", "data-call": call },
    el("div", { class: "head" }, el("b", { text: `${s.agent} is answering` }), ` · ${call}`),
    el("pre", { class: "payload", text: s.text })
  )

const renderConversation = (c) => {
  const depthOf = new Map(c.tree.map((m) => [m.thread, m.depth]))
  // A call the index has seen end shows its answer there: its live text is dropped.
  for (const e of c.events) if (e.type === "LlmCallCompleted" || e.type === "LlmCallFailed") streaming.delete(e.call)
  const items = [
    ...c.events.map((e) => eventItem(e, depthOf)).filter((x) => x !== null),
    ...[...streaming].map(([call, s]) => streamingItem(call, s))
  ]
  $("conversation").replaceChildren(
    el("h2", {}, `${c.payloadType ?? "conversation"} → ${c.to ?? "?"} `, el("span", { class: `state ${c.state}`, "data-testid": "conversation-state", text: c.state + (c.reason ? `: ${reasonText(c.reason)}` : "") })),
    el("div", { class: "meta", text: `${c.thread} · ${plural(c.messages, "message")} · ${plural(c.invocations, "invocation")}` + (c.droppedEvents > 0 ? ` · ${c.droppedEvents} later events not kept` : "") }),
    el("ol", { class: "timeline" }, ...items)
  )
}

const showConversation = (thread) =>
  api(`api/conversations/${encodeURIComponent(thread)}`)
    .then((c) => (selected === thread ? renderConversation(c) : undefined))
    .catch((e) => $("conversation").replaceChildren(el("p", { class: "hint", text: e.message })))

const select = (thread) => {
  if (selected !== thread) streaming = new Map()
  selected = thread
  for (const li of $("conversations").children) li.classList.toggle("selected", li.dataset.thread === thread)
  showConversation(thread)
}

// --- the send form -----------------------------------------------------------------------
const fillForm = () => {
  const type = payloadTypes.find((t) => t.tag === $("payload-type").value)
  if (!type) return
  $("payload-xml").value = type.example
  const to = $("send-to")
  if (type.listeners.length > 0) to.value = type.listeners[0]
}

const loadForm = async () => {
  const [organism, types] = await Promise.all([api("api/organism"), api("api/payloads")])
  $("organism-name").textContent = organism.name
  document.title = `${organism.name} · organism`
  // Types some listener takes first; the framework's others after.
  payloadTypes = [...types.filter((t) => t.listeners.length > 0), ...types.filter((t) => t.listeners.length === 0)]
  $("payload-type").replaceChildren(...payloadTypes.map((t) => el("option", { value: t.tag, text: t.listeners.length > 0 ? t.tag : `${t.tag} (built-in)` })))
  $("send-to").replaceChildren(...organism.listeners.map((l) => el("option", { value: l.name, text: l.name })))
  fillForm()
}

$("payload-type").addEventListener("change", fillForm)
$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault()
  const result = $("send-result")
  result.className = ""
  result.textContent = "sending…"
  // The thread of the previous send is not this one's: it is set again once this one is in.
  delete result.dataset.thread
  try {
    const body = JSON.stringify({ to: $("send-to").value, xml: $("payload-xml").value })
    const { thread } = await api("api/inject", { method: "POST", headers: { "content-type": "application/json" }, body })
    result.textContent = `sent on ${thread}`
    result.dataset.thread = thread
    select(thread)
  } catch (e) {
    result.className = "error"
    result.textContent = e.message
  }
})

// --- live updates ------------------------------------------------------------------------
// Events arrive in bursts: the lists are fetched again at most every 250 ms.
let pending = false
const schedule = () => {
  if (pending) return
  pending = true
  setTimeout(() => {
    pending = false
    refreshConversations()
    refreshCounters()
    refreshApprovals()
    if (selected !== null) showConversation(selected)
  }, 250)
}

const connect = () => {
  const source = new EventSource(withToken("api/events"))
  source.onopen = () => {
    $("connection").dataset.state = "live"
    $("connection").textContent = "live"
    schedule()
  }
  source.onmessage = (message) => {
    let e
    try {
      e = JSON.parse(message.data)
    } catch {
      return schedule()
    }
    if (e.type !== "LlmOutputDelta") return schedule()
    // Pieces of a streamed answer: appended where it is shown, without fetching anything.
    if (e.root !== selected) return
    const s = streaming.get(e.call) ?? { agent: e.agent, attempt: e.attempt, text: "" }
    // A retried attempt starts its text again.
    if (s.attempt !== e.attempt) Object.assign(s, { attempt: e.attempt, text: "" })
    s.text += e.delta
    streaming.set(e.call, s)
    const shown = document.querySelector(`li[data-call="${e.call}"] pre`)
    if (shown !== null) shown.textContent = s.text
    else $("conversation").querySelector(".timeline")?.append(streamingItem(e.call, s))
  }
  source.onerror = () => {
    $("connection").dataset.state = "lost"
    $("connection").textContent = "reconnecting…"
  }
}

loadForm().catch((e) => ($("send-result").textContent = e.message))
refreshConversations()
refreshCounters()
refreshApprovals()
connect()
