// The official `openai` npm client against `lowbit serve` on 127.0.0.1 with stories5M: chat and
// completions, streamed and not, with the fields the client's types require; stop strings; seeds
// repeat; usage counts equal the tokenizer's; logprobs; prefix reuse; a key is enforced.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { sharedDir, stories5M, startServer, postJson } from "./lib.mjs";

const skip = sharedDir() ? false : "shared test data not found (set LOWBIT_SHARED)";
let server, client;

before(async () => {
  if (skip) return;
  server = await startServer(["-m", stories5M(), "-np", "4", "-c", "1024", "-t", "2", "--chat-template", "chatml", "--alias", "stories5M"]);
  client = new OpenAI({ baseURL: server.base + "/v1", apiKey: "unused", maxRetries: 0, timeout: 30000 });
});
after(async () => {
  if (server) assert.equal(await server.stop(), 0, server.log());
});

const chatMessages = [{ role: "system", content: "You tell short stories." }, { role: "user", content: "Once upon a time" }];
const prompt = "Once upon a time, there was a little girl named Lily. She";

async function tokenCount(text, addSpecial = true) {
  const r = await postJson(server.base, "/tokenize", { content: text, add_special: addSpecial });
  assert.equal(r.status, 200);
  return r.body.tokens.length;
}

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

test("models lists the served model", { skip, timeout: 30000 }, async () => {
  const list = await client.models.list();
  assert.equal(list.data[0].id, "stories5M");
  assert.equal(list.data[0].object, "model");
});

test("chat: fields, seeds repeat, usage equals the tokenizer's count", { skip, timeout: 60000 }, async () => {
  const req = { model: "stories5M", messages: chatMessages, max_tokens: 24, seed: 42, temperature: 0.9 };
  const a = await client.chat.completions.create(req);
  assert.match(a.id, /^chatcmpl-/);
  assert.equal(a.object, "chat.completion");
  assert.equal(typeof a.created, "number");
  assert.equal(a.model, "stories5M");
  assert.equal(a.choices.length, 1);
  assert.equal(a.choices[0].index, 0);
  assert.equal(a.choices[0].message.role, "assistant");
  assert.equal(typeof a.choices[0].message.content, "string");
  assert.ok(a.choices[0].message.content.length > 0);
  assert.ok(["stop", "length"].includes(a.choices[0].finish_reason));
  const rendered = await postJson(server.base, "/apply-template", { messages: chatMessages });
  assert.equal(a.usage.prompt_tokens, await tokenCount(rendered.body.prompt));
  assert.equal(a.usage.total_tokens, a.usage.prompt_tokens + a.usage.completion_tokens);
  if (a.choices[0].finish_reason === "length") assert.equal(a.usage.completion_tokens, 24);
  const b = await client.chat.completions.create(req);
  assert.equal(b.choices[0].message.content, a.choices[0].message.content, "same seed, same text");
  const c = await client.chat.completions.create({ ...req, seed: 7 });
  assert.notEqual(c.choices[0].message.content, a.choices[0].message.content, "another seed, another text");
});

test("chat streaming: role first, deltas join into the non-streamed text, usage chunk", { skip, timeout: 60000 }, async () => {
  const req = { model: "stories5M", messages: chatMessages, max_tokens: 32, seed: 3, temperature: 0.8 };
  const whole = await client.chat.completions.create(req);
  const chunks = await collect(await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } }));
  assert.equal(chunks[0].object, "chat.completion.chunk");
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
  assert.equal(text, whole.choices[0].message.content);
  const finals = chunks.filter((c) => c.choices[0]?.finish_reason);
  assert.equal(finals.length, 1);
  assert.equal(finals[0].choices[0].finish_reason, whole.choices[0].finish_reason);
  const usage = chunks.at(-1);
  assert.deepEqual(usage.choices, []);
  assert.deepEqual(usage.usage.completion_tokens, whole.usage.completion_tokens);
  assert.deepEqual(usage.usage.prompt_tokens, whole.usage.prompt_tokens);
  for (const c of chunks) assert.equal(c.id, chunks[0].id);
});

