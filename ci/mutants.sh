#!/usr/bin/env bash
# Mutation testing with cargo-mutants: the test of the tests (simulation/MUTANTS.md).
#
#   bash ci/mutants.sh            # the chosen subset (request cache, stage dispatch): ~25 minutes
#   bash ci/mutants.sh mesh       # mesh link, node, liveness, request cache
#   bash ci/mutants.sh server     # stage runner and client session
#   bash ci/mutants.sh connector  # the connector
#   bash ci/mutants.sh connector-core  # its connection, pending requests and resume: ~80 minutes
#   bash ci/mutants.sh connector-api   # the rest of it: client API, callbacks, config
#   bash ci/mutants.sh all        # all three (hours)
#   bash ci/mutants.sh mesh --iterate   # extra arguments go to cargo-mutants
#
# Each mutant is built and tested by the mutated crate's own tests and the simulation sweep
# (SIM_SEEDS seeds per scenario, 5 unless set; CI's sweep runs 100 on the unmutated tree).
# Not part of .ci/run: it takes far longer than CI's budget. Results land in
# target/mutants/<set>/mutants.out (caught.txt, missed.txt, timeout.txt, unviable.txt).
#
# Mutants are built in place (--in-place) so each build reuses this tree's target directory:
# run it on a clean checkout and leave the sources alone while it runs (cargo-mutants puts
# every file back, also when interrupted).
set -euo pipefail
cd "$(dirname "$0")/.."

set_name="${1:-subset}"
shift || true

if ! command -v cargo-mutants >/dev/null; then
    cargo install cargo-mutants --locked --version 27.1.0
fi
# The mesh's Redis directory tests need a real redis-server.
bash ci/redis.sh
export PLAYHOUSE_REDIS_URL=redis://127.0.0.1:6379
export SIM_SEEDS="${SIM_SEEDS:-5}"

# Each mutant relinks a dozen test binaries: link with mold and without debug info, which
# makes the per-mutant build several times faster. Both only change how the tree is built.
if ! command -v mold >/dev/null; then
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq mold >/dev/null; else sudo apt-get install -y -qq mold >/dev/null; fi
fi
export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-fuse-ld=mold"
export CARGO_PROFILE_DEV_DEBUG=false

# The ZeroMQ link apart: the simulation runs the mesh over the TCP link, so only the mesh
# crate's own tests (mesh_zmq.rs) can catch its mutants, and building the server and the
# simulation for each of them would only cost time.
mesh_zmq_files=(-f playhouse/mesh/src/link/zmq.rs)
mesh_files=(-f playhouse/mesh/src/cache.rs -f playhouse/mesh/src/node.rs
    -f playhouse/mesh/src/liveness.rs -f 'playhouse/mesh/src/link/*.rs'
    -e playhouse/mesh/src/link/zmq.rs)
server_files=(-f 'playhouse/server/src/stage/runner/*.rs' -f playhouse/server/src/session.rs)
# The connector is also tested by the server's tests, which drive it against a real Play
# server (resumable sessions end to end, for one).
connector_files=(-f 'playhouse/connector/src/**/*.rs')
# What the simulation drives hardest: the connection's event loop, the pending-request table
# and session resume.
connector_core_files=(-f 'playhouse/connector/src/connection/*.rs'
    -f playhouse/connector/src/pending.rs -f playhouse/connector/src/resume.rs)
# The rest of the connector: the client API, callbacks, configuration and transports.
connector_api_files=(-f 'playhouse/connector/src/**/*.rs'
    -e 'playhouse/connector/src/connection/*.rs'
    -e playhouse/connector/src/pending.rs -e playhouse/connector/src/resume.rs)

# --baseline skip: CI has run the tests on the unmutated tree. Doc tests are left out (each is
# compiled afresh for every mutant); the crates' unit and integration tests are not. So are
# the two replay tests (`the_same_seed_gives_the_same_trace_*`): they check that a seed
# replays to the same hash, not that a run is correct, and at 10 s each they were a third of
# every mutant's test time. CI runs them on every change.
run() {
    local name="$1"
    shift
    mkdir -p "target/mutants/$name"
    # Exit status 2 (mutants missed) and 3 (timeouts) are results, not failures: go on to the
    # next part of the set.
    local status=0
    cargo mutants --in-place --baseline skip --no-shuffle --timeout 90 --build-timeout 600 \
        --cargo-test-arg=--tests --output "target/mutants/$name" "$@" \
        --cargo-test-arg=-- --cargo-test-arg=--skip --cargo-test-arg=the_same_seed_gives_the_same_trace ||
        status=$?
    case "$status" in
        0 | 2 | 3) ;;
        *) exit "$status" ;;
    esac
}

case "$set_name" in
    subset)
        run subset-mesh -f playhouse/mesh/src/cache.rs \
            --test-package playhouse-mesh --test-package simulation "$@"
        run subset-server -f playhouse/server/src/stage/runner/dispatch.rs \
            --test-package playhouse --test-package simulation "$@"
        ;;
    mesh)
        run mesh-zmq "${mesh_zmq_files[@]}" --test-package playhouse-mesh "$@"
        run mesh "${mesh_files[@]}" --test-package playhouse-mesh --test-package simulation "$@"
        ;;
    server)
        run server "${server_files[@]}" --test-package playhouse --test-package simulation "$@"
        ;;
    connector)
        run connector "${connector_files[@]}" --test-package playhouse-connector \
            --test-package playhouse --test-package simulation "$@"
        ;;
    connector-core)
        run connector-core "${connector_core_files[@]}" --test-package playhouse-connector \
            --test-package playhouse --test-package simulation "$@"
        ;;
    connector-api)
        run connector-api "${connector_api_files[@]}" --test-package playhouse-connector \
            --test-package playhouse --test-package simulation "$@"
        ;;
    all)
        "$0" mesh "$@"
        "$0" server "$@"
        "$0" connector "$@"
        ;;
    *)
        echo "usage: $0 [subset|mesh|server|connector|connector-core|connector-api|all] [cargo-mutants args...]" >&2
        exit 2
        ;;
esac
