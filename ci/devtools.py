"""A small DevTools-protocol client for the browser checks: Chromium's page WebSocket (no
library), `call` for a method, `eval` for JavaScript, `wait_for` an expression to hold; and
`Chromium`, a headless browser with its own profile, cleaned up however the check ends."""
import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0"]


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class DevTools:
    def __init__(self, ws_url):
        rest = ws_url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError(f"DevTools refused the WebSocket: {head[:200]!r}")
        self.next_id = 0

    def _send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytearray([0x81])
        if n < 126:
            head.append(0x80 | n)
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes(head) + mask + masked)

    def _recv(self):
        message = b""
        while True:
            b0, b1 = recv_exact(self.sock, 2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", recv_exact(self.sock, 2))
            elif n == 127:
                (n,) = struct.unpack(">Q", recv_exact(self.sock, 8))
            payload = recv_exact(self.sock, n)
            if b0 & 0x0F in (0x9, 0xA):
                continue
            message += payload
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method, **params):
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = self._recv()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def eval(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression, within=20):
        deadline = time.time() + within
        while time.time() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.2)
        return None


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def page_target(profile, within=30):
    """The DevTools WebSocket of Chromium's first page (its port is in DevToolsActivePort)."""
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            with open(port_file) as f:
                port = int(f.readline())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError("Chromium's DevTools endpoint never came up")


class Chromium:
    """`with Chromium(url) as browser:` a headless Chromium showing `url` in a profile of its
    own; `browser.tools` is its page's DevTools. On exit the browser (its whole process group)
    is killed and the profile removed."""

    def __init__(self, url="about:blank", window="1280,860", extra=()):
        self.url, self.window, self.extra = url, window, list(extra)
        self.process, self.profile, self.tools = None, None, None

    def __enter__(self):
        path = chromium()
        if path is None:
            raise RuntimeError("chromium not found (bash ci/chromium.sh installs it)")
        self.profile = tempfile.mkdtemp(prefix="playhouse-chromium-")
        argv = [path, *FLAGS, f"--window-size={self.window}", *self.extra,
                f"--user-data-dir={self.profile}", self.url]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        try:
            self.tools = DevTools(page_target(self.profile))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_):
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
        return False
