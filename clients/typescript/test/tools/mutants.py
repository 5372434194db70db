#!/usr/bin/env python3
"""Breaks the client on purpose, one mutation at a time, and checks that the suite notices.

Each mutation replaces one exact piece of a source file, rebuilds (tsc), runs the Node suite
(PLAYHOUSE_VERIFICATION must name the verification binary), records which tests failed, and
writes the original file back (from memory). Usage: python3 test/tools/mutants.py [NAME...]
Prints one line per mutation: caught (with the failing tests) or MISSED; exit 1 if any missed.
"""
import os
import re
import subprocess
import sys

MUTANTS = [
    ("skip-ack", "src/client.ts",
     "if (due !== undefined) this.link?.send(encodeFrame(ACK, 0, 0n, countPayload(due)));", "void due;"),
    ("resume-claims-one-more", "src/resume.ts",
     "client.session!.received)", "client.session!.received + 1)"),
    ("drop-first-replayed-frame", "src/resume.ts",
     "client.adopt(link);", "client.adopt(link); { const f = link.onFrame; let n = 0; link.onFrame = (x) => { if (!isControl(x.msgId) && n++ === 0) return; f(x); }; }"),
    ("no-resend", "src/resume.ts",
     "for (const bytes of resend) link.send(bytes);", ""),
    ("resend-everything", "src/session.ts",
     "this.unacked.splice(0, count - firstKept);", ""),
    ("count-control-frames", "src/client.ts",
     "    if (isControl(frame.msgId)) {\n      this.onControl(frame);\n      return;\n    }\n    const due = this.session?.receivedOne();",
     "    const due = this.session?.receivedOne();\n    if (isControl(frame.msgId)) {\n      this.onControl(frame);\n      return;\n    }"),
    ("ignore-move", "src/client.ts",
     "this.moving = moveEndpoint(frame.payload);", "void moveEndpoint;"),
    ("move-keeps-old-host", "src/endpoint.ts",
     "next.host = endpoint;", "void endpoint;"),
    ("ignore-move-while-away", "src/resume.ts",
     "if (endpoint) {", "if (endpoint === \"never\") {"),
    ("ignore-close", "src/client.ts",
     "this.closing = frame.errorCode;", ""),
    ("lost-retries", "src/resume.ts",
     'resolve({ kind: "lost", reason: `the server cannot resume',
     'resolve({ kind: "failed" }); void ({ kind: "lost", reason: `the server cannot resume'),
    ("lz4-overlap-as-copy", "src/lz4.ts",
     "if (offset >= matchLength) {", "if (true) {"),
    ("no-idle-detection", "src/client.ts",
     "if (now - this.lastHeard >= idle) {", "if (now - this.lastHeard >= idle * 1000) {"),
    ("no-heartbeat", "src/client.ts",
     "link.send(encodeFrame(HEARTBEAT, 0, 0n, new Uint8Array()));", "void HEARTBEAT;"),
    ("no-jitter", "src/session.ts",
     "return base + this.random() * (base / 2);", "return base + 0 * this.random();"),
    ("no-doubling", "src/session.ts",
     "this.next = Math.min(Math.max(base * 2, this.initialMs), this.maxMs);", "this.next = base + 0 * this.initialMs;"),
    ("no-stage-adoption", "src/client.ts",
     "if (this.stageId === 0n && frame.stageId !== 0n) this.stageId = frame.stageId;", ""),
    ("forget-logged-frames", "src/client.ts",
     "for (const logged of this.forming) session.recordSent(logged);", "for (const logged of this.forming) void logged;"),
    ("push-twice", "src/client.ts",
     'this.emit("push", packet);\n      for (const handler of [...(this.handlers.get(frame.msgId) ?? [])]) handler(packet);',
     'this.emit("push", packet);\n      for (const handler of [...(this.handlers.get(frame.msgId) ?? [])]) { handler(packet); if (frame.msgId === "BroadcastNotify" && packet.payload.length % 7 === 0) handler(packet); }'),
    ("no-request-timeout", "src/client.ts",
     "if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {", "if (timeoutMs > 1e12) {"),
    ("error-code-replaced", "src/client.ts",
     "entry.reject(new PlayHouseError(frame.errorCode, undefined, frame.msgId, frame.payload));",
     "entry.reject(new PlayHouseError(ErrorCode.SystemError, undefined, frame.msgId, frame.payload));"),
    ("no-stage-type-bit", "src/session.ts",
     "const requested = name ? bits | Capability.STAGE_TYPE : bits & ~Capability.STAGE_TYPE;",
     "const requested = bits & ~Capability.STAGE_TYPE;"),
    ("no-lz4-asked", "src/client.ts",
     "const bits = (options.lz4 === false ? 0 : Capability.LZ4)", "const bits = (0 * Capability.LZ4)"),
    ("pending-kept-at-close", "src/client.ts",
     "entry.reject(new PlayHouseError(rejectWith, `${entry.msgId}: ${reason}`, entry.msgId));", "void rejectWith;"),
]


def run_suite():
    build = subprocess.run(["npx", "tsc", "-p", "tsconfig.json"], capture_output=True, text=True)
    if build.returncode != 0:
        return None, build.stdout + build.stderr
    test = subprocess.run(["node", "--test", "--test-concurrency=1", "dist/test/node/"],
                          capture_output=True, text=True, timeout=900)
    failed = re.findall(r"^not ok \d+ - (.*)$", test.stdout, re.M)
    return [f for f in failed if not f.startswith("/")], test.stdout


def main():
    os.chdir(os.path.join(os.path.dirname(__file__), "..", ".."))
    chosen = [m for m in MUTANTS if len(sys.argv) < 2 or m[0] in sys.argv[1:]]
    missed = 0
    for name, path, old, new in chosen:
        original = open(path).read()
        if original.count(old) != 1:
            print(f"{name}: the piece to replace is not in {path} exactly once")
            missed += 1
            continue
        try:
            open(path, "w").write(original.replace(old, new))
            failed, output = run_suite()
        finally:
            open(path, "w").write(original)
        if failed is None:
            print(f"{name}: does not build\n{output}")
            missed += 1
        elif failed:
            print(f"{name}: caught by {len(failed)}: " + "; ".join(failed), flush=True)
        else:
            print(f"{name}: MISSED", flush=True)
            missed += 1
    subprocess.run(["npx", "tsc", "-p", "tsconfig.json"], check=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
