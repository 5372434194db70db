// Summarises a run.sh results file (one JSON object per line: rep, case, server, result) as
// Markdown tables: the median of the repetitions and their min-max, and ratios computed within
// each repetition (servers of one repetition ran back to back) before taking their median.
//
//   node summarize.mjs target/colyseus-bench/RUN.jsonl

import { readFileSync } from "node:fs";

const rows = readFileSync(process.argv[2], "utf8")
  .split("\n")
  .filter((line) => line.trim() !== "")
  .map((line) => JSON.parse(line));

function median(values) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function fmt(value, digits) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** "median (min–max)" of `metric` over the repetitions of one case and server. */
function spread(caseName, server, metric, digits) {
  const values = rows
    .filter((r) => r.case === caseName && r.server === server && !r.result.failed)
    .map((r) => metric(r.result))
    .filter((v) => Number.isFinite(v));
  if (values.length === 0) return "–";
  const m = median(values);
  if (values.length === 1) return fmt(m, digits);
  return `${fmt(m, digits)} (${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)})`;
}

/** Per-repetition ratio numerator/denominator of `metric`, as "median (min–max)". */
function ratio(caseName, numerator, denominator, metric, digits = 2, suffix = "×") {
  const reps = [...new Set(rows.filter((r) => r.case === caseName).map((r) => r.rep))];
  const values = [];
  for (const rep of reps) {
    const a = rows.find((r) => r.rep === rep && r.case === caseName && r.server === numerator);
    const b = rows.find((r) => r.rep === rep && r.case === caseName && r.server === denominator);
    if (!a || !b || a.result.failed || b.result.failed) continue;
    const v = metric(a.result) / metric(b.result);
    if (Number.isFinite(v)) values.push(v);
  }
  if (values.length === 0) return "–";
  const scale = suffix === "%" ? 100 : 1;
  const m = fmt(median(values) * scale, digits) + suffix;
  if (values.length === 1) return m;
  return `${m} (${fmt(Math.min(...values) * scale, digits)}–${fmt(Math.max(...values) * scale, digits)})`;
}

const reps = new Set(rows.map((r) => r.rep)).size;
const cpu = (r) => r.server_cpu_us_per_delivery;
const rate = (r) => r.delivered_per_sec;
const p99 = (r) => r.p99_us / 1000;
const cores = (r) => r.server_cores;
const loadgen = (r) => r.loadgen_cores;
const rss = (r) => r.server_rss_mib;
const rssBefore = (r) => r.server_rss_before_mib;

const out = [];
out.push(`${reps} repetition(s); each cell: median (min–max). Ratios are taken within each repetition, then their median.`);
out.push("");
out.push("Server CPU per delivery (µs, utime+stime over the window ÷ messages delivered to clients):");
out.push("");
out.push("| case | Colyseus | PlayHouse | raw WS | Colyseus ÷ PlayHouse | raw WS ÷ PlayHouse (efficiency) |");
out.push("|---|---:|---:|---:|---:|---:|");
for (const [name, label] of [
  ["echo-100x8", "echo, 100 clients × 8 in flight"],
  ["echo-1000x1", "echo, 1,000 clients × 1 in flight"],
  ["broadcast-50x8", "broadcast, 50-client room, one sender × 8"],
]) {
  out.push(
    `| ${label} | ${spread(name, "colyseus", cpu, 2)} | ${spread(name, "playhouse", cpu, 2)} | ${spread(name, "raw-ws", cpu, 2)} | ${ratio(name, "colyseus", "playhouse", cpu)} | ${name.startsWith("echo") ? ratio(name, "raw-ws", "playhouse", cpu, 0, "%") : "–"} |`,
  );
}
out.push("");
out.push("Throughput, latency and CPU use (deliveries/s; p99 in ms; server and load-generator cores):");
out.push("");
out.push("| case | server | deliveries/s | p99 ms | server cores | loadgen cores |");
out.push("|---|---|---:|---:|---:|---:|");
for (const name of ["echo-100x8", "echo-1000x1", "broadcast-50x8"]) {
  for (const server of ["colyseus", "playhouse", "raw-ws"]) {
    if (!rows.some((r) => r.case === name && r.server === server)) continue;
    out.push(
      `| ${name} | ${server} | ${spread(name, server, rate, 0)} | ${spread(name, server, p99, 1)} | ${spread(name, server, cores, 2)} | ${spread(name, server, loadgen, 2)} |`,
    );
  }
}
out.push("");
out.push("| echo msg/s ratio | PlayHouse ÷ raw WS |");
out.push("|---|---:|");
for (const name of ["echo-100x8", "echo-1000x1"]) {
  out.push(`| ${name} | ${ratio(name, "playhouse", "raw-ws", rate, 0, "%")} |`);
}
out.push("");
out.push("1,000 idle WebSocket clients, server RSS (MiB):");
out.push("");
out.push("| server | before clients | with 1,000 idle clients | idle server cores |");
out.push("|---|---:|---:|---:|");
for (const server of ["colyseus", "playhouse", "raw-ws"]) {
  out.push(
    `| ${server} | ${spread("idle-1000", server, rssBefore, 1)} | ${spread("idle-1000", server, rss, 1)} | ${spread("idle-1000", server, cores, 3)} |`,
  );
}
out.push("");
out.push("Rust loadgen, request/reply, 1,000 clients × 8 in flight, 64 B (msg/s; p99 ms):");
out.push("");
out.push("| transport | raw | PlayHouse | PlayHouse ÷ raw |");
out.push("|---|---:|---:|---:|");
const rustRate = (r) => r.msgs_per_sec;
for (const [name, raw] of [
  ["rust-request-1000x8-tcp", "raw-tcp"],
  ["rust-request-1000x8-ws", "raw-ws"],
]) {
  out.push(
    `| ${name.endsWith("ws") ? "WebSocket" : "TCP"} | ${spread(name, raw, rustRate, 0)} | ${spread(name, "playhouse", rustRate, 0)} | ${ratio(name, "playhouse", raw, rustRate, 0, "%")} |`,
  );
}
out.push("");
out.push("10,000 idle WebSocket clients (Rust loadgen, one request each every 20 s), server RSS (MiB):");
out.push("");
out.push("| server | RSS | target |");
out.push("|---|---:|---:|");
out.push(`| playhouse | ${spread("rust-idle-10000-ws", "playhouse", (r) => r.server_rss_mb, 1)} | ≤ 150 MB (143 MiB) |`);
const errors = rows.filter((r) => r.result.failed || r.result.errors > 0 || r.result.join_failures > 0 || r.result.connect_failures > 0);
out.push("");
out.push(errors.length === 0 ? "No errors, join failures or failed runs." : `Runs with errors or failures: ${errors.map((r) => `rep ${r.rep} ${r.case} ${r.server}`).join(", ")}`);
console.log(out.join("\n"));
