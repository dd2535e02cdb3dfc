/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core (which
 * downloads no browser; `scripts/test-deps.sh`, run by `npm test`, installs it). The server
 * is `organism serve` on the hello organism, a real process on a free loopback port.
 * A screenshot is kept in test/.artifacts/ (git-ignored).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { type Browser, chromium } from "playwright-core"
import { root } from "./support/processes.js"
import { type Served, startServe } from "./support/serve.js"

const executablePath = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p): p is string => p !== undefined && p !== "" && existsSync(p)
)
const artifacts = join(root, "test", ".artifacts")

describe("the dashboard in Chromium", () => {
  let served: Served
  let browser: Browser
  beforeAll(async () => {
    if (executablePath === undefined) {
      throw new Error("Chromium is missing: run scripts/test-deps.sh (as root), or apt-get install -y --no-install-recommends chromium, or set CHROMIUM")
    }
    served = await startServe("examples/hello/organism.yaml")
    // Root (CI containers) cannot use Chromium's sandbox.
    browser = await chromium.launch({ executablePath, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] })
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await served?.stop()
  })

  it("sends a Greeting from the form, shows the conversation complete with its three messages, and their payloads", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } })
    const problems: Array<string> = []
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`))
    page.on("console", (m) => {
      if (m.type() === "error") problems.push(`console: ${m.text()}`)
    })
    await page.goto(served.url)
    await page.locator("#connection[data-state=live]").waitFor()
    expect(await page.locator("#organism-name").textContent()).toBe("hello")

    // The form starts on the organism's first payload type, pre-filled with its example.
    expect(await page.locator("#payload-type").inputValue()).toBe("Greeting")
    expect(await page.locator("#send-to").inputValue()).toBe("greeter")
    expect(await page.locator("#payload-xml").inputValue()).toMatch(/^<Greeting>/)
    await page.locator("#payload-xml").fill("<Greeting><Name>Browser</Name></Greeting>")
    await page.locator("#send-button").click()
    const result = page.locator("#send-result[data-thread]")
    await result.waitFor()
    const thread = (await result.getAttribute("data-thread"))!

    // The conversation appears in the live list and completes.
    const item = page.locator(`#conversations li[data-thread="${thread}"][data-state=completed]`)
    await item.waitFor({ timeout: 10_000 })
    expect(await item.textContent()).toContain("3 messages")

    // Opened (the form opens what it sent), it shows its three messages with their payloads.
    await item.click()
    const messages = page.locator("#conversation li[data-kind=message]")
    await expect.poll(() => messages.count()).toBe(3)
    expect(await messages.evaluateAll((els) => els.map((e) => e.getAttribute("data-payload-type")))).toEqual([
      "Greeting",
      "GreetingResponse",
      "ShoutedResponse"
    ])
    const payloads = await page.locator("#conversation pre.payload").allTextContents()
    expect(payloads).toEqual([
      "<Greeting><Name>Browser</Name></Greeting>",
      "<GreetingResponse><Message>Hello, Browser!</Message><OriginalSender>console</OriginalSender></GreetingResponse>",
      "<ShoutedResponse><Message>HELLO, BROWSER!</Message></ShoutedResponse>"
    ])
    expect(await page.locator("[data-testid=conversation-state]").textContent()).toContain("completed")
    await page.locator("#conversation li[data-kind=ended]").waitFor()

    // The counters follow the organism.
    await expect.poll(async () => Number(await page.locator("[data-counter=delivered] dd").textContent())).toBeGreaterThanOrEqual(4)

    // A message the organism rejects (shouter takes no Greeting) shows as a rejection.
    await page.locator("#send-to").selectOption("shouter")
    await page.locator("#payload-xml").fill("<Greeting><Name>Nobody</Name></Greeting>")
    await page.locator("#send-button").click()
    const rejected = page.locator("#conversation li[data-kind=rejected]")
    await rejected.waitFor({ timeout: 10_000 })
    expect(await rejected.textContent()).toContain("rejected at")
    const refusedThread = (await page.locator("#send-result[data-thread]").getAttribute("data-thread"))!
    await expect.poll(() => page.locator(`#conversations li[data-thread="${refusedThread}"] .badge`).textContent()).toBe("1 problem")
    await expect.poll(async () => Number(await page.locator("[data-counter=rejected] dd").textContent())).toBe(1)

    // XML that is not well-formed is refused by the server, and the form says why.
    await page.locator("#payload-xml").fill("<Greeting><Name>unclosed</Greeting>")
    await page.locator("#send-button").click()
    await page.locator("#send-result.error").waitFor()
    expect(await page.locator("#send-result").textContent()).toContain("not well-formed")

    mkdirSync(artifacts, { recursive: true })
    await page.screenshot({ path: join(artifacts, "dashboard.png"), fullPage: true })
    expect(problems.filter((p) => !p.includes("400"))).toEqual([])
    await page.close()
  })
})
