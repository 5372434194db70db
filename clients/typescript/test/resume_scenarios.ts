/**
 * Resumable sessions through the suite's cutting proxy: cuts during a stream, a stage that
 * moved (live, and while the client was away), the `@Close@` notice, and a lost session.
 * Door 0 is the usual way in; doors 1-3 play "another server" for the moves.
 */
import { call, ErrorCode, onMessage } from "../src/index.js";
import { equal, ok, rejectsWith, until, within } from "./check.js";
import { account, connect, login, type Scenario } from "./env.js";
import {
  AuthenticateReplySchema,
  AuthenticateRequestSchema,
  BroadcastNotifySchema,
  BroadcastTriggerReplySchema,
  BroadcastTriggerSchema,
  EchoReplySchema,
  EchoRequestSchema,
  NoResponseRequestSchema,
  ResumeProbeHistoryReplySchema,
  ResumeProbeHistoryRequestSchema,
  ResumeProbeReplySchema,
  ResumeProbeRequestSchema,
} from "./gen/test_messages_pb.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export const scenariosOfResume: Scenario[] = [
  {
    name: "resume: three cuts during 200 pushes and 50 requests lose nothing and repeat nothing",
    async run(env) {
      const door = `ws://${env.proxy.doors[0]}/ws`;
      const { client } = await login(env, "stream", { url: door, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      try {
        const seen: number[] = [];
        let resumed = 0;
        let lost = 0;
        onMessage(client, BroadcastNotifySchema, (m) => seen.push(m.sequence));
        client.on("resumed", () => resumed++);
        client.on("lost", () => lost++);
        const before = await env.proxy.stats();
        // Cut mid-push-stream, then mid-request-stream (a client frame never forwarded), then
        // again during what follows.
        await env.proxy.arm([
          { direction: "down", after: 40 },
          { direction: "up", after: 12 },
          { direction: "down", after: 20 },
        ]);
        const trigger = call(client, BroadcastTriggerSchema, { eventType: "stream", data: "x", count: 200 }, BroadcastTriggerReplySchema, {
          timeoutMs: 20_000,
        });
        const probes: Promise<number>[] = [];
        for (let id = 0; id < 50; id++) {
          probes.push(
            call(client, ResumeProbeRequestSchema, { id, delayMs: (id % 4) * 5 }, ResumeProbeReplySchema, { timeoutMs: 20_000 }).then((r) => r.id),
          );
          await sleep(8);
        }
        equal((await trigger).pushed, 200, "the trigger's reply");
        equal(await Promise.all(probes), range(0, 49), "every request answered once, with its own reply");
        await until(() => seen.length >= 200, 10_000, "200 pushes");
        await sleep(50); // a repeated push would land here
        equal(seen, range(1, 200), "the pushes: each once, in order");
        const history = await call(client, ResumeProbeHistoryRequestSchema, {}, ResumeProbeHistoryReplySchema);
        equal([...history.handledIds].sort((a, b) => a - b), range(0, 49), "the stage handled each request once");
        const after = await env.proxy.stats();
        equal(after.armed, 0, "every armed cut happened");
        equal(after.cuts - before.cuts, 3, "cuts");
        equal([resumed, lost], [3, 0], "resumed three times, never lost");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "requests pipelined behind the authenticate request count in the session (a cut before its reply)",
    async run(env) {
      const client = await connect(env, { url: `ws://${env.proxy.doors[0]}/ws`, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      try {
        let resumed = 0;
        client.on("resumed", () => resumed++);
        // Downstream: the hello's answer, @Session@, then the authenticate reply: cut there.
        await env.proxy.arm([{ direction: "down", after: 3 }]);
        const auth = call(client, AuthenticateRequestSchema, { userId: account(env, "pipelined"), token: "t" }, AuthenticateReplySchema, {
          authenticate: true,
        });
        const probes = range(100, 104).map((id) =>
          call(client, ResumeProbeRequestSchema, { id, delayMs: 0 }, ResumeProbeReplySchema, { timeoutMs: 10_000 }).then((r) => r.id),
        );
        ok((await auth).success, "the authenticate reply, replayed after the resume");
        equal(await Promise.all(probes), range(100, 104), "the pipelined requests' replies");
        const history = await call(client, ResumeProbeHistoryRequestSchema, {}, ResumeProbeHistoryReplySchema);
        equal(history.handledIds, range(100, 104), "each handled once");
        equal([resumed, (await env.proxy.stats()).armed], [1, 0], "one cut, one resume");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "acks: 1,500 pushes in bursts of 500 (more than the server keeps unacknowledged) and a cut: the session still resumes",
    async run(env) {
      const { client } = await login(env, "acks", { url: `ws://${env.proxy.doors[0]}/ws`, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      try {
        let count = 0;
        let last = 0;
        let ordered = true;
        onMessage(client, BroadcastNotifySchema, (m) => {
          ordered &&= m.sequence === last + 1;
          last = m.sequence;
          count++;
        });
        // Three bursts of 500: the server keeps at most 1,024 frames unacknowledged, so only a
        // client that acknowledges keeps its session. (One burst of more than 1,024 frames fills
        // the server's outbound queue for the client, which it closes as a slow consumer,
        // whatever the client does.)
        for (let round = 1; round <= 3; round++) {
          equal((await call(client, BroadcastTriggerSchema, { eventType: "acks", data: "", count: 500 }, BroadcastTriggerReplySchema)).pushed, 500, "pushed");
          await until(() => count >= 500 * round, 10_000, `${500 * round} pushes`);
          last = 0;
        }
        const resumed = client.once("resumed");
        const lost = client.once("lost");
        await env.proxy.cutAll();
        const outcome = await within(Promise.race([resumed.then(() => "resumed"), lost.then((l) => `lost: ${l.reason}`)]), 10_000, "the resume");
        equal(outcome, "resumed", "after 1,500 pushes the session");
        equal([count, ordered], [1500, true], "each push once, in order");
        equal((await call(client, EchoRequestSchema, { content: "still", sequence: 1 }, EchoReplySchema)).content, "still", "echo");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "moved: @Move@ mid-stream, the session resumes at the new endpoint, and later resumes go there",
    async run(env) {
      const [, from, to] = env.proxy.doors;
      const { client } = await login(env, "move", { url: `ws://${from}/ws`, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      try {
        const seen: number[] = [];
        onMessage(client, BroadcastNotifySchema, (m) => seen.push(m.sequence));
        const moved = client.once("moved");
        const trigger = call(client, BroadcastTriggerSchema, { eventType: "move", data: "x", count: 100 }, BroadcastTriggerReplySchema, {
          timeoutMs: 20_000,
        });
        await until(() => seen.length >= 5, 5000, "the first pushes");
        await env.proxy.moveAll(2);
        const notice = await within(moved, 10_000, "the moved event");
        equal(notice.endpoint, to, "moved to");
        ok(client.url.includes(to), `the client's url follows the stage (${client.url})`);
        equal((await trigger).pushed, 100, "the trigger's reply");
        await until(() => seen.length >= 100, 10_000, "100 pushes");
        equal(seen, range(1, 100), "pushes across the move: each once, in order");
        // The old endpoint is gone; a later drop must resume at the new one.
        await env.proxy.shut(1);
        const accepted = (await env.proxy.stats()).accepted[2];
        const resumed = client.once("resumed");
        await env.proxy.cutAll();
        await within(resumed, 10_000, "a resume after the move");
        equal((await env.proxy.stats()).accepted[2], accepted + 1, "the later resume went to the new endpoint");
        equal((await call(client, EchoRequestSchema, { content: "there", sequence: 1 }, EchoReplySchema)).content, "there", "echo");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "moved while away: a resume answered by @Move@ is followed to the new endpoint",
    async run(env) {
      const [door, , , target] = env.proxy.doors;
      const { client } = await login(env, "away", { url: `ws://${door}/ws`, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      try {
        const moved = client.once("moved");
        await env.proxy.moveNextConnection(0, 3);
        await env.proxy.cutAll();
        equal((await within(moved, 10_000, "the moved event")).endpoint, target, "moved to");
        equal((await call(client, EchoRequestSchema, { content: "away", sequence: 2 }, EchoReplySchema)).content, "away", "echo");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "@Close@ ends the client with its code, without a resume",
    async run(env) {
      const { client } = await login(env, "close", { url: `ws://${env.proxy.doors[0]}/ws` });
      let reconnecting = 0;
      client.on("reconnecting", () => reconnecting++);
      const closed = client.once("closed");
      const pending = call(client, NoResponseRequestSchema, { delayMs: 0 }, EchoReplySchema);
      await env.proxy.closeAll(ErrorCode.StageDrained);
      equal((await within(closed, 5000, "closed")).code, ErrorCode.StageDrained, "the close code");
      await rejectsWith(pending, ErrorCode.StageDrained, "a pending request");
      equal(reconnecting, 0, "no resume after @Close@");
    },
  },
  {
    name: "lost: a session the server no longer has ends with `lost` and pending requests fail with 23",
    async run(env) {
      const { client, user } = await login(env, "lost", { url: `ws://${env.proxy.doors[0]}/ws`, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      const lost = client.once("lost");
      const pending = call(client, NoResponseRequestSchema, { delayMs: 0 }, EchoReplySchema);
      // The same account logs in again on the same stage from another connection: the server
      // re-attaches the player there, and the old session is gone.
      const other = await connect(env);
      try {
        await env.proxy.freezeAll();
        await call(other, AuthenticateRequestSchema, { userId: user, token: "t" }, AuthenticateReplySchema, {
          authenticate: true,
          stageId: client.stageId,
        });
        await env.proxy.cutAll();
        equal((await within(lost, 10_000, "the lost event")).code, ErrorCode.SessionLost, "the server's answer to the resume");
        await rejectsWith(pending, ErrorCode.SessionLost, "a request pending when the session was lost");
        ok(client.closed, "the client is closed");
      } finally {
        other.close();
        client.close();
      }
    },
  },
];

