/**
 * The capability hello and resumable sessions (docs/wire-protocol.md, "The capability
 * handshake" and "Resumable sessions"): payloads, the numbered streams, and the back-off
 * between resume attempts.
 */
import { ProtocolError } from "./errors.js";

/** Capability bits of the hello. */
export const Capability = { LZ4: 1, RESUME: 2, STAGE_TYPE: 4 } as const;

const encoder = new TextEncoder();

/** The hello payload: `[requested u32]`, then the stage type `[len u8][name]` when asked for. */
export function helloPayload(bits: number, stageType?: string): Uint8Array {
  const name = stageType ? encoder.encode(stageType) : undefined;
  if (name && (name.length < 1 || name.length > 255)) throw new RangeError("stage type must be 1..=255 bytes");
  const requested = name ? bits | Capability.STAGE_TYPE : bits & ~Capability.STAGE_TYPE;
  const out = new Uint8Array(4 + (name ? 1 + name.length : 0));
  new DataView(out.buffer).setUint32(0, requested >>> 0, true);
  if (name) {
    out[4] = name.length;
    out.set(name, 5);
  }
  return out;
}

/** A `u32` or `u64` little-endian count, or `undefined` when the payload is too short. */
export function readU32(payload: Uint8Array): number | undefined {
  return payload.length < 4 ? undefined : new DataView(payload.buffer, payload.byteOffset).getUint32(0, true);
}

/** The `u64` count of an `@Ack@` or `@Resume@` answer. */
export function readCount(payload: Uint8Array): number | undefined {
  if (payload.length < 8) return undefined;
  const value = new DataView(payload.buffer, payload.byteOffset).getBigUint64(0, true);
  return value > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(value);
}

/** The `u64` payload of an `@Ack@`. */
export function countPayload(count: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(count), true);
  return out;
}

/** What `@Session@` grants. */
export interface SessionGrant {
  token: Uint8Array;
  windowMs: number;
  ackEvery: number;
  maxUnacked: number;
}

/** Reads a `@Session@` payload (28 bytes; longer is reserved). */
export function readGrant(payload: Uint8Array): SessionGrant {
  if (payload.length < 28) throw new ProtocolError(`@Session@ payload of ${payload.length} bytes`);
  const view = new DataView(payload.buffer, payload.byteOffset);
  return {
    token: payload.slice(0, 16),
    windowMs: view.getUint32(16, true),
    ackEvery: Math.max(1, view.getUint32(20, true)),
    maxUnacked: view.getUint32(24, true),
  };
}

/** The `@Resume@` request payload: `[token 16][received from the server u64]`. */
export function resumePayload(token: Uint8Array, received: number): Uint8Array {
  const out = new Uint8Array(24);
  out.set(token);
  new DataView(out.buffer).setBigUint64(16, BigInt(received), true);
  return out;
}

/**
 * Both directions of a session as numbered streams: the data frames sent and not yet
 * acknowledged (kept encoded, to be sent again after a resume), and the count received.
 */
export class SessionStreams {
  /** Data frames sent so far. */
  sent = 0;
  /** Sent frames not acknowledged yet, oldest first. */
  readonly unacked: Uint8Array[] = [];
  /** Data frames received so far. */
  received = 0;
  /** The count last acknowledged to the server. */
  acked = 0;

  constructor(readonly grant: SessionGrant) {}

  /** Numbers a data frame sent and keeps it until acknowledged. */
  recordSent(frame: Uint8Array): void {
    this.sent += 1;
    this.unacked.push(frame);
  }

  /** The server received `count` frames: those leave the buffer. False when impossible. */
  acknowledge(count: number): boolean {
    const firstKept = this.sent - this.unacked.length;
    if (count > this.sent || count < firstKept) return false;
    this.unacked.splice(0, count - firstKept);
    return true;
  }

  /** Counts a data frame received; returns the count to acknowledge when one is due. */
  receivedOne(): number | undefined {
    this.received += 1;
    return this.received - this.acked >= this.grant.ackEvery ? this.ackNow() : undefined;
  }

  /** The count to acknowledge now, if it moved since the last acknowledgement. */
  pendingAck(): number | undefined {
    return this.received > this.acked ? this.ackNow() : undefined;
  }

  private ackNow(): number {
    this.acked = this.received;
    return this.received;
  }
}

/** Reconnection timing: exponential back-off with jitter. */
export interface ReconnectOptions {
  /** First delay after a failed attempt (default 100 ms). */
  initialDelayMs?: number;
  /** Longest delay (default 5 s). */
  maxDelayMs?: number;
  /** Bounds one attempt, dial plus handshake (default 5 s). */
  attemptTimeoutMs?: number;
}

/** Delays that double up to a cap, each with up to +50 % random jitter. */
export class Backoff {
  private next: number;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    this.next = initialMs;
  }

  /** The delay before the next attempt, in ms. */
  nextDelay(): number {
    const base = Math.min(this.next, this.maxMs);
    this.next = Math.min(Math.max(base * 2, this.initialMs), this.maxMs);
    return base + this.random() * (base / 2);
  }
}
