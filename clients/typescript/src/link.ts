/**
 * One WebSocket connection carrying frames: opens it, reads frames out of its binary messages
 * and writes encoded frames. Works with the browser's `WebSocket` and with any constructor of
 * the same shape (e.g. the `ws` package in Node 20, which has no global `WebSocket`).
 */
import { ProtocolError } from "./errors.js";
import { FrameDecoder, type ServerFrame } from "./frame.js";

/** The part of the WebSocket API the client uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code?: number; reason?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** Makes a WebSocket for a URL. */
export type WebSocketFactory = (url: string) => WebSocketLike;

/** Why a link ended. */
export interface LinkEnd {
  /** Set when the end was a protocol error of the peer. */
  error?: Error;
}

/** An open connection. `onFrame`/`onEnd` may be replaced as the connection changes hands. */
export class Link {
  onFrame: (frame: ServerFrame) => void = () => {};
  onEnd: (end: LinkEnd) => void = () => {};
  private ended = false;
  private readonly decoder: FrameDecoder;

  private constructor(
    private readonly ws: WebSocketLike,
    maxPacketSize: number,
  ) {
    this.decoder = new FrameDecoder(maxPacketSize);
  }

  /** Opens `url`; rejects when it fails or `timeoutMs` passes first. */
  static open(factory: WebSocketFactory, url: string, maxPacketSize: number, timeoutMs: number): Promise<Link> {
    return new Promise((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = factory(url);
      } catch (error) {
        reject(error);
        return;
      }
      ws.binaryType = "arraybuffer";
      const link = new Link(ws, maxPacketSize);
      const timer = setTimeout(() => {
        ws.onopen = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch {
          /* not open yet */
        }
        reject(new Error(`connecting to ${url} timed out`));
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        link.attach();
        resolve(link);
      };
      ws.onerror = () => {};
      ws.onclose = (event) => {
        clearTimeout(timer);
        reject(new Error(`connecting to ${url} failed (${event?.code ?? "?"})`));
      };
    });
  }

  private attach(): void {
    this.ws.onmessage = (event) => this.onMessage(event.data);
    this.ws.onclose = () => this.end({});
    this.ws.onerror = () => this.end({});
  }

  private onMessage(data: unknown): void {
    if (this.ended) return;
    if (!(data instanceof ArrayBuffer)) {
      this.end({ error: new ProtocolError("a text message from the server") });
      return;
    }
    let frames: ServerFrame[];
    try {
      frames = this.decoder.push(new Uint8Array(data));
    } catch (error) {
      this.end({ error: error as Error });
      return;
    }
    for (const frame of frames) {
      if (this.ended) return;
      this.onFrame(frame);
    }
  }

  /** Whether the link can still send. */
  get open(): boolean {
    return !this.ended;
  }

  /** Sends encoded frames (dropped silently once the link ended). */
  send(bytes: Uint8Array): void {
    if (this.ended) return;
    try {
      this.ws.send(bytes);
    } catch {
      this.end({});
    }
  }

  /** Closes the connection; `onEnd` runs once (with `end`). */
  close(end: LinkEnd = {}): void {
    this.end(end);
  }

  private end(end: LinkEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    try {
      this.ws.close();
    } catch {
      /* already closed */
    }
    this.onEnd(end);
  }
}
