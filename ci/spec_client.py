#!/usr/bin/env python3
"""An independent PlayHouse client, written only from SPEC §4 (and the field numbers in
proto/test_messages.proto). It shares no code with the project: Python standard library,
hand-rolled protobuf and LZ4 block decoding.

Usage: spec_client.py '{"servers":[{"id":"play-1","tcp":"127.0.0.1:PORT",...}]}'
       spec_client.py --spawn CMD...   (runs CMD, reads its one JSON line, stops it with SIGTERM)

Checks, over TCP, TLS, WebSocket (hand-rolled RFC 6455) and WebSocket over TLS: heartbeat echo, authenticate,
echo, 100 pipelined requests matched by sequence, a 64 KiB echo that arrives plain to a client
that never sent the capability hello (docs/wire-protocol.md, "The capability handshake") and LZ4-compressed to one that did;
and every bad input of SPEC §9 (bad lengths and ids, garbage, a message before
authentication, half a frame then silence, a WebSocket text message, a TLS handshake of
garbage, a flood that never reads) closing only its own connection within the configured
timeouts while a healthy client keeps its replies. Prints TAP; exit 1 on failure.
"""
import base64
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEARTBEAT = "@Heart@Beat@"
HELLO = "@Hello@"  # the capability handshake
LZ4 = 1  # capability bit: the client decompresses LZ4 payloads


# --- protobuf (only what we need: varint, length-delimited) -------------------------------

def load_fields():
    """message name -> {field name: (number, type)} from the project's .proto file."""
    text = open(os.path.join(ROOT, "proto", "test_messages.proto"), encoding="utf-8").read()
    messages = {}
    for name, body in re.findall(r"message\s+(\w+)\s*\{([^}]*)\}", text):
        fields = {}
        for ftype, fname, num in re.findall(r"(?:repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", body):
            fields[fname] = (int(num), ftype)
        messages[name] = fields
    return messages


FIELDS = load_fields()


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode(message, **values):
    out = bytearray()
    for name, value in values.items():
        num, ftype = FIELDS[message][name]
        if ftype in ("string", "bytes"):
            data = value.encode() if isinstance(value, str) else value
            out += varint(num << 3 | 2) + varint(len(data)) + data
        else:
            out += varint(num << 3 | 0) + varint(int(value))
    return bytes(out)


def decode(message, data):
    by_num = {num: (name, ftype) for name, (num, ftype) in FIELDS[message].items()}
    values, i = {}, 0

    def read_varint():
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(data):
        key = read_varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            value = read_varint()
        elif wire == 2:
            n = read_varint()
            value = data[i:i + n]
            i += n
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError("bad wire type")
        if num in by_num:
            name, ftype = by_num[num]
            if ftype == "string":
                value = value.decode()
            elif ftype == "bool":
                value = bool(value)
            values[name] = value
    return values


# --- LZ4 block format ---------------------------------------------------------------------

def lz4_block_decompress(src, size):
    out, i = bytearray(), 0
    while i < len(src):
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                b = src[i]
                i += 1
                lit += b
                if b != 255:
                    break
        out += src[i:i + lit]
        i += lit
        if i >= len(src):
            break
        offset = src[i] | src[i + 1] << 8
        i += 2
        if offset == 0 or offset > len(out):
            raise ValueError("bad LZ4 offset")
        match = (token & 15) + 4
        if match == 19:
            while True:
                b = src[i]
                i += 1
                match += b
                if b != 255:
                    break
        for _ in range(match):
            out.append(out[-offset])
    if len(out) != size:
        raise ValueError("LZ4 size mismatch")
    return bytes(out)


# --- wire protocol (SPEC §4) --------------------------------------------------------------

