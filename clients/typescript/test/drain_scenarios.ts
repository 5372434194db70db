/**
 * A real move: `verification --serve-drain` runs two Play servers of their own; `POST /drain`
 * on drain-1 moves its live `Tally` stage, with its player, to drain-2, which sends the
 * client `@Move@` (no proxy plays the server here). `Tally` counts: each `Add` pushes
 * `Pushed "<n>"`, then replies `Count "<n>"`.
 */
import { PlayHouseClient, type WebSocketFactory, type WebSocketLike } from "../src/index.js";
import { equal, ok, until, within } from "./check.js";
import { account, type Env, type Scenario } from "./env.js";

const utf8 = new TextEncoder();
const text = new TextDecoder();
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** The environment's way of making WebSockets, recording each URL dialed. */
function recording(env: Env, dialed: string[]): WebSocketFactory {
  const make: WebSocketFactory =
    env.socket.createWebSocket ??
    ((url) => new (env.socket.WebSocket ?? (globalThis as unknown as { WebSocket: new (url: string) => WebSocketLike }).WebSocket)(url));
  return (url) => {
    dialed.push(url);
    return make(url);
  };
}

/** Logs `user` in to `stageId` (a `Tally`) at `url`. */
async function tally(env: Env, url: string, stageId: number, user: string, dialed: string[] = []): Promise<PlayHouseClient> {
  const client = await PlayHouseClient.connect({
    url,
    stageId,
    stageType: "Tally",
    createWebSocket: recording(env, dialed),
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 },
  });
  try {
    await client.authenticate(utf8.encode(user));
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}

const count = (payload: Uint8Array): number => Number(text.decode(payload));

export const scenariosOfDrain: Scenario[] = [
  {
    name: "drain: a real move mid-stream (verification --serve-drain): the client follows to drain-2, nothing lost, nothing repeated",
    async run(env) {
      const pair = await env.drainPair();
      const from = `ws://${pair.from}/ws`;
      const to = `ws://${pair.to}/ws`;
      const stageId = 4242;
      const dialed: string[] = [];
      const client = await tally(env, from, stageId, account(env, "drain"), dialed);
      try {
        const pushes: number[] = [];
        const events: string[] = [];
        client.onPush("Pushed", (p) => pushes.push(count(p.payload)));
        for (const name of ["reconnecting", "resumed", "lost", "closed"] as const) client.on(name, () => events.push(name));
        let moved: { endpoint: string; url: string } | undefined;
        let sentAtMove = 0;
        let inFlightAtMove = 0;
        let sent = 0;
        let inFlight = 0;
        client.on("moved", (m) => {
          moved = m;
          sentAtMove = sent;
          inFlightAtMove = inFlight;
        });
        // Four requests in flight at all times. After the 15th reply, drain-1 is drained; the
        // stream goes on through the move until 15 more were sent after it (at least 50).
        const replies: number[] = [];
        let draining: Promise<{ status: number; body: string }> | undefined;
        const done = () => sent >= 50 && moved !== undefined && sent - sentAtMove >= 15;
        const worker = async () => {
          while (!done()) {
            ok(sent < 5_000, "the move came within 5,000 requests");
            const n = ++sent;
            inFlight++;
            const reply = await client.request("Add", new Uint8Array(), { timeoutMs: 10_000 });
            inFlight--;
            equal(reply.msgId, "Count", "the reply's msg id");
            replies[n - 1] = count(reply.payload);
            if (n === 15) draining = pair.drain();
          }
        };
        await within(Promise.all([worker(), worker(), worker(), worker()]), 20_000, "the stream through the move");
        ok(draining, "the drain was started");
        const answer = await draining;
        equal([answer.status, JSON.parse(answer.body)], [202, { draining: true, stages: 1 }], "POST /drain's answer");
        ok(moved, "the moved event");
        equal(moved.endpoint, pair.to, "moved to drain-2's ws endpoint");
        equal(moved.url, to, "the moved event's url");
        equal(client.url, to, "the client's url follows the stage");
        ok(sentAtMove >= 15 && inFlightAtMove > 0, `requests in flight across the move (${inFlightAtMove} of ${sentAtMove} sent)`);
        const n = sent;
        // Each request answered once, with its own count: the stage handled them once, in order.
        equal(replies, range(1, n), `replies to ${n} Add requests`);
        await until(() => pushes.length >= n, 10_000, `${n} pushes`);
        // After the move, one more request through the resumed session (a repeated push would
        // have arrived before its reply).
        equal(count((await client.request("Add")).payload), n + 1, "a request after the stream: the count continues");
        equal(pushes, range(1, n + 1), "the pushes: each once, in order");
        equal(events, ["reconnecting", "resumed"], "one resume, no lost, no closed");
        equal(dialed, [from, to], "dialed drain-1, then drain-2 only (the later connection is drain-2's)");
        // The stage lives at drain-2 now: another player logging in there finds its count.
        const other = await tally(env, to, stageId, account(env, "drain-other"));
        try {
          equal(count((await other.request("Add")).payload), n + 2, "another player's Add at drain-2");
        } finally {
          other.close();
        }
        console.log(`# drain: ${n} requests streamed, the move after ${sentAtMove} sent with ${inFlightAtMove} in flight`);
      } finally {
        client.close();
        await pair.stop();
      }
    },
  },
];
