/**
 * The suite's scenarios against `verification --serve` (play-1), shared by the Node runner
 * (test/node/) and the browser page (test/browser/): the same code, only the environment (how
 * WebSockets are made, how the cutting proxy is driven) differs.
 */
import { call, Capability, ErrorCode, onMessage, sendMessage, type ServerFrame } from "../src/index.js";
import { equal, ok, rejectsWith, until, within } from "./check.js";
import {
  AuthenticateReplySchema,
  AuthenticateRequestSchema,
  BroadcastNotifySchema,
  BroadcastTriggerReplySchema,
  BroadcastTriggerSchema,
  EchoReplySchema,
  EchoRequestSchema,
  FailRequestSchema,
  GameLoopStoppedNotifySchema,
  GameLoopTickNotifySchema,
  GetAccountIdReplySchema,
  GetAccountIdRequestSchema,
  LeaveStageReplySchema,
  LeaveStageRequestSchema,
  NoResponseRequestSchema,
  StageStateReplySchema,
  StageStateRequestSchema,
  StartCountTimerRequestSchema,
  StartGameLoopReplySchema,
  StartGameLoopRequestSchema,
  StartTimerReplySchema,
  TimerTickNotifySchema,
  UnhandledRequestSchema,
} from "./gen/test_messages_pb.js";
import { account, connect, login, type Env, type Scenario } from "./env.js";
import { scenariosOfDrain } from "./drain_scenarios.js";
import { scenariosOfResume } from "./resume_scenarios.js";

async function basics(env: Env, url: string): Promise<void> {
  const client = await connect(env, { url });
  try {
    ok(client.has(Capability.LZ4) && client.has(Capability.RESUME), `hello granted LZ4 and RESUME (got ${client.granted})`);
    await rejectsWith(client.request("EchoRequest"), ErrorCode.Unauthenticated, "a request before authenticating");
    const user = account(env, "basics");
    const auth = await call(client, AuthenticateRequestSchema, { userId: user, token: "tok" }, AuthenticateReplySchema, {
      authenticate: true,
    });
    equal(auth.accountId, user, "authenticate reply account id");
    ok(client.stageId !== 0n, "the client adopted the stage the server created");
    const echo = await call(client, EchoRequestSchema, { content: "héllo ✓", sequence: 7 }, EchoReplySchema);
    equal([echo.content, echo.sequence], ["héllo ✓", 7], "echo");
    const many = await Promise.all(
      Array.from({ length: 100 }, (_, i) => call(client, EchoRequestSchema, { content: `p${i}`, sequence: i }, EchoReplySchema)),
    );
    ok(many.every((reply, i) => reply.content === `p${i}` && reply.sequence === i), "100 pipelined requests matched by sequence");
  } finally {
    client.close();
  }
}

