#!/usr/bin/env bash
# The framework against its ceilings in one interleaved run (issue 31): each round serves the
# raw baseline (`bench-server --mode raw` over TCP, `--mode raw-ws` over WebSocket: same
# frames, no stages) and the framework (`--mode framework --observe off`, as the ceilings
# keep no metrics), and the raw baseline with the framework's session -> stage -> session hop
# (`--mode raw-hop`, `--mode raw-ws-hop`: the ceiling of the programming model's topology),
# the order rotating each round, under the same load generator cases; then
# `mesh-bench` (raw zeromq ROUTER ping-pong, the same in the framework's topology and with its
# hops, and the framework's API -> stage and stage -> stage requests).
#
# Usage: bash benches/ceilings.sh [BIN_DIR] [ROUNDS] [SECONDS]
#   BIN_DIR: release `bench-server`, `loadgen`, `mesh-bench` (default target/release)
#   ROUNDS (default 3), SECONDS per measured window (default 8).
#   CASES (environment, default all): e.g. CASES="tcp ws mesh".
# Prints one JSON line per case and server to $OUT (default /tmp/playhouse-ceilings.jsonl),
# then the medians: framework / raw throughput, and raw / framework server CPU per message.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release}; ROUNDS=${2:-3}; SECS=${3:-8}
OUT=${OUT:-/tmp/playhouse-ceilings.jsonl}; : > "$OUT"
CASES=${CASES:-tcp ws mesh}
SERVER_OUT=/tmp/playhouse-ceilings-server.json
ulimit -n 65536 2>/dev/null || true
wants() { case " $CASES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

serve() { # mode -> sets PID, ADDR (tcp or ws)
  rm -f "$SERVER_OUT"
  local args=(--mode "$1")
  [ "$1" = framework ] && args+=(--observe off)
  "$BIN/bench-server" "${args[@]}" > "$SERVER_OUT" &
  for _ in $(seq 100); do [ -s "$SERVER_OUT" ] && break; sleep 0.1; done
  read -r PID TCP WS < <(python3 -c "import json;d=json.load(open('$SERVER_OUT'));print(d['pid'],d.get('tcp','-'),d.get('ws','-'))")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
load() { # server case transport loadgen-args...
  local server=$1 case=$2 transport=$3; shift 3
  local mode=$server
  [ "$transport" = ws ] && case $server in raw) mode=raw-ws ;; raw-hop) mode=raw-ws-hop ;; esac
  serve "$mode"
  local target=$TCP; [ "$transport" = ws ] && target=$WS  # loadgen asks for /ws; raw-ws takes any path
  local result
  result=$("$BIN/loadgen" --target "$target" --transport "$transport" --server-pid "$PID" \
    --duration "$SECS" "$@" 2>/dev/null)
  echo "{\"server\":\"$server\",\"case\":\"$case\",\"result\":$result}" | tee -a "$OUT" | cut -c1-160
  stop
}
three() { # case transport loadgen-args...: raw, raw-hop and the framework, the order rotating
  local order=(raw raw-hop framework)
  local i
  for i in 0 1 2; do load "${order[$(((ROUND + i) % 3))]}" "$@"; done
}

for ROUND in $(seq "$ROUNDS"); do
  if wants tcp; then
    three tcp-request-1000x8 tcp --ccu 1000 --inflight 8 --size 64
    three tcp-send-1000x8 tcp --ccu 1000 --mode send --inflight 8 --size 64
  fi
  if wants ws; then
    three ws-request-1000x1 ws --ccu 1000 --inflight 1 --size 64
    three ws-request-100x8 ws --ccu 100 --inflight 8 --size 64
  fi
  if wants mesh; then
    result=$("$BIN/mesh-bench" --inflight 64 --size 64 --duration "$SECS" 2>/dev/null)
    echo "{\"server\":\"mesh\",\"case\":\"mesh\",\"result\":$result}" | tee -a "$OUT" | cut -c1-160
  fi
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def med(server, case, key):
    values = [r["result"][key] for r in runs if r["server"] == server and r["case"] == case]
    return statistics.median(values) if values else None
# Server CPU per message is what a saturated machine's throughput hides (the load generator
# shares the cores): the ratio raw / framework of it is the framework's efficiency.
print("| case | raw msg/s | framework msg/s | throughput ratio | raw CPU µs/msg | framework CPU µs/msg | raw / framework CPU |")
print("|---|---:|---:|---:|---:|---:|---:|")
for case in ["tcp-request-1000x8", "tcp-send-1000x8", "ws-request-1000x1", "ws-request-100x8"]:
    raw, fw = med("raw", case, "msgs_per_sec"), med("framework", case, "msgs_per_sec")
    rc, fc = med("raw", case, "server_cpu_us_per_msg"), med("framework", case, "server_cpu_us_per_msg")
    if raw and fw:
        cpu = f"{rc / fc:.1%}" if rc and fc else "-"
        print(f"| {case} | {raw:,.0f} | {fw:,.0f} | {fw / raw:.1%} | {rc} | {fc} | {cpu} |")
cases = ["tcp-request-1000x8", "tcp-send-1000x8", "ws-request-1000x1", "ws-request-100x8"]
hop_cases = [c for c in cases if med("raw-hop", c, "msgs_per_sec")]
if hop_cases:
    # The ceiling of the topology: raw frames through the same session -> stage -> session hop.
    print()
    print("| case | raw CPU µs/msg | raw + hop CPU µs/msg | framework CPU µs/msg | raw / raw + hop | raw + hop / framework | raw / framework |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case in hop_cases:
        rc, hc, fc = (med(s, case, "server_cpu_us_per_msg") for s in ("raw", "raw-hop", "framework"))
        if rc and hc and fc:
            print(f"| {case} | {rc} | {hc} | {fc} | {rc / hc:.1%} | {hc / fc:.1%} | {rc / fc:.1%} |")
mesh = [r["result"] for r in runs if r["case"] == "mesh"]
if mesh:
    print()
    print(f"| mesh (median of {len(mesh)}) | msg/s | of raw ping-pong |")
    print("|---|---:|---:|")
    raw = statistics.median(m["raw_zmq_msgs_per_sec"] for m in mesh)
    for key in sorted(k for k in mesh[0] if k.endswith("msgs_per_sec")):
        value = statistics.median(m[key] for m in mesh)
        print(f"| {key} | {value:,.0f} | {value / raw:.1%} |")
    if "raw_zmq_cpu_us_per_msg" in mesh[0]:
        print()
        print("| mesh CPU per message (median) | µs | raw ping-pong ÷ this |")
        print("|---|---:|---:|")
        raw_cpu = statistics.median(m["raw_zmq_cpu_us_per_msg"] for m in mesh)
        for key in sorted(k for k in mesh[0] if k.endswith("cpu_us_per_msg")):
            value = statistics.median(m[key] for m in mesh)
            print(f"| {key} | {value:.2f} | {raw_cpu / value:.1%} |")
PY
