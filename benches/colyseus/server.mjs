// The Colyseus side of issue 15's comparison: a room equivalent to PlayHouse's BenchStage.
//
//   node server.mjs [--port 0]
//
// Room types (both answer both messages; they differ only in room size):
//   "echo"       up to 10 clients per room (the Node load generator puts 10 PlayHouse clients in a
//                stage too)
//   "broadcast"  up to 50 clients per room
// Messages are Colyseus byte messages (`ROOM_DATA_BYTES`), so neither side pays for a
// serialisation format the other does not have:
//   "e"  echoed to the sender                (PlayHouse: a BenchRequest answered with its payload)
//   "b"  broadcast to every client in the room (PlayHouse: BenchBroadcast -> ctx.broadcast)
// The room has no state, so no patches are encoded; Colyseus' default room clock still ticks.
//
// Prints one JSON line, {"mode": "colyseus", "ws": "127.0.0.1:PORT", "pid": PID}, then serves
// until SIGINT/SIGTERM. Listens on 127.0.0.1 only.

import { parseArgs } from "node:util";
import { Room, Server } from "@colyseus/core";
import { WebSocketTransport } from "@colyseus/ws-transport";

class BenchRoom extends Room {
  onCreate(options) {
    this.maxClients = options.maxClients;
    this.onMessageBytes("e", (client, payload) => client.sendBytes("e", payload));
    this.onMessageBytes("b", (_client, payload) => this.broadcastBytes("b", payload));
  }
}

const { values } = parseArgs({ options: { port: { type: "string", default: "0" } } });

const transport = new WebSocketTransport();
const server = new Server({ transport, greet: false });
server.define("echo", BenchRoom, { maxClients: 10 });
server.define("broadcast", BenchRoom, { maxClients: 50 });
await server.listen(Number(values.port), "127.0.0.1");
const { port } = transport.server.address();
console.log(JSON.stringify({ mode: "colyseus", ws: `127.0.0.1:${port}`, pid: process.pid }));
