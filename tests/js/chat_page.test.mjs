// The chat page (GET /) in headless Chromium (Debian's chromium, driven by playwright-core): it
// loads, sends a message, shows the streamed answer with its speed, and the Stop button ends a
// long reply. The screenshot is kept in the build's test-artifacts folder.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { sharedDir, stories5M, startServer, artifactDir } from "./lib.mjs";

const CHROMIUM = process.env.LOWBIT_CHROMIUM || "/usr/bin/chromium";
const skip = !sharedDir() ? "shared test data not found (set LOWBIT_SHARED)"
           : !fs.existsSync(CHROMIUM) ? `${CHROMIUM} not found (scripts/install-deps.sh installs Debian's chromium)` : false;
let server, browser;

before(async () => {
  if (skip) return;
  server = await startServer(["-m", stories5M(), "-np", "2", "-c", "8192", "-t", "2", "--chat-template", "chatml"]);  // long replies: Stop has time to act
  // Headless, with a fresh profile (playwright makes one); no network beyond loopback is reachable here.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
    timeout: 60000,
  });
});
after(async () => {
  if (browser) await browser.close();
  if (server) assert.equal(await server.stop(), 0, server.log());
});

test("the page sends a message and shows the streamed answer", { skip, timeout: 120000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(server.base + "/", { timeout: 30000 });
  await page.waitForFunction(() => document.getElementById("model").textContent === "stories5M-f32.gguf", null, { timeout: 30000 });
  await page.fill("#seed", "4");
  await page.fill("#max_tokens", "40");
  await page.fill("#input", "Once upon a time");
  await page.click("#send");
  const bubble = page.locator(".assistant").first();
  await page.waitForSelector('.assistant[data-done="1"]', { timeout: 60000 });
  const text = await bubble.evaluate((el) => el.firstChild ? el.firstChild.textContent : "");
  assert.ok(text.trim().length > 10, `answer: ${JSON.stringify(text)}`);
  const stats = await page.locator(".assistant .stats").first().textContent();
  assert.match(stats, /tok\/s/);
  assert.match(stats, /40 tokens/);
  await page.screenshot({ path: path.join(artifactDir(), "chat_page.png") });
  // The same request through the API gives the same text (the page streams what the server generates).
  const r = await fetch(server.base + "/v1/chat/completions", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "Once upon a time" }], seed: 4, max_tokens: 40, temperature: 0.8, top_p: 0.95, top_k: 40, min_p: 0.05 }),
  });
  assert.equal((await r.json()).choices[0].message.content, text);
  assert.deepEqual(errors, []);
});

test("Stop ends a long reply and frees the slot", { skip, timeout: 120000 }, async () => {
  const page = await browser.newPage();
  await page.goto(server.base + "/", { timeout: 30000 });
  await page.fill("#max_tokens", "");
  await page.fill("#input", "Tell me a long story");
  await page.click("#send");
  await page.waitForFunction(() => document.querySelector(".assistant:last-child")?.textContent.length > 5, null, { timeout: 30000 });
  await page.click("#stop");
  await page.waitForFunction(() => !document.getElementById("send").disabled, null, { timeout: 10000 });
  const deadline = Date.now() + 5000;
  let busy;
  do {
    const m = await (await fetch(server.base + "/metrics")).text();
    busy = Number(m.match(/^lowbit_slots_busy (\S+)/m)[1]);
    if (busy === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  } while (Date.now() < deadline);
  assert.equal(busy, 0, "the stopped request still holds a slot");
});
