#!/usr/bin/env bash
# The workspace builds warning-free against the current releases of its dependencies, not
# only against Cargo.lock: a copy of the sources (the real lockfile is never touched) gets a
# fresh `cargo update`, then `cargo check --workspace --all-targets` with warnings as errors.
# Only the workspace's own crates see `-D warnings` (cargo caps lints of registry crates).
# Bounded: LATEST_DEPS_TIMEOUT seconds for the update and the check together (default 1800;
# a cold check of the workspace takes about 10 minutes on 2 cores). Its target dir persists
# under the CI target dir, so later runs rebuild only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

budget=${LATEST_DEPS_TIMEOUT:-1800}
deadline=$((SECONDS + budget))
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")/latest-deps
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT

# Sources only: no git data, no build output.
tar --exclude=./.git --exclude=./target -cf - . | tar -xf - -C "$copy"

cd "$copy"
# Prints each dependency that moved, for the log.
timeout "$((deadline - SECONDS))" cargo update
timeout "$((deadline - SECONDS))" env CARGO_TARGET_DIR="$target" RUSTFLAGS="-D warnings" \
    cargo check --workspace --all-targets
