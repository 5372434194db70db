#!/usr/bin/env python3
"""A real browser against play-1's WebSocket endpoints: headless Chromium loads a page whose
JavaScript (the browser's own `WebSocket`, binary messages, nothing from the project) builds
SPEC §4 frames by hand and, over `ws://` and then `wss://`, authenticates, echoes, sends a
heartbeat, pipelines 20 requests and checks every reply. The page posts its verdict back to
this script's HTTP server.

Usage: browser_ws.py --spawn CMD...   (runs CMD, reads its one JSON line, stops it)
       browser_ws.py '{"servers":[...]}'
Needs `chromium` (ci/chromium.sh installs it). Prints TAP; exit 1 on failure.
"""
import http.server
import json
import signal
import subprocess
import sys
import threading

from devtools import Chromium, chromium

PAGE = r"""<!doctype html>
<meta charset="utf-8">
<title>PlayHouse browser WebSocket check</title>
<script>
const enc = new TextEncoder(), dec = new TextDecoder("utf-8", {fatal: true});
function varint(n) { const out = []; while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; } out.push(n); return out; }
function field(num, text) { const b = enc.encode(text); return [...varint(num << 3 | 2), ...varint(b.length), ...b]; }
function fieldInt(num, v) { return [...varint(num << 3), ...varint(v)]; }
function parse(bytes) {
  const fields = {}; let i = 0;
  const rv = () => { let r = 0, s = 0, b; do { b = bytes[i++]; r += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80); return r; };
  while (i < bytes.length) {
    const key = rv(), num = key >>> 3, wire = key & 7;
    if (wire === 0) fields[num] = rv();
    else if (wire === 2) { const n = rv(); fields[num] = bytes.slice(i, i + n); i += n; }
    else throw new Error("wire type " + wire);
  }
  return fields;
}
// Client frame: i32 length | u8 id length | id | u16 seq | i64 stage id | payload (LE).
function frame(msgId, seq, stageId, payload) {
  const id = enc.encode(msgId), body = 1 + id.length + 2 + 8 + payload.length;
  const buf = new ArrayBuffer(4 + body), v = new DataView(buf), u = new Uint8Array(buf);
  v.setInt32(0, body, true); u[4] = id.length; u.set(id, 5);
  let o = 5 + id.length; v.setUint16(o, seq, true); v.setBigInt64(o + 2, BigInt(stageId), true);
  u.set(payload, o + 10);
  return buf;
}
// Server frame: i32 length | u8 id length | id | u16 seq | i64 stage | u16 error | i32 original size | payload.
function unframe(buf) {
  const v = new DataView(buf), u = new Uint8Array(buf);
  const length = v.getInt32(0, true);
  if (length !== buf.byteLength - 4) throw new Error("one message must hold exactly one frame");
  const n = u[4], msgId = dec.decode(u.slice(5, 5 + n)); let o = 5 + n;
  return {msgId, seq: v.getUint16(o, true), stage: v.getBigInt64(o + 2, true), error: v.getUint16(o + 10, true),
          original: v.getInt32(o + 12, true), payload: u.slice(o + 16)};
}
async function run() {
  const params = new URLSearchParams(location.search);
  const ws = new WebSocket(params.get("ws"));
  ws.binaryType = "arraybuffer";
  const waiting = new Map(), pushes = [];
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error("WebSocket failed to open")); });
  ws.onmessage = (e) => {
    if (typeof e.data === "string") { pushes.push(new Error("text message")); return; }
    const f = unframe(e.data);
    const key = f.msgId === "@Heart@Beat@" ? "hb" : f.seq;
    const w = waiting.get(key);
    if (w) { waiting.delete(key); w(f); } else pushes.push(f);
  };
  const stage = 4242;
  let next = 0;
  const request = (msgId, payload) => new Promise((ok) => {
    const seq = ++next; waiting.set(seq, ok); ws.send(frame(msgId, seq, stage, payload)); });
  const checks = [];
  const check = (name, cond, detail) => checks.push({name, ok: !!cond, detail: cond ? "" : JSON.stringify(detail, (k, v) => typeof v === "bigint" ? v.toString() : v)});

  const auth = await request("AuthenticateRequest", new Uint8Array([...field(1, "browser-1"), ...field(2, "t")]));
  const a = parse(auth.payload);
  check("browser: authenticate", auth.msgId === "AuthenticateReply" && auth.error === 0 && a[2] === 1 && a[1] && a[1].length > 0, auth);

  const echo = await request("EchoRequest", new Uint8Array([...field(1, "from a browser ✓"), ...fieldInt(2, 42)]));
  const e = parse(echo.payload);
  check("browser: echo", echo.msgId === "EchoReply" && echo.error === 0 && dec.decode(e[1]) === "from a browser ✓" && e[2] === 42, echo);

  const hb = new Promise((ok) => waiting.set("hb", ok));
  ws.send(frame("@Heart@Beat@", 0, 0, new Uint8Array()));
  const beat = await hb;
  check("browser: heartbeat echoed", beat.seq === 0 && beat.error === 0 && beat.payload.length === 0, beat);

  const replies = await Promise.all(Array.from({length: 20}, (_, i) =>
    request("EchoRequest", new Uint8Array([...field(1, "p" + i), ...fieldInt(2, i)])).then((f) => [i, f])));
  check("browser: 20 pipelined requests matched by sequence",
        replies.every(([i, f]) => { const p = parse(f.payload); return f.error === 0 && dec.decode(p[1]) === "p" + i && (p[2] || 0) === i; }),
        replies.length);

  const fail = await request("FailRequest", new Uint8Array(fieldInt(1, 4321)));
  check("browser: error code reaches the page", fail.error === 4321, fail);
  ws.close();
  return checks;
}
run().then((checks) => report(checks), (err) => report([{name: "browser: run", ok: false, detail: String(err)}]));
function report(checks) {
  fetch("/result", {method: "POST", body: JSON.stringify(checks)});
}
</script>
"""


