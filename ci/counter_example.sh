#!/usr/bin/env bash
# The standalone counter game (examples/src/counter: one Play server, no mesh): starts its
# server, plays two clients in one room at once, and fails unless each got what the game
# promises (its clicks answered in order, its own clicks heard, a tick); then stops the
# server gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --locked -p playhouse-examples --bin counter-server --bin counter-client
BIN=${CARGO_TARGET_DIR:-target}/debug
OUT=$(mktemp)
"$BIN/counter-server" --tcp 127.0.0.1:0 --ws 127.0.0.1:0 > "$OUT" &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; rm -f "$OUT"' EXIT
# The server prints its endpoints once it listens.
for _ in $(seq 100); do [ -s "$OUT" ] && break; sleep 0.1; done
PORT=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['tcp'].rsplit(':', 1)[1])" "$OUT")
"$BIN/counter-client" --port "$PORT" --room 7 --name alice --clicks 3 &
ALICE=$!
"$BIN/counter-client" --port "$PORT" --room 7 --name bob --clicks 2 &
BOB=$!
wait "$ALICE"
wait "$BOB"
kill -TERM "$PID"
wait "$PID"
echo "counter example: two players served, server stopped"
