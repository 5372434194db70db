#!/usr/bin/env python3
"""The arena sample game in a real browser: `arena` is started (with two bots playing), and two
headless Chromium pages, driven over the DevTools protocol, join room 1 as ann and bob through
the page's own UI code and the TypeScript client. Checked:

* both see each other, and when ann steers right, bob sees her move;
* ann's page goes offline for 2 s, then online again: her client resumes its session (a
  `resumed` event, no `lost`, no second join), and no snapshot is missing or out of order on
  her page (the ones sent while she was away are replayed). Offline is DevTools network
  emulation (new connections fail) plus a cut of her open connections: this Chromium's
  emulation leaves an open WebSocket running, so ann's page is loaded through a TCP proxy
  of this script's that drops her connections and refuses new ones for the 2 s;
* the scoreboards agree: for the same tick, both pages show the same scores.

It saves a screenshot of bob's page (--screenshot PATH).

Usage: browser_arena.py --arena PATH/TO/arena --bots PATH/TO/arena-bots [--screenshot PATH]
Needs `chromium` (ci/chromium.sh) and the TypeScript client built (clients/typescript).
Prints TAP; exit 1 on failure.
"""
import argparse
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import socket
import threading
import time

from devtools import Chromium, chromium

results = []


def check(ok, name, detail=""):
    results.append(ok)
    print(f"{'ok' if ok else 'not ok'} {len(results)} - {name}" + (f" # {detail}" if detail and not ok else ""))
    sys.stdout.flush()
    return ok


class CuttingProxy:
    """A TCP proxy to `target` (host, port) on a port of its own that can go offline: drop
    every connection it carries and refuse new ones for a while."""

    def __init__(self, target):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open = []
        self.offline_until = 0.0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.time() < self.offline_until:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def go_offline(self, seconds):
        self.offline_until = time.time() + seconds
        with self.lock:
            dropped, self.open = self.open, []
        for sock in dropped:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--arena", required=True)
    parser.add_argument("--bots", required=True)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    if not chromium():
        print("Bail out! chromium not found (bash ci/chromium.sh)")
        return 1
    env = dict(os.environ, ARENA_HTTP="127.0.0.1:0", ARENA_TCP="127.0.0.1:0")
    arena = subprocess.Popen([args.arena], stdout=subprocess.PIPE, env=env, text=True)
    processes = [arena]
    pages = contextlib.ExitStack()
    try:
        ready = json.loads(arena.stdout.readline())
        base = ready["url"]
        bots = subprocess.Popen([args.bots, "2", "1"], env=dict(env, ARENA_HTTP=ready["http"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(bots)
        print("1..6")
        host, port = ready["http"].rsplit(":", 1)
        proxy = CuttingProxy((host, int(port)))
        ann_url = f"http://127.0.0.1:{proxy.port}/?name=ann&room=1"
        ann = pages.enter_context(Chromium(ann_url, window="1100,720")).tools
        bob = pages.enter_context(Chromium(f"{base}?name=bob&room=1", window="1100,720")).tools
        both = "(() => { const s = window.arena && window.arena.snapshot;" \
               " return !!s && ['ann', 'bob'].every(n => s.avatars.some(a => a.name === n)); })()"
        check(bool(ann.wait_for(both) and bob.wait_for(both)), "both pages see ann and bob")

        ann_x = "window.arena.snapshot.avatars.find(a => a.name === 'ann').x"
        start = bob.eval(ann_x)
        ann.eval("window.arena.steer(1, 0)")
        moved = bob.wait_for(f"{ann_x} > {start} + 40 || {ann_x} >= 784")
        check(bool(moved), "bob sees ann move when she steers", f"from {start}")
        ann.eval("window.arena.steer(0, 0)")

        before = ann.eval("window.arena.snapshots")
        ann.call("Network.enable")
        ann.call("Network.emulateNetworkConditions", offline=True, latency=0,
                 downloadThroughput=-1, uploadThroughput=-1)
        proxy.go_offline(2)
        time.sleep(2)
        ann.call("Network.emulateNetworkConditions", offline=False, latency=0,
                 downloadThroughput=-1, uploadThroughput=-1)
        resumed = ann.wait_for("window.arena.events.includes('resumed')", within=30)
        events = ann.eval("window.arena.events")
        check(bool(resumed) and "lost" not in events and ann.eval("window.arena.joins") == 1,
              "ann's page went offline for 2 s and resumed its session without a rejoin",
              f"events {events}")
        caught_up = ann.wait_for(f"window.arena.snapshots > {before} + 40")
        gaps = ann.eval("window.arena.gaps")
        check(bool(caught_up) and gaps == 0,
              "no snapshot lost or out of order on ann's page across the drop", f"gaps {gaps}")

        # The same tick on both pages: the same scores.
        time.sleep(1)
        a = ann.eval("JSON.stringify(window.arena.scores)")
        b = bob.eval("JSON.stringify(window.arena.scores)")
        a, b = json.loads(a), json.loads(b)
        common = sorted(set(a) & set(b), key=int)
        agree = bool(common) and all(a[t] == b[t] for t in common)
        check(agree, "the scoreboards agree tick by tick", f"{len(common)} common ticks")
        scored = any(score > 0 for t in common for score in a[t].values())
        check(scored, "the bots scored (the scoreboard moves)")

        if args.screenshot:
            bob.call("Emulation.setDeviceMetricsOverride", width=1100, height=700,
                     deviceScaleFactor=1, mobile=False)
            time.sleep(0.3)
            shot = bob.call("Page.captureScreenshot", format="png")
            with open(args.screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
    finally:
        pages.close()
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    failed = results.count(False)
    print(f"# {len(results) - failed} passed, {failed} failed")
    return 1 if failed or len(results) < 6 else 0


if __name__ == "__main__":
    sys.exit(main())
