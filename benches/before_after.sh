#!/usr/bin/env bash
# Two builds of the bench binaries measured in one interleaved run: a change that must not
# cost performance (a restructure) is checked by running the same cases against the build
# before it and the build after it, alternating which goes first each round, so drift on a
# shared machine hits both alike.
#
# Usage: bash benches/before_after.sh BEFORE_DIR AFTER_DIR [ROUNDS] [SECONDS]
#   BEFORE_DIR, AFTER_DIR: directories holding release `bench-server`, `loadgen`, `mesh-bench`
#   (e.g. build a checkout of the old commit with
#    `CARGO_TARGET_DIR=/tmp/before cargo build --release -p playhouse-benches --bins`).
#   ROUNDS (default 3), SECONDS per measured window (default 10).
#   CASES (environment, default all): the cases to run, e.g. CASES="broadcast mesh". The
#   broadcast case (50 WebSocket clients in one room, one sender x 8, server CPU per delivery)
#   uses the Node load generator of benches/colyseus (`npm ci` there first).
# Prints one JSON line per case and build to $OUT (default /tmp/playhouse-before-after.jsonl),
# then a table of medians: after / before for each case.
set -euo pipefail
BEFORE=${1:?BEFORE_DIR}; AFTER=${2:?AFTER_DIR}; ROUNDS=${3:-3}; SECS=${4:-10}
OUT=${OUT:-/tmp/playhouse-before-after.jsonl}; : > "$OUT"
ulimit -n 65536 2>/dev/null || true
SERVER_OUT=/tmp/playhouse-before-after-server.json

serve() { # bin-dir -> sets PID, TCP, WS
  rm -f "$SERVER_OUT"
  "$1/bench-server" --mode framework > "$SERVER_OUT" &
  for _ in $(seq 100); do [ -s "$SERVER_OUT" ] && break; sleep 0.1; done
  read -r PID TCP WS < <(python3 -c "import json;d=json.load(open('$SERVER_OUT'));print(d['pid'],d['tcp'],d['ws'])")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
record() { # build case json
  echo "{\"build\":\"$1\",\"case\":\"$2\",\"result\":$3}" | tee -a "$OUT" | cut -c1-200
}
load() { # build bin-dir case transport loadgen-args...
  local build=$1 bin=$2 case=$3 transport=$4; shift 4
  serve "$bin"
  local target=$TCP; [ "$transport" = ws ] && target=$WS
  record "$build" "$case" "$("$bin/loadgen" --target "$target" --transport "$transport" \
    --server-pid "$PID" --duration "$SECS" "$@" 2>/dev/null)"
  stop
}
CASES=${CASES:-tcp ws mesh broadcast}
NODE=benches/colyseus/node_modules/.bin/node
wants() { case " $CASES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
broadcast() { # build bin-dir: the Node load generator's broadcast case
  serve "$2"
  record "$1" broadcast-50x8 "$(timeout 120 "$NODE" benches/colyseus/loadgen.mjs --protocol playhouse \
    --target "$WS" --pid "$PID" --warmup 2 --case broadcast --clients 50 --inflight 8 --duration "$SECS")"
  stop
}
one() { # build bin-dir
  if wants tcp; then
    load "$1" "$2" tcp-request-1000x8 tcp --ccu 1000 --inflight 8 --size 64
    load "$1" "$2" tcp-send-1000x8 tcp --ccu 1000 --mode send --inflight 8 --size 64
  fi
  if wants ws; then
    load "$1" "$2" ws-request-1000x1 ws --ccu 1000 --inflight 1 --size 64
    load "$1" "$2" ws-request-100x8 ws --ccu 100 --inflight 8 --size 64
  fi
  if wants mesh; then
    record "$1" mesh "$("$2/mesh-bench" --inflight 64 --size 64 --duration "$SECS" 2>/dev/null)"
  fi
  if wants broadcast && [ -x "$NODE" ]; then broadcast "$1" "$2"; fi
}

for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then one before "$BEFORE"; one after "$AFTER"
  else one after "$AFTER"; one before "$BEFORE"; fi
done

python3 - "$OUT" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def med(build, case, key):
    return statistics.median(r["result"][key] for r in runs if r["build"] == build and r["case"] == case)
clients = ["tcp-request-1000x8", "tcp-send-1000x8", "ws-request-1000x1", "ws-request-100x8"]
rows = [(c, k) for c in clients for k in ("msgs_per_sec", "server_cpu_us_per_msg")]
rows += [("mesh", f"{p}_{k}") for p in ("api_to_stage", "stage_to_stage", "raw_zmq")
         for k in ("msgs_per_sec", "cpu_us_per_msg")]
rows += [("broadcast-50x8", "server_cpu_us_per_delivery"), ("broadcast-50x8", "delivered_per_sec")]
n = max(len([r for r in runs if r["build"] == "before" and r["case"] == c]) for c, _ in rows)
print(f"| case | metric (median of {n}) | before | after | after/before |")
print("|---|---|---:|---:|---:|")
for case, key in rows:
    # A case not run, or a figure an older build does not report, is left out.
    if not all(key in r["result"] for r in runs if r["case"] == case) or \
            not any(r["case"] == case for r in runs):
        continue
    b, a = med("before", case, key), med("after", case, key)
    print(f"| {case} | {key} | {b:,.3f} | {a:,.3f} | {a / b:.1%} |")
PY
