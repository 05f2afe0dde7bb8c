#!/usr/bin/env bash
# Legacy GGML files end to end (issue 25): stories260K written in 2023's layouts by the tests' writer
# (ggjt v3 F32, ggmf v1 Q8_0 mix, ggjt v1 Q5 mix, ggjt v2 Q8_0 mix), converted with `lowbit convert`,
# compared tensor by tensor with the original GGUF, then scored by lowbit and by llama.cpp's
# llama-perplexity beside the original GGUF (ctx 128, 20 chunks of the TinyStories text). Needs a release build (bin/lowbit, bin/lowbit_write_legacy_ggml) and llama.cpp
# (LLAMACPP_BIN, default /work/llama.cpp/build/bin; bench/llamacpp.sh builds it).
# Usage: bench/legacy_ggml.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/release/bin
shared="${LOWBIT_SHARED:-../shared}"
llama="${LLAMACPP_BIN:-/work/llama.cpp/build/bin}"
text="$shared/data/tinystories/TinyStoriesV2-GPT4-valid.first100.txt"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
ppl_lowbit() { "$bin/lowbit" perplexity -m "$1" -f "$text" -c 128 --chunks 20 -t 2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["ppl"])'; }
# llama.cpp's log thread sometimes loses its last lines when the process exits (seen here under load):
# retry until the final estimate is printed.
ppl_llama() {
  local p=""
  for _ in 1 2 3 4 5; do
    p="$("$llama/llama-perplexity" -m "$1" -f "$text" -c 128 -b 128 --chunks 20 -t 2 2>&1 |
         sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')"
    [ -n "$p" ] && break
  done
  echo "${p:-?}"
}
printf '%-28s %-9s %-12s %-12s %-12s %-12s\n' file legacy lowbit-orig lowbit-conv llama-orig llama-conv
for c in "stories260K-f32.gguf ggjt 3" "stories260K-q8_0-mix.gguf ggmf 1" "stories260K-q5_0-mix.gguf ggjt 1" \
         "stories260K-q8_0-mix.gguf ggjt 2"; do
  set -- $c
  ref="$shared/models/stories260K/$1"
  "$bin/lowbit_write_legacy_ggml" "$ref" "$out/old.bin" "$2" "$3"
  "$bin/lowbit" convert "$out/old.bin" -o "$out/new.gguf" --ctx 512 --rms-eps 1e-5 -q
  python3 - "$out/new.gguf" "$ref" <<'PY'
import struct, sys
def tensors(path):  # name -> (type, dims, bytes) of a GGUF v3 file, standard library only
    b = open(path, "rb").read()
    o = 8
    n_t, n_kv = struct.unpack_from("<QQ", b, o); o += 16
    def s(o):
        n = struct.unpack_from("<Q", b, o)[0]; return b[o + 8:o + 8 + n], o + 8 + n
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    def skip(t, o):
        if t == 8: return s(o)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, o); o += 12
            for _ in range(n): o = skip(et, o)
            return o
        return o + sizes[t]
    align = 32
    for _ in range(n_kv):
        k, o = s(o); t = struct.unpack_from("<I", b, o)[0]; o += 4
        if k == b"general.alignment": align = struct.unpack_from("<I", b, o)[0]
        o = skip(t, o)
    info = []
    for _ in range(n_t):
        name, o = s(o); nd = struct.unpack_from("<I", b, o)[0]; o += 4
        dims = struct.unpack_from("<%dQ" % nd, b, o); o += 8 * nd
        ty, off = struct.unpack_from("<IQ", b, o); o += 12
        info.append((name, ty, dims, off))
    base = (o + align - 1) // align * align
    offs = sorted(x[3] for x in info) + [len(b) - base]
    out = {}
    for name, ty, dims, off in info:
        nxt = min(x for x in offs if x > off) if any(x > off for x in offs) else len(b) - base
        out[name] = (ty, dims, b[base + off:base + nxt])
    return out
a, r = tensors(sys.argv[1]), tensors(sys.argv[2])
same = sum(1 for k in r if k in a and a[k][0] == r[k][0] and a[k][1] == r[k][1] and a[k][2].rstrip(b"\0") == r[k][2].rstrip(b"\0"))
print("  tensors equal to the original (type, shape, bytes): %d of %d" % (same, len(r)))
PY
  printf '%-28s %-9s %-12s %-12s %-12s %-12s\n' "$1" "$2-v$3" "$(ppl_lowbit "$ref")" "$(ppl_lowbit "$out/new.gguf")" \
         "$(ppl_llama "$ref")" "$(ppl_llama "$out/new.gguf")"
done
