// One Node load generator for both servers of issue 15's comparison, over WebSocket with the
// same client library (`ws`, raw sockets, binary messages) and the same in-flight window.
//
//   node loadgen.mjs --protocol playhouse|colyseus --target 127.0.0.1:PORT --pid SERVER_PID
//                    --case echo|broadcast|idle [--clients 100] [--inflight 8] [--per-room 10]
//                    [--size 64] [--warmup 3] [--duration 15]
//
// Protocols:
//   playhouse  SPEC §4 frames, one frame per binary message, at ws://TARGET/ws. Each client
//              authenticates (AuthenticateRequest into stage `index / per-room + 1`), then sends
//              BenchRequest (echo; the reply carries the payload) or BenchBroadcast (one-way; the
//              stage pushes BenchPush to every client in it).
//   colyseus   POST /matchmake/joinOrCreate/<echo|broadcast> (seat reservation), then
//              ws://TARGET/<processId>/<roomId>?sessionId=..., answer the server's JOIN_ROOM
//              with JOIN_ROOM; then ROOM_DATA_BYTES messages "e" (echo) or "b" (broadcast).
//              The server's room sizes are fixed (echo 10, broadcast 50): see server.mjs.
//
// Cases:
//   echo       every client keeps `inflight` messages outstanding; each reply sends the next.
//   broadcast  every client joins one room; client 0 alone sends, keeping `inflight` of its own
//              broadcasts outstanding (its own copy completes one); every copy any client
//              receives is a delivery.
//   idle       clients join and stay silent; the server's RSS and CPU are what is measured.
//
// Every payload starts with the sender's send time (float64 ms from performance.now(), the same
// clock for every client in this process), so latency is measured per delivery, broadcasts
// included. Server CPU is utime+stime from /proc/PID/stat over the measured window only (after
// every client joined and `warmup` seconds of load). Prints one JSON line.

import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const { values: args } = parseArgs({
  options: {
    protocol: { type: "string" },
    target: { type: "string" },
    pid: { type: "string" },
    case: { type: "string", default: "echo" },
    clients: { type: "string", default: "100" },
    inflight: { type: "string", default: "8" },
    "per-room": { type: "string", default: "10" },
    size: { type: "string", default: "64" },
    warmup: { type: "string", default: "3" },
    duration: { type: "string", default: "15" },
    "join-concurrency": { type: "string", default: "50" },
  },
});
const protocol = args.protocol;
const target = args.target;
const serverPid = Number(args.pid);
const benchCase = args.case;
const clients = Number(args.clients);
const inflight = Number(args.inflight);
const perRoom = benchCase === "broadcast" ? clients : Number(args["per-room"]);
const size = Number(args.size);
const warmup = Number(args.warmup);
const duration = Number(args.duration);
const joinConcurrency = Number(args["join-concurrency"]);

if (!["playhouse", "colyseus"].includes(protocol)) throw new Error("--protocol playhouse|colyseus");
if (!["echo", "broadcast", "idle"].includes(benchCase)) throw new Error("--case echo|broadcast|idle");
const host = target?.slice(0, target.lastIndexOf(":"));
if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) {
  throw new Error("the load generator targets loopback only");
}
if (size < 8) throw new Error("--size must hold the 8-byte send time");

// ---------------------------------------------------------------------------------------------
// Server process figures from /proc.

const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());

