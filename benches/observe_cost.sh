#!/usr/bin/env bash
# What observability costs: the same release `bench-server` with everything on (`--observe on`:
# every metric, a `tracing` subscriber logging at INFO, the admin listener) and with metrics and
# tracing off (`--observe off`: no per-message metric, no subscriber), measured in one
# interleaved run (which goes first alternates each round, so drift on a shared machine hits
# both alike): framework TCP request/reply and one-way throughput.
#
# Usage: bash benches/observe_cost.sh [BIN_DIR] [ROUNDS] [SECONDS]
#   BIN_DIR: release `bench-server` and `loadgen` (default target/release; build them with
#   `cargo build --release -p playhouse-benches --bins`). ROUNDS (default 3), SECONDS per
#   measured window (default 10).
#   ON (default `on`): the mode measured against `off`; `metrics` is every metric without the
#   `tracing` subscriber.
# Prints one JSON line per case and mode to $OUT (default /tmp/playhouse-observe-cost.jsonl),
# then a table of medians: on / off for each case.
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release}; ROUNDS=${2:-3}; SECS=${3:-10}; ON=${ON:-on}
OUT=${OUT:-/tmp/playhouse-observe-cost.jsonl}; : > "$OUT"
ulimit -n 65536 2>/dev/null || true
SERVER_OUT=/tmp/playhouse-observe-cost-server.json

serve() { # observe -> sets PID, TCP
  rm -f "$SERVER_OUT"
  "$BIN/bench-server" --mode framework --observe "$1" > "$SERVER_OUT" 2>/dev/null &
  for _ in $(seq 100); do [ -s "$SERVER_OUT" ] && break; sleep 0.1; done
  read -r PID TCP < <(python3 -c "import json;d=json.load(open('$SERVER_OUT'));print(d['pid'],d['tcp'])")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
load() { # observe case loadgen-args...
  local observe=$1 case=$2; shift 2
  serve "$observe"
  local result
  result=$("$BIN/loadgen" --target "$TCP" --transport tcp --server-pid "$PID" --duration "$SECS" "$@" 2>/dev/null)
  echo "{\"observe\":\"$observe\",\"case\":\"$case\",\"result\":$result}" | tee -a "$OUT" | cut -c1-160
  stop
}
one() { # observe
  load "$1" tcp-request-1000x8 --ccu 1000 --inflight 8 --size 64
  load "$1" tcp-send-1000x8 --ccu 1000 --mode send --inflight 8 --size 64
}

for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then one off; one "$ON"; else one "$ON"; one off; fi
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def values(observe, case):
    return [r["result"]["msgs_per_sec"] for r in runs if r["observe"] == observe and r["case"] == case]
n = len(values("off", "tcp-request-1000x8"))
print(f"| case | off (median of {n}) | on | on/off | runs off | runs on |")
print("|---|---:|---:|---:|---|---|")
for case in ["tcp-request-1000x8", "tcp-send-1000x8"]:
    off, on = values("off", case), [r["result"]["msgs_per_sec"] for r in runs if r["observe"] != "off" and r["case"] == case]
    mo, mn = statistics.median(off), statistics.median(on)
    fmt = lambda xs: " ".join(f"{x:,.0f}" for x in xs)
    print(f"| {case} | {mo:,.0f} | {mn:,.0f} | {mn / mo:.1%} | {fmt(off)} | {fmt(on)} |")
PY
