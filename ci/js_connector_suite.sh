#!/usr/bin/env bash
# Runs PlayHouse-NET's own JavaScript connector integration suite (vitest, tests/integration:
# core C01–C11, advanced A01–A06) against our compat-server, one test file at a time, each against
# a fresh server, and prints `N passed, M failed` (plus `, S skipped` when any) as its last line.
#
# Usage: ci/js_connector_suite.sh [COMPAT_SERVER_BINARY] [--expect-total K]
#
#   COMPAT_SERVER_BINARY  default: ${CARGO_TARGET_DIR:-target}/debug/compat-server (relative to the
#                         repo root); when the default is missing it is built with
#                         `cargo build -p playhouse-examples --bin compat-server --locked`.
#   --expect-total K      also fail unless passed + failed + skipped == K.
#
# Environment:
#   PLAYHOUSE_INTEROP_JS      the connector fixture (default: <repo>/../shared/interop/
#                             playhouse-net/connectors/javascript). Copied, never modified.
#   JS_SUITE_FILE_TIMEOUT     seconds per test file (default 300).
#   JS_SUITE_READY_TIMEOUT    seconds to wait for the server's ready line (default 60).
#   JS_SUITE_LOG_DIR          when set, vitest logs/JSON reports and the server's output are
#                             copied there before the temporary directory is removed.
#
# Exit status: 0 only when no test failed and at least one passed (and the total matches
# --expect-total when given); 1 otherwise; 2 for usage errors.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# The fixture lives beside the checkout (../shared); a clone elsewhere finds it at /work/shared.
JS_FIXTURE_REL="shared/interop/playhouse-net/connectors/javascript"
if [ -n "${PLAYHOUSE_INTEROP_JS:-}" ]; then
    FIXTURE="$PLAYHOUSE_INTEROP_JS"
elif [ -d "$REPO_ROOT/../$JS_FIXTURE_REL" ]; then
    FIXTURE="$REPO_ROOT/../$JS_FIXTURE_REL"
else
    FIXTURE="/work/$JS_FIXTURE_REL"
fi
FILE_TIMEOUT="${JS_SUITE_FILE_TIMEOUT:-300}"
READY_TIMEOUT="${JS_SUITE_READY_TIMEOUT:-60}"

# shellcheck source=ci/node.sh
. "$REPO_ROOT/ci/node.sh"

log() { echo "js_connector_suite: $*" >&2; }
die() {
    log "$*"
    exit 1
}
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------- arguments
BINARY=""
EXPECT_TOTAL=""
while [ $# -gt 0 ]; do
    case "$1" in
        --expect-total)
            [ $# -ge 2 ] || usage
            EXPECT_TOTAL="$2"
            shift 2
            ;;
        --expect-total=*)
            EXPECT_TOTAL="${1#--expect-total=}"
            shift
            ;;
        -h | --help) usage ;;
        -*)
            log "unknown option: $1"
            usage
            ;;
        *)
            [ -z "$BINARY" ] || {
                log "more than one binary given: $BINARY, $1"
                usage
            }
            BINARY="$1"
            shift
            ;;
    esac
done
case "$EXPECT_TOTAL" in
    '') ;;
    *[!0-9]*)
        log "--expect-total needs a number, got '$EXPECT_TOTAL'"
        usage
        ;;
esac

# ------------------------------------------------------------------------------ cleanup
WORK=""
SERVER_PID=""
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local pid="$SERVER_PID"
    SERVER_PID=""
    # The server runs in its own session/process group (setsid), so its children go too.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    set +e
    stop_server
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ -n "${JS_SUITE_LOG_DIR:-}" ]; then
            mkdir -p "$JS_SUITE_LOG_DIR" &&
                cp -R "$WORK/logs/." "$JS_SUITE_LOG_DIR/" 2>/dev/null &&
                log "logs kept in $JS_SUITE_LOG_DIR"
        fi
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ----------------------------------------------------------------------------- fixture
if [ ! -f "$FIXTURE/vitest.integration.config.ts" ]; then
    # The fixture is not part of this repository (it is the original's code, never copied in).
    # Where it is absent the suite cannot run: say so loudly, and fail only when required.
    log "connector fixture not found at $FIXTURE (set PLAYHOUSE_INTEROP_JS)"
    if [ "${JS_SUITE_REQUIRED:-0}" = 1 ]; then
        exit 1
    fi
    echo "SKIPPED: the original's JavaScript connector fixture is not on this machine"
    exit 0
