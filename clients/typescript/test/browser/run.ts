/**
 * The client suite in headless Chromium: the same built modules (dist/src, dist/test) load in a
 * page, unbundled, through an import map, and run every scenario and unit check with the
 * browser's own WebSocket against `verification --serve` (spawned; PLAYHOUSE_VERIFICATION names
 * the binary). The cutting proxy stays here in Node, and so do the drain pairs
 * (`verification --serve-drain`, spawned on the page's request, and their `POST /drain`, which
 * needs the admin token and would need CORS from the page); the page drives both over HTTP. Prints TAP
 * and a closing `N passed, N failed` line; exits 1 on a failure.
 *
 * CHROMIUM names the browser (default: chromium on the PATH).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CutProxy } from "../proxy.js";
import type { DrainPair } from "../env.js";
import { serve, serveDrain } from "../servers.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const PB = "/node_modules/@bufbuild/protobuf/dist/esm";
const IMPORTS = {
  "@bufbuild/protobuf": `${PB}/index.js`,
  "@bufbuild/protobuf/codegenv2": `${PB}/codegenv2/index.js`,
  "@bufbuild/protobuf/reflect": `${PB}/reflect/index.js`,
  "@bufbuild/protobuf/wire": `${PB}/wire/index.js`,
};

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>PlayHouse TypeScript client suite</title>
<script type="importmap">${JSON.stringify({ imports: IMPORTS })}</script>
<script type="module">
import { scenarios } from "/dist/test/scenarios.js";
import { units } from "/dist/test/units.js";
const post = (path, body) => fetch(path, { method: "POST", body: JSON.stringify(body) }).then((r) => r.json());
const config = await (await fetch("/config")).json();
const proxy = new Proxy({ doors: config.doors }, {
  get: (target, op) => op in target ? target[op] : (...args) => post("/proxy", { op, args }),
});
const drainPair = async () => {
  const { from, to } = await post("/drain", { op: "start" });
  return { from, to, drain: () => post("/drain", { op: "drain" }), stop: () => post("/drain", { op: "stop" }) };
};
const env = { ws: config.ws, wss: config.wss, socket: {}, proxy, drainPair, where: "chromium" };
for (const s of [...units, ...scenarios]) {
  let ok = true, detail = "";
  try { await s.run(env); } catch (e) { ok = false; detail = String(e && e.stack || e); }
  await post("/result", { name: s.name, ok, detail });
}
await post("/done", {});
</script>
`;

const TYPES: Record<string, string> = { ".js": "text/javascript", ".html": "text/html", ".json": "application/json" };

async function main(): Promise<number> {
  const served = await serve();
  const proxy = await CutProxy.start(served.ws, 4);
  const results: { name: string; ok: boolean; detail: string }[] = [];
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => (finish = r));
  const ops: Record<string, (...args: never[]) => unknown> = {
    arm: (rules: never) => proxy.arm(rules),
    cutAll: () => proxy.cutAll(),
    freezeAll: () => proxy.freezeAll(),
    moveAll: (to: never) => proxy.moveAll(to),
    moveNextConnection: (door: never, to: never) => proxy.moveNextConnection(door, to),
    closeAll: (code: never) => proxy.closeAll(code),
    shut: (door: never) => proxy.shut(door),
    stats: () => ({ accepted: [...proxy.accepted], cuts: proxy.cuts, armed: proxy.armed, live: proxy.live }),
  };
  // The page's drain pair (one at a time).
  let pair: DrainPair | undefined;
  const drainOps: Record<string, () => Promise<unknown>> = {
    start: async () => {
      await pair?.stop();
      pair = await serveDrain();
      return { from: pair.from, to: pair.to };
    },
    drain: () => pair!.drain(),
    stop: async () => {
      await pair?.stop();
      pair = undefined;
    },
  };
  const body = (req: IncomingMessage) =>
    new Promise<unknown>((ok) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => ok(JSON.parse(Buffer.concat(chunks).toString() || "{}")));
    });
  const reply = (res: ServerResponse, type: string, data: string | Buffer) => {
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
    res.end(data);
  };
  const http = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    try {
      if (req.method === "POST") {
        const input = (await body(req)) as { op: string; args: never[]; name: string; ok: boolean; detail: string };
        if (url.pathname === "/proxy") return reply(res, "application/json", JSON.stringify((await ops[input.op](...input.args)) ?? null));
        if (url.pathname === "/drain") return reply(res, "application/json", JSON.stringify((await drainOps[input.op]()) ?? null));
        if (url.pathname === "/result") {
          results.push(input);
          console.error(`${input.ok ? "ok" : "not ok"} - ${input.name}`);
        }
        if (url.pathname === "/done") finish();
        return reply(res, "application/json", "null");
      }
      if (url.pathname === "/") return reply(res, "text/html; charset=utf-8", PAGE);
      if (url.pathname === "/config") {
        return reply(res, "application/json", JSON.stringify({ ws: served.ws, wss: served.wss, doors: [0, 1, 2, 3].map((d) => proxy.endpoint(d)) }));
      }
      const path = normalize(join(ROOT, url.pathname));
      if (!path.startsWith(ROOT) || !/^\/(dist|node_modules\/@bufbuild\/protobuf)\//.test(url.pathname)) throw new Error("not served");
      return reply(res, TYPES[extname(path)] ?? "application/octet-stream", readFileSync(path));
    } catch (error) {
      res.writeHead(404);
      res.end(String(error));
    }
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", () => r()));
  const page = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;
  const profile = mkdtempSync(join(tmpdir(), "playhouse-ts-chromium-"));
  const browser = spawn(
    process.env.CHROMIUM ?? "chromium",
    [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // The verification servers' certificate is generated at start-up: no CA vouches for it.
      "--ignore-certificate-errors",
      `--user-data-dir=${profile}`,
      page,
    ],
    { stdio: "ignore", detached: true },
  );
  const exited = new Promise<void>((r) => browser.once("exit", () => r()));
  const timer = setTimeout(finish, 240_000);
  await Promise.race([finished, exited]);
  clearTimeout(timer);
  try {
    process.kill(-browser.pid!, "SIGKILL");
  } catch {
    /* gone already */
  }
  await exited;
  rmSync(profile, { recursive: true, force: true });
  http.close();
  await proxy.stop();
  await drainOps.stop();
  await served.stop();

  const expected = (await import("../scenarios.js")).scenarios.length + (await import("../units.js")).units.length;
  console.log(`1..${expected}`);
  results.forEach((r, i) => {
    console.log(`${r.ok ? "ok" : "not ok"} ${i + 1} - ${r.name} (chromium)`);
    if (!r.ok) console.log(`  # ${r.detail.split("\n").join("\n  # ")}`);
  });
  for (let i = results.length; i < expected; i++) console.log(`not ok ${i + 1} - the page reported no result (it stopped or timed out)`);
  const passed = results.filter((r) => r.ok).length;
  const failed = expected - passed;
  console.log(`${passed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
