/**
 * Resuming a session after its connection dropped (docs/wire-protocol.md, "Resumable
 * sessions"): dial again with back-off and jitter within the session's window — at the new
 * endpoint after a `@Move@` — say hello with `RESUME`, send `@Resume@` with the token and the
 * count received, then send again what the server did not receive. The server's replay follows
 * its answer on the same connection, so nothing is lost and nothing repeats.
 */
import type { PlayHouseClient } from "./client.js";
import { moveEndpoint, urlFor } from "./endpoint.js";
import { encodeFrame, HELLO, isControl, MOVE, RESUME, type ServerFrame } from "./frame.js";
import { Link } from "./link.js";
import { Backoff, Capability, helloPayload, readCount, resumePayload } from "./session.js";

type Attempt = { kind: "resumed" } | { kind: "lost"; reason: string; code?: number } | { kind: "moved"; endpoint: string } | { kind: "failed" };

/** Resumes `client`'s session; `moving` is where a `@Move@` said the stage went. */
export async function resumeSession(client: PlayHouseClient, moving?: string): Promise<void> {
  const session = client.session!;
  let moved: string | undefined;
  if (moving) {
    client.url = urlFor(client.url, moving);
    moved = moving;
  }
  client.announce("reconnecting");
  const reconnect = client.options.reconnect ?? {};
  const backoff = new Backoff(reconnect.initialDelayMs ?? 100, reconnect.maxDelayMs ?? 5_000, client.options.random);
  const giveUp = Date.now() + session.grant.windowMs;
  for (;;) {
    if (client.userClosed || client.state === "closed") return;
    const left = giveUp - Date.now();
    if (left <= 0) {
      client.lose("the resume window passed");
      return;
    }
    const attempt = await tryOnce(client, Math.min(left, client.attemptTimeoutMs), moved);
    if (attempt.kind === "resumed") return;
    if (attempt.kind === "lost") {
      client.lose(attempt.reason, attempt.code);
      return;
    }
    if (attempt.kind === "moved") {
      // The stage moved while we were away: resume there, at once.
      client.url = urlFor(client.url, attempt.endpoint);
      moved = attempt.endpoint;
      continue;
    }
    const wait = Math.min(backoff.nextDelay(), Math.max(0, giveUp - Date.now()));
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

function tryOnce(client: PlayHouseClient, timeoutMs: number, moved: string | undefined): Promise<Attempt> {
  const started = Date.now();
  return Link.open(client.factory, client.url, client.maxPacketSize, timeoutMs).then(
    (link) =>
      new Promise<Attempt>((resolve) => {
        if (client.userClosed || client.state === "closed") {
          link.close();
          resolve({ kind: "failed" });
          return;
        }
        const timer = setTimeout(() => link.close(), Math.max(1, timeoutMs - (Date.now() - started)));
        let answered = false;
        link.onEnd = () => {
          clearTimeout(timer);
          if (!answered) resolve({ kind: "failed" });
        };
        link.onFrame = (frame: ServerFrame) => {
          if (frame.msgId === MOVE) {
            const endpoint = moveEndpoint(frame.payload);
            if (endpoint) {
              answered = true;
              clearTimeout(timer);
              link.close();
              resolve({ kind: "moved", endpoint });
            }
            return;
          }
          if (frame.msgId !== RESUME || frame.seq !== 1) {
            if (isControl(frame.msgId)) return; // a heartbeat echo, say
            answered = true;
            link.close();
            resolve({ kind: "failed" }); // a data frame before the answer
            return;
          }
          answered = true;
          clearTimeout(timer);
          if (frame.errorCode !== 0) {
            link.close();
            resolve({ kind: "lost", reason: `the server cannot resume the session (${frame.errorCode})`, code: frame.errorCode });
            return;
          }
          const count = readCount(frame.payload);
          const session = client.session!;
          if (count === undefined || !session.acknowledge(count)) {
            link.close();
            resolve({ kind: "lost", reason: `the server's count ${count} is impossible` });
            return;
          }
          // From here the connection is the client's: the replay that follows this answer goes
          // through the ordinary handler, synchronously, in order.
          client.adopt(link);
          const resend = [...session.unacked];
          for (const bytes of resend) link.send(bytes);
          client.announce("resumed", resend.length);
          if (moved) client.announceMoved(moved);
          resolve({ kind: "resumed" });
        };
        const bits = Capability.RESUME | (client.options.lz4 === false ? 0 : Capability.LZ4);
        link.send(encodeFrame(HELLO, 0, 0n, helloPayload(bits, client.options.stageType)));
        link.send(encodeFrame(RESUME, 1, 0n, resumePayload(client.session!.grant.token, client.session!.received)));
      }),
    () => ({ kind: "failed" }) as Attempt,
  );
}
