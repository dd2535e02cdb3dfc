/**
 * Human approval over the HTTP API of `organism serve`, through a real HTTP client against
 * the real server process: list, approve, deny, and the typed 404/409 answers.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { eventually, getJson, postJson, type Served, startServe } from "./support/serve.js"

const GATED = "test/fixtures/cli/approval.yaml"

describe("organism serve: approvals", () => {
  let served: Served
  beforeAll(async () => {
    served = await startServe(GATED)
  })
  afterAll(async () => {
    expect(await served?.stop()).toBe(130)
  })

  const pendingFor = (thread: string | undefined) =>
    eventually(async () => {
      const { body } = await getJson(`${served.url}api/approvals`)
      return (body as Array<any>).find((p) => thread === undefined || p.root === thread)
    }, 10_000, "a pending approval")

  it("a request waits for approval; approved (with the envelope seen), it is answered", async () => {
    const answer = postJson(`${served.url}api/request`, { xml: "<Ping2><N>21</N></Ping2>" })
    const pending = await pendingFor(undefined)
    expect(pending).toMatchObject({ listener: "doubler", from: "console", to: "doubler", payloadType: "Ping2", payload: "<Ping2><N>21</N></Ping2>" })
    expect(pending.id).toMatch(/^[0-9a-f]{64}$/)
    expect(typeof pending.requestedAt).toBe("number")
    expect((await getJson(`${served.url}api/counters`)).body.pendingApprovals).toBe(1)

    const approved = await postJson(`${served.url}api/approvals/${pending.id}/approve`, { envelope: pending.envelope, by: "ada" })
    expect(approved.status).toBe(200)
    expect(approved.body.id).toBe(pending.id)
    const answered = await answer
    expect(answered.status).toBe(200)
    expect(answered.body).toEqual({ payloadType: "Pong", payload: "<Pong><N>42</N></Pong>" })
    expect((await getJson(`${served.url}api/approvals`)).body).toEqual([])
  })

  it("denied with a reason, it ends as a dead letter at the approval stage; decisions for nothing pending or another envelope are refused, typed", async () => {
    const first = await postJson(`${served.url}api/inject`, { xml: "<Ping2><N>1</N></Ping2>" })
    const second = await postJson(`${served.url}api/inject`, { xml: "<Ping2><N>2</N></Ping2>" })
    const a = await pendingFor(first.body.thread)
    const b = await pendingFor(second.body.thread)

    const unknown = await postJson(`${served.url}api/approvals/${"0".repeat(64)}/approve`, {})
    expect(unknown.status).toBe(404)
    expect(unknown.body).toMatchObject({ _tag: "ApprovalNotFound", id: "0".repeat(64) })
    const conflict = await postJson(`${served.url}api/approvals/${a.id}/approve`, { envelope: b.envelope })
    expect(conflict.status).toBe(409)
    expect(conflict.body).toMatchObject({ _tag: "ApprovalConflict", id: a.id, seen: b.id })
    expect(conflict.body.message).toContain("decision refused")
    const noReason = await postJson(`${served.url}api/approvals/${a.id}/deny`, { reason: "  " })
    expect(noReason.status).toBe(400)

    const denied = await postJson(`${served.url}api/approvals/${a.id}/deny`, { reason: "not today" })
    expect(denied.status).toBe(200)
    const again = await postJson(`${served.url}api/approvals/${a.id}/approve`, {})
    expect(again.status).toBe(404)
    const dead = await eventually(async () => (await getJson(`${served.url}api/dead-letters`)).body.find((d: any) => d.stage === "approval"))
    expect(dead).toMatchObject({ kind: "ApprovalDenied", to: "doubler" })
    expect(dead.reason).toContain("not today")
    // No body at all: approve as it is.
    expect((await fetch(`${served.url}api/approvals/${b.id}/approve`, { method: "POST" })).status).toBe(200)
    expect((await getJson(`${served.url}api/approvals`)).body).toEqual([])
  })

  it("the OpenAPI document describes the approval endpoints", async () => {
    const doc = await getJson(`${served.url}api/openapi.json`)
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(["/api/approvals", "/api/approvals/{id}/approve", "/api/approvals/{id}/deny"]))
    const deny = doc.body.paths["/api/approvals/{id}/deny"].post
    expect(Object.keys(deny.responses)).toEqual(expect.arrayContaining(["200", "404", "409"]))
  })
})
