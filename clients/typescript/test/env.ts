/** The suite's environment and the helpers every scenario uses. */
import { call, PlayHouseClient, type ClientOptions } from "../src/index.js";
import { AuthenticateReplySchema, AuthenticateRequestSchema } from "./gen/test_messages_pb.js";

/** Drives the suite's cutting proxy (directly in Node, over HTTP from the browser page). */
export interface ProxyControl {
  /** `host:port` of each door (door 0 and door 1 forward to play-1's ws endpoint). */
  doors: string[];
  arm(rules: { direction: "down" | "up"; after: number }[]): Promise<void>;
  cutAll(): Promise<void>;
  freezeAll(): Promise<void>;
  moveAll(toDoor: number): Promise<void>;
  moveNextConnection(door: number, toDoor: number): Promise<void>;
  closeAll(code: number): Promise<void>;
  shut(door: number): Promise<void>;
  stats(): Promise<{ accepted: number[]; cuts: number; armed: number; live: number }>;
}

/** Two Play servers of their own (`verification --serve-drain`, spawned by the Node side):
 * `from` (drain-1) is drained into `to` (drain-2). */
export interface DrainPair {
  /** `host:port` of drain-1's WebSocket listener (path `/ws`). */
  from: string;
  /** `host:port` of drain-2's WebSocket listener. */
  to: string;
  /** `POST /drain` on drain-1's admin listener, with its bearer token: the answer. */
  drain(): Promise<{ status: number; body: string }>;
  stop(): Promise<void>;
}

/** Where the suite runs. */
export interface Env {
  /** `ws://…/ws` and `wss://…/ws` of play-1. */
  ws: string;
  wss: string;
  /** How the client makes WebSockets here (the `ws` package in Node, nothing in a browser). */
  socket: Pick<ClientOptions, "WebSocket" | "createWebSocket">;
  proxy: ProxyControl;
  /** Starts a fresh drain pair (drain-1 stops once drained, so each use needs its own). */
  drainPair(): Promise<DrainPair>;
  /** "node" or "chromium": part of each account name, so runs never share a player. */
  where: string;
}

export interface Scenario {
  name: string;
  run(env: Env): Promise<void>;
}

let counter = 0;
/** A fresh account name. */
export const account = (env: Env, what: string): string =>
  `ts-${env.where}-${what}-${Date.now().toString(36)}-${++counter}`;

/** Connects to `url` (play-1's ws by default) with the environment's WebSocket. */
export function connect(env: Env, options: Partial<ClientOptions> = {}): Promise<PlayHouseClient> {
  return PlayHouseClient.connect({ url: env.ws, ...env.socket, ...options });
}

/** Connects and authenticates as a fresh account on a new stage (or `stageId`). */
export async function login(
  env: Env,
  what: string,
  options: Partial<ClientOptions> = {},
): Promise<{ client: PlayHouseClient; user: string }> {
  const client = await connect(env, options);
  const user = account(env, what);
  await call(client, AuthenticateRequestSchema, { userId: user, token: "t" }, AuthenticateReplySchema, { authenticate: true });
  return { client, user };
}

