#!/usr/bin/env bash
# Tensor parallelism across simulated machines: N Linux network namespaces (each a "host" with its
# own network stack), joined by a network with a given one-way latency and per-host bandwidth, and
# `mpirun` across them over TCP only (one Open MPI daemon per host, started in the host's namespace
# as ssh would start it on a remote machine). Measures decode tok/s with `lowbit bench` and prints
# `lowbit plan`'s prediction for the same network beside it: from the nominal latency and bandwidth,
# and (--allreduce) from the all-reduce cost measured across the same hosts (alpha and beta fitted
# to the mean of MPI_Allreduce over 256..8192 floats, the part above the wire's given to `plan` as
# --sw-alpha / --sw-beta).
#
# Everything happens inside a private sandbox (unshare --net --mount): the namespaces, the private
# test addresses 198.18.0.1..N (RFC 2544's benchmarking range), the hosts file; they vanish with it,
# and an EXIT trap stops the emulator and removes the namespaces first. The network is tc netem on
# veth pairs through a bridge where the kernel has sch_netem; otherwise bench/netem_tun.cc, a
# user-space delay line on TUN devices (this workplace's kernel has no netem). Every run is bounded
# by `timeout`; the emulator ends itself after --max-seconds.
#
# Usage: bench/tp_netns.sh [-n RANKS] [-t THREADS] [--tokens N] [--reps R] [--net LAT,BW]... [--allreduce] MODEL.gguf
#   --allreduce: also time MPI_Allreduce across the hosts (bench/tp_allreduce.cc) on each network,
#                and predict from that measured link too
#   --profile: print each rank's time in all-reduces, gathers and broadcasts (LOWBIT_TP_PROFILE=1)
#   default networks: 50us,10gbit and 200us,1gbit (and 0us,0gbit: no delay, no rate limit)
# Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2, mpirun. Environment: BUILD (build/release),
# MPIRUN_ARGS (more mpirun options, e.g. "--mca mpi_yield_when_idle 1" on a machine busy with other work).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
build="${BUILD:-build/release}"
lowbit="$root/$build/bin/lowbit"
emulator="$root/$build/bin/lowbit_netem_tun"

if [ "${TP_NETNS_INNER:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "tp_netns.sh: needs root (network namespaces)" >&2; exit 1; }
  exec timeout -k 10 3600 unshare --net --mount --fork env TP_NETNS_INNER=1 "$0" "$@"
fi

ranks=2 threads=1 tokens=32 reps=2 allreduce=0 profile=()
nets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n) ranks="$2"; shift 2 ;;
    -t) threads="$2"; shift 2 ;;
    --tokens) tokens="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --net) nets+=("$2"); shift 2 ;;
    --allreduce) allreduce=1; shift ;;
    --profile) profile=(-x LOWBIT_TP_PROFILE=1); shift ;;
    *) break ;;
  esac
