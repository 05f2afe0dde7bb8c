// Load: 8 concurrent streaming clients (the official openai client) for a bounded number of
// rounds. Every response is complete and equal, token for token, to the same request served
// alone with the same seed (batching changes no token); no request fails; the server's resident
// memory is flat across rounds (no leak).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { sharedDir, stories5M, startServer, rssKiB } from "./lib.mjs";

const skip = sharedDir() ? false : "shared test data not found (set LOWBIT_SHARED)";
const CLIENTS = 8, ROUNDS = 5, MAX_TOKENS = 48;
let server, client;

before(async () => {
  if (skip) return;
  server = await startServer(["-m", stories5M(), "-np", String(CLIENTS), "-c", String(CLIENTS * 256), "-t", "2", "--chat-template", "zephyr"]);
  client = new OpenAI({ baseURL: server.base + "/v1", apiKey: "unused", maxRetries: 0, timeout: 60000 });
});
after(async () => {
  if (server) assert.equal(await server.stop(), 0, server.log());
});

// Different prompts, lengths, samplers and seeds, chat and completions mixed.
function request(i) {
  const starts = ["Once upon a time", "Tom and his dog", "The sun was hot and", "Lily found a box.", "One day, a little bird", "Ben liked to play",
                  "There was a big tree", "Sue was sad because"];
  const common = { model: "m", max_tokens: MAX_TOKENS - 4 * (i % 3), seed: 1000 + i, temperature: 0.6 + 0.1 * (i % 4), top_k: 20 + i, stream: true };
  if (i % 2 === 0) return { kind: "chat", body: { ...common, messages: [{ role: "user", content: starts[i] + " " + "and then ".repeat(i) }] } };
  return { kind: "completion", body: { ...common, prompt: starts[i] } };
}

async function run(req) {
  const stream = req.kind === "chat" ? await client.chat.completions.create(req.body) : await client.completions.create(req.body);
  let text = "", finish = null, chunks = 0;
  for await (const c of stream) {
    chunks++;
    const ch = c.choices[0];
    if (!ch) continue;
    text += req.kind === "chat" ? ch.delta?.content ?? "" : ch.text ?? "";
    if (ch.finish_reason) finish = ch.finish_reason;
  }
  return { text, finish, chunks };
}

test("8 concurrent streams equal the requests served alone; no errors; memory flat", { skip, timeout: 240000 }, async () => {
  const alone = [];
  for (let i = 0; i < CLIENTS; i++) alone.push(await run(request(i)));
  for (const a of alone) assert.ok(a.finish === "stop" || a.finish === "length");
  const rss = [];
  for (let round = 0; round < ROUNDS; round++) {
    const results = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => run(request(i))));
    results.forEach((r, i) => {
      assert.ok(r.finish, `round ${round} client ${i}: no finish_reason (incomplete stream)`);
      assert.equal(r.text, alone[i].text, `round ${round} client ${i}: text differs from the request served alone`);
      assert.equal(r.finish, alone[i].finish);
    });
    rss.push(rssKiB(server.child.pid));
  }
  // After the first round (pools and caches warm), resident memory does not grow.
  const growth = rss.at(-1) - rss[1];
  console.log(`RSS by round (KiB): ${rss.join(", ")}; growth after round 2: ${growth} KiB`);
  assert.ok(growth < 2048, `RSS grew by ${growth} KiB over ${ROUNDS - 2} rounds: ${rss.join(", ")}`);
  const metrics = await (await fetch(server.base + "/metrics")).text();
  const requests = Number(metrics.match(/^lowbit_requests_total (\S+)/m)[1]);
  assert.equal(requests, CLIENTS * (ROUNDS + 1));
});
