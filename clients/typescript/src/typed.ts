/**
 * Typed messages generated from `.proto` files by protobuf-es (`@bufbuild/protobuf`): the msg
 * id on the wire is the message's short type name, as the server's prost messages use.
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { Packet, PlayHouseClient } from "./client.js";

/**
 * Sends a typed request (`authenticate: true` for the login) and decodes its typed reply; a
 * failure rejects with PlayHouseError.
 */
export async function call<Req extends DescMessage, Rep extends DescMessage>(
  client: PlayHouseClient,
  request: Req,
  init: MessageInitShape<Req>,
  reply: Rep,
  options: { timeoutMs?: number; authenticate?: boolean; stageId?: bigint | number } = {},
): Promise<MessageShape<Rep>> {
  const payload = toBinary(request, create(request, init));
  const packet = options.authenticate
    ? await client.authenticate(payload, { msgId: request.name, timeoutMs: options.timeoutMs, stageId: options.stageId })
    : await client.request(request.name, payload, { timeoutMs: options.timeoutMs });
  if (packet.msgId !== reply.name) {
    throw new Error(`expected ${reply.name}, got ${packet.msgId}`);
  }
  return fromBinary(reply, packet.payload);
}

/** Sends a typed one-way message. */
export function sendMessage<M extends DescMessage>(client: PlayHouseClient, schema: M, init: MessageInitShape<M>): void {
  client.send(schema.name, toBinary(schema, create(schema, init)));
}

/** Calls `handler` with every push of this type, decoded; returns a function that removes it. */
export function onMessage<M extends DescMessage>(
  client: PlayHouseClient,
  schema: M,
  handler: (message: MessageShape<M>, packet: Packet) => void,
): () => void {
  return client.onPush(schema.name, (packet) => handler(fromBinary(schema, packet.payload), packet));
}

/** Decodes a packet's payload as `schema`. */
export function decodePush<M extends DescMessage>(schema: M, packet: Packet): MessageShape<M> {
  return fromBinary(schema, packet.payload);
}
