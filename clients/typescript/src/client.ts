/**
 * The PlayHouse client: one logical connection to a Play server over WebSocket (`ws://` or
 * `wss://`), with requests, pushes, heartbeats and, when the server grants it, a resumable
 * session that survives dropped connections and follows its stage to another server.
 */
import { ErrorCode, PlayHouseError } from "./errors.js";
import { Emitter } from "./events.js";
import { ACK, CLOSE, END, encodeFrame, HEARTBEAT, HELLO, isControl, MOVE, SESSION, type ServerFrame } from "./frame.js";
import { Link, type LinkEnd, type WebSocketFactory, type WebSocketLike } from "./link.js";
import { resumeSession } from "./resume.js";
import { moveEndpoint } from "./endpoint.js";
import { Capability, countPayload, helloPayload, readGrant, readU32, type ReconnectOptions, SessionStreams } from "./session.js";

/** A message from the server: a reply or a push. */
export interface Packet {
  msgId: string;
  payload: Uint8Array;
  /** The stage it comes from. */
  stageId: bigint;
  /** 0 for success (a failed request rejects with {@link PlayHouseError} instead). */
  errorCode: number;
}

/** How to reach the server and how the connection behaves. */
export interface ClientOptions {
  /** `ws://host:port/ws` or `wss://host:port/ws`. */
  url: string;
  /** The stage to join at authentication (0: the server creates one). Default 0. */
  stageId?: bigint | number;
  /** Join or create only a stage of this type (the hello's `STAGE_TYPE`). */
  stageType?: string;
  /** Ask for LZ4-compressed large payloads (default true). */
  lz4?: boolean;
  /** Ask for a resumable session (default true). */
  resume?: boolean;
  /** Default request timeout (default 30 s). */
  requestTimeoutMs?: number;
  /** Heartbeat period (default 10 s). */
  heartbeatIntervalMs?: number;
  /** A connection silent this long is dropped (and resumed when it can be). Default 30 s. */
  idleTimeoutMs?: number;
  /** Largest frame body accepted (default 2 MiB, the server's default). */
  maxPacketSize?: number;
  /** Reconnection timing of resumable sessions. */
  reconnect?: ReconnectOptions;
  /** The WebSocket constructor (default: the global `WebSocket`). */
  WebSocket?: new (url: string) => WebSocketLike;
  /** Makes each WebSocket (overrides `WebSocket`), e.g. to pass TLS options in Node. */
  createWebSocket?: WebSocketFactory;
  /** Random numbers in [0, 1) for the reconnection jitter (default `Math.random`). */
  random?: () => number;
}

/** The events of a client. */
export interface ClientEvents {
  /** A push (a server message with `msg_seq` 0), in order, exactly once. */
  push: Packet;
  /** The connection dropped; the session is being resumed. */
  reconnecting: { endpoint: string };
  /** The session resumed on a new connection; `resent` frames went again to the server. */
  resumed: { endpoint: string; resent: number };
  /** The stage moved to another server and the session resumed there. */
  moved: { endpoint: string; url: string };
  /** The session could not be resumed (window passed, the server forgot it): what the server
   * sent meanwhile is lost; authenticate again on a new client. */
  lost: { reason: string; code?: number };
  /** The client is closed for good: `code` 0 when the application closed it, the `@Close@`
   * notice's code (e.g. 25 StageDrained), or 60201 Disconnected. */
  closed: { code: number; reason: string };
  /** Every frame received, before anything else (diagnostics). */
  frame: ServerFrame;
}

type State = "open" | "reconnecting" | "closed";

interface Pending {
  resolve: (packet: Packet) => void;
  reject: (error: PlayHouseError) => void;
  timer?: ReturnType<typeof setTimeout>;
  authenticate: boolean;
  msgId: string;
}

const DEFAULTS = {
  requestTimeoutMs: 30_000,
  heartbeatIntervalMs: 10_000,
  idleTimeoutMs: 30_000,
  maxPacketSize: 2 * 1024 * 1024,
  initialDelayMs: 100,
  maxDelayMs: 5_000,
  attemptTimeoutMs: 5_000,
};

/** A connection to a Play server. Create one with {@link PlayHouseClient.connect}. */
export class PlayHouseClient extends Emitter<ClientEvents> {
  /** The capability bits the server granted. */
  granted = 0;
  /** The stage this connection is bound to (the server's choice after a stage-0 login). */
  stageId: bigint;
  /** Whether an authentication succeeded. */
  authenticated = false;
  /** Where the session lives now (changes when the stage moves). */
  url: string;

