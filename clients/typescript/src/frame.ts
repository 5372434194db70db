/**
 * Frames (docs/wire-protocol.md, "Frames"): little-endian, a 4-byte length prefix, then
 * `[msg_id_len u8][msg_id][msg_seq u16][stage_id i64]` plus, from the server,
 * `[error_code u16][original_size i32]`, then the payload.
 */
import { ProtocolError } from "./errors.js";
import { lz4DecodeBlock } from "./lz4.js";

/** The framework's reserved message ids (control frames, never counted in a session). */
export const HEARTBEAT = "@Heart@Beat@";
export const HELLO = "@Hello@";
export const SESSION = "@Session@";
export const RESUME = "@Resume@";
export const ACK = "@Ack@";
export const END = "@End@";
export const CLOSE = "@Close@";
export const MOVE = "@Move@";

const CONTROL = new Set([HEARTBEAT, HELLO, SESSION, RESUME, ACK, END, CLOSE, MOVE]);

/** Whether `msgId` is a control frame's. */
export function isControl(msgId: string): boolean {
  return CONTROL.has(msgId);
}

/** A frame from the server, its payload already decompressed. */
export interface ServerFrame {
  msgId: string;
  seq: number;
  stageId: bigint;
  errorCode: number;
  payload: Uint8Array;
  /** The payload came LZ4-compressed (`original_size` > 0); this is its size on the wire. */
  compressedSize?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a client frame, length prefix included. */
export function encodeFrame(msgId: string, seq: number, stageId: bigint, payload: Uint8Array): Uint8Array {
  const id = encoder.encode(msgId);
  if (id.length < 1 || id.length > 255) throw new RangeError(`msg id must be 1..=255 bytes: ${msgId}`);
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffff) throw new RangeError(`bad msg seq ${seq}`);
  const body = 1 + id.length + 2 + 8 + payload.length;
  const out = new Uint8Array(4 + body);
  const view = new DataView(out.buffer);
  view.setInt32(0, body, true);
  out[4] = id.length;
  out.set(id, 5);
  const o = 5 + id.length;
  view.setUint16(o, seq, true);
  view.setBigInt64(o + 2, stageId, true);
  out.set(payload, o + 10);
  return out;
}

/** Reads server frames out of a byte stream (one WebSocket message usually holds one frame). */
export class FrameDecoder {
  private buffer = new Uint8Array(0);

  constructor(private readonly maxPacketSize: number) {}

  /** Adds bytes; returns every frame they complete. Throws {@link ProtocolError}. */
  push(chunk: Uint8Array): ServerFrame[] {
    let buf: Uint8Array;
    if (this.buffer.length === 0) {
      buf = chunk;
    } else {
      buf = new Uint8Array(this.buffer.length + chunk.length);
      buf.set(this.buffer);
      buf.set(chunk, this.buffer.length);
    }
    const frames: ServerFrame[] = [];
    let at = 0;
    while (buf.length - at >= 4) {
      const view = new DataView(buf.buffer, buf.byteOffset + at);
      const len = view.getInt32(0, true);
      if (len < 17 || len > this.maxPacketSize) throw new ProtocolError(`bad frame length ${len}`);
      if (buf.length - at - 4 < len) break;
      frames.push(this.decodeBody(buf.subarray(at + 4, at + 4 + len)));
      at += 4 + len;
    }
    this.buffer = at === buf.length ? new Uint8Array(0) : buf.slice(at);
    return frames;
  }

  private decodeBody(body: Uint8Array): ServerFrame {
    const idLen = body[0];
    if (idLen === 0 || 1 + idLen + 16 > body.length) throw new ProtocolError(`bad msg id length ${idLen}`);
    let msgId: string;
    try {
      msgId = decoder.decode(body.subarray(1, 1 + idLen));
    } catch {
      throw new ProtocolError("msg id is not UTF-8");
    }
    const view = new DataView(body.buffer, body.byteOffset + 1 + idLen);
    const seq = view.getUint16(0, true);
    const stageId = view.getBigInt64(2, true);
    const errorCode = view.getUint16(10, true);
    const originalSize = view.getInt32(12, true);
    const raw = body.slice(1 + idLen + 16);
    if (originalSize < 0 || originalSize > this.maxPacketSize) {
      throw new ProtocolError(`bad original size ${originalSize}`);
    }
    if (originalSize === 0) return { msgId, seq, stageId, errorCode, payload: raw };
    const payload = lz4DecodeBlock(raw, originalSize);
    return { msgId, seq, stageId, errorCode, payload, compressedSize: raw.length };
  }
}
