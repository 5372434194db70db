/** Starts `verification --serve` for the suite and reads its one JSON line (Node only). */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface Served {
  ws: string;
  wss: string;
  stop(): Promise<void>;
}

/** Spawns the binary named by `PLAYHOUSE_VERIFICATION` (or `path`) with `--serve`. */
export async function serve(path = process.env.PLAYHOUSE_VERIFICATION): Promise<Served> {
  if (!path) throw new Error("set PLAYHOUSE_VERIFICATION to the verification binary");
  const child: ChildProcess = spawn(path, ["--serve"], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", (l) => resolve(l));
    child.once("exit", (code) => reject(new Error(`verification --serve exited (${code}) before its endpoints`)));
  });
  const servers = JSON.parse(line).servers as { id: string; ws?: string; wss?: string }[];
  const play = servers.find((s) => s.id === "play-1");
  if (!play?.ws || !play.wss) throw new Error(`no ws/wss endpoints for play-1 in ${line}`);
  return {
    ws: `ws://${play.ws}/ws`,
    wss: `wss://${play.wss}/ws`,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
