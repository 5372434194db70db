#!/usr/bin/env bash
# Ensures a redis-server answers on 127.0.0.1:6379 for the Redis directory tests
# (playhouse/mesh/tests/directory_redis.rs). Idempotent: installs redis-server when missing,
# starts one (daemonized, no persistence) when nothing answers, then waits until it does.
set -euo pipefail

PORT="${PLAYHOUSE_REDIS_PORT:-6379}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis.sh: installing redis-server"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    # The Debian package tries to start a service; without systemd that may fail harmlessly.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

ping() {
    [ "$(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = "PONG" ]
}

if ! ping; then
    echo "redis.sh: starting redis-server on port $PORT"
    redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --dir /tmp --logfile /tmp/playhouse-redis-"$PORT".log
fi

for _ in $(seq 1 100); do
    if ping; then
        echo "redis.sh: redis-server answers on 127.0.0.1:$PORT"
        exit 0
    fi
    sleep 0.1
done

echo "redis.sh: redis-server did not answer on 127.0.0.1:$PORT (see /tmp/playhouse-redis-$PORT.log)" >&2
exit 1