def endpoints_from(argv):
    if argv and argv[0] == "--spawn":
        proc = subprocess.Popen(argv[1:], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        return json.loads(line), proc
    return json.loads(argv[0]), None


def run_page(ws):
    """Loads the page in headless Chromium against `ws`; returns its checks."""
    result = {}
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            result["checks"] = json.loads(self.rfile.read(n))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/?ws={ws}"
    try:
        # The verification servers' certificate is generated at start-up: no CA vouches for it.
        with Chromium(url, extra=["--ignore-certificate-errors"]):
            finished = done.wait(60)
    finally:
        httpd.shutdown()
    return result.get("checks") or [
        {"name": "browser: page reported", "ok": False,
         "detail": "no verdict within 60 s" if not finished else "empty verdict"}]


def main():
    endpoints, server = endpoints_from(sys.argv[1:])
    try:
        play = next(s for s in endpoints["servers"] if s["id"] == "play-1")
        if chromium() is None:
            print("1..1\nnot ok 1 - browser: chromium not found (run ci/chromium.sh)")
            return 1
        checks = []
        for scheme in ("ws", "wss"):
            if scheme not in play:
                checks.append({"name": f"browser: {scheme} endpoint listed by --serve", "ok": False,
                               "detail": f"no {scheme} key for play-1"})
                continue
            url = f"{scheme}://{play[scheme]}/ws"
            for check in run_page(url):
                check["name"] = f"{check['name']} ({scheme}, chromium)"
                checks.append(check)
        print(f"1..{len(checks)}")
        failed = 0
        for i, c in enumerate(checks, 1):
            print(f"{'ok' if c['ok'] else 'not ok'} {i} - {c['name']}")
            if not c["ok"]:
                failed += 1
                print(f"  # {c.get('detail', '')}")
        print(f"# {len(checks) - failed} tests passed, {failed} failed")
        return 1 if failed else 0
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    sys.exit(main())
