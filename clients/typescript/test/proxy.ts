/**
 * A WebSocket proxy for the suite (Node only, `ws`): doors (listening ports) that forward each
 * client connection, message by message, to play-1's WebSocket endpoint, and can cut
 * connections, freeze them, or play the server's `@Move@` / `@Close@` notices. Rules armed with
 * {@link CutProxy.arm} cut the live connection after a number of messages in one direction.
 */
import { WebSocket, WebSocketServer, type RawData } from "ws";
import type { AddressInfo } from "node:net";

/** Cuts the live connection when the n-th message in `direction` arrives (not forwarding it). */
export interface CutRule {
  direction: "down" | "up";
  after: number;
}

interface Pair {
  door: number;
  client: WebSocket;
  upstream: WebSocket;
  frozen: boolean;
  down: number;
  up: number;
  queued: RawData[];
  closed: boolean;
}

/** A server frame (docs/wire-protocol.md) with an empty or given payload. */
export function serverFrame(msgId: string, seq: number, stageId: bigint, errorCode: number, payload: Uint8Array): Buffer {
  const id = Buffer.from(msgId, "utf8");
  const body = 1 + id.length + 2 + 8 + 2 + 4 + payload.length;
  const out = Buffer.alloc(4 + body);
  out.writeInt32LE(body, 0);
  out[4] = id.length;
  id.copy(out, 5);
  let o = 5 + id.length;
  out.writeUInt16LE(seq, o);
  out.writeBigInt64LE(stageId, o + 2);
  out.writeUInt16LE(errorCode, o + 10);
  out.writeInt32LE(0, o + 12);
  out.set(payload, o + 16);
  return out;
}

export class CutProxy {
  private readonly servers: WebSocketServer[] = [];
  private readonly pairs = new Set<Pair>();
  private rules: CutRule[] = [];
  private moveOnConnect?: { door: number; endpoint: string };
  /** Connections accepted per door. */
  readonly accepted: number[] = [];
  /** Connections cut by rules or on request. */
  cuts = 0;

  private constructor(private readonly target: string) {}

  /** Opens `doors` listening ports on 127.0.0.1 forwarding to `target` (a ws:// URL). */
  static async start(target: string, doors = 2): Promise<CutProxy> {
    const proxy = new CutProxy(target);
    for (let i = 0; i < doors; i++) {
      const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
      await new Promise<void>((resolve) => server.once("listening", () => resolve()));
      proxy.accepted.push(0);
      server.on("connection", (client) => proxy.accept(i, client));
      proxy.servers.push(server);
    }
    return proxy;
  }

  /** `host:port` of a door. */
  endpoint(door: number): string {
    const address = this.servers[door].address() as AddressInfo;
    return `127.0.0.1:${address.port}`;
  }

  /** The ws:// URL of a door (path `/ws`, as the server's). */
  url(door: number): string {
    return `ws://${this.endpoint(door)}/ws`;
  }

  private accept(door: number, client: WebSocket): void {
    this.accepted[door] += 1;
    const upstream = new WebSocket(this.target);
    const pair: Pair = { door, client, upstream, frozen: false, down: 0, up: 0, queued: [], closed: false };
    this.pairs.add(pair);
    const move = this.moveOnConnect;
    if (move && move.door === door) {
      // The stage "moved while the client was away": answer its resume with a move notice.
      this.moveOnConnect = undefined;
      client.once("message", () => {
        client.send(serverFrame("@Move@", 0, 0n, 0, Buffer.from(move.endpoint)));
        this.close(pair);
      });
      upstream.on("error", () => {});
      upstream.terminate();
      return;
    }
    client.on("message", (data) => {
      if (pair.closed || pair.frozen) return;
      pair.up += 1;
      if (this.ruleHits("up", pair.up)) return this.cut(pair);
      if (upstream.readyState === WebSocket.OPEN) upstream.send(data);
      else pair.queued.push(data);
    });
    upstream.on("open", () => {
      for (const data of pair.queued.splice(0)) upstream.send(data);
    });
    upstream.on("message", (data) => {
      if (pair.closed || pair.frozen) return;
      pair.down += 1;
      if (this.ruleHits("down", pair.down)) return this.cut(pair);
      client.send(data);
    });
    client.on("close", () => this.close(pair));
    client.on("error", () => this.close(pair));
    upstream.on("close", () => this.close(pair));
    upstream.on("error", () => this.close(pair));
  }

  private ruleHits(direction: "down" | "up", count: number): boolean {
    const rule = this.rules[0];
    if (!rule || rule.direction !== direction || count < rule.after) return false;
    this.rules.shift();
    return true;
  }

  private close(pair: Pair): void {
    if (pair.closed) return;
    pair.closed = true;
    this.pairs.delete(pair);
    // Ends the client's TCP stream (FIN, no WebSocket close frame: an abrupt drop to the
    // client) rather than destroying it: a destroyed socket with the client's data unread
    // sends RST, and Chromium then dropped frames forwarded just before the cut (the
    // @Session@ ahead of a cut AuthenticateReply, say).
    const socket = (pair.client as unknown as { _socket?: { end(): void } })._socket;
    if (socket) socket.end();
    else pair.client.terminate();
    pair.upstream.terminate();
  }

  private cut(pair: Pair): void {
    this.cuts += 1;
    this.close(pair);
  }

  /** Cut rules, applied in order, each to the connection live when it fires (counts start
   * per connection). */
  arm(rules: CutRule[]): void {
    this.rules = [...rules];
  }

  /** Rules not fired yet. */
  get armed(): number {
    return this.rules.length;
  }

  /** Cuts every live connection now. */
  cutAll(): void {
    for (const pair of [...this.pairs]) this.cut(pair);
  }

  /** Stops forwarding on every live connection without closing it (a silent network). */
  freezeAll(): void {
    for (const pair of this.pairs) pair.frozen = true;
  }

  /** Sends `@Move@` (to `toDoor`) on every live connection, then closes them. */
  moveAll(toDoor: number, stageId = 0n): void {
    const notice = serverFrame("@Move@", 0, stageId, 0, Buffer.from(this.endpoint(toDoor)));
    for (const pair of [...this.pairs]) {
      pair.frozen = true;
      pair.client.send(notice, () => this.close(pair));
    }
  }

  /** The next connection to `door` is answered with `@Move@` to `toDoor` (after its first
   * message) and closed. */
  moveNextConnection(door: number, toDoor: number): void {
    this.moveOnConnect = { door, endpoint: this.endpoint(toDoor) };
  }

  /** Sends `@Close@` with `code` on every live connection, then closes them. */
  closeAll(code: number): void {
    const notice = serverFrame("@Close@", 0, 0n, code, new Uint8Array());
    for (const pair of [...this.pairs]) {
      pair.frozen = true;
      pair.client.send(notice, () => this.close(pair));
    }
  }

  /** Stops listening on `door` (new connections there fail). */
  async shut(door: number): Promise<void> {
    await new Promise<void>((resolve) => this.servers[door].close(() => resolve()));
  }

  /** Live connections. */
  get live(): number {
    return this.pairs.size;
  }

  async stop(): Promise<void> {
    this.cutAll();
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