  /** @internal */ readonly options: ClientOptions;
  /** @internal */ readonly factory: WebSocketFactory;
  /** @internal */ session?: SessionStreams;
  /** @internal */ link?: Link;
  /** @internal */ state: State = "open";
  /** @internal */ userClosed = false;

  private readonly pending = new Map<number, Pending>();
  private readonly handlers = new Map<string, Set<(packet: Packet) => void>>();
  private nextSeq = 0;
  private forming?: Uint8Array[];
  private authSent = false;
  private closing?: number;
  private moving?: string;
  private ticker?: ReturnType<typeof setInterval>;
  private lastHeard = 0;
  private lastBeat = 0;

  private constructor(options: ClientOptions, factory: WebSocketFactory) {
    super();
    this.options = options;
    this.factory = factory;
    this.url = options.url;
    this.stageId = BigInt(options.stageId ?? 0);
  }

  /** Opens a connection and says hello (asking for LZ4, resume and the stage type). */
  static async connect(options: ClientOptions): Promise<PlayHouseClient> {
    const factory = options.createWebSocket ?? webSocketFactory(options.WebSocket);
    const client = new PlayHouseClient(options, factory);
    const link = await Link.open(factory, options.url, client.maxPacketSize, client.attemptTimeoutMs);
    client.adopt(link);
    const bits = (options.lz4 === false ? 0 : Capability.LZ4) | (options.resume === false ? 0 : Capability.RESUME);
    if (bits !== 0 || options.stageType) {
      try {
        const reply = await client.request(HELLO, helloPayload(bits, options.stageType), { anyTime: true });
        client.granted = readU32(reply.payload) ?? 0;
      } catch (error) {
        client.close();
        throw error;
      }
    }
    return client;
  }

  /** @internal */ get maxPacketSize(): number {
    return this.options.maxPacketSize ?? DEFAULTS.maxPacketSize;
  }

  /** @internal */ get attemptTimeoutMs(): number {
    return this.options.reconnect?.attemptTimeoutMs ?? DEFAULTS.attemptTimeoutMs;
  }

  /** Whether the server granted a capability bit (see {@link Capability}). */
  has(bit: number): boolean {
    return (this.granted & bit) !== 0;
  }

  /** Whether the client is closed for good. */
  get closed(): boolean {
    return this.state === "closed";
  }

  /**
   * Authenticates (joining or creating `stageId` when given, else the client's stage). Resolves
   * with the reply; rejects with {@link PlayHouseError} carrying the server's code.
   */
  async authenticate(
    payload: Uint8Array,
    options: { msgId?: string; stageId?: bigint | number; timeoutMs?: number } = {},
  ): Promise<Packet> {
    if (options.stageId !== undefined) this.stageId = BigInt(options.stageId);
    return this.request(options.msgId ?? "AuthenticateRequest", payload, {
      timeoutMs: options.timeoutMs,
      authenticate: true,
    });
  }

  /**
   * Sends a request and resolves with its reply; rejects with {@link PlayHouseError}: the
   * server's error code, 60202 after the timeout, 60201 when the client closes first, 60203
   * before an authenticate request was sent (requests may follow it without waiting for its
   * reply).
   */
  request(
    msgId: string,
    payload: Uint8Array = new Uint8Array(),
    options: { timeoutMs?: number; authenticate?: boolean; anyTime?: boolean } = {},
  ): Promise<Packet> {
    return new Promise((resolve, reject) => {
      if (this.state === "closed") {
        reject(new PlayHouseError(ErrorCode.Disconnected, "the client is closed", msgId));
        return;
      }
      if (!this.authSent && !options.authenticate && !options.anyTime) {
        reject(new PlayHouseError(ErrorCode.Unauthenticated, "authenticate first", msgId));
        return;
      }
      const seq = this.allocateSeq();
      const entry: Pending = { resolve, reject, authenticate: !!options.authenticate, msgId };
      const timeoutMs = options.timeoutMs ?? this.options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
      if (timeoutMs > 0 && Number.isFinite(timeoutMs)) {
        entry.timer = setTimeout(() => {
          if (this.pending.get(seq) !== entry) return;
          this.pending.delete(seq);
          reject(new PlayHouseError(ErrorCode.ClientRequestTimeout, `no reply to ${msgId} within ${timeoutMs} ms`, msgId));
        }, timeoutMs);
      }
      this.pending.set(seq, entry);
      const frame = encodeFrame(msgId, seq, msgId === HELLO ? 0n : this.stageId, payload);
      if (msgId === HELLO) {
        this.link?.send(frame);
      } else if (options.authenticate) {
        // Data frames after the authenticate request are counted if a session forms.
        this.forming = this.has(Capability.RESUME) ? [] : undefined;
        this.authSent = true;
        this.link?.send(frame);
      } else {
        this.sendData(frame);
      }
    });
  }

