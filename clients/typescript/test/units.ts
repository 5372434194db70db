/**
 * Checks without a server, shared by Node and the browser page: the LZ4 decoder against blocks
 * our server compressed and against malformed ones, frames byte for byte as
 * docs/wire-protocol.md writes them, the hello payload, the session streams and the back-off.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { Backoff, encodeFrame, FrameDecoder, lz4DecodeBlock, ProtocolError, urlFor } from "../src/index.js";
import { moveEndpoint } from "../src/endpoint.js";
import { helloPayload, SessionStreams } from "../src/session.js";
import { equal, ok } from "./check.js";
import type { Scenario } from "./env.js";
import { serverBlocks } from "./fixtures/lz4_server.js";
import { EchoReplySchema } from "./gen/test_messages_pb.js";

const base64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const bytes = (...parts: (number[] | string)[]): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...new TextEncoder().encode(p)] : p)));

function throwsProtocol(run: () => unknown, what: string): void {
  try {
    run();
  } catch (error) {
    ok(error instanceof ProtocolError, `${what}: a ProtocolError (got ${String(error)})`);
    return;
  }
  throw new Error(`${what}: no error`);
}

/** A server frame's bytes (what the server writes), for the decoder. */
function serverFrame(msgId: string, seq: number, stage: number, error: number, original: number, payload: Uint8Array): Uint8Array {
  const id = new TextEncoder().encode(msgId);
  const body = 1 + id.length + 16 + payload.length;
  const out = new Uint8Array(4 + body);
  const view = new DataView(out.buffer);
  view.setInt32(0, body, true);
  out[4] = id.length;
  out.set(id, 5);
  const o = 5 + id.length;
  view.setUint16(o, seq, true);
  view.setBigInt64(o + 2, BigInt(stage), true);
  view.setUint16(o + 10, error, true);
  view.setInt32(o + 12, original, true);
  out.set(payload, o + 16);
  return out;
}

