/**
 * Records LZ4 blocks that our server really compressed, into test/fixtures/lz4_server.ts:
 * `node dist/test/tools/capture_lz4.js` with PLAYHOUSE_VERIFICATION set. It says hello with
 * LZ4 over a raw WebSocket, echoes a few payloads, and keeps each compressed reply's wire
 * payload with the content it echoes (the reply also carries the server's clock, so only the
 * content and the size are known in advance).
 */
import { writeFileSync } from "node:fs";
import { WebSocket } from "ws";
import { create, toBinary } from "@bufbuild/protobuf";
import { encodeFrame } from "../../src/index.js";
import { AuthenticateRequestSchema, EchoRequestSchema } from "../gen/test_messages_pb.js";
import { serve } from "../servers.js";

function rawFrames(data: Buffer): { msgId: string; original: number; payload: Buffer }[] {
  const out = [];
  let at = 0;
  while (at < data.length) {
    const len = data.readInt32LE(at);
    const body = data.subarray(at + 4, at + 4 + len);
    const n = body[0];
    const msgId = body.subarray(1, 1 + n).toString();
    const original = body.readInt32LE(1 + n + 12);
    out.push({ msgId, original, payload: Buffer.from(body.subarray(1 + n + 16)) });
    at += 4 + len;
  }
  return out;
}

async function echoes(url: string, lz4: boolean, contents: string[]) {
  const ws = new WebSocket(url);
  await new Promise((resolve) => ws.once("open", resolve));
  const replies: { msgId: string; original: number; payload: Buffer }[] = [];
  ws.on("message", (data: Buffer) => replies.push(...rawFrames(data).filter((f) => f.msgId === "EchoReply")));
  if (lz4) ws.send(encodeFrame("@Hello@", 0, 0n, new Uint8Array([1, 0, 0, 0])));
  ws.send(encodeFrame("AuthenticateRequest", 1, 0n, toBinary(AuthenticateRequestSchema, create(AuthenticateRequestSchema, { userId: `lz4-capture-${lz4}`, token: "t" }))));
  contents.forEach((content, i) =>
    ws.send(encodeFrame("EchoRequest", 2 + i, 0n, toBinary(EchoRequestSchema, create(EchoRequestSchema, { content, sequence: i })))),
  );
  while (replies.length < contents.length) await new Promise((resolve) => setTimeout(resolve, 20));
  ws.close();
  return replies;
}

let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
const letters = (n: number) => Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(rand() * 26))).join("");
const contents = [
  // long matches and long literal runs (lengths past 15 and 255 take extra bytes)
  Array.from({ length: 40 }, (_, i) => `row ${i % 7}: ${"=".repeat(300)} ${letters(40)}`).join("\n"),
  // one byte repeated: matches overlapping their own output (offset 1)
  "z".repeat(5000) + letters(600) + "ab".repeat(2000),
  // mostly random with a few repeats: short matches between literal runs
  Array.from({ length: 60 }, () => letters(30) + letters(5).repeat(3)).join(""),
];

const served = await serve();
try {
  const compressed = await echoes(served.ws, true, contents);
  const fixtures = compressed.map((frame, i) => {
    if (frame.original <= 0) throw new Error(`payload ${i} came uncompressed`);
    return { originalSize: frame.original, compressed: frame.payload.toString("base64"), content: contents[i], sequence: i };
  });
  const header =
    "// Echo replies our server compressed (LZ4 blocks), recorded by test/tools/capture_lz4.ts.\n" +
    "// Each block decodes to originalSize bytes: an EchoReply whose content and sequence are these.\n";
  writeFileSync(
    "test/fixtures/lz4_server.ts",
    `${header}export const serverBlocks: { originalSize: number; compressed: string; content: string; sequence: number }[] = ${JSON.stringify(fixtures, null, 1)};\n`,
  );
  console.log(fixtures.map((f) => `${f.originalSize} bytes -> ${Buffer.from(f.compressed, "base64").length}`).join("\n"));
} finally {
  await served.stop();
}