fi
FIXTURE="$(cd "$FIXTURE" && pwd)"

# -------------------------------------------------------------------------------- node
ensure_node || die "Node.js >= $NODE_MIN_MAJOR is required"
command -v python3 >/dev/null 2>&1 || die "python3 is required (JSON parsing)"
NODE_MAJOR="$(node_major)"
if [ "$NODE_MAJOR" -lt 22 ]; then
    # Node 20/21 only expose the global WebSocket behind this flag.
    export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--experimental-websocket"
fi
node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null ||
    die "node $(node --version) has no global WebSocket (NODE_OPTIONS='${NODE_OPTIONS:-}'); Node >= 20.10 is needed"

# ------------------------------------------------------------------------------ binary
if [ -z "$BINARY" ]; then
    TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    case "$TARGET_DIR" in
        /*) ;;
        *) TARGET_DIR="$REPO_ROOT/$TARGET_DIR" ;;
    esac
    BINARY="$TARGET_DIR/debug/compat-server"
    if [ ! -x "$BINARY" ]; then
        log "$BINARY not found; building it"
        (cd "$REPO_ROOT" && cargo build -p playhouse-examples --bin compat-server --locked)
    fi
fi
[ -x "$BINARY" ] || die "compat-server binary not found or not executable: $BINARY"
BINARY="$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")"

# ------------------------------------------------------------------- copy + npm install
WORK="$(mktemp -d "${TMPDIR:-/tmp}/js-connector-suite.XXXXXX")"
CONN="$WORK/connector"
mkdir -p "$CONN" "$WORK/logs/reports"
# The fixture is read-only: copy it (without any build output) and make the copy writable.
tar -C "$FIXTURE" --exclude=./node_modules --exclude=./dist --exclude=./coverage -cf - . |
    tar -C "$CONN" -xf -
chmod -R u+w "$CONN"

log "npm ci in $CONN"
if ! (cd "$CONN" && npm ci --legacy-peer-deps --no-audit --no-fund --loglevel=error) \
    >"$WORK/logs/npm-ci.log" 2>&1; then
    tail -n 40 "$WORK/logs/npm-ci.log" >&2
    die "npm ci --legacy-peer-deps failed"
fi
[ -x "$CONN/node_modules/.bin/vitest" ] || die "npm ci did not install vitest"

# ------------------------------------------------------------------------------ server
# Each test file gets a fresh server: the fixture picks stage ids counting up from a random start
# per file, so files sharing one server can land on each other's ids, and five taken ids in a row
# fail the test that wanted a stage (seen once in CI). A fresh server is what each file expects.
SERVER_OUT=""
SERVER_ERR=""

server_failed() {
    log "$*"
    log "server stderr (last 60 lines):"
    tail -n 60 "$SERVER_ERR" >&2 || true
    if [ -s "$SERVER_OUT" ]; then
        log "server stdout:"
        head -c 4000 "$SERVER_OUT" >&2 || true
    fi
    exit 1
}

# start_server SLUG: starts the binary with its output under logs/SLUG.server.*, waits for the
# ready line and exports the fixture's TEST_SERVER_* variables for it.
start_server() {
    SERVER_OUT="$WORK/logs/$1.server.stdout"
    SERVER_ERR="$WORK/logs/$1.server.stderr"
    : >"$SERVER_OUT"
    : >"$SERVER_ERR"
    if command -v setsid >/dev/null 2>&1; then
        setsid "$BINARY" </dev/null >"$SERVER_OUT" 2>"$SERVER_ERR" &
    else
        "$BINARY" </dev/null >"$SERVER_OUT" 2>"$SERVER_ERR" &
    fi
    SERVER_PID=$!

    local ready="" deadline=$((SECONDS + READY_TIMEOUT)) rc
    while :; do
        ready="$(grep -m1 '^[[:space:]]*{' "$SERVER_OUT" 2>/dev/null || true)"
        [ -n "$ready" ] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            rc=0
            wait "$SERVER_PID" 2>/dev/null || rc=$?
            SERVER_PID=""
            server_failed "compat-server exited (status $rc) before printing its ready line"
        fi
        [ "$SECONDS" -lt "$deadline" ] ||
            server_failed "compat-server printed no ready line within ${READY_TIMEOUT}s"
        sleep 0.2
    done

    # Prints "HTTP_PORT HTTPS_PORT"; fails on anything but the expected JSON object.
    local ports
    if ! ports="$(python3 - "$ready" <<'PY'
import json, sys
obj = json.loads(sys.argv[1])
def port(key):
    addr = obj[key]
    host, _, p = addr.rpartition(":")
    if not host or not p.isdigit() or not 0 < int(p) < 65536:
        raise ValueError(f"bad {key} address: {addr!r}")
    return int(p)
print(port("http"), port("https"))
PY
)"; then
        server_failed "could not parse the server's ready line: $ready"
    fi
    local http_port https_port
    read -r http_port https_port <<<"$ports"
    [ -n "$SERVER_ANNOUNCED" ] || log "server ready: $ready (a fresh one per test file)"
    SERVER_ANNOUNCED=1
    export TEST_SERVER_HTTP_PORT="$http_port"
    export TEST_SERVER_WS_PORT="$http_port"
    export TEST_SERVER_HTTPS_PORT="$https_port"
    export TEST_SERVER_WSS_PORT="$https_port"
}
SERVER_ANNOUNCED=""
log "server: $BINARY"

export TEST_SERVER_HOST=127.0.0.1
export TEST_SERVER_WS_PATH=/ws
export NODE_TLS_REJECT_UNAUTHORIZED=0
export NODE_NO_WARNINGS=1
export CI="${CI:-1}" # no watch mode, no interactive output

# ------------------------------------------------------------------ per-file reporting
# report.py JSON_REPORT VITEST_LOG EXIT_STATUS LABEL COUNTS_OUT
# Prints the file's result lines; writes "passed failed skipped" to COUNTS_OUT.
cat >"$WORK/report.py" <<'PY'
import json, os, sys

report_path, log_path, rc, label, counts_path = sys.argv[1:6]
rc = int(rc)

def first_line(text, limit=220):
    for line in str(text).splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1] + "…"
    return "(no message)"

def log_tail(n=25):
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [l for l in lines if l.strip()][-n:]

def done(p, f, s, lines):
    with open(counts_path, "w") as out:
        out.write(f"{p} {f} {s}\n")
    print("\n".join(lines))
    sys.exit(0)

report = None
if os.path.exists(report_path) and os.path.getsize(report_path) > 0:
    try:
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        report = None
        bad = f"unreadable JSON report ({e})"
    else:
        bad = None
else:
    bad = "no JSON report"

if report is None:
    why = "timed out" if rc in (124, 137) else f"vitest exit status {rc}"
    lines = [f"FAIL {label}  {bad} ({why}); counted as 1 failure", "       vitest output (tail):"]
    lines += ["       | " + l for l in log_tail()]
    done(0, 1, 0, lines)

# Count from the per-test statuses: vitest 1.x's top-level numPassedTests also counts tests that
# never ran (e.g. when the setup file's beforeAll throws), so it cannot be trusted.
p = f = notrun = 0
details = []
suite_errors = []
for tr in report.get("testResults", []) or []:
    for a in tr.get("assertionResults", []) or []:
        status = a.get("status")
        if status == "passed":
            p += 1
        elif status == "failed":
            f += 1
            name = (a.get("fullName") or a.get("title") or "(unnamed test)").strip()
            msgs = a.get("failureMessages") or []
            details.append(f"       ✗ {name}: {first_line(msgs[0]) if msgs else '(no message)'}")
        else:  # pending / skipped / todo / disabled
            notrun += 1
    if tr.get("status") == "failed" and tr.get("message"):
        suite_errors.append(first_line(tr["message"]))
s = 0

# A failure outside any test (a hook, the setup file, an import, an unhandled error) leaves the
# file's tests unrun or even "passed": the tests that did not run count as failed, and when
# there are none, the file counts as one failure, so it can never pass silently.
extra = []
file_failed = bool(suite_errors) or int(report.get("numFailedTestSuites", 0) or 0) > 0
if file_failed or (rc != 0 and f == 0):
    if suite_errors:
        extra = [f"       ✗ (file) {m}" for m in suite_errors]
    else:
        extra = [f"       ✗ (file) vitest exit status {rc}; output (tail):"]
        extra += ["       | " + l for l in log_tail()]
    if notrun and file_failed:
        extra.append(f"       ✗ (file) {notrun} test(s) did not run because of it: counted as failed")
        f += notrun
    else:
        s = notrun
        if f == 0:
            extra.append("       ✗ (file) counted as 1 failure")
            f = 1
else:
    s = notrun

counts = f"{p} passed"
if f:
    counts += f", {f} failed"
if s:
    counts += f", {s} skipped"
if f:
    lines = [f"FAIL {label}  {counts}"] + details + extra
elif p == 0:
    lines = [f"ok   {label}  {counts} (no test passed)"]
else:
    lines = [f"ok   {label}  {counts}"]
done(p, f, s, lines)
PY

# ------------------------------------------------------------------------------- run
mapfile -t FILES < <(cd "$CONN" && find tests/integration -type f -name '*.test.ts' | LC_ALL=C sort)
[ "${#FILES[@]}" -gt 0 ] || die "no tests/integration/**/*.test.ts in $FIXTURE"
log "running ${#FILES[@]} test files (timeout ${FILE_TIMEOUT}s each)"