export const units: Scenario[] = [
  {
    name: "unit: LZ4 blocks our server compressed decode to exactly what it echoed",
    async run() {
      ok(serverBlocks.length === 3, "three recorded blocks");
      for (const block of serverBlocks) {
        const compressed = base64(block.compressed);
        const plain = lz4DecodeBlock(compressed, block.originalSize);
        equal(plain.length, block.originalSize, "decoded size");
        const reply = fromBinary(EchoReplySchema, plain);
        equal([reply.content === block.content, reply.sequence], [true, block.sequence], `block of ${block.originalSize} bytes`);
        // Through the frame decoder too, as a compressed frame.
        const frames = new FrameDecoder(2 * 1024 * 1024).push(serverFrame("EchoReply", 3, 9, 0, block.originalSize, compressed));
        equal(frames[0].compressedSize, compressed.length, "compressed size reported");
        ok(fromBinary(EchoReplySchema, frames[0].payload).content === block.content, "decoded through a frame");
      }
    },
  },
  {
    name: "unit: malformed LZ4 blocks are protocol errors, never out-of-range reads or writes",
    async run() {
      const good = base64(serverBlocks[1].compressed);
      const size = serverBlocks[1].originalSize;
      throwsProtocol(() => lz4DecodeBlock(good, size + 1), "a block shorter than original_size");
      throwsProtocol(() => lz4DecodeBlock(good, size - 1), "a block longer than original_size");
      throwsProtocol(() => lz4DecodeBlock(good.subarray(0, good.length - 3), size), "a truncated block");
      throwsProtocol(() => lz4DecodeBlock(bytes([0x10, 65, 0, 0]), 10), "match offset 0");
      throwsProtocol(() => lz4DecodeBlock(bytes([0x10, 65, 5, 0]), 10), "a match offset before the output");
      throwsProtocol(() => lz4DecodeBlock(bytes([0x50, 65, 66]), 5), "literals past the block");
      throwsProtocol(() => lz4DecodeBlock(bytes([0xf0]), 100), "a literal length past the block");
      throwsProtocol(() => lz4DecodeBlock(bytes([0x1f, 65, 1, 0, 255, 255]), 600), "a match length past the block");
      equal([...lz4DecodeBlock(bytes([0x14, 65, 1, 0, 0x30, 66, 67, 68]), 12)], [...new TextEncoder().encode("AAAAAAAAABCD")], "an overlapping match");
      const frame = serverFrame("EchoReply", 0, 0, 0, 10, bytes([0x10, 65, 0, 0]));
      throwsProtocol(() => new FrameDecoder(1024).push(frame), "a corrupt compressed frame");
      throwsProtocol(() => new FrameDecoder(1024).push(serverFrame("EchoReply", 0, 0, 0, -1, bytes("x"))), "a negative original_size");
      throwsProtocol(() => new FrameDecoder(1024).push(serverFrame("EchoReply", 0, 0, 0, 4096, bytes("x"))), "original_size above the limit");
    },
  },
  {
    name: "unit: frames byte for byte as the wire protocol document shows them",
    async run() {
      equal([...encodeFrame("Ping", 1, 7n, bytes("hi"))], [...bytes([17, 0, 0, 0, 4], "Ping", [1, 0], [7, 0, 0, 0, 0, 0, 0, 0], "hi")], "the Ping request");
      equal([...encodeFrame("@Heart@Beat@", 0, 0n, new Uint8Array())], [...bytes([23, 0, 0, 0, 12], "@Heart@Beat@", new Array(10).fill(0))], "the heartbeat");
      const pong = bytes([23, 0, 0, 0, 4], "Pong", [1, 0], [7, 0, 0, 0, 0, 0, 0, 0], [0, 0], [0, 0, 0, 0], "hi");
      // Two frames split at every byte boundary, then in one chunk.
      const two = Uint8Array.from([...pong, ...pong]);
      for (let cut = 0; cut <= two.length; cut++) {
        const decoder = new FrameDecoder(1024);
        const frames = [...decoder.push(two.subarray(0, cut)), ...decoder.push(two.subarray(cut))];
        equal(frames.length, 2, `two frames split at ${cut}`);
        equal([frames[1].msgId, frames[1].seq, frames[1].stageId, new TextDecoder().decode(frames[1].payload)], ["Pong", 1, 7n, "hi"], "the Pong reply");
      }
      throwsProtocol(() => new FrameDecoder(1024).push(bytes([0, 0, 0, 0])), "a zero length");
      throwsProtocol(() => new FrameDecoder(16).push(pong), "a frame above the limit");
      throwsProtocol(() => new FrameDecoder(1024).push(bytes([17, 0, 0, 0, 0], new Array(17).fill(0))), "an empty msg id");
    },
  },
  {
    name: "unit: hello payload, session streams, move endpoints and back-off",
    async run() {
      equal([...helloPayload(1, "Arena")], [5, 0, 0, 0, 5, ...bytes("Arena")], "LZ4 + STAGE_TYPE Arena, as documented");
      equal([...helloPayload(3)], [3, 0, 0, 0], "LZ4 + RESUME");
      const streams = new SessionStreams({ token: new Uint8Array(16), windowMs: 1000, ackEvery: 3, maxUnacked: 10 });
      for (let i = 1; i <= 5; i++) streams.recordSent(bytes([i]));
      ok(streams.acknowledge(2), "ack 2");
      equal(streams.unacked.map((f) => f[0]), [3, 4, 5], "unacknowledged after ack 2");
      ok(!streams.acknowledge(1), "an ack going back is impossible");
      ok(!streams.acknowledge(6), "an ack beyond what was sent is impossible");
      equal([streams.receivedOne(), streams.receivedOne(), streams.receivedOne(), streams.pendingAck()], [undefined, undefined, 3, undefined], "ack every 3");
      streams.receivedOne();
      equal(streams.pendingAck(), 4, "a pending ack");
      equal(moveEndpoint(bytes("10.0.0.7:7777")), "10.0.0.7:7777", "host:port");
      equal(moveEndpoint(bytes("[::1]:9000")), "[::1]:9000", "[v6]:port");
      equal([moveEndpoint(bytes("nohost")), moveEndpoint(bytes(":80")), moveEndpoint(bytes("h:99999"))], [undefined, undefined, undefined], "not host:port");
      equal(urlFor("wss://a.example:443/ws?x=1", "10.0.0.7:7777"), "wss://10.0.0.7:7777/ws?x=1", "a moved URL keeps scheme and path");
      let r = 0;
      const randoms = [0, 0.999, 0.5, 0.25, 0, 0.999];
      const backoff = new Backoff(100, 800, () => randoms[r++]);
      const delays = randoms.map(() => backoff.nextDelay());
      const bases = [100, 200, 400, 800, 800, 800];
      ok(delays.every((d, i) => d >= bases[i] && d <= bases[i] * 1.5), `delays double to the cap with at most +50 % jitter: ${delays}`);
      ok(delays[0] !== delays[1] / 2, "jitter moves the delays");
    },
  },
];
