"""Runs docs/guide.md, the getting-started guide, the way a reader would: every code block in it
is a step, marked by the HTML comment on the line before it, and each step is done in order in
an empty folder, so a guide that stops working fails CI.

    <!-- step: run -->          a shell block, run (bash -e) in the folder the previous step left
    <!-- step: file PATH -->    a file, written to PATH (relative to the folder the guide starts in)
    <!-- step: serve -->        a command that serves until stopped; the guide's next step opens
                                the URL it prints (PORT=0 here, so it picks a free port)
    <!-- step: browsers -->     two headless Chromium pages open that URL and must see each other
    <!-- step: shown REASON --> shown to the reader, not run here, for the reason given

A code block without a step comment fails the run, so nothing in the guide escapes it.

Usage: python3 ci/guide.py [--screenshot PNG] [--keep]
The guide's `git clone` clones this checkout's HEAD; its crate builds with CARGO_TARGET_DIR
(default: this checkout's target/, so the dependencies built there are reused) and this
checkout's Cargo.lock (so it builds the versions CI tested). Prints TAP; exit 1 on failure.
"""
import argparse
import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from devtools import Chromium

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "guide.md")
CLONE_URL = "https://github.com/playhouse-rs/playhouse"
STEP = re.compile(r"^<!-- step: (run|file|serve|browsers|shown)\s*(.*?)\s*-->$")
FENCE = re.compile(r"^(```+)(\S*)\s*$")


def steps(text):
    """The guide's steps in order: (kind, argument, block text, line number)."""
    lines = text.split("\n")
    found, marker, i = [], None, 0
    while i < len(lines):
        match = STEP.match(lines[i])
        fence = FENCE.match(lines[i])
        if match:
            marker = (match.group(1), match.group(2), i + 1)
        elif fence:
            close = i + 1
            while close < len(lines) and lines[close] != fence.group(1):
                close += 1
            if marker is None:
                raise SystemExit(f"docs/guide.md:{i + 1}: a code block without a step comment")
            if marker[2] != i:
                raise SystemExit(f"docs/guide.md:{marker[2]}: the step comment must be right above its block")
            found.append((marker[0], marker[1], "\n".join(lines[i + 1:close]) + "\n", i + 1))
            marker, i = None, close
        elif lines[i].strip() and marker is not None:
            raise SystemExit(f"docs/guide.md:{marker[2]}: a step comment not followed by a block")
        i += 1
    return found