test("completions: streamed and not, usage equals the tokenizer's count", { skip, timeout: 60000 }, async () => {
  const req = { model: "stories5M", prompt, max_tokens: 40, seed: 11, temperature: 0.7 };
  const a = await client.completions.create(req);
  assert.equal(a.object, "text_completion");
  assert.match(a.id, /^cmpl-/);
  assert.equal(typeof a.choices[0].text, "string");
  assert.equal(a.usage.prompt_tokens, await tokenCount(prompt));
  const chunks = await collect(await client.completions.create({ ...req, stream: true }));
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? "").join(""), a.choices[0].text);
  assert.equal(chunks.filter((c) => c.choices[0]?.finish_reason).at(-1).choices[0].finish_reason, a.choices[0].finish_reason);
});

test("stop strings end the text before them, streamed or not, and never leak", { skip, timeout: 60000 }, async () => {
  const base = { model: "stories5M", prompt, max_tokens: 60, temperature: 0 };
  const full = (await client.completions.create(base)).choices[0].text;
  assert.ok(full.length > 40, full);
  // A stop string from the middle of the greedy text, spanning several tokens.
  const stop = full.slice(20, 27);
  const cut = full.indexOf(stop);
  const a = await client.completions.create({ ...base, stop: [stop, "zzzz-never"] });
  assert.equal(a.choices[0].text, full.slice(0, cut));
  assert.equal(a.choices[0].finish_reason, "stop");
  const chunks = await collect(await client.completions.create({ ...base, stop, stream: true }));
  const texts = chunks.map((c) => c.choices[0]?.text ?? "");
  assert.equal(texts.join(""), full.slice(0, cut));
  for (const t of texts) assert.ok(!t.includes(stop));
  // A stop string that never occurs changes nothing.
  const b = await client.completions.create({ ...base, stop: ["\u0001never"] });
  assert.equal(b.choices[0].text, full);
});

test("logprobs: one entry per generated token, the tokens spell the text", { skip, timeout: 60000 }, async () => {
  const r = await client.chat.completions.create({ model: "stories5M", messages: chatMessages, max_tokens: 12, seed: 5, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content.map((t) => t.token).join(""), r.choices[0].message.content);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
    assert.deepEqual(t.bytes, [...Buffer.from(t.token, "utf8")]);
  }
  const greedy = await client.chat.completions.create({ model: "stories5M", messages: chatMessages, max_tokens: 8, temperature: 0, logprobs: true, top_logprobs: 1 });
  for (const t of greedy.choices[0].logprobs.content) assert.equal(t.token, t.top_logprobs[0].token, "greedy takes the most likely token");
});

test("the next turn of a conversation reuses the cached prefix", { skip, timeout: 60000 }, async () => {
  const first = await client.chat.completions.create({ model: "stories5M", messages: chatMessages, max_tokens: 16, seed: 9 });
  const next = [...chatMessages, { role: "assistant", content: first.choices[0].message.content }, { role: "user", content: "And then?" }];
  const second = await client.chat.completions.create({ model: "stories5M", messages: next, max_tokens: 8, seed: 9 });
  assert.ok(second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens, JSON.stringify(second.usage));
});

test("errors come as OpenAI errors with the right status", { skip, timeout: 30000 }, async () => {
  await assert.rejects(client.chat.completions.create({ model: "x", messages: chatMessages, max_tokens: "ten" }), (e) => e.status === 400 && /max_tokens/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: "x", messages: [] }), (e) => e.status === 400);
  await assert.rejects(client.completions.create({ model: "x", prompt: "word ".repeat(400) }), (e) => e.status === 400 && e.code === "context_length_exceeded" && /256/.test(e.message));
  await assert.rejects(client.completions.create({ model: "x", prompt, max_tokens: 1e9 }), (e) => e.status === 400 && /maximum context length is 256/.test(e.message));
});

test("a key is enforced when the server has one", { skip, timeout: 60000 }, async () => {
  const keyed = await startServer(["-m", stories5M(), "-np", "1", "-c", "256", "-t", "1", "--api-key", "sekret"]);
  try {
    const good = new OpenAI({ baseURL: keyed.base + "/v1", apiKey: "sekret", maxRetries: 0 });
    const r = await good.completions.create({ model: "m", prompt: "Tom", max_tokens: 3 });
    assert.equal(r.choices.length, 1);
    const bad = new OpenAI({ baseURL: keyed.base + "/v1", apiKey: "wrong", maxRetries: 0 });
    await assert.rejects(bad.completions.create({ model: "m", prompt: "Tom", max_tokens: 3 }), (e) => e.status === 401 && e.code === "invalid_api_key");
    assert.equal((await fetch(keyed.base + "/health")).status, 200, "health needs no key");
  } finally {
    assert.equal(await keyed.stop(), 0);
  }
});
