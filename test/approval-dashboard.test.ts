/**
 * Approvals on the dashboard, in a real browser (Debian's Chromium via playwright-core, as
 * test/dashboard.test.ts): a message waiting for approval is listed with Approve and Deny;
 * approved it is delivered, denied (a reason required) it is rejected.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync } from "node:fs"
import { type Browser, chromium, type Page } from "playwright-core"
import { type Served, startServe } from "./support/serve.js"

const executablePath = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p): p is string => p !== undefined && p !== "" && existsSync(p)
)

const send = async (page: Page, n: number) => {
  await page.locator("#payload-type").selectOption("Ping2")
  await page.locator("#send-to").selectOption("doubler")
  await page.locator("#payload-xml").fill(`<Ping2><N>${n}</N></Ping2>`)
  await page.locator("#send-button").click()
  const result = page.locator("#send-result[data-thread]")
  await result.waitFor()
  return (await result.getAttribute("data-thread"))!
}

describe("approvals on the dashboard", () => {
  let served: Served
  let browser: Browser
  beforeAll(async () => {
    if (executablePath === undefined) {
      throw new Error("Chromium is missing: run scripts/test-deps.sh (as root), or apt-get install -y --no-install-recommends chromium, or set CHROMIUM")
    }
    served = await startServe("test/fixtures/cli/approval.yaml")
    browser = await chromium.launch({ executablePath, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] })
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await served?.stop()
  })

  it("lists what waits; Approve delivers it, Deny without a reason is refused, with one it rejects", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } })
    const problems: Array<string> = []
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`))
    await page.goto(served.url)
    await page.locator("#connection[data-state=live]").waitFor()
    expect(await page.locator("#approvals-panel").isHidden()).toBe(true)

    const first = await send(page, 21)
    const waiting = page.locator(`#approvals li[data-thread="${first}"]`)
    await waiting.waitFor({ timeout: 10_000 })
    expect(await waiting.locator("pre.payload").textContent()).toBe("<Ping2><N>21</N></Ping2>")
    await expect.poll(async () => Number(await page.locator("[data-counter=pendingApprovals] dd").textContent())).toBe(1)
    await page.locator("#conversation li[data-kind=approval]").first().waitFor()
    await waiting.locator("button.approve").click()
    await page.locator(`#conversations li[data-thread="${first}"][data-state=completed]`).waitFor({ timeout: 10_000 })
    await expect.poll(() => page.locator("#approvals li").count()).toBe(0)
    await expect.poll(() => page.locator("#conversation pre.payload").allTextContents()).toContain("<Pong><N>42</N></Pong>")

    const second = await send(page, 5)
    const other = page.locator(`#approvals li[data-thread="${second}"]`)
    await other.waitFor({ timeout: 10_000 })
    await other.locator("button.deny").click()
    expect(await other.locator("output.error").textContent()).toContain("needs a reason")
    await other.locator("input").fill("too small to bother")
    await other.locator("button.deny").click()
    const rejected = page.locator("#conversation li[data-kind=rejected]")
    await rejected.waitFor({ timeout: 10_000 })
    expect(await rejected.textContent()).toContain("too small to bother")
    await expect.poll(() => page.locator("#approvals li").count()).toBe(0)
    expect(problems).toEqual([])
    await page.close()
  })
})