  /** Sends a one-way message (nothing answers it). */
  send(msgId: string, payload: Uint8Array = new Uint8Array()): void {
    if (this.state === "closed") throw new PlayHouseError(ErrorCode.Disconnected, "the client is closed", msgId);
    if (!this.authSent) throw new PlayHouseError(ErrorCode.Unauthenticated, "authenticate first", msgId);
    this.sendData(encodeFrame(msgId, 0, this.stageId, payload));
  }

  /** Calls `handler` for every push with this msg id; returns a function that removes it. */
  onPush(msgId: string, handler: (packet: Packet) => void): () => void {
    let set = this.handlers.get(msgId);
    if (!set) this.handlers.set(msgId, (set = new Set()));
    set.add(handler);
    return () => set!.delete(handler);
  }

  /** Ends the session on purpose (`@End@`) and closes the connection. */
  close(): void {
    if (this.state === "closed") return;
    this.userClosed = true;
    if (this.session && this.link?.open) this.link.send(encodeFrame(END, 0, 0n, new Uint8Array()));
    this.link?.close();
    this.finish(0, "closed by the client");
  }

  private allocateSeq(): number {
    for (let i = 0; i < 0xffff; i++) {
      this.nextSeq = this.nextSeq >= 0xffff ? 1 : this.nextSeq + 1;
      if (!this.pending.has(this.nextSeq)) return this.nextSeq;
    }
    throw new PlayHouseError(ErrorCode.SystemError, "65535 requests are pending");
  }

  /** A data frame: numbered in the session (kept until acknowledged), sent when connected.
   * Frames sent after an authenticate request and before its `@Session@` are kept for the
   * session that forms (the server counts them in it). */
  private sendData(frame: Uint8Array): void {
    if (this.forming) this.forming.push(frame);
    else this.session?.recordSent(frame);
    if (this.state === "open") this.link?.send(frame);
  }

  /** @internal Makes `link` the connection: its frames and its end come here. */
  adopt(link: Link): void {
    this.link = link;
    this.closing = undefined;
    this.moving = undefined;
    this.state = "open";
    link.onFrame = (frame) => this.onFrame(frame);
    link.onEnd = (end) => this.onLinkEnd(link, end);
    this.lastHeard = this.lastBeat = Date.now();
    this.startTicker();
  }

  /** @internal Handles one frame of the current connection. */
  onFrame(frame: ServerFrame): void {
    this.lastHeard = Date.now();
    this.emit("frame", frame);
    if (isControl(frame.msgId)) {
      this.onControl(frame);
      return;
    }
    const due = this.session?.receivedOne();
    if (due !== undefined) this.link?.send(encodeFrame(ACK, 0, 0n, countPayload(due)));
    const packet: Packet = { msgId: frame.msgId, payload: frame.payload, stageId: frame.stageId, errorCode: frame.errorCode };
    if (frame.seq === 0) {
      this.emit("push", packet);
      for (const handler of [...(this.handlers.get(frame.msgId) ?? [])]) handler(packet);
      return;
    }
    this.settle(frame, packet);
  }

  private settle(frame: ServerFrame, packet: Packet): void {
    const entry = this.pending.get(frame.seq);
    if (!entry) return; // timed out: discarded
    this.pending.delete(frame.seq);
    clearTimeout(entry.timer);
    if (entry.authenticate) this.forming = undefined;
    if (frame.errorCode !== 0) {
      entry.reject(new PlayHouseError(frame.errorCode, undefined, frame.msgId, frame.payload));
      return;
    }
    if (entry.authenticate) {
      this.authenticated = true;
      if (this.stageId === 0n && frame.stageId !== 0n) this.stageId = frame.stageId;
    }
    entry.resolve(packet);
  }

