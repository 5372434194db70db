#!/usr/bin/env bash
# 100,000 clients on one Play server (issue 31): for TCP and then WebSocket, a release
# `bench-server` (framework, metrics on) and `loadgen` with CCU clients from 4 loopback source
# addresses; ACTIVE of them (spread over the rest) send one 64-byte request a second, the rest
# authenticate and stay idle. Prints one JSON line per transport: the server's RSS per client
# (peak, all connected), p99 of the active clients' requests, and when the last client got in.
#
#   bash benches/scale.sh [CCU] [ACTIVE] [SECONDS]     # defaults: 100000 1000 30
#
# Needs root for the descriptor limit (each side holds CCU sockets; the script raises both
# limits to 262,144 with ulimit) and about 4 GiB of free memory. Loopback only; bounded by
# SECONDS of measurement after a ramp of CCU/2,500 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
CCU=${1:-100000}
ACTIVE=${2:-1000}
SECONDS_MEASURED=${3:-30}
RAMP=$(( CCU / 2500 + 5 ))
ulimit -n 262144 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# Without CAP_SYS_RESOURCE the hard limit stays where it is: run what fits, and say so.
LIMIT=$(ulimit -n)
WANTED=$CCU
if [ "$LIMIT" != unlimited ] && [ "$CCU" -gt $(( LIMIT - 1000 )) ]; then
    CCU=$(( LIMIT - 1000 ))
    RAMP=$(( CCU / 2500 + 5 ))
    echo "# the descriptor limit is $LIMIT (hard): $CCU clients instead of $WANTED" >&2
fi
echo "# descriptor limit $(ulimit -n), $CCU clients ($ACTIVE active at 1 request/s), ramp ${RAMP}s, measured ${SECONDS_MEASURED}s" >&2
cargo build -q --release -p playhouse-benches --bin bench-server --bin loadgen
BIN=${CARGO_TARGET_DIR:-target}/release
for transport in tcp ws; do
    out=$(mktemp)
    "$BIN/bench-server" --mode framework --observe metrics > "$out" 2>/dev/null &
    server=$!
    for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
    target=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$out" "$transport")
    before=$(awk '/VmRSS/ {print $2}' "/proc/$server/status")
    "$BIN/loadgen" --target "$target" --transport "$transport" --server-pid "$server" \
        --ccu "$CCU" --sources 4 --active "$ACTIVE" --rate 1 --mode request --size 64 \
        --per-stage 10 --heartbeat 30 --ramp "$RAMP" --duration "$SECONDS_MEASURED" \
        | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
ccu, before_kib = int(sys.argv[1]), int(sys.argv[2])
r['case'] = 'scale'
r['wanted_ccu'] = int(sys.argv[3])
r['server_rss_start_mb'] = round(before_kib / 1024, 1)
r['rss_per_client_kib'] = round((r['server_rss_mb'] * 1024 - before_kib) / max(r['authenticated'], 1), 2)
print(json.dumps(r))
" "$CCU" "$before" "$WANTED"
    kill -TERM "$server"
    wait "$server" || true
    rm -f "$out"
done