/** utime + stime of the server process, in seconds. */
function serverCpuSeconds() {
  const stat = readFileSync(`/proc/${serverPid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at field 3 (state).
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}

/** The server's resident set size in MiB (VmRSS). */
function serverRssMiB() {
  const status = readFileSync(`/proc/${serverPid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  return kb / 1024;
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: logarithmic buckets 1% wide, in microseconds.

const LOG_STEP = Math.log(1.01);
const buckets = new Float64Array(2400); // 1.01^2400 µs is far beyond any run
let latencyMax = 0;

function recordLatency(micros) {
  const v = Math.max(1, micros);
  const index = Math.min(buckets.length - 1, Math.floor(Math.log(v) / LOG_STEP));
  buckets[index] += 1;
  if (v > latencyMax) latencyMax = v;
}

function quantile(q) {
  let total = 0;
  for (const count of buckets) total += count;
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i];
    if (seen >= q * total) return Math.round(Math.min(latencyMax, 1.01 ** (i + 1)));
  }
  return Math.round(latencyMax);
}

// ---------------------------------------------------------------------------------------------
// Wire formats.

const PH_AUTH = "AuthenticateRequest";
const PH_ECHO = "BenchRequest";
const PH_BROADCAST = "BenchBroadcast";

/** A PlayHouse client frame (SPEC §4): [len i32][id_len u8][id][seq u16][stage i64][payload]. */
function playhouseFrame(msgId, seq, stageId, payload) {
  const id = Buffer.from(msgId, "utf8");
  const body = 1 + id.length + 2 + 8 + payload.length;
  const frame = Buffer.allocUnsafe(4 + body);
  frame.writeInt32LE(body, 0);
  frame.writeUInt8(id.length, 4);
  id.copy(frame, 5);
  let at = 5 + id.length;
  frame.writeUInt16LE(seq, at);
  frame.writeBigInt64LE(BigInt(stageId), at + 2);
  payload.copy(frame, at + 10);
  return frame;
}

/** Calls `onFrame(msgId, errorCode, payload)` for each server frame in one binary message. */
function parsePlayhouseFrames(data, onFrame) {
  let at = 0;
  while (at + 4 <= data.length) {
    const body = data.readInt32LE(at);
    const start = at + 4;
    const idLen = data[start];
    const msgId = data.toString("latin1", start + 1, start + 1 + idLen);
    const fixed = start + 1 + idLen; // seq u16, stage i64, error u16, original_size i32
    const errorCode = data.readUInt16LE(fixed + 10);
    onFrame(msgId, errorCode, data.subarray(fixed + 16, start + body));
    at = start + body;
  }
}

const CY_JOIN_ROOM = 10;
const CY_ERROR = 11;
const CY_ROOM_DATA_BYTES = 17;

/** A Colyseus ROOM_DATA_BYTES message: [17][type as a msgpack fixstr][raw bytes]. */
function colyseusBytes(type, payload) {
  const message = Buffer.allocUnsafe(3 + payload.length);
  message[0] = CY_ROOM_DATA_BYTES;
  message[1] = 0xa0 | 1; // fixstr of length 1
  message[2] = type.charCodeAt(0);
  payload.copy(message, 3);
  return message;
}

// ---------------------------------------------------------------------------------------------
// Clients.

const stats = {
  measuring: false,
  stopping: false,
  sent: 0, // messages sent by clients during the window
  delivered: 0, // echoes or broadcast copies received during the window
  errors: 0,
  joinFailures: 0,
  joined: 0,
};

const payloadTemplate = Buffer.alloc(size, 0x5a);

/** The payload of a message sent now: the send time, then filler. */
function timedPayload() {
  const payload = Buffer.from(payloadTemplate);
  payload.writeDoubleLE(performance.now(), 0);
  return payload;
}

function onDelivery(payload) {
  if (stats.measuring) {
    stats.delivered += 1;
    recordLatency((performance.now() - payload.readDoubleLE(0)) * 1000);
  }
}

/** One client. `join()` resolves once it may send; `send()` sends one timed message. */
class Client {
  constructor(index) {
    this.index = index;
    this.sender = benchCase === "echo" || (benchCase === "broadcast" && index === 0);
    this.outstanding = 0;
    this.seq = 1;
    this.stageId = Math.floor(index / perRoom) + 1;
  }

  async join() {
    if (protocol === "playhouse") return this.joinPlayhouse();
    return this.joinColyseus();
  }

  open(url) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws.on("error", () => {
      if (!stats.stopping) stats.errors += 1;
    });
    this.ws.on("close", () => {
      if (!stats.stopping && this.joinedOk) stats.errors += 1;
    });
  }

  joinPlayhouse() {
    return new Promise((resolve, reject) => {
      this.open(`ws://${target}/ws`);
      this.ws.once("open", () => {
        const account = Buffer.from(`bench-${this.index}`, "utf8");
        this.ws.send(playhouseFrame(PH_AUTH, 1, this.stageId, account));
      });
      this.ws.once("close", () => reject(new Error("closed while joining")));
      this.ws.once("message", (data) => {
        let ok = false;
        parsePlayhouseFrames(data, (_id, errorCode) => (ok = errorCode === 0));
        if (!ok) return reject(new Error("authentication failed"));
        this.joinedOk = true;
        this.ws.on("message", (message) =>
          parsePlayhouseFrames(message, (msgId, errorCode, payload) => {
            if (errorCode !== 0) stats.errors += 1;
            else if (msgId !== "@Heart@Beat@") this.onMessage(payload);
          }),
        );
        resolve();
      });
    });
  }

  async joinColyseus() {
    const room = benchCase === "broadcast" ? "broadcast" : "echo";
    const response = await fetch(`http://${target}/matchmake/joinOrCreate/${room}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    if (!response.ok) throw new Error(`matchmake: HTTP ${response.status}`);
    const seat = await response.json();
    await new Promise((resolve, reject) => {
      this.open(`ws://${target}/${seat.processId}/${seat.roomId}?sessionId=${seat.sessionId}`);
      this.ws.once("close", () => reject(new Error("closed while joining")));
      this.ws.once("message", (data) => {
        if (data[0] !== CY_JOIN_ROOM) return reject(new Error(`join: code ${data[0]}`));
        this.ws.send(Buffer.from([CY_JOIN_ROOM])); // confirms the join (the SDK does the same)
        this.joinedOk = true;
        this.ws.on("message", (message) => {
          if (message[0] === CY_ROOM_DATA_BYTES) {
            // [17][fixstr len 1][type][payload]
            this.onMessage(message.subarray(3));
          } else if (message[0] === CY_ERROR) {
            stats.errors += 1;
          }
        });
        resolve();
      });
    });
  }

  /** Fills the window. */
  start() {
    if (!this.sender) return;
    while (this.outstanding < inflight) this.send();
  }

  send() {
    const payload = timedPayload();
    let message;
    if (protocol === "playhouse") {
      if (benchCase === "echo") {
        this.seq = this.seq === 65535 ? 1 : this.seq + 1;
        message = playhouseFrame(PH_ECHO, this.seq, this.stageId, payload);
      } else {
        message = playhouseFrame(PH_BROADCAST, 0, this.stageId, payload);
      }
    } else {
      message = colyseusBytes(benchCase === "echo" ? "e" : "b", payload);
    }
    this.outstanding += 1;
    if (stats.measuring) stats.sent += 1;
    this.ws.send(message);
  }

  onMessage(payload) {
    onDelivery(payload);
    if (!this.sender) return;
    // Echo: the reply to one of ours. Broadcast: our own copy (every copy comes back to us).
    this.outstanding -= 1;
    if (!stats.stopping) this.send();
  }
}

const sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

async function joinAll(all) {
  let next = 0;
  async function worker() {
    while (next < all.length) {
      const client = all[next++];
      try {
        await client.join();
        stats.joined += 1;
      } catch {
        stats.joinFailures += 1;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(joinConcurrency, all.length) }, worker));
}

const rssBeforeMiB = serverRssMiB();
const all = Array.from({ length: clients }, (_, index) => new Client(index));
const joinStarted = performance.now();
await joinAll(all);
const joinSeconds = (performance.now() - joinStarted) / 1000;
for (const client of all) if (client.joinedOk) client.start();
await sleep(warmup);

stats.measuring = true;
const cpuBefore = serverCpuSeconds();
const ownCpuBefore = process.cpuUsage();
const started = performance.now();
let peakRss = serverRssMiB();
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, serverRssMiB())), 250);
await sleep(duration);
stats.measuring = false;
const seconds = (performance.now() - started) / 1000;
const cpuSeconds = serverCpuSeconds() - cpuBefore;
const ownCpu = process.cpuUsage(ownCpuBefore);
const rssEnd = serverRssMiB();
clearInterval(rssTimer);
stats.stopping = true;

const perMessage = (count) => (count > 0 ? (cpuSeconds * 1e6) / count : null);
const round = (value, digits) => (value === null ? null : Number(value.toFixed(digits)));
const report = {
  protocol,
  case: benchCase,
  clients,
  joined: stats.joined,
  join_failures: stats.joinFailures,
  join_seconds: round(joinSeconds, 2),
  inflight: benchCase === "idle" ? 0 : inflight,
  per_room: perRoom,
  size,
  seconds: round(seconds, 3),
  sent: stats.sent,
  delivered: stats.delivered,
  sent_per_sec: round(stats.sent / seconds, 0),
  delivered_per_sec: round(stats.delivered / seconds, 0),
  p50_us: quantile(0.5),
  p99_us: quantile(0.99),
  max_us: stats.delivered > 0 ? Math.round(latencyMax) : null,
  server_cpu_seconds: round(cpuSeconds, 2),
  server_cores: round(cpuSeconds / seconds, 3),
  server_cpu_us_per_delivery: round(perMessage(stats.delivered), 3),
  server_rss_before_mib: round(rssBeforeMiB, 1),
  server_rss_mib: round(rssEnd, 1),
  server_rss_peak_mib: round(peakRss, 1),
  loadgen_cores: round((ownCpu.user + ownCpu.system) / 1e6 / seconds, 3),
  errors: stats.errors,
};
console.log(JSON.stringify(report));
for (const client of all) client.ws?.terminate();
process.exit(0);
