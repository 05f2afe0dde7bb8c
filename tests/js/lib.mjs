// Helpers for the node tests of `lowbit serve`: where the lowbit program and ../shared are, and a
// server started on 127.0.0.1 with a free port, stopped at the end. Loopback only, bounded waits.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = path.resolve(here, "../..");

export function cliPath() {
  const p = process.env.LOWBIT_CLI || path.join(sourceDir, "build/release/bin/lowbit");
  if (!fs.existsSync(p)) throw new Error(`lowbit program not found at ${p}; build first or set LOWBIT_CLI`);
  return p;
}

export function sharedDir() {
  const p = process.env.LOWBIT_SHARED || path.resolve(sourceDir, "../shared");
  return fs.existsSync(path.join(p, "models")) ? p : null;
}

export const stories5M = () => path.join(sharedDir(), "models/stories5M/stories5M-f32.gguf");

export function artifactDir() {
  const d = process.env.LOWBIT_ARTIFACT_DIR || path.join(sourceDir, "build/test-artifacts");
  fs.mkdirSync(d, { recursive: true });
  return d;
}

// Starts `lowbit serve ARGS --port 0` and resolves once /health is 200.
export async function startServer(args, { timeoutMs = 30000 } = {}) {
  const child = spawn(cliPath(), ["serve", "--host", "127.0.0.1", "--port", "0", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("server did not start: " + log)), timeoutMs);
    child.stderr.on("data", (d) => {
      log += d.toString();
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}: ${log}`)));
  });
  child.stderr.on("data", (d) => { log += d.toString(); });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await fetch(base + "/health").catch(() => null);
    if (r && r.status === 200) break;
    if (Date.now() > deadline) throw new Error("server not healthy: " + log);
    await new Promise((res) => setTimeout(res, 50));
  }
  return {
    child, port, base, log: () => log,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      const done = new Promise((res) => child.on("exit", (code) => res(code)));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
      const code = await done;
      clearTimeout(timer);
      return code;
    },
  };
}

export async function postJson(base, route, body, headers = {}) {
  const r = await fetch(base + route, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

// Resident memory of a process in KiB.
export function rssKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return Number(m[1]);
}
