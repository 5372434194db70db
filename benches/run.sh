#!/usr/bin/env bash
# Reproduces benches/RESULTS.md: builds release binaries, then for each case starts the server
# under test, runs the load generator against it on loopback, and prints the JSON lines.
# Usage: bash benches/run.sh [quick]   (quick: shorter runs, smaller CCU)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p playhouse-benches --bins
B=target/release
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
