#!/usr/bin/env bash
# Issue 15: PlayHouse vs Colyseus over WebSocket, with the raw WebSocket ceiling (`bench-server
# --mode raw-ws`) and, for the same run, the Rust load generator's TCP and WebSocket ratios.
#
# Usage: bash benches/colyseus/run.sh [quick|full] [REPS]
#   quick: 1 repetition, 5 s windows (about 3 minutes)
#   full (default): 5 repetitions, 15 s windows (about 30 minutes)
#
# Ends each repetition with 10,000 idle WebSocket clients from the Rust loadgen (server RSS).
#
# Builds the release bench-server and loadgen, installs the Node side (Colyseus, ws, and a
# Node 22 binary from the npm `node` package) into benches/colyseus/node_modules, then for each
# repetition runs every case against each server in turn (Colyseus, PlayHouse, raw WebSocket),
# a fresh server process per case. Raw results go to target/colyseus-bench/RUN.jsonl; the
# summary (medians and min-max of the repetitions) is printed at the end. Loopback only; every
# step is bounded by a timeout; the server under test is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=benches/colyseus
MODE=${1:-full}
REPS=${2:-5}
WARMUP=3
DUR=15
IDLE_DUR=5
RUST_DUR=10
if [ "$MODE" = quick ]; then
    REPS=${2:-1}
    DUR=5
    IDLE_DUR=3
    RUST_DUR=5
fi
ulimit -n 65536 2>/dev/null || true

cargo build --release -q -p playhouse-benches --bins
if [ ! -x "$HERE/node_modules/.bin/node" ] \
    || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi
NODE=$HERE/node_modules/.bin/node
B=target/release

mkdir -p target/colyseus-bench
OUT=target/colyseus-bench/$(date +%Y%m%d-%H%M%S)-$MODE.jsonl
SERVER_OUT=$(mktemp)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -f "$SERVER_OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start SERVER KEY: starts colyseus|playhouse|raw-ws|raw-tcp, sets SERVER_PID and ADDR (the
# JSON line's KEY: ws or tcp).
start() {
    : > "$SERVER_OUT"
    case $1 in
        colyseus) NODE_ENV=production "$NODE" "$HERE/server.mjs" > "$SERVER_OUT" 2>/dev/null & ;;
        playhouse) "$B/bench-server" --mode framework > "$SERVER_OUT" 2>/dev/null & ;;
        raw-ws) "$B/bench-server" --mode raw-ws > "$SERVER_OUT" 2>/dev/null & ;;
        raw-tcp) "$B/bench-server" --mode raw > "$SERVER_OUT" 2>/dev/null & ;;
    esac
    SERVER_PID=$!
    for _ in $(seq 150); do grep -q '"pid"' "$SERVER_OUT" && break; sleep 0.1; done
    ADDR=$(python3 -c "import json,sys;print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])" "$SERVER_OUT" "$2")
    local reported
    reported=$(python3 -c "import json,sys;print(json.loads(open(sys.argv[1]).readline())['pid'])" "$SERVER_OUT")
    [ "$reported" = "$SERVER_PID" ] || { echo "server pid $reported is not $SERVER_PID" >&2; exit 1; }
}
stop() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
record() { # rep case server json
    echo "{\"rep\":$1,\"case\":\"$2\",\"server\":\"$3\",\"result\":$4}" >> "$OUT"
}

# node_case REP CASE SERVER LOADGEN-ARGS...: one Node load generator run against a fresh server.
node_case() {
    local rep=$1 label=$2 server=$3
    shift 3
    local protocol=playhouse
    [ "$server" = colyseus ] && protocol=colyseus
    start "$server" ws
    local line
    line=$(timeout 180 "$NODE" "$HERE/loadgen.mjs" --protocol "$protocol" --target "$ADDR" \
        --pid "$SERVER_PID" --warmup "$WARMUP" "$@") || line='{"failed":true}'
    stop
    record "$rep" "$label" "$server" "$line"
    echo "rep $rep  $label  $server  $line" | cut -c1-220
}

# rust_case REP CASE SERVER TRANSPORT: the Rust loadgen, request/reply, 1,000 clients x 8 in flight.
rust_case() {
    local rep=$1 label=$2 server=$3 transport=$4 key=ws
    [ "$transport" = tcp ] && key=tcp
    start "$server" "$key"
    local line
    line=$(timeout 120 "$B/loadgen" --target "$ADDR" --transport "$transport" \
        --server-pid "$SERVER_PID" --ccu 1000 --inflight 8 --size 64 \
        --duration "$RUST_DUR" 2>/dev/null) || line='{"failed":true}'
    stop
    record "$rep" "$label" "$server" "$line"
    echo "rep $rep  $label  $server  $line" | cut -c1-220
}

# rust_idle REP: 10,000 idle WebSocket clients (one request every 20 s each) against PlayHouse,
# server RSS at the end (issue 15: at most 150 MB).
rust_idle() {
    start playhouse ws
    local line
    line=$(timeout 120 "$B/loadgen" --target "$ADDR" --transport ws --server-pid "$SERVER_PID" \
        --ccu 10000 --rate 0.05 --ramp 15 --duration "$IDLE_DUR" 2>/dev/null) || line='{"failed":true}'
    stop
    record "$1" rust-idle-10000-ws playhouse "$line"
    echo "rep $1  rust-idle-10000-ws  playhouse  $line" | cut -c1-220
}

{
    echo "# $(date -u +%FT%TZ) mode=$MODE reps=$REPS window=${DUR}s"
    echo "# node $("$NODE" --version), colyseus core $("$NODE" -p "require('./$HERE/node_modules/@colyseus/core/package.json').version"), ws $("$NODE" -p "require('./$HERE/node_modules/ws/package.json').version"), $(rustc --version)"
    echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT.txt"

for rep in $(seq "$REPS"); do
    for server in colyseus playhouse raw-ws; do
        node_case "$rep" echo-100x8 "$server" --case echo --clients 100 --inflight 8 --duration "$DUR"
    done
    for server in colyseus playhouse raw-ws; do
        node_case "$rep" echo-1000x1 "$server" --case echo --clients 1000 --inflight 1 --duration "$DUR"
    done
    for server in colyseus playhouse; do
        node_case "$rep" broadcast-50x8 "$server" --case broadcast --clients 50 --inflight 8 --duration "$DUR"
    done
    for server in colyseus playhouse raw-ws; do
        node_case "$rep" idle-1000 "$server" --case idle --clients 1000 --duration "$IDLE_DUR"
    done
    rust_case "$rep" rust-request-1000x8-tcp raw-tcp tcp
    rust_case "$rep" rust-request-1000x8-tcp playhouse tcp
    rust_case "$rep" rust-request-1000x8-ws raw-ws ws
    rust_case "$rep" rust-request-1000x8-ws playhouse ws
    rust_idle "$rep"
done

echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT.txt"
"$NODE" "$HERE/summarize.mjs" "$OUT" | tee -a "$OUT.txt"
echo "raw results: $OUT"
