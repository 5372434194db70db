#!/usr/bin/env python3
"""An independent PlayHouse client, written only from SPEC §4 (and the field numbers in
proto/test_messages.proto). It shares no code with the project: Python standard library,
hand-rolled protobuf and LZ4 block decoding.

Usage: spec_client.py '{"servers":[{"id":"play-1","tcp":"127.0.0.1:PORT",...}]}'
       spec_client.py --spawn CMD...   (runs CMD, reads its one JSON line, stops it with SIGTERM)

Checks: heartbeat echo, authenticate, echo, 100 pipelined requests matched by sequence,
malformed frames closing only their own connection. Prints TAP; exit 1 on failure.
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEARTBEAT = "@Heart@Beat@"


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

class Client:
    def __init__(self, addr, stage_id):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def authenticate(client, user):
    seq = client.request("AuthenticateRequest", encode("AuthenticateRequest", user_id=user, token="t"))
    msg_id, _, _, error, payload = client.reply(seq)
    reply = decode("AuthenticateReply", payload)
    return msg_id, error, reply


# --- checks -------------------------------------------------------------------------------

def run_checks(endpoints):
    tcp = endpoints["tcp"]
    results = []

    def check(name, fn):
        try:
            fn()
            results.append((True, name, ""))
        except Exception as e:  # noqa: BLE001 - a failing check must not stop the run
            results.append((False, name, repr(e)))

    main = Client(tcp, 424242)

    def heartbeat():
        main.send(HEARTBEAT, stage_id=0)
        msg_id, seq, stage, error, payload = main.recv()
        assert (msg_id, seq, stage, error, payload) == (HEARTBEAT, 0, 0, 0, b""), msg_id

    def auth():
        msg_id, error, reply = authenticate(main, "spec-client")
        assert msg_id == "AuthenticateReply" and error == 0, (msg_id, error)
        assert reply.get("success") is True and reply.get("account_id"), reply

    def echo():
        seq = main.request("EchoRequest", encode("EchoRequest", content="hello", sequence=7))
        msg_id, _, _, error, payload = main.reply(seq)
        reply = decode("EchoReply", payload)
        assert msg_id == "EchoReply" and error == 0, (msg_id, error)
        assert reply.get("content") == "hello" and reply.get("sequence") == 7, reply

    def pipeline():
        expected = {}
        for i in range(100):
            seq = main.request("EchoRequest", encode("EchoRequest", content=f"p{i}", sequence=i + 1))
            expected[seq] = i + 1
        while expected:
            msg_id, seq, _, error, payload = main.recv()
            if seq == 0:
                continue  # a push
            reply = decode("EchoReply", payload)
            assert error == 0 and expected.pop(seq) == reply.get("sequence", 0), (seq, reply)

    def fail_code():
        seq = main.request("FailRequest", encode("FailRequest", error_code=1234))
        _, _, _, error, _ = main.reply(seq)
        assert error == 1234, error

    def malformed():
        bad_frames = [
            struct.pack("<i", -1),
            struct.pack("<i", 0),
            struct.pack("<i", 0x7FFFFFFF),
            struct.pack("<i", 12) + bytes(12),
            struct.pack("<i", 12) + bytes([200]) + b"x" * 11,
            struct.pack("<i", 12) + bytes([1, 0xFF]) + bytes(10),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for bad in bad_frames:
            attacker = Client(tcp, 424243)
            attacker.sock.settimeout(15)
            authenticate(attacker, "spec-attacker")
            attacker.sock.sendall(bad)
            assert attacker.closed_by_server(), f"not closed after {bad[:8]!r}"
            echo()

    def before_auth():
        early = Client(tcp, 424244)
        early.sock.settimeout(15)
        early.request("EchoRequest", encode("EchoRequest", content="early", sequence=1))
        assert early.closed_by_server()
        echo()

    for name, fn in [("heartbeat echo", heartbeat), ("authenticate", auth), ("echo", echo),
                     ("100 pipelined requests matched by sequence", pipeline),
                     ("error code reaches the client", fail_code),
                     ("malformed frames close only their connection", malformed),
                     ("message before authentication closes the connection", before_auth)]:
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
