/** Why the bytes a peer sent are not a valid protocol message; each a stable code. */
export const ProtocolErrorCode = {
  /** A length field promises more than the configured maximum. */
  MessageTooLarge: 'WARDEN_PG_MESSAGE_TOO_LARGE',
  /** A length field is smaller than the header it must cover. */
  InvalidLength: 'WARDEN_PG_INVALID_LENGTH',
  /** A type byte no protocol message uses in this direction. */
  UnknownMessageType: 'WARDEN_PG_UNKNOWN_MESSAGE_TYPE',
  /** The body does not match the message's layout (short, unterminated string, trailing bytes). */
  Malformed: 'WARDEN_PG_MALFORMED_MESSAGE',
  /** An untyped first message with an unknown protocol version or request code. */
  UnsupportedStartup: 'WARDEN_PG_UNSUPPORTED_STARTUP',
} as const;
export type ProtocolErrorCode = (typeof ProtocolErrorCode)[keyof typeof ProtocolErrorCode];

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  constructor(code: ProtocolErrorCode, message: string) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}