  private onControl(frame: ServerFrame): void {
    switch (frame.msgId) {
      case HELLO: {
        const entry = this.pending.get(frame.seq);
        if (!entry) return;
        this.pending.delete(frame.seq);
        clearTimeout(entry.timer);
        if (frame.errorCode !== 0) entry.reject(new PlayHouseError(frame.errorCode, undefined, HELLO));
        else entry.resolve({ msgId: HELLO, payload: frame.payload, stageId: frame.stageId, errorCode: 0 });
        return;
      }
      case SESSION: {
        if (!this.forming) return;
        const session = new SessionStreams(readGrant(frame.payload));
        for (const logged of this.forming) session.recordSent(logged);
        this.forming = undefined;
        this.session = session;
        return;
      }
      case ACK: {
        const count = frame.payload.length >= 8 ? Number(new DataView(frame.payload.buffer, frame.payload.byteOffset).getBigUint64(0, true)) : NaN;
        if (this.session && !this.session.acknowledge(count)) {
          console.warn(`PlayHouse client: the server acknowledged an impossible count ${count}`);
        }
        return;
      }
      case CLOSE:
        this.closing = frame.errorCode;
        return;
      case MOVE:
        this.moving = moveEndpoint(frame.payload);
        return;
      default:
        return; // heartbeat echoes
    }
  }

  private startTicker(): void {
    clearInterval(this.ticker);
    const heartbeat = this.options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs;
    const idle = this.options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs;
    this.ticker = setInterval(() => this.tick(heartbeat, idle), Math.max(10, Math.min(heartbeat, idle / 3)));
  }

  private tick(heartbeat: number, idle: number): void {
    const link = this.link;
    if (!link?.open || this.state !== "open") return;
    const now = Date.now();
    if (now - this.lastHeard >= idle) {
      link.close({ error: new Error(`silent for ${now - this.lastHeard} ms`) });
      return;
    }
    if (now - this.lastBeat >= heartbeat) {
      this.lastBeat = now;
      const due = this.session?.pendingAck();
      if (due !== undefined) link.send(encodeFrame(ACK, 0, 0n, countPayload(due)));
      link.send(encodeFrame(HEARTBEAT, 0, 0n, new Uint8Array()));
    }
  }

  private onLinkEnd(link: Link, end: LinkEnd): void {
    if (link !== this.link || this.state === "closed") return;
    clearInterval(this.ticker);
    if (this.userClosed) return;
    if (this.closing !== undefined) {
      this.finish(this.closing, "the server closed the connection");
      return;
    }
    if (!this.session) {
      this.finish(ErrorCode.Disconnected, end.error ? end.error.message : "the connection closed");
      return;
    }
    const moving = this.moving;
    this.moving = undefined;
    this.state = "reconnecting";
    void resumeSession(this, moving);
  }

  /** @internal Emits `moved` after a move followed by a resume. */
  announceMoved(endpoint: string): void {
    this.emit("moved", { endpoint, url: this.url });
  }

  /** @internal Emits `reconnecting` / `resumed`. */
  announce(event: "reconnecting" | "resumed", resent = 0): void {
    if (event === "reconnecting") this.emit("reconnecting", { endpoint: this.url });
    else this.emit("resumed", { endpoint: this.url, resent });
  }

  /** @internal The session is gone for good. */
  lose(reason: string, code?: number): void {
    if (this.state === "closed") return;
    this.emit("lost", { reason, code });
    this.finish(ErrorCode.SessionLost, reason);
  }

  /** @internal Closes the client: pending requests fail with `code`. */
  finish(code: number, reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    clearInterval(this.ticker);
    const rejectWith = code === 0 ? ErrorCode.Disconnected : code;
    for (const [seq, entry] of this.pending) {
      this.pending.delete(seq);
      clearTimeout(entry.timer);
      entry.reject(new PlayHouseError(rejectWith, `${entry.msgId}: ${reason}`, entry.msgId));
    }
    this.emit("closed", { code, reason });
  }
}

function webSocketFactory(ctor?: new (url: string) => WebSocketLike): WebSocketFactory {
  const Ctor = ctor ?? (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (!Ctor) {
    throw new Error("no WebSocket: pass `WebSocket` (e.g. the `ws` package) or `createWebSocket` on Node < 22");
  }
  return (url) => new Ctor(url);
}
