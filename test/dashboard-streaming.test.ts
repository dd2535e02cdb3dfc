/**
 * The dashboard shows a streamed answer while it arrives (LlmOutputDelta events), in Debian's
 * Chromium against `organism serve` (a real process) running a streaming LLM agent on the
 * mock model, whose answer comes a few characters at a time.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { existsSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Browser, chromium } from "playwright-core"
import { type Served, startServe } from "./support/serve.js"

const executablePath = [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p): p is string => p !== undefined && p !== "" && existsSync(p)
)

const answer = "Streaming, one piece at a time, until the whole answer is here."

describe("the dashboard while an answer streams", () => {
  let served: Served
  let browser: Browser
  beforeAll(async () => {
    if (executablePath === undefined) {
      throw new Error("Chromium is missing: run scripts/test-deps.sh (as root), or apt-get install -y --no-install-recommends chromium, or set CHROMIUM")
    }
    const dir = mkdtempSync(join(tmpdir(), "organism-streaming-"))
    writeFileSync(join(dir, "script.yaml"), `default:\n  text: "<Respond>${answer}</Respond>"\n  delay: 300ms\n  chunk_size: 3\n  chunk_delay: 80ms\n`)
    writeFileSync(
      join(dir, "organism.yaml"),
      `organism:\n  name: streamer\nllm:\n  backends:\n    - name: scripted\n      provider: mock\n      script: ./script.yaml\n      models: [m]\n` +
        `listeners:\n  - name: talker\n    agent: true\n    payload: TextInput\n    stream: true\n    prompt: You talk.\n`
    )
    served = await startServe(join(dir, "organism.yaml"))
    browser = await chromium.launch({ executablePath, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] })
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await served?.stop()
  })

  it("shows the text growing as it arrives, then the completed call in its place", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } })
    const problems: Array<string> = []
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`))
    await page.goto(served.url)
    await page.locator("#connection[data-state=live]").waitFor()
    await page.locator("#payload-type").selectOption("TextInput")
    await page.locator("#send-to").selectOption("talker")
    await page.locator("#payload-xml").fill("<TextInput><Text>hello</Text></TextInput>")
    await page.locator("#send-button").click()

    const live = page.locator("#conversation li[data-kind=streaming] pre")
    await live.waitFor({ timeout: 10_000 })
    const first = (await live.textContent()) ?? ""
    // It grows while the stream goes on, and is a part of the answer.
    await expect.poll(async () => ((await live.textContent()) ?? "").length, { timeout: 10_000 }).toBeGreaterThan(first.length)
    expect(`<Respond>${answer}</Respond>`).toContain((await live.textContent()) ?? "")
    expect(await page.locator("#conversation li[data-kind=streaming] .head").textContent()).toContain("talker is answering")

    // Once complete: the answer reaches the console, the live text gives way to the call.
    await page.locator("[data-testid=conversation-state]", { hasText: "completed" }).waitFor({ timeout: 20_000 })
    await expect.poll(() => page.locator("#conversation li[data-kind=streaming]").count()).toBe(0)
    expect(await page.locator("#conversation pre.payload").allTextContents()).toContain(`<TextOutput><Text>${answer}</Text></TextOutput>`)
    expect(problems).toEqual([])
    await page.close()
  }, 60_000)
})