done
[ $# -eq 1 ] || { echo "usage: $0 [-n RANKS] [-t THREADS] [--tokens N] [--reps R] [--net LAT,BW]... MODEL.gguf" >&2; exit 2; }
model="$(realpath "$1")"
[ ${#nets[@]} -gt 0 ] || nets=(0us,0gbit 50us,10gbit 200us,1gbit)
[ "$ranks" -ge 1 ] && [ "$ranks" -le 16 ] || { echo "tp_netns.sh: -n must be 1..16" >&2; exit 2; }

work="$(mktemp -d)"
emu_pid=""
cleanup() {
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null || true
  for i in $(seq 0 $((ranks - 1))); do ip netns del "h$i" 2>/dev/null || true; done
  ip link del br-tp 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The sandbox's own /run/netns and /etc/hosts.
mkdir -p /run/netns
mount -t tmpfs tmpfs /run/netns
printf '127.0.0.1 localhost\n' > "$work/hosts"
for i in $(seq 0 $((ranks - 1))); do printf '198.18.0.%d h%d\n' $((i + 1)) "$i" >> "$work/hosts"; done
mount --bind "$work/hosts" /etc/hosts
ip link set lo up

netem=0
ip link add tp-probe0 type veth peer name tp-probe1
tc qdisc add dev tp-probe0 root netem delay 1us 2>/dev/null && netem=1
ip link del tp-probe0

for i in $(seq 0 $((ranks - 1))); do
  ip netns add "h$i"
  ip -n "h$i" link set lo up
  ip netns exec "h$i" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done

# (Re)builds the network for latency $1 (us) and bandwidth $2 (mbit/s, 0: unlimited).
setup_net() {
  local us=$1 mbit=$2
  if [ -n "$emu_pid" ]; then kill "$emu_pid"; wait "$emu_pid" 2>/dev/null || true; emu_pid=""; fi
  ip link del br-tp 2>/dev/null || true
  if [ "$netem" = 1 ]; then
    ip link add br-tp type bridge
    ip link set br-tp up
    for i in $(seq 0 $((ranks - 1))); do
      ip -n "h$i" link del eth0 2>/dev/null || true
      ip link add "tp$i" type veth peer name eth0 netns "h$i"
      ip link set "tp$i" master br-tp up
      ip -n "h$i" addr add "198.18.0.$((i + 1))/24" dev eth0
      ip -n "h$i" link set eth0 up
      local rate=""
      [ "$mbit" != 0 ] && rate="rate ${mbit}mbit"
      ip netns exec "h$i" tc qdisc add dev eth0 root netem delay "${us}us" $rate limit 100000
    done
  else
    "$emulator" --count "$ranks" --name tptun --delay-us "$us" --rate-mbit "$mbit" --max-seconds 1800 \
      > "$work/emu.out" 2> "$work/emu.err" &
    emu_pid=$!
    for _ in $(seq 100); do grep -q ready "$work/emu.out" 2>/dev/null && break; sleep 0.05; done
    grep -q ready "$work/emu.out" || { cat "$work/emu.err" >&2; exit 1; }
    for i in $(seq 0 $((ranks - 1))); do
      ip link set "tptun$i" netns "h$i"
      ip -n "h$i" addr add "198.18.0.$((i + 1))/24" dev "tptun$i"
      ip -n "h$i" link set "tptun$i" mtu 1500 up
    done
  fi
}

# Open MPI starts one daemon per host through this "rsh agent": a host name is a namespace.
cat > "$work/agent.sh" <<'EOF'
#!/bin/sh
host="$1"; shift
exec ip netns exec "$host" /bin/sh -c "$*"
EOF
chmod +x "$work/agent.sh"
: > "$work/hostfile"
for i in $(seq 0 $((ranks - 1))); do echo "h$i slots=1" >> "$work/hostfile"; done

echo "# host: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs), $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $ranks ranks x $threads thread(s), one namespace each; network: $([ "$netem" = 1 ] && echo "tc netem on veth + bridge" || echo "user-space delay line (bench/netem_tun.cc; no sch_netem in this kernel)")"
printf "%-16s %12s %12s %14s %12s %s\n" network "measured" "predicted" "pred. (meas.)" "1 rank" \
  "(tok/s; prediction: lowbit plan --same-host, from the nominal link and from the link's measured all-reduce)"
# lowbit plan's tok/s for the last rank count over the network $plan_net (more options: "$@").
plan() {
  "$lowbit" plan -m "$model" --tp "$ranks" --net "$plan_net" -t "$threads" --same-host --json "$@" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["ranks"][-1]; print("%.2f" % r.get("tok_per_s", 0))'
}
one=$("$lowbit" bench -m "$model" -p 0 -n "$tokens" -r "$reps" -t "$threads" --json | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["tg"])')
for net in "${nets[@]}"; do
  lat="${net%%,*}" bw="${net#*,}"
  us=$(python3 -c "import sys; s=sys.argv[1]; print(float(s[:-2]) * (1000 if s.endswith('ms') else 1))" "$lat")
  mbit=$(python3 -c "import sys; s=sys.argv[1].lower(); v=float(s.rstrip('gmbit/s')); print(int(v * (1000 if 'g' in s else 1)))" "$bw")
  setup_net "$us" "$mbit"
  across=(ip netns exec h0 timeout -k 5 900 mpirun --allow-run-as-root --oversubscribe --bind-to none
      --hostfile "$work/hostfile" --mca plm_rsh_agent "$work/agent.sh"
      --mca btl self,tcp --mca btl_tcp_if_include 198.18.0.0/24 --mca oob_tcp_if_include 198.18.0.0/24 ${MPIRUN_ARGS:-})
  # The link as MPI sees it: alpha-beta of the mean all-reduce, less the wire's latency and rate, per round
  # of recursive doubling (ceil(log2 N) rounds, one more when N is not a power of two).
  sw_alpha=2 sw_beta=0 fit=""
  if [ "$allreduce" = 1 ]; then
    fit=$("${across[@]}" -np "$ranks" "$root/$build/bin/lowbit_tp_allreduce" --iters 300 --sizes 256,2048,4096,8192 --only mpi --json \
      2> "$work/mpirun.err") || { cat "$work/mpirun.err" >&2; exit 1; }
    read -r sw_alpha sw_beta fit < <(python3 -c '
import json, math, sys
j = json.loads(sys.stdin.read()); f = j["fits_mean"]["mpi"]; n = j["ranks"]
us, mbit = float(sys.argv[1]), float(sys.argv[2])
rounds = max(1, math.ceil(math.log2(n)) + (0 if n & (n - 1) == 0 else 1))
wire_us_per_kb = 1000 * 8 / (mbit * 1e6) * 1e6 if mbit > 0 else 0
a = max(0.0, f["alpha_us"] / rounds - us); b = max(0.0, f["beta_us_per_byte"] * 1000 / rounds - wire_us_per_kb)
print("%.3f %.5f all-reduce_mean=%.1fus+%.3fus/KB" % (a, b, f["alpha_us"], f["beta_us_per_byte"] * 1000))' "$us" "$mbit" <<< "$fit")
  fi
  measured=$("${across[@]}" "${profile[@]}" -np "$ranks" "$lowbit" bench -m "$model" -p 0 -n "$tokens" -r "$reps" -t "$threads" --json 2> "$work/mpirun.err" |
    python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["tg"])') || { cat "$work/mpirun.err" >&2; exit 1; }
  plan_net="$lat,$bw"
  [ "$mbit" = 0 ] && plan_net="$lat,0gbit"
  predicted=$(plan)
  pred_link=-
  [ "$allreduce" = 1 ] && pred_link=$(plan --sw-alpha "$sw_alpha" --sw-beta "$sw_beta")
  printf "%-16s %12s %12s %14s %12s\n" "$net" "$measured" "$predicted" "$pred_link" "$one"
  [ -n "$fit" ] && echo "    measured $fit -> plan --sw-alpha $sw_alpha --sw-beta $sw_beta"
  [ ${#profile[@]} -gt 0 ] && { grep '^lowbit tp profile' "$work/mpirun.err" | sed 's/^lowbit tp profile: /    /' || true; }
  if [ -n "$emu_pid" ]; then
    kill "$emu_pid"; wait "$emu_pid" 2>/dev/null || true; emu_pid=""
    sed 's/^/    /' "$work/emu.err"
  fi
done
