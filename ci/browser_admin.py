#!/usr/bin/env python3
"""A real browser on play-1's admin page: the verification cluster (two Play servers, two API
servers) is started, a test client (raw TCP, SPEC §4 frames) creates stage 4747 on play-1 and
keeps echoing, and headless Chromium, driven over the DevTools protocol, opens the page and
checks that it lists both Play servers and the stage (its one actor, its tick overruns), that
its charts update each second, and that the stage's Close button closes it (gone from the page
and from the server). It saves a screenshot (--screenshot PATH) of the page with the stage listed and the charts running.

Usage: browser_admin.py [--screenshot PATH] --spawn CMD...   (CMD is `verification --serve`)
Needs `chromium` (ci/chromium.sh installs it). Prints TAP; exit 1 on failure.
"""
import base64
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.request

from devtools import Chromium, chromium, recv_exact

STAGE = 4747


# ---- the test client: SPEC §4 frames over TCP ------------------------------------------------

def varint(n):
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(num, text):
    b = text.encode()
    return varint(num << 3 | 2) + varint(len(b)) + b


def frame(msg_id, seq, stage_id, payload):
    """Client frame: i32 length | u8 id length | id | u16 seq | i64 stage id | payload (LE)."""
    mid = msg_id.encode()
    body = bytes([len(mid)]) + mid + struct.pack("<Hq", seq, stage_id) + payload
    return struct.pack("<i", len(body)) + body


def read_frame(sock):
    """Server frame: i32 length | u8 id length | id | u16 seq | i64 stage | u16 error | ..."""
    (length,) = struct.unpack("<i", recv_exact(sock, 4))
    body = recv_exact(sock, length)
    n = body[0]
    msg_id = body[1:1 + n].decode()
    seq, _stage, error = struct.unpack("<HqH", body[1 + n:1 + n + 12])
    return msg_id, seq, error


class Player:
    """Authenticates into stage STAGE, then echoes every 50 ms until stopped or closed."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        auth = field(1, "admin-page-player") + field(2, "t")
        self.sock.sendall(frame("AuthenticateRequest", 1, STAGE, auth))
        msg_id, _seq, error = read_frame(self.sock)
        if msg_id != "AuthenticateReply" or error != 0:
            raise RuntimeError(f"authentication: {msg_id} error {error}")
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.play, daemon=True)
        self.thread.start()

    def play(self):
        seq = 2
        try:
            while not self.stop.wait(0.05):
                self.sock.sendall(frame("EchoRequest", seq, STAGE, field(1, "tick")))
                read_frame(self.sock)
                seq = seq % 60000 + 2
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.sock.close()


# ---- a minimal DevTools-protocol client (WebSocket text frames over a socket) ----------------

def run(play, screenshot):
    checks = []

    def check(name, ok, detail=""):
        checks.append({"name": f"admin page: {name}", "ok": bool(ok), "detail": detail})

    player = Player(play["tcp"])
    try:
        with Chromium() as chrome:
            check_page(chrome.tools, play, screenshot, check)
    except Exception as error:  # a broken step is a failed check, not a crash
        check("run", False, repr(error))
    finally:
        player.close()
    return checks


def check_page(tools, play, screenshot, check):
    url = f"http://{play['admin']}/#token={play['admin_token']}"
    tools.call("Page.navigate", url=url)
    servers = tools.wait_for("""(() => { const ids = [...document.querySelectorAll('#cluster tr[data-server]')]
          .map(tr => tr.dataset.server); return ids.includes('play-1') && ids.includes('play-2') && ids; })()""")
    check("lists both Play servers from the directory", servers, f"rows: {servers}")
    row = f"#stages tr[data-stage='{STAGE}']"
    stage = tools.wait_for(f"!!document.querySelector(\"{row}\")")
    check(f"lists stage {STAGE} the test client created", stage,
          tools.eval("document.querySelector('#stages').innerText"))
    cells = tools.eval(f"""(() => {{ const heads = [...document.querySelectorAll('#stages th')]
          .map(th => th.textContent); const row = document.querySelector("{row}");
          return row && Object.fromEntries(heads.map((h, i) => [h, row.cells[i].textContent])); }})()""")
    check("the stage's row shows its one actor and its tick overruns",
          cells and cells.get("actors") == "1" and cells.get("tick overruns", "").isdigit(),
          f"row: {cells}")
    first = tools.eval("window.chartUpdates") or 0
    later = tools.wait_for(f"window.chartUpdates >= {first + 3} && window.chartUpdates", within=10)
    check("charts update every second", later, f"updates {first} then {later}")
    moving = tools.eval("document.querySelector('#rate').toDataURL().length")
    check("the messages/s chart is drawn", moving and moving > 2000, f"data URL {moving} chars")
    if screenshot:
        # Half a minute of chart for the picture.
        tools.wait_for("window.chartUpdates >= 30", within=40)
        shot = tools.call("Page.captureScreenshot", format="png")
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
    tools.eval(f"document.querySelector(\"{row} button.close\").click()")
    gone = tools.wait_for(f"!document.querySelector(\"{row}\")", within=10)
    check("Close closes the stage: it leaves the page", gone)
    req = urllib.request.Request(f"http://{play['admin']}/admin/state")
    with urllib.request.urlopen(req, timeout=5) as r:
        state = json.load(r)
    ids = [s["id"] for s in state["stages"]]
    check("and the server no longer has it", STAGE not in ids, f"stages {ids}")


def main():
    argv = sys.argv[1:]
    screenshot = None
    if argv[:1] == ["--screenshot"]:
        screenshot, argv = argv[1], argv[2:]
    if argv[:1] != ["--spawn"]:
        print(__doc__)
        return 2
    server = subprocess.Popen(argv[1:], stdout=subprocess.PIPE, text=True)
    try:
        endpoints = json.loads(server.stdout.readline())
        play = next(s for s in endpoints["servers"] if s["id"] == "play-1")
        if chromium() is None:
            print("1..1\nnot ok 1 - admin page: chromium not found (run ci/chromium.sh)")
            return 1
        checks = run(play, screenshot)
        print(f"1..{len(checks)}")
        failed = 0
        for i, c in enumerate(checks, 1):
            print(f"{'ok' if c['ok'] else 'not ok'} {i} - {c['name']} (chromium)")
            if not c["ok"]:
                failed += 1
                print(f"  # {c.get('detail', '')}")
        print(f"# {len(checks) - failed} tests passed, {failed} failed")
        return 1 if failed else 0
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
