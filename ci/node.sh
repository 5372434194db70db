#!/usr/bin/env bash
# Ensures Node.js >= 20 (with npm/npx) for ci/js_connector_suite.sh. Installs Debian's nodejs and
# npm with apt-get when node is missing or too old; fails clearly if that is still too old.
# Idempotent.
#
# Either run it (`bash ci/node.sh`) or source it and call `ensure_node`; sourcing also provides
# `node_major` (prints the installed node's major version, 0 when there is none).

NODE_MIN_MAJOR="${NODE_MIN_MAJOR:-20}"

node_major() {
    local version
    if ! command -v node >/dev/null 2>&1; then
        echo 0
        return 0
    fi
    version="$(node --version 2>/dev/null || true)" # e.g. v20.20.2
    version="${version#v}"
    version="${version%%.*}"
    case "$version" in
        '' | *[!0-9]*) echo 0 ;;
        *) echo "$version" ;;
    esac
}

_node_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

_node_install_apt() {
    echo "node.sh: installing nodejs and npm with apt-get" >&2
    _node_as_root apt-get update -qq
    _node_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
}

ensure_node() {
    local major
    major="$(node_major)"
    if [ "$major" -lt "$NODE_MIN_MAJOR" ] || ! command -v npm >/dev/null 2>&1 \
        || ! command -v npx >/dev/null 2>&1; then
        if [ "$major" -eq 0 ]; then
            echo "node.sh: node not found" >&2
        elif [ "$major" -lt "$NODE_MIN_MAJOR" ]; then
            echo "node.sh: node $(node --version) is older than $NODE_MIN_MAJOR" >&2
        else
            echo "node.sh: npm/npx not found" >&2
        fi
        _node_install_apt || {
            echo "node.sh: apt-get install nodejs npm failed" >&2
            return 1
        }
        hash -r
        major="$(node_major)"
    fi
    if [ "$major" -lt "$NODE_MIN_MAJOR" ]; then
        echo "node.sh: Node.js >= $NODE_MIN_MAJOR is required, but the available one is" \
            "$(node --version 2>/dev/null || echo 'missing') (Debian's nodejs is too old here;" \
            "install Node $NODE_MIN_MAJOR+ from nodejs.org or NodeSource and retry)" >&2
        return 1
    fi
    if ! command -v npm >/dev/null 2>&1 || ! command -v npx >/dev/null 2>&1; then
        echo "node.sh: node $(node --version) is present but npm/npx are not" >&2
        return 1
    fi
    echo "node.sh: node $(node --version), npm $(npm --version)" >&2
}

# Executed (not sourced): do the check now.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    ensure_node
fi
