#!/usr/bin/env python3
"""Aggregate decode speed of an OpenAI-compatible server under 1, 2, 4, 8 concurrent streams.

Drives lowbit serve and llama.cpp's llama-server the same way: N clients at once, each a streaming
/v1/completions request with the same prompt, `max_tokens` M and `ignore_eos` (so every stream
decodes exactly M tokens). Per count it reports
  aggregate decode tok/s = N * (M - 1) / (last stream's last token - first stream's first token),
  time to first token (mean and max over the N streams), and the whole batch's wall time.
Each count runs `--reps` times after one warm-up; the best aggregate is kept (a shared machine's
noise only slows a run down). Standard library only; loopback only.

  bench/serve_bench.py --url http://127.0.0.1:8080 [--streams 1,2,4,8] [--tokens 64] [--reps 3] [--json]
  bench/serve_bench.py --compare MODEL.gguf -t 2    # starts lowbit serve and llama-server in turn, -np 8 each

Speculative decoding on a repetitive task (a text to be repeated; greedy), each server with and
without its prompt-lookup drafting:
  bench/serve_bench.py --compare MODEL.gguf -t 2 --task repeat --temperature 0 --streams 1,4 \
      --lowbit-args=--lookup --llama-args='--spec-type ngram-cache'
"""
import argparse
import http.client
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

PROMPT = "Once upon a time, in a small village at the edge of a forest, there lived"

# --task repeat: a text, then its first sentence again for the model to go on from (code edits,
# rewrites and retrieval answers repeat long spans of their prompt: what prompt lookup drafts from).
# Short enough that prompt + 96 tokens fit stories5M's 256-token context.
REPEAT_TEXT = ("Lily and her dog Max went to the river to get water. Max saw a red bird in the grass and ran after it. "
               "Lily called him again and again, but he did not come back.")
REPEAT_PROMPT = REPEAT_TEXT + "\n\n" + REPEAT_TEXT.split(". ")[0] + "."


def stream_once(url, tokens, seed, out, i, barrier, prompt, temperature):
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    body = json.dumps({"prompt": prompt, "max_tokens": tokens, "ignore_eos": True, "stream": True, "temperature": temperature,
                       "seed": seed, "cache_prompt": False})
    barrier.wait()
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        out[i] = {"error": f"HTTP {r.status}: {r.read()[:200]!r}"}
        return
    first = last = None
    chunks = 0
    drafts = None  # llama-server: the last chunk's timings

    buf = b""
    while True:
        data = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not data:
            break
        buf += data
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            if not ev.startswith(b"data: ") or ev == b"data: [DONE]":
                continue
            j = json.loads(ev[6:])
            t = j.get("timings") or {}
            if "draft_n" in t:
                drafts = (t["draft_n"], t.get("draft_n_accepted", 0))
            ch = j.get("choices") or []
            if ch and ch[0].get("text"):
                now = time.perf_counter()
                first = first or now
                last = now
                chunks += 1
    conn.close()
    out[i] = {"start": t0, "first": first, "last": last, "chunks": chunks, "drafts": drafts}