class Run:
    def __init__(self, base, env, screenshot):
        self.base, self.cwd, self.env, self.screenshot = base, base, env, screenshot
        self.results, self.url, self.servers = [], None, []

    def check(self, ok, name, detail=""):
        self.results.append(ok)
        print(f"{'ok' if ok else 'not ok'} {len(self.results)} - {name}")
        if not ok and detail:
            for line in detail.strip().splitlines()[-40:]:
                print(f"  # {line}")
        sys.stdout.flush()
        return ok

    def lock_new_crates(self):
        """A crate the guide created builds with the checkout's Cargo.lock (its versions)."""
        for dirpath, dirnames, filenames in os.walk(self.base):
            dirnames[:] = [d for d in dirnames if d not in ("playhouse", "target", ".git")]
            if "Cargo.toml" in filenames and "Cargo.lock" not in filenames:
                shutil.copy(os.path.join(ROOT, "Cargo.lock"), os.path.join(dirpath, "Cargo.lock"))

    def run(self, block, line):
        # The clone is of this checkout, into the folder the real one would make.
        script = re.sub(rf"git clone {re.escape(CLONE_URL)}$", f"git clone {ROOT} playhouse",
                        block, flags=re.M)
        marker = os.path.join(self.base, ".guide-cwd")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", f"{script}\npwd > {marker}"],
                              cwd=self.cwd, env=self.env, capture_output=True, text=True)
        first = block.strip().splitlines()[0]
        ok = self.check(done.returncode == 0, f"line {line}: {first}", done.stdout + done.stderr)
        if ok:
            with open(marker) as f:
                self.cwd = f.read().strip()
            self.lock_new_crates()
        return ok

    def file(self, path, block, line):
        target = os.path.join(self.base, path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(block)
        return self.check(True, f"line {line}: wrote {path}")

    def serve(self, block, line):
        process = subprocess.Popen(["bash", "-c", f"exec {block.strip()}"], cwd=self.cwd,
                                   env=dict(self.env, PORT="0"), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.servers.append(process)
        seen, deadline = [], time.time() + 600
        while time.time() < deadline:
            out = process.stdout.readline()
            if not out:
                break
            seen.append(out)
            found = re.search(r"http://[0-9.]+:\d+/", out)
            if found:
                self.url = found.group(0)
                break
        return self.check(self.url is not None, f"line {line}: {block.strip()} serves {self.url}",
                          "".join(seen))

    def browsers(self, line):
        with Chromium(window="870,700") as ann, Chromium(window="870,700") as bob:
            ann.tools.call("Page.navigate", url=f"{self.url}?name=ann")
            bob.tools.call("Page.navigate", url=f"{self.url}?name=bob")
            both = "(() => { const w = window.world; return !!w && 'ann' in w.dots && 'bob' in w.dots; })()"
            met = ann.tools.wait_for(both, within=30) and bob.tools.wait_for(both, within=30)
            self.check(bool(met), f"line {line}: both pages see ann and bob in the room",
                       f"ann: {ann.tools.eval('JSON.stringify(window.world)')}")
            for x, y in ((120, 80), (640, 410)):
                ann.tools.eval(f"window.move({x}, {y})")
                seen = bob.tools.wait_for(f"(() => {{ const d = window.world && window.world.dots.ann;"
                                          f" return !!d && d.x === {x} && d.y === {y}; }})()", within=10)
                self.check(bool(seen), f"line {line}: bob's page sees ann move to ({x}, {y})",
                           f"bob: {bob.tools.eval('JSON.stringify(window.world)')}")
            bob.tools.eval("window.move(300, 200)")
            seen = ann.tools.wait_for("(() => { const d = window.world.dots.bob;"
                                      " return d.x === 300 && d.y === 200; })()", within=10)
            self.check(bool(seen), f"line {line}: ann's page sees bob move")
            if self.screenshot:
                time.sleep(0.3)  # the next animation frame draws the last world
                shot = bob.tools.call("Page.captureScreenshot", format="png")
                with open(self.screenshot, "wb") as f:
                    f.write(base64.b64decode(shot["data"]))

    def stop(self):
        for process in self.servers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--screenshot")
    parser.add_argument("--keep", action="store_true", help="keep the folder the guide ran in")
    args = parser.parse_args()
    with open(GUIDE) as f:
        plan = steps(f.read())
    base = tempfile.mkdtemp(prefix="playhouse-guide-")
    env = dict(os.environ, CARGO_TARGET_DIR=os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
    env["CARGO_TARGET_DIR"] = os.path.abspath(env["CARGO_TARGET_DIR"])
    run = Run(base, env, args.screenshot)
    shown = 0
    try:
        for kind, arg, block, line in plan:
            if kind == "run":
                ok = run.run(block, line)
            elif kind == "file":
                ok = run.file(arg, block, line)
            elif kind == "serve":
                ok = run.serve(block, line)
            elif kind == "browsers":
                run.browsers(line)
                ok = True
            else:
                if not arg:
                    raise SystemExit(f"docs/guide.md:{line}: a shown step says why it is not run")
                shown += 1
                ok = True
            if not ok:
                break
    except Exception as error:  # a broken step is a failed check, not a crash
        run.check(False, "the guide ran to its end", repr(error))
    finally:
        run.stop()
        if args.keep:
            print(f"# the guide ran in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    failed = run.results.count(False)
    print(f"1..{len(run.results)}")
    print(f"# {len(plan)} steps ({shown} shown only), {failed} checks failed")
    return 1 if failed or not run.results else 0


if __name__ == "__main__":
    sys.exit(main())
