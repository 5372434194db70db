/**
 * Wire error codes (docs/wire-protocol.md, "Error codes") and the errors the client raises.
 */

/** The error codes a server sends in a reply's `error_code`, plus the client's own. */
export const ErrorCode = {
  Success: 0,
  RequestTimeout: 1,
  ServerNotFound: 2,
  StageNotFound: 3,
  ActorNotFound: 4,
  AuthenticationFailed: 5,
  NotAuthenticated: 6,
  AlreadyAuthenticated: 7,
  StageAlreadyExists: 8,
  StageCreationFailed: 9,
  JoinStageFailed: 10,
  InvalidMessage: 11,
  HandlerNotFound: 12,
  InvalidStageType: 13,
  SystemError: 14,
  UncheckedContentsError: 15,
  InvalidAccountId: 16,
  JoinStageRejected: 17,
  StageBusy: 18,
  PacketTooLarge: 20,
  StageLimitReached: 21,
  StageCreationRateExceeded: 22,
  SessionLost: 23,
  ServerDraining: 24,
  StageDrained: 25,
  StageMoved: 26,
  InternalError: 99,
  /** Client only: the connection closed (or was never open) while the request was pending. */
  Disconnected: 60201,
  /** Client only: no reply within the request timeout. */
  ClientRequestTimeout: 60202,
  /** Client only: the request needs an authenticated connection. */
  Unauthenticated: 60203,
} as const;

/** The name of a known code, or `"Code<N>"` (game codes from 1000). */
export function errorCodeName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCode)) {
    if (value === code) return name;
  }
  return `Code${code}`;
}

/**
 * A request that failed: the server answered with a non-zero error code, or the client gave up
 * (timeout, disconnection). `code` is the wire code; `msgId`/`payload` are what the failure
 * frame carried (empty unless the game attached a packet).
 */
export class PlayHouseError extends Error {
  readonly code: number;
  readonly msgId: string;
  readonly payload: Uint8Array;

  constructor(code: number, message?: string, msgId = "", payload: Uint8Array = new Uint8Array()) {
    super(message ?? `${errorCodeName(code)} (${code})${msgId ? ` for ${msgId}` : ""}`);
    this.name = "PlayHouseError";
    this.code = code;
    this.msgId = msgId;
    this.payload = payload;
  }
}

/** The peer broke the wire protocol (a malformed frame, a bad LZ4 block). */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}
