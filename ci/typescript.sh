#!/usr/bin/env bash
# The TypeScript client (clients/typescript): installs its dependencies from the committed
# lockfile (npm ci), builds it (protobuf-es types from proto/, then tsc), and runs its suite in
# Node and in headless Chromium against `verification --serve` (and `--serve-drain`, for a real
# move), which each suite spawns.
#
# Usage: bash ci/typescript.sh PATH/TO/verification
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 PATH/TO/verification" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
verification="$(realpath "$1")"
# shellcheck source=ci/node.sh
source "$root/ci/node.sh"
ensure_node
bash "$root/ci/chromium.sh"
cd "$root/clients/typescript"
npm ci --no-audit --no-fund
rm -rf dist test/gen
npm run build
echo "== the TypeScript client in Node"
PLAYHOUSE_VERIFICATION="$verification" npm test
echo "== the TypeScript client in headless Chromium"
PLAYHOUSE_VERIFICATION="$verification" npm run test:browser
