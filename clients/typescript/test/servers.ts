/**
 * Starts `verification --serve` (or `--serve-drain`) for the suite and reads its one JSON line
 * (Node only).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import type { DrainPair } from "./env.js";

export interface Served {
  ws: string;
  wss: string;
  stop(): Promise<void>;
}

interface Endpoints {
  id: string;
  ws?: string;
  wss?: string;
  admin?: string;
  admin_token?: string;
}

/** Spawns the binary named by `PLAYHOUSE_VERIFICATION` (or `path`) with `flag`; its servers. */
async function spawnServing(flag: string, path = process.env.PLAYHOUSE_VERIFICATION): Promise<{ servers: Endpoints[]; line: string; stop(): Promise<void> }> {
  if (!path) throw new Error("set PLAYHOUSE_VERIFICATION to the verification binary");
  const child: ChildProcess = spawn(path, [flag], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", (l) => resolve(l));
    child.once("exit", (code) => reject(new Error(`verification ${flag} exited (${code}) before its endpoints`)));
  });
  return {
    servers: JSON.parse(line).servers as Endpoints[],
    line,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

/** Spawns the binary named by `PLAYHOUSE_VERIFICATION` (or `path`) with `--serve`. */
export async function serve(path?: string): Promise<Served> {
  const { servers, line, stop } = await spawnServing("--serve", path);
  const play = servers.find((s) => s.id === "play-1");
  if (!play?.ws || !play.wss) {
    await stop();
    throw new Error(`no ws/wss endpoints for play-1 in ${line}`);
  }
  return { ws: `ws://${play.ws}/ws`, wss: `wss://${play.wss}/ws`, stop };
}

/** Spawns `verification --serve-drain` (a fresh pair: drain-1 stops once drained). */
export async function serveDrain(path?: string): Promise<DrainPair> {
  const { servers, line, stop } = await spawnServing("--serve-drain", path);
  const from = servers.find((s) => s.id === "drain-1");
  const to = servers.find((s) => s.id === "drain-2");
  if (!from?.ws || !from.admin || !from.admin_token || !to?.ws) {
    await stop();
    throw new Error(`no ws/admin endpoints for drain-1 and drain-2 in ${line}`);
  }
  return {
    from: from.ws,
    to: to.ws,
    async drain() {
      const response = await fetch(`http://${from.admin}/drain`, { method: "POST", headers: { authorization: `Bearer ${from.admin_token}` } });
      return { status: response.status, body: await response.text() };
    },
    stop,
  };
}
