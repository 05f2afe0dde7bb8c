// The chat templates of the well-known model families, rendered by lowbit's Jinja engine
// (`lowbit template --batch`) and by the reference @huggingface/jinja, with the same
// conversations: the outputs must be byte-identical (or both must refuse the conversation).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { Template } from "@huggingface/jinja";
import { cliPath } from "./lib.mjs";

const FAMILIES = ["llama2", "llama3", "llama3.1", "mistral", "mistral-v7", "mistral-nemo", "chatml", "qwen2.5", "phi3", "phi3.5",
                  "gemma", "gemma2", "zephyr", "deepseek-coder", "deepseek2", "deepseek-r1"];

const tools = [{ type: "function", function: { name: "get_weather", description: "Weather of a city", parameters: { type: "object", properties: { city: { type: "string", description: "the city" } }, required: ["city"] } } }];

const CONVERSATIONS = [
  { name: "one user message", messages: [{ role: "user", content: "Hello!" }] },
  { name: "system and user", messages: [{ role: "system", content: "You are a helpful assistant." }, { role: "user", content: "What is 2+2?" }] },
  { name: "multi-turn", messages: [{ role: "user", content: "Hi" }, { role: "assistant", content: "Hello, how can I help?" }, { role: "user", content: "Tell me a story." }] },
  { name: "system multi-turn", messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }, { role: "assistant", content: "Hi there." }, { role: "user", content: "Bye" }] },
  { name: "assistant last, no generation prompt", add_generation_prompt: false, messages: [{ role: "user", content: "Q" }, { role: "assistant", content: "A" }] },
  { name: "awkward text", messages: [{ role: "user", content: "  spaces around  \n\nnew\tlines, \"quotes\", 'single', {{ braces }}, {% tags %}, é ü 日本 🙂 \\ backslash  " }] },
  { name: "reasoning reply", messages: [{ role: "user", content: "Think" }, { role: "assistant", content: "<think>\nhmm\n</think>\n\nDone." }, { role: "user", content: "Again" }] },
  { name: "roles out of order", messages: [{ role: "assistant", content: "I speak first" }, { role: "assistant", content: "twice" }] },
  { name: "tools offered", tools, messages: [{ role: "user", content: "Weather in Paris?" }] },
];

function contexts() {
  const out = [];
  for (const c of CONVERSATIONS) {
    const ctx = { messages: c.messages, bos_token: "<s>", eos_token: "</s>", add_generation_prompt: c.add_generation_prompt ?? true, date_string: "26 Jul 2024" };
    if (c.tools) ctx.tools = c.tools;
    out.push({ name: c.name, ctx });
  }
  return out;
}

test("every family's template renders as @huggingface/jinja renders it", { timeout: 60000 }, () => {
  const named = JSON.parse(execFileSync(cliPath(), ["template", "--list"], { encoding: "utf8" }));
  const jobs = [];
  for (const family of FAMILIES) {
    assert.ok(named[family], `built-in template ${family} missing`);
    for (const c of contexts()) jobs.push({ family, name: c.name, template: named[family].source, context: c.ctx });
  }
  const input = jobs.map((j) => JSON.stringify({ template: j.template, context: j.context })).join("\n") + "\n";
  const lines = execFileSync(cliPath(), ["template", "--batch"], { input, encoding: "utf8", maxBuffer: 64 << 20 }).trim().split("\n");
  assert.equal(lines.length, jobs.length);
  let compared = 0, refused = 0;
  const failures = [];
  jobs.forEach((j, i) => {
    const ours = JSON.parse(lines[i]);
    let want, wantError = null;
    try {
      want = new Template(j.template).render(j.context);
    } catch (e) {
      wantError = String(e.message || e);
    }
    if (wantError !== null || ours.error !== undefined) {
      if ((wantError !== null) !== (ours.error !== undefined)) {
        failures.push(`${j.family} / ${j.name}: reference ${wantError ? "refused: " + wantError : "rendered"}, lowbit ${ours.error ? "refused: " + ours.error : "rendered"}`);
      } else {
        refused++;
      }
      return;
    }
    if (ours.output !== want) failures.push(`${j.family} / ${j.name}:\n  lowbit:    ${JSON.stringify(ours.output)}\n  reference: ${JSON.stringify(want)}`);
    compared++;
  });
  assert.deepEqual(failures, [], failures.join("\n"));
  assert.ok(compared >= FAMILIES.length * 6, `only ${compared} renders compared`);
  console.log(`${compared} renders identical, ${refused} refused by both`);
});