def metric(url, name):
    """A counter of lowbit's /metrics (None for another server)."""
    try:
        u = urlparse(url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        c.request("GET", "/metrics")
        m = re.search(rf"^lowbit_{name} (\S+)", c.getresponse().read().decode(), re.M)
        return float(m.group(1)) if m else None
    except OSError:
        return None


def run_count(url, n, tokens, reps, prompt=PROMPT, temperature=0.8):
    best = None
    for rep in range(reps + 1):  # the first is a warm-up
        out = [None] * n
        barrier = threading.Barrier(n)
        d0, a0 = metric(url, "draft_tokens_total"), metric(url, "draft_accepted_tokens_total")
        threads = [threading.Thread(target=stream_once, args=(url, tokens, 1000 * rep + i, out, i, barrier, prompt, temperature)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        errors = [o["error"] for o in out if o and "error" in o]
        if errors:
            raise RuntimeError(errors[0])
        firsts = [o["first"] for o in out]
        lasts = [o["last"] for o in out]
        agg = n * (tokens - 1) / (max(lasts) - min(firsts))
        ttft = [o["first"] - o["start"] for o in out]
        res = {"streams": n, "aggregate_tok_s": agg, "per_stream_tok_s": agg / n, "ttft_mean_ms": 1e3 * sum(ttft) / n,
               "ttft_max_ms": 1e3 * max(ttft), "wall_s": max(lasts) - min(o["start"] for o in out)}
        d1, a1 = metric(url, "draft_tokens_total"), metric(url, "draft_accepted_tokens_total")
        if None not in (d0, a0, d1, a1) and d1 > d0:
            res["drafted"], res["accepted"] = int(d1 - d0), int(a1 - a0)
        elif any(o["drafts"] for o in out):
            res["drafted"] = sum(o["drafts"][0] for o in out if o["drafts"])
            res["accepted"] = sum(o["drafts"][1] for o in out if o["drafts"])
        if rep > 0 and (best is None or agg > best["aggregate_tok_s"]):
            best = res
    return best


def measure(url, counts, tokens, reps, name="server", prompt=PROMPT, temperature=0.8):
    rows = []
    for n in counts:
        rows.append(run_count(url, n, tokens, reps, prompt, temperature))
        r = rows[-1]
        acc = f", accepted {r['accepted']}/{r['drafted']} drafted" if "drafted" in r else ""
        print(f"[{name}] {n} streams: {r['aggregate_tok_s']:.1f} tok/s aggregate, TTFT mean {r['ttft_mean_ms']:.0f} ms{acc}", file=sys.stderr, flush=True)
    return rows


def start(cmd, url, log):
    p = subprocess.Popen(cmd, stdout=log, stderr=log)
    u = urlparse(url)
    for _ in range(1200):
        try:
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return p
        except OSError:
            pass
        if p.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {p.returncode}")
        time.sleep(0.1)
    p.terminate()
    raise RuntimeError(f"{cmd[0]} did not become healthy")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--streams", default="1,2,4,8")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--compare", metavar="MODEL", help="start lowbit serve and llama-server on MODEL in turn (-np 8 each)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-c", "--ctx", type=int, default=8 * 512)
    ap.add_argument("--lowbit", default=os.path.join(os.path.dirname(__file__), "../build/release/bin/lowbit"))
    ap.add_argument("--llama-server", default=os.environ.get("LLAMA_SERVER", "/work/llama.cpp/build/bin/llama-server"))
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--only", choices=["lowbit", "llama-server"], help="with --compare: start only this server (e.g. two lowbit builds via --lowbit)")
    ap.add_argument("--np", type=int, default=8, help="with --compare: slots of each server (default 8)")
    ap.add_argument("--task", choices=["story", "repeat"], default="story", help="story: continue a sentence; repeat: write a given text again")
    ap.add_argument("--temperature", type=float, default=0.8, help="0: greedy")
    ap.add_argument("--lowbit-args", default="", help="with --compare: more arguments of lowbit serve (e.g. --lookup)")
    ap.add_argument("--llama-args", default="", help="with --compare: more arguments of llama-server (e.g. '--spec-type ngram-cache')")
    a = ap.parse_args()
    prompt = REPEAT_PROMPT if a.task == "repeat" else PROMPT
    counts = [int(x) for x in a.streams.split(",")]
    runs = {}
    if a.compare:
        url = f"http://127.0.0.1:{a.port}"
        servers = {
            "lowbit": [a.lowbit, "serve", "-m", a.compare, "--host", "127.0.0.1", "--port", str(a.port), "-np", str(a.np), "-c", str(a.ctx),
                       "-t", str(a.threads)] + shlex.split(a.lowbit_args),
            "llama-server": [a.llama_server, "-m", a.compare, "--host", "127.0.0.1", "--port", str(a.port), "-np", str(a.np), "-c", str(a.ctx),
                             "-t", str(a.threads), "-tb", str(a.threads), "--no-webui", "--log-disable"] + shlex.split(a.llama_args),
        }
        for name, cmd in servers.items():
            if a.only is not None and name != a.only:
                continue
            with open(f"/tmp/serve_bench_{name}.log", "w") as log:
                p = start(cmd, url, log)
                try:
                    runs[name] = measure(url, counts, a.tokens, a.reps, name, prompt, a.temperature)
                finally:
                    p.terminate()
                    p.wait(timeout=30)
    else:
        runs["server"] = measure(a.url, counts, a.tokens, a.reps, "server", prompt, a.temperature)
    if a.json:
        print(json.dumps(runs, indent=2))
        return
    for name, rows in runs.items():
        print(f"== {name}: {a.tokens} tokens per stream, best of {a.reps}")
        print(f"{'streams':>7} {'aggregate tok/s':>16} {'per stream':>11} {'x single':>9} {'TTFT mean ms':>13} {'TTFT max ms':>12} {'accepted/drafted':>17}")
        single = rows[0]["aggregate_tok_s"]
        for r in rows:
            acc = f"{r['accepted']}/{r['drafted']}" if "drafted" in r else "-"
            print(f"{r['streams']:>7} {r['aggregate_tok_s']:>16.1f} {r['per_stream_tok_s']:>11.1f} {r['aggregate_tok_s'] / single:>9.2f} "
                  f"{r['ttft_mean_ms']:>13.0f} {r['ttft_max_ms']:>12.0f} {acc:>17}")


if __name__ == "__main__":
    main()
