#!/usr/bin/env bash
# The project's test command (README): every crate's unit, integration and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Redis directory tests need a real redis-server (installed and started if missing).
bash ci/redis.sh
export PLAYHOUSE_REDIS_URL=redis://127.0.0.1:6379
cargo test --workspace --locked
