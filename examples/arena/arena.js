// The arena's page: joins a room through the arena's HTTP listener (`POST /join`), plays over
// WebSocket with the PlayHouse TypeScript client (a resumable session: a dropped connection
// resumes by itself), steers with the keyboard and draws every snapshot the room pushes.
import { PlayHouseClient, onMessage, sendMessage } from "@playhouse/client";
import { SnapshotSchema, SteerSchema } from "/gen/arena_pb.js";

const $ = (id) => document.getElementById(id);
const field = $("field").getContext("2d");
const status = (text) => { $("status").textContent = text; };
$("name").value = localStorage.getItem("arena-name") || `player-${Math.floor(Math.random() * 9000 + 1000)}`;

/** What the page shows and checks (the browser test reads it): the latest snapshot, the
 * recent ticks' scores, ticks that arrived out of sequence, the client's events and joins. */
window.arena = { client: null, snapshot: null, snapshots: 0, name: "", events: [], joins: 0, gaps: 0, scores: {} };

function draw(snapshot) {
  field.clearRect(0, 0, 800, 600);
  for (const coin of snapshot.coins) {
    field.fillStyle = "#f5c542";
    field.beginPath(); field.arc(coin.x, coin.y, 8, 0, 2 * Math.PI); field.fill();
  }
  for (const avatar of snapshot.avatars) {
    const me = avatar.name === window.arena.name;
    field.globalAlpha = avatar.online ? 1 : 0.4;
    field.fillStyle = me ? "#4fc3f7" : "#ef5350";
    field.beginPath(); field.arc(avatar.x, avatar.y, 16, 0, 2 * Math.PI); field.fill();
    field.fillStyle = "#fff"; field.font = "12px system-ui"; field.textAlign = "center";
    field.fillText(avatar.name, avatar.x, avatar.y - 20);
    field.globalAlpha = 1;
  }
  const board = [...snapshot.avatars].sort((a, b) => b.score - a.score || a.name.localeCompare(b.name));
  $("board").innerHTML = "";
  for (const avatar of board) {
    const li = document.createElement("li");
    li.textContent = `${avatar.name}: ${avatar.score}`;
    if (!avatar.online) li.className = "offline";
    $("board").appendChild(li);
  }
}

async function join() {
  const name = $("name").value.trim();
  const room = Number($("room").value) || 1;
  localStorage.setItem("arena-name", name);
  status("finding the room…");
  const found = await fetch(`/join?room=${room}`, { method: "POST" });
  if (!found.ok) { status(`join refused: ${await found.text()}`); return; }
  const { room: stageId, ws_path: path } = await found.json();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = await PlayHouseClient.connect({
    url: `${scheme}://${location.host}${path}`, stageId, stageType: "Arena",
  });
  await client.authenticate(new TextEncoder().encode(name));
  window.arena.client = client;
  window.arena.name = name;
  window.arena.joins += 1;
  onMessage(client, SnapshotSchema, (snapshot) => {
    const last = window.arena.snapshot;
    if (last && snapshot.tick !== last.tick + 1n) window.arena.gaps += 1;
    window.arena.snapshot = snapshot;
    window.arena.snapshots += 1;
    const scores = window.arena.scores;
    scores[String(snapshot.tick)] = Object.fromEntries(snapshot.avatars.map((a) => [a.name, a.score]));
    delete scores[String(snapshot.tick - 200n)];
    draw(snapshot);
  });
  const note = (event) => (detail) => { window.arena.events.push(event); status(`${event} (room ${stageId})`); };
  client.on("reconnecting", note("reconnecting"));
  client.on("resumed", note("resumed"));
  client.on("moved", note("moved"));
  client.on("lost", note("lost"));
  client.on("closed", note("closed"));
  status(`playing in room ${stageId} as ${name}`);
  $("join").disabled = true; $("leave").disabled = false;
}

const keys = new Set();
let steering = { dx: 0, dy: 0 };
function steer() {
  const dx = (keys.has("ArrowRight") || keys.has("d") ? 1 : 0) - (keys.has("ArrowLeft") || keys.has("a") ? 1 : 0);
  const dy = (keys.has("ArrowDown") || keys.has("s") ? 1 : 0) - (keys.has("ArrowUp") || keys.has("w") ? 1 : 0);
  if ((dx !== steering.dx || dy !== steering.dy) && window.arena.client) {
    steering = { dx, dy };
    sendMessage(window.arena.client, SteerSchema, steering);
  }
}
/** Steers as the keyboard would (the browser test uses it). */
window.arena.steer = (dx, dy) => {
  steering = { dx, dy };
  sendMessage(window.arena.client, SteerSchema, steering);
};
addEventListener("keydown", (e) => { keys.add(e.key); steer(); });
addEventListener("keyup", (e) => { keys.delete(e.key); steer(); });

$("join").onclick = () => join().catch((error) => status(`error: ${error.message ?? error}`));
$("leave").onclick = () => {
  const client = window.arena.client;
  if (!client) return;
  client.send("Leave", new Uint8Array());
  client.close();
  window.arena.client = null;
  status("left");
  $("join").disabled = false; $("leave").disabled = true;
};

// `?name=..&room=..` joins at once (links, tests).
const params = new URLSearchParams(location.search);
if (params.get("name")) {
  $("name").value = params.get("name");
  $("room").value = params.get("room") || "1";
  $("join").click();
}