class WebSocket:
    """A minimal RFC 6455 client over a socket: binary messages, masked as clients must."""

    def __init__(self, sock, host, path="/ws"):
        self.sock = sock
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n")
        sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                raise RuntimeError("closed during the WebSocket handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"upgrade refused: {head[:40]!r}")
        self.pending = b""

    def send_message(self, data, opcode=0x2):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(data)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(header + mask + masked)

    def sendall(self, data):
        self.send_message(data)

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                return None
            out += chunk
        return out

    def recv(self, _n):
        """The payload of the next data message (b"" once closed)."""
        while True:
            head = self._exact(2)
            if head is None:
                return b""
            opcode, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            payload = self._exact(n) if n else b""
            if payload is None or opcode == 0x8:
                return b""
            if opcode in (0x1, 0x2, 0x0):
                return payload

    def settimeout(self, t):
        self.sock.settimeout(t)

    def setsockopt(self, *args):
        self.sock.setsockopt(*args)


def open_transport(addr, transport):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if transport in ("tls", "wss"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the verification servers use self-signed certificates
        sock = context.wrap_socket(sock, server_hostname=host)
    if transport in ("ws", "wss"):
        sock = WebSocket(sock, f"{host}:{port}")
    return sock


class Client:
    def __init__(self, addr, stage_id, transport="tcp"):
        self.sock = open_transport(addr, transport)
        self.stage_id = stage_id
        self.buf = b""
        self.seq = 0
        self.compressed = 0

    def frame(self, msg_id, seq, payload=b"", stage_id=None):
        mid = msg_id.encode()
        stage = self.stage_id if stage_id is None else stage_id
        body = bytes([len(mid)]) + mid + struct.pack("<Hq", seq, stage) + payload
        return struct.pack("<i", len(body)) + body

    def send(self, msg_id, payload=b"", seq=0, stage_id=None):
        self.sock.sendall(self.frame(msg_id, seq, payload, stage_id))

    def request(self, msg_id, payload):
        self.seq = self.seq % 65535 + 1
        self.send(msg_id, payload, self.seq)
        return self.seq

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv(self):
        """(msg_id, seq, stage_id, error_code, payload) or None when the server closed."""
        head = self._read(4)
        if head is None:
            return None
        (length,) = struct.unpack("<i", head)
        body = self._read(length)
        if body is None:
            return None
        n = body[0]
        msg_id = body[1:1 + n].decode()
        seq, stage, error, original = struct.unpack("<HqHi", body[1 + n:1 + n + 16])
        payload = body[1 + n + 16:]
        if original > 0:
            payload = lz4_block_decompress(payload, original)
            self.compressed += 1
        return msg_id, seq, stage, error, payload

    def reply(self, seq):
        while True:
            frame = self.recv()
            if frame is None:
                raise RuntimeError("connection closed while waiting for a reply")
            if frame[1] == seq:
                return frame

    def closed_by_server(self):
        try:
            while True:
                if self.recv() is None:
                    return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            return True


def hello(client, requested):
    """The capability handshake (docs/wire-protocol.md): ask for `requested`, return what was granted."""
    seq = client.request(HELLO, struct.pack("<I", requested))
    msg_id, _, _, error, payload = client.reply(seq)
    assert msg_id == HELLO and error == 0 and len(payload) >= 4, (msg_id, error, payload)
    return struct.unpack("<I", payload[:4])[0]


def authenticate(client, user):
    seq = client.request("AuthenticateRequest", encode("AuthenticateRequest", user_id=user, token="t"))
    msg_id, _, _, error, payload = client.reply(seq)
    reply = decode("AuthenticateReply", payload)
    return msg_id, error, reply


# --- checks -------------------------------------------------------------------------------

def run_checks(endpoints):
    results = []

    def check(name, fn):
        started = time.monotonic()
        try:
            fn()
            results.append((True, name, ""))
        except Exception as e:  # noqa: BLE001 - a failing check must not stop the run
            results.append((False, name, repr(e)))
        sys.stderr.write(f"  {name}: {time.monotonic() - started:.1f}s\n")

    tcp = endpoints["tcp"]
    main = Client(tcp, 424242)

    def echo_on(client, content="hello", sequence=7):
        seq = client.request("EchoRequest", encode("EchoRequest", content=content, sequence=sequence))
        msg_id, _, _, error, payload = client.reply(seq)
        reply = decode("EchoReply", payload)
        assert msg_id == "EchoReply" and error == 0, (msg_id, error)
        assert reply.get("content") == content and reply.get("sequence") == sequence, reply

    def echo():
        echo_on(main)

    def heartbeat_on(client):
        client.send(HEARTBEAT, stage_id=0)
        msg_id, seq, stage, error, payload = client.recv()
        assert (msg_id, seq, stage, error, payload) == (HEARTBEAT, 0, 0, 0, b""), msg_id

    def auth_on(client, user):
        msg_id, error, reply = authenticate(client, user)
        assert msg_id == "AuthenticateReply" and error == 0, (msg_id, error)
        assert reply.get("success") is True and reply.get("account_id"), reply

    def pipeline_on(client):
        expected = {}
        for i in range(100):
            seq = client.request("EchoRequest", encode("EchoRequest", content=f"p{i}", sequence=i + 1))
            expected[seq] = i + 1
        while expected:
            msg_id, seq, _, error, payload = client.recv()
            if seq == 0:
                continue  # a push
            reply = decode("EchoReply", payload)
            assert error == 0 and expected.pop(seq) == reply.get("sequence", 0), (seq, reply)

    def fail_code():
        seq = main.request("FailRequest", encode("FailRequest", error_code=1234))
        _, _, _, error, _ = main.reply(seq)
        assert error == 1234, error

    def large_echo(client, expect_compressed):
        before = client.compressed
        content = "playhouse " * 6554  # 64 KiB, compressible
        seq = client.request("EchoRequest", encode("EchoRequest", content=content, sequence=64))
        msg_id, _, _, error, payload = client.reply(seq)
        assert error == 0 and decode("EchoReply", payload).get("content") == content
        if expect_compressed:
            assert client.compressed == before + 1, "the 64 KiB reply was not LZ4-compressed"
        else:
            assert client.compressed == before, "compressed for a client that never asked"

    def compressed_echo():
        client = Client(tcp, 424249)
        assert hello(client, LZ4) == LZ4, "LZ4 not granted"
        auth_on(client, "spec-lz4")
        large_echo(client, True)

    checks = [("tcp: heartbeat echo", lambda: heartbeat_on(main)),
              ("tcp: authenticate", lambda: auth_on(main, "spec-client")),
              ("tcp: echo", echo),
              ("tcp: 100 pipelined requests matched by sequence", lambda: pipeline_on(main)),
              ("tcp: error code reaches the client", fail_code),
              ("tcp: no hello, a 64 KiB echo arrives uncompressed", lambda: large_echo(main, False)),
              ("tcp: after a hello asking for LZ4, a 64 KiB echo arrives compressed", compressed_echo)]

    for transport in ("tls", "ws", "wss"):
        if transport not in endpoints:
            checks.append((f"{transport}: endpoint listed by --serve",
                           lambda t=transport: (_ for _ in ()).throw(AssertionError(f"no {t} endpoint"))))
            continue

        def over(transport=transport):
            client = Client(endpoints[transport], 424250 + len(transport), transport)
            heartbeat_on(client)
            assert hello(client, LZ4) == LZ4, "LZ4 not granted"
            auth_on(client, f"spec-{transport}")
            echo_on(client, f"over {transport}")
            pipeline_on(client)
            before = client.compressed
            content = "wire " * 13108
            seq = client.request("EchoRequest", encode("EchoRequest", content=content, sequence=9))
            _, _, _, error, payload = client.reply(seq)
            assert error == 0 and decode("EchoReply", payload).get("content") == content
            assert client.compressed == before + 1, "large reply not compressed"
        checks.append((f"{transport}: heartbeat, authenticate, echo, pipeline, compressed echo", over))

    def cut(name, attack, authenticated=True, transport="tcp", timeout=20):
        def run():
            attacker = Client(endpoints[transport], 424243, transport)
            attacker.sock.settimeout(timeout)
            if authenticated:
                authenticate(attacker, "spec-attacker")
            attack(attacker)
            assert attacker.closed_by_server(), f"not closed within {timeout}s"
            echo()  # the healthy client beside it keeps working
        checks.append((f"bad input closes only its connection: {name}", run))

    raw = lambda data: (lambda a: a.sock.sendall(data))  # noqa: E731
    cut("negative length", raw(struct.pack("<i", -1)))
    cut("zero length", raw(struct.pack("<i", 0)))
    cut("huge length", raw(struct.pack("<i", 0x7FFFFFFF)))
    cut("a body shorter than 11 bytes", raw(struct.pack("<i", 10) + bytes(10)))

    def empty_msg_id():
        # An empty msg id is no protocol error: a request gets 11 InvalidMessage under the id
        # "@Invalid@", a one-way message is dropped, and the connection stays.
        client = Client(endpoints["tcp"], 424244)
        client.sock.settimeout(20)
        authenticate(client, "spec-empty-id")
        client.sock.sendall(struct.pack("<i", 11) + bytes([0]) + struct.pack("<Hq", 0, 424244))
        client.sock.sendall(struct.pack("<i", 11) + bytes([0]) + struct.pack("<Hq", 777, 424244))
        msg_id, _, _, error, _ = client.reply(777)
        assert (msg_id, error) == ("@Invalid@", 11), (msg_id, error)
        seq = client.request("EchoRequest", encode("EchoRequest", content="after", sequence=2))
        _, _, _, error, payload = client.reply(seq)
        assert error == 0 and decode("EchoReply", payload)["content"] == "after", (error, payload)
    checks.append(("an empty msg id gets InvalidMessage and the connection stays", empty_msg_id))
    cut("msg id past the body", raw(struct.pack("<i", 12) + bytes([200]) + b"x" * 11))
    cut("invalid UTF-8 msg id", raw(struct.pack("<i", 12) + bytes([1, 0xFF]) + bytes(10)))
    cut("garbage", raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    cut("message before authentication",
        lambda a: a.request("EchoRequest", encode("EchoRequest", content="early", sequence=1)),
        authenticated=False)
    # Truncated body / half a frame, then silence: the auth timeout (10 s) cuts it.
    cut("half a frame then silence", raw(struct.pack("<i", 40) + bytes([5]) + b"Ec"),
        authenticated=False, timeout=25)
    if "ws" in endpoints:
        cut("WebSocket text message", lambda a: a.sock.send_message(b"hello", opcode=0x1), transport="ws")

    def tls_garbage():
        host, port = endpoints["tls"].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=20)
        sock.sendall(b"\x16\x03\x01\x00\x05garbage that is not a TLS hello" * 4)
        try:
            while sock.recv(4096):
                pass
        except OSError:
            pass
        echo()
    if "tls" in endpoints:
        checks.append(("bad input closes only its connection: TLS handshake of garbage", tls_garbage))

    def flood():
        # Requests whose replies are never read: the server stops taking them and cuts the
        # client (write timeout 10 s); the healthy client is unaffected meanwhile.
        attacker = Client(tcp, 424244)
        authenticate(attacker, "spec-flood")
        attacker.sock.settimeout(30)
        # Incompressible content, so the replies really fill the socket buffers.
        noise = os.urandom(30000).hex()
        frame = attacker.frame("EchoRequest", 1, encode("EchoRequest", content=noise, sequence=1))
        started = time.monotonic()
        try:
            while time.monotonic() - started < 30:
                attacker.sock.sendall(frame)
        except OSError:
            pass
        echo()
        assert time.monotonic() - started < 30, "the flooding client was never cut"
    checks.append(("bad input closes only its connection: a flood that never reads", flood))

    for name, fn in checks:
        check(name, fn)
    return results


def main(argv):
    proc = None
    if argv[:1] == ["--spawn"]:
        proc = subprocess.Popen(argv[1:], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
    else:
        line = argv[0]
    try:
        servers = json.loads(line)["servers"]
        play = next(s for s in servers if s["id"] == "play-1")
        results = run_checks(play)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = "killed"
            print(f"# server exited with {code}")
    print(f"1..{len(results)}")
    for i, (ok, name, why) in enumerate(results, 1):
        print(f"{'ok' if ok else 'not ok'} {i} - spec client: {name}")
        if not ok:
            print(f"  # {why}")
    failed = sum(1 for ok, _, _ in results if not ok)
    print(f"# {len(results) - failed} tests passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
