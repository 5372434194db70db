#!/usr/bin/env bash
# Lints every feature combination that matters of the crates with features: none, each one
# alone, the defaults, all. Each combination is linted twice: `--lib` resolves features
# without the dev-dependencies (which turn on transport TLS and WebSocket for the tests), so it
# catches code that uses a dependency its own feature does not enable; `--all-targets` lints
# the tests, examples and benches the combination compiles. clippy type-checks as `cargo
# check` does, so one pass per target set is enough. Reuses the target dir: only the
# playhouse crates and the few dependencies whose features differ are rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."

lint() {
    local crate=$1
    shift
    echo "-- $crate $*"
    cargo clippy -p "$crate" --locked "$@" --lib -- -D warnings
    cargo clippy -p "$crate" --locked "$@" --all-targets -- -D warnings
}

# `crate feature...`: none, each alone, defaults, all.
combinations() {
    local crate=$1
    shift
    lint "$crate" --no-default-features
    for feature in "$@"; do
        lint "$crate" --no-default-features --features "$feature"
    done
    lint "$crate"
    lint "$crate" --all-features
}

combinations playhouse-transport tls ws ws-client dev-certs
combinations playhouse-mesh zmq redis bench-internals
combinations playhouse ws tls http zmq redis otlp
