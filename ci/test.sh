#!/usr/bin/env bash
# The project's test command (README): every crate's unit, integration and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
