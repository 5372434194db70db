#!/usr/bin/env bash
# The real cluster under real network faults (cluster/, docs/testing.md): Redis, two
# play-nodes, an api-node and a Connector workload, each in its own network namespace, faults
# from a fixed seed, and the history checker. Needs root (network namespaces, nft).
#   bash ci/cluster.sh                                  # the short run (CI)
#   bash ci/cluster.sh --seed 7 --duration 1800         # a long run
#   bash ci/cluster.sh --faults stop,kill --duration 90 # some kinds only
# Exits non-zero on any violation; the summary table is in <out>/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "ci/cluster.sh: needs root (network namespaces, nft)" >&2
    exit 1
fi
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "ci/cluster.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cargo build --locked -p playhouse-examples --bins
cargo build --locked -p playhouse-cluster --bins
bin="${CARGO_TARGET_DIR:-target}/debug"
args=("$@")
if [ "${#args[@]}" -eq 0 ]; then
    # The short run: every fault kind once, fixed seed.
    args=(--seed 1 --duration 385)  # faults::SHORT_RUN_SECS
fi
exec "$bin/cluster" run --out "${PLAYHOUSE_CLUSTER_OUT:-/tmp/playhouse-cluster}" "${args[@]}"
