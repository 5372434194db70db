#!/usr/bin/env bash
# The arena sample game in one command: builds the TypeScript client the page loads (once),
# then starts the arena; open the URL it prints. Extra arguments go to cargo (e.g. --release).
#   bash examples/arena/run.sh
#   ARENA_HTTP=0.0.0.0:8080 bash examples/arena/run.sh --release
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
client="$root/clients/typescript"
if [ ! -f "$client/dist/src/index.js" ] || [ ! -f "$client/dist/test/gen/arena_pb.js" ]; then
    # shellcheck source=ci/node.sh
    source "$root/ci/node.sh"
    ensure_node
    (cd "$client" && npm ci --no-audit --no-fund && npm run build)
fi
cd "$root"
exec cargo run "$@" -p playhouse-examples --bin arena