PASSED=0
FAILED=0
SKIPPED=0
SERVER_DIED_REPORTED=""
for file in "${FILES[@]}"; do
    label="${file#tests/integration/}"
    slug="${label//\//__}"
    json="$WORK/logs/reports/$slug.json"
    vlog="$WORK/logs/reports/$slug.log"
    rm -f "$json"
    start_server "$slug"
    rc=0
    (cd "$CONN" && timeout --kill-after=15 "$FILE_TIMEOUT" \
        npx vitest run --config vitest.integration.config.ts "$file" \
        --reporter=json --outputFile="$json") </dev/null >"$vlog" 2>&1 || rc=$?
    python3 "$WORK/report.py" "$json" "$vlog" "$rc" "$label" "$WORK/counts" ||
        { echo "FAIL $label  could not read its result; counted as 1 failure"; echo "0 1 0" >"$WORK/counts"; }
    read -r p f s <"$WORK/counts"
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    SKIPPED=$((SKIPPED + s))
    if [ -z "$SERVER_DIED_REPORTED" ] && [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
        SERVER_DIED_REPORTED=1
        echo "!!!! compat-server exited during $label; its stderr (last 40 lines):"
        tail -n 40 "$SERVER_ERR" | sed 's/^/       | /'
    fi
    stop_server
done

# ----------------------------------------------------------------------------- verdict
STATUS=0
TOTAL=$((PASSED + FAILED + SKIPPED))
if [ "$FAILED" -ne 0 ]; then
    STATUS=1
fi
if [ "$PASSED" -eq 0 ]; then
    log "no test passed"
    STATUS=1
fi
if [ -n "$EXPECT_TOTAL" ] && [ "$TOTAL" -ne "$EXPECT_TOTAL" ]; then
    log "expected $EXPECT_TOTAL tests in all, counted $TOTAL (passed + failed + skipped)"
    STATUS=1
fi
SUMMARY="$PASSED passed, $FAILED failed"
[ "$SKIPPED" -eq 0 ] || SUMMARY="$SUMMARY, $SKIPPED skipped"
echo "$SUMMARY"
exit "$STATUS"
