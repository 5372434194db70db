/**
 * The client suite in Node against `verification --serve` (spawned; PLAYHOUSE_VERIFICATION
 * names the binary), through the cutting proxy where a scenario needs one, and against
 * `verification --serve-drain` (spawned by the scenario that drains one). Node 20 has no
 * global WebSocket: the `ws` package (a dev dependency) is passed in.
 */
import { after, before, test } from "node:test";
import { WebSocket } from "ws";
import type { WebSocketLike } from "../../src/index.js";
import type { Env } from "../env.js";
import { CutProxy } from "../proxy.js";
import { scenarios } from "../scenarios.js";
import { serve, serveDrain, type Served } from "../servers.js";

let served: Served;
let proxy: CutProxy;
const env = {} as Env;

before(async () => {
  served = await serve();
  proxy = await CutProxy.start(served.ws, 4);
  Object.assign(env, {
    ws: served.ws,
    wss: served.wss,
    where: "node",
    // The verification servers' certificate is generated at start-up: no CA vouches for it.
    socket: { createWebSocket: (url: string) => new WebSocket(url, { rejectUnauthorized: false }) as unknown as WebSocketLike },
    proxy: {
      doors: [0, 1, 2, 3].map((d) => proxy.endpoint(d)),
      arm: async (rules) => proxy.arm(rules),
      cutAll: async () => proxy.cutAll(),
      freezeAll: async () => proxy.freezeAll(),
      moveAll: async (toDoor) => proxy.moveAll(toDoor),
      moveNextConnection: async (door, toDoor) => proxy.moveNextConnection(door, toDoor),
      closeAll: async (code) => proxy.closeAll(code),
      shut: (door) => proxy.shut(door),
      stats: async () => ({ accepted: [...proxy.accepted], cuts: proxy.cuts, armed: proxy.armed, live: proxy.live }),
    },
    drainPair: () => serveDrain(),
  } satisfies Env);
});

after(async () => {
  await proxy?.stop();
  await served?.stop();
});

for (const scenario of scenarios) {
  test(scenario.name, { timeout: 60_000 }, () => scenario.run(env));
}