export const scenarios: Scenario[] = [
  { name: "ws: hello, authenticate, typed request/reply, 100 pipelined", run: (env) => basics(env, env.ws) },
  { name: "wss: hello, authenticate, typed request/reply, 100 pipelined", run: (env) => basics(env, env.wss) },
  {
    name: "authentication refused with the wire code, then accepted on the same connection",
    async run(env) {
      const client = await connect(env);
      try {
        const refused = await rejectsWith(
          call(client, AuthenticateRequestSchema, { userId: "fail-ts", token: "t" }, AuthenticateReplySchema, { authenticate: true }),
          ErrorCode.AuthenticationFailed,
          "a refused login",
        );
        ok(refused.code === 5, "code 5");
        await rejectsWith(
          call(client, AuthenticateRequestSchema, { userId: "", token: "t" }, AuthenticateReplySchema, { authenticate: true }),
          ErrorCode.InvalidAccountId,
          "a login without an account id",
        );
        const user = account(env, "retry");
        const auth = await call(client, AuthenticateRequestSchema, { userId: user, token: "t" }, AuthenticateReplySchema, { authenticate: true });
        equal(auth.accountId, user, "the retried login");
        await rejectsWith(
          call(client, AuthenticateRequestSchema, { userId: user, token: "t" }, AuthenticateReplySchema, { authenticate: true }),
          ErrorCode.AlreadyAuthenticated,
          "a second login",
        );
      } finally {
        client.close();
      }
    },
  },
  {
    name: "error codes: the game's code, HandlerNotFound, a client-side timeout, then the connection still works",
    async run(env) {
      const { client } = await login(env, "errors");
      try {
        const failed = await rejectsWith(call(client, FailRequestSchema, { errorCode: 4321 }, EchoReplySchema), 4321, "FailRequest");
        ok((failed as unknown as { msgId: string }).msgId.length > 0, "the failure frame's msg id is kept");
        await rejectsWith(call(client, UnhandledRequestSchema, { note: "x" }, EchoReplySchema), ErrorCode.HandlerNotFound, "an unhandled request");
        await rejectsWith(
          call(client, NoResponseRequestSchema, { delayMs: 0 }, EchoReplySchema, { timeoutMs: 300 }),
          ErrorCode.ClientRequestTimeout,
          "a request never answered",
        );
        const echo = await call(client, EchoRequestSchema, { content: "after", sequence: 1 }, EchoReplySchema);
        equal(echo.content, "after", "a request after the timeout");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "one-way send and push handlers: pushes arrive in order, a removed handler gets nothing",
    async run(env) {
      const { client } = await login(env, "push");
      try {
        const echoed: string[] = [];
        onMessage(client, EchoReplySchema, (m) => echoed.push(m.content));
        sendMessage(client, EchoRequestSchema, { content: "one-way", sequence: 1 });
        await until(() => echoed.length === 1, 5000, "the pushed EchoReply");
        equal(echoed, ["one-way"], "one-way send answered by a push");
        const seen: number[] = [];
        const removed: number[] = [];
        onMessage(client, BroadcastNotifySchema, (m) => seen.push(m.sequence));
        const off = onMessage(client, BroadcastNotifySchema, (m) => removed.push(m.sequence));
        off();
        const reply = await call(client, BroadcastTriggerSchema, { eventType: "e", data: "d", count: 20 }, BroadcastTriggerReplySchema);
        equal(reply.pushed, 20, "pushed");
        await until(() => seen.length === 20, 5000, "20 pushes");
        equal(seen, Array.from({ length: 20 }, (_, i) => i + 1), "pushes in order");
        equal(removed, [], "a removed handler");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "timers and the game loop push to the client",
    async run(env) {
      const { client } = await login(env, "timers");
      try {
        const ticks: number[] = [];
        onMessage(client, TimerTickNotifySchema, (m) => ticks.push(m.tick));
        await call(client, StartCountTimerRequestSchema, { initialDelayMs: 10, periodMs: 10, count: 3 }, StartTimerReplySchema);
        await until(() => ticks.length === 3, 5000, "3 timer ticks");
        equal(ticks, [1, 2, 3], "count timer ticks");
        const steps: bigint[] = [];
        let stopped = 0n;
        onMessage(client, GameLoopTickNotifySchema, (m) => steps.push(m.tick));
        onMessage(client, GameLoopStoppedNotifySchema, (m) => (stopped = m.ticks));
        const started = await call(client, StartGameLoopRequestSchema, { timestepMs: 10, maxTicks: 5 }, StartGameLoopReplySchema);
        ok(started.started, "the game loop started");
        await until(() => stopped === 5n, 5000, "the loop's stop notice");
        equal(steps, [1n, 2n, 3n, 4n, 5n], "game loop steps");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "LZ4: large payloads arrive compressed and decode exactly; without LZ4 they arrive plain",
    async run(env) {
      const content = Array.from({ length: 2000 }, (_, i) => `line ${i % 50} of a compressible payload;`).join("\n");
      for (const lz4 of [true, false]) {
        const { client } = await login(env, `lz4-${lz4}`, { lz4 });
        try {
          const frames: ServerFrame[] = [];
          client.on("frame", (f) => frames.push(f));
          const echo = await call(client, EchoRequestSchema, { content, sequence: 3 }, EchoReplySchema);
          equal(echo.content === content, true, `the echoed ${content.length} characters (lz4 ${lz4})`);
          const reply = frames.find((f) => f.msgId === "EchoReply")!;
          if (lz4) {
            ok(client.has(Capability.LZ4), "LZ4 granted");
            ok(reply.compressedSize !== undefined && reply.compressedSize < reply.payload.length / 2,
              `the reply came compressed (${reply.compressedSize} of ${reply.payload.length} bytes)`);
          } else {
            ok(!client.has(Capability.LZ4), "LZ4 not asked, not granted");
            equal(reply.compressedSize, undefined, "the reply came plain");
          }
        } finally {
          client.close();
        }
      }
    },
  },
  {
    name: "stage type in the hello: join-or-create by type; an unknown type is refused with 13",
    async run(env) {
      const { client } = await login(env, "typed-stage", { stageType: "TestStage" });
      try {
        const state = await call(client, StageStateRequestSchema, {}, StageStateReplySchema);
        equal(state.stageType, "TestStage", "the stage's type");
      } finally {
        client.close();
      }
      const other = await connect(env, { stageType: "NoSuchStage" });
      try {
        await rejectsWith(
          call(other, AuthenticateRequestSchema, { userId: account(env, "nostage"), token: "t" }, AuthenticateReplySchema, { authenticate: true }),
          ErrorCode.InvalidStageType,
          "a login to an unknown stage type",
        );
      } finally {
        other.close();
      }
    },
  },
  {
    name: "after leaving the stage a request gets 6 NotAuthenticated; close() fails what is pending with 60201",
    async run(env) {
      const { client, user } = await login(env, "leave");
      const id = await call(client, GetAccountIdRequestSchema, {}, GetAccountIdReplySchema);
      equal(id.accountId, user, "account id");
      const left = await call(client, LeaveStageRequestSchema, {}, LeaveStageReplySchema);
      ok(left.success, "left");
      await rejectsWith(call(client, GetAccountIdRequestSchema, {}, GetAccountIdReplySchema), ErrorCode.NotAuthenticated, "after leaving");
      const pending = call(client, NoResponseRequestSchema, { delayMs: 0 }, EchoReplySchema);
      const closed = client.once("closed");
      client.close();
      await rejectsWith(pending, ErrorCode.Disconnected, "a request pending at close()");
      equal((await closed).code, 0, "closed by the application");
    },
  },
  {
    name: "heartbeats are echoed; a silent connection is detected and the session resumes",
    async run(env) {
      const { client } = await login(env, "idle", { url: `ws://${env.proxy.doors[0]}/ws`, heartbeatIntervalMs: 100, idleTimeoutMs: 800 });
      try {
        let beats = 0;
        client.on("frame", (f) => (f.msgId === "@Heart@Beat@" ? beats++ : 0));
        await until(() => beats >= 3, 5000, "3 heartbeat echoes");
        const resumed = client.once("resumed");
        await env.proxy.freezeAll();
        await within(resumed, 10_000, "a resume after the connection went silent");
        const echo = await call(client, EchoRequestSchema, { content: "alive", sequence: 1 }, EchoReplySchema);
        equal(echo.content, "alive", "a request after the idle resume");
      } finally {
        client.close();
      }
    },
  },
  {
    name: "without a session a drop closes the client with 60201 Disconnected",
    async run(env) {
      const { client } = await login(env, "nosession", { url: `ws://${env.proxy.doors[0]}/ws`, resume: false });
      ok(!client.has(Capability.RESUME), "no session asked");
      const closed = client.once("closed");
      let reconnecting = 0;
      client.on("reconnecting", () => reconnecting++);
      await env.proxy.cutAll();
      equal((await within(closed, 5000, "closed")).code, ErrorCode.Disconnected, "closed code");
      equal(reconnecting, 0, "no resume without a session");
    },
  },
  ...scenariosOfResume,
  ...scenariosOfDrain,
];

