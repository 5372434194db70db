#!/usr/bin/env bash
# Reproduces benches/RESULTS.md: builds release binaries, then for each case starts the server
# under test, runs the load generator against it on loopback, and prints the JSON lines.
# Usage: bash benches/run.sh [quick]   (quick: shorter runs, smaller CCU)
#        bash benches/run.sh resume [ROUNDS] [SECONDS] [IDLE_CCU]
#          resumable sessions' cost (issue 12): off/on interleaved ROUNDS times (default 3),
#          SECONDS per loaded run (default 10), IDLE_CCU idle clients for memory (default 2000,
#          0: skip);
#          prints the JSON lines, then the medians.
#        bash benches/run.sh move [ROUNDS]
#          live stage moves (issue 27): the pause per move and a 100-stage drain (players back
#          to back, then at 10 requests/s with a bystander server measured), ROUNDS times
#          (default 3); prints the JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p playhouse-benches --bins
B=${CARGO_TARGET_DIR:-target}/release
QUICK=${1:-}
DUR=20; BIG_DUR=60; BIG_CCU=10000
if [ "$QUICK" = quick ]; then DUR=5; BIG_DUR=10; BIG_CCU=2000; fi
ulimit -n 65536 2>/dev/null || true

serve() { # mode -> sets TARGET and PID
  "$B/bench-server" --mode "$1" > /tmp/playhouse-bench-server.json &
  for _ in $(seq 50); do [ -s /tmp/playhouse-bench-server.json ] && break; sleep 0.1; done
  TARGET=$(python3 -c "import json;print(json.load(open('/tmp/playhouse-bench-server.json'))['tcp'])")
  PID=$(python3 -c "import json;print(json.load(open('/tmp/playhouse-bench-server.json'))['pid'])")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; rm -f /tmp/playhouse-bench-server.json; }
load() { # label server-mode loadgen-args...
  local label=$1 mode=$2; shift 2
  serve "$mode"
  echo "{\"case\":\"$label\",\"server\":\"$mode\",\"result\":$("$B/loadgen" --target "$TARGET" --server-pid "$PID" "$@" 2>/dev/null)}"
  stop
}

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

if [ "$QUICK" = resume ]; then
  ROUNDS=${2:-3}; SECS=${3:-10}; IDLE_CCU=${4:-2000}
  OUT=${RESUME_OUT:-/tmp/playhouse-resume.jsonl}; : > "$OUT"
  for round in $(seq "$ROUNDS"); do
    # Alternate which goes first, so drift on a shared machine hits both alike.
    if [ $((round % 2)) = 1 ]; then ORDER="off on"; else ORDER="on off"; fi
    for r in $ORDER; do
      flag=(); [ "$r" = on ] && flag=(--resume)
      for mode in request send; do
        load "$mode-1000x8" framework --ccu 1000 --mode "$mode" --inflight 8 --size 64 \
          --duration "$SECS" --ramp 3 "${flag[@]}" | tee -a "$OUT"
      done
      [ "$IDLE_CCU" = 0 ] && continue
      serve framework
      sleep 0.5; base=$(rss_mb "$PID")
      result=$("$B/loadgen" --target "$TARGET" --server-pid "$PID" --mode idle --ccu "$IDLE_CCU" \
        --heartbeat 1 --duration 4 --ramp 6 "${flag[@]}" 2>/dev/null)
      echo "{\"case\":\"idle-$IDLE_CCU\",\"server\":\"framework\",\"empty_rss_mb\":$base,\"result\":$result}" | tee -a "$OUT"
      stop
    done
  done
  python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def med(case, resume, key):
    xs = [r["result"][key] for r in runs if r["case"] == case and r["result"]["resume"] == resume]
    return statistics.median(xs), len(xs)
cases = sorted({r["case"] for r in runs})
print("| case | metric | off | on | on/off |")
print("|---|---|---:|---:|---:|")
for case in cases:
    keys = ["server_rss_mb"] if case.startswith("idle") else \
        ["msgs_per_sec", "p99_us", "bytes_in_per_msg", "bytes_out_per_msg", "errors"]
    for key in keys:
        (off, n), (on, _) = med(case, False, key), med(case, True, key)
        ratio = f"{on / off:.1%}" if off else "-"
        print(f"| {case} | {key} (median of {n}) | {off:,.2f} | {on:,.2f} | {ratio} |")
    if case.startswith("idle"):
        ccu = runs[[r["case"] for r in runs].index(case)]["result"]["ccu"]
        (off, _), (on, _) = med(case, False, "server_rss_mb"), med(case, True, "server_rss_mb")
        empty = statistics.median(r["empty_rss_mb"] for r in runs if r["case"] == case)
        print(f"| {case} | server RSS per session, off / on (empty server {empty} MiB) "
              f"| {(off - empty) * 1048576 / ccu:,.0f} B | {(on - empty) * 1048576 / ccu:,.0f} B "
              f"| +{(on - off) * 1048576 / ccu:,.0f} B |")
PY
  exit 0
fi

if [ "$QUICK" = move ]; then
  ROUNDS=${2:-3}
  echo "# load: $(uptime)"
  for _ in $(seq "$ROUNDS"); do
    "$B/move-bench" --case pause --moves 30
    "$B/move-bench" --case drain --stages 100 --rate 0
    "$B/move-bench" --case drain --stages 100 --rate 10 --bystander-ccu 100 --bystander-rate 100
  done
  echo "# load: $(uptime)"
  exit 0
fi

echo "# request/reply, 1000 CCU x 8 in flight x 64 B"
load request-1000x8 raw       --ccu 1000 --inflight 8 --size 64 --duration "$DUR"
load request-1000x8 framework --ccu 1000 --inflight 8 --size 64 --duration "$DUR"
echo "# one-way send answered by a push, 1000 CCU x 8 in flight x 64 B"
load send-1000x8 raw       --ccu 1000 --mode send --inflight 8 --size 64 --duration "$DUR"
load send-1000x8 framework --ccu 1000 --mode send --inflight 8 --size 64 --duration "$DUR"
echo "# $BIG_CCU CCU, one 64 B request per second each"
load ccu-$BIG_CCU framework --ccu "$BIG_CCU" --rate 1 --size 64 --duration "$BIG_DUR" --ramp 10
echo "# mesh: raw zeromq ROUTER ping-pong vs framework (64 in flight, 64 B)"
"$B/mesh-bench" --inflight 64 --size 64 --duration "$DUR" 2>/dev/null
