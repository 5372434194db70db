/**
 * `@playhouse/client`: the TypeScript client of PlayHouse game servers, for browsers and
 * Node ≥ 20. See docs/clients.md in the repository.
 */
export { PlayHouseClient, type ClientEvents, type ClientOptions, type Packet } from "./client.js";
export { urlFor } from "./endpoint.js";
export { ErrorCode, errorCodeName, PlayHouseError, ProtocolError } from "./errors.js";
export { encodeFrame, FrameDecoder, isControl, type ServerFrame } from "./frame.js";
export type { WebSocketFactory, WebSocketLike } from "./link.js";
export { lz4DecodeBlock } from "./lz4.js";
export { Backoff, Capability, type ReconnectOptions, type SessionGrant } from "./session.js";
export { call, decodePush, onMessage, sendMessage } from "./typed.js";
