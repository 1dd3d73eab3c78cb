// Wire constants of the PostgreSQL frontend/backend protocol 3.0, named once with their on-wire
// value. Spec: https://www.postgresql.org/docs/current/protocol-message-formats.html

/** Type bytes of messages a client (frontend) sends after the startup phase. */
export const FrontendCode = {
  Bind: 0x42, // 'B'
  Close: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  Describe: 0x44, // 'D'
  Execute: 0x45, // 'E'
  Flush: 0x48, // 'H'
  FunctionCall: 0x46, // 'F'
  Parse: 0x50, // 'P'
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share 'p'. */
  Password: 0x70, // 'p'
  Query: 0x51, // 'Q'
  Sync: 0x53, // 'S'
  Terminate: 0x58, // 'X'
} as const;
export type FrontendCode = (typeof FrontendCode)[keyof typeof FrontendCode];

/** Type bytes of messages a server (backend) sends. */
export const BackendCode = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  CopyBothResponse: 0x57, // 'W'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  FunctionCallResponse: 0x56, // 'V'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const;
export type BackendCode = (typeof BackendCode)[keyof typeof BackendCode];

/** The int32 "protocol version" of the untyped first messages (§55.2.1, §55.2.10–12). */
export const StartupCode = {
  /** Protocol 3.0: major 3 in the high 16 bits, minor 0. */
  ProtocolV3: 196608,
  CancelRequest: 80877102,
  SSLRequest: 80877103,
  GSSENCRequest: 80877104,
} as const;

/** Subcodes of AuthenticationRequest ('R'). */
export const AuthCode = {
  Ok: 0,
  CleartextPassword: 3,
  MD5Password: 5,
  SASL: 10,
  SASLContinue: 11,
  SASLFinal: 12,
} as const;
export type AuthCode = (typeof AuthCode)[keyof typeof AuthCode];

/** Transaction status byte of ReadyForQuery. */
export const TransactionStatus = {
  Idle: 'I',
  InBlock: 'T',
  Failed: 'E',
} as const;
export type TransactionStatus = (typeof TransactionStatus)[keyof typeof TransactionStatus];

/** Field type bytes of ErrorResponse / NoticeResponse (§55.8). */
export const ErrorField = {
  Severity: 0x53, // 'S' (localized)
  SeverityNonLocalized: 0x56, // 'V'
  Code: 0x43, // 'C' SQLSTATE
  Message: 0x4d, // 'M'
  Detail: 0x44, // 'D'
  Hint: 0x48, // 'H'
  Position: 0x50, // 'P'
  InternalPosition: 0x70, // 'p'
  InternalQuery: 0x71, // 'q'
  Where: 0x57, // 'W'
  Schema: 0x73, // 's'
  Table: 0x74, // 't'
  Column: 0x63, // 'c'
  DataType: 0x64, // 'd'
  Constraint: 0x6e, // 'n'
  File: 0x46, // 'F'
  Line: 0x4c, // 'L'
  Routine: 0x52, // 'R'
} as const;

/** SQLSTATE codes Warden itself raises (Appendix A). */
export const SqlState = {
  InsufficientPrivilege: '42501',
  InvalidAuthorizationSpecification: '28000',
  InvalidPassword: '28P01',
  ProtocolViolation: '08P01',
  ConnectionFailure: '08006',
  ConnectionRejected: '08004',
  FeatureNotSupported: '0A000',
  AdminShutdown: '57P01',
  IdleSessionTimeout: '57P05',
  QueryCanceled: '57014',
  InternalError: 'XX000',
} as const;
export type SqlState = (typeof SqlState)[keyof typeof SqlState];

/** Severity words; the non-localized form is what clients match on. */
export const Severity = {
  Error: 'ERROR',
  Fatal: 'FATAL',
  Notice: 'NOTICE',
  Warning: 'WARNING',
} as const;
export type Severity = (typeof Severity)[keyof typeof Severity];

/** Result column format codes. */
export const FormatCode = { Text: 0, Binary: 1 } as const;

/**
 * Largest message Warden accepts from a client. PostgreSQL itself caps most messages at 1 GB
 * (PQ_LARGE_MESSAGE_LIMIT) and the startup packet at 10 000 bytes (MAX_STARTUP_PACKET_LENGTH);
 * a gateway that buffers whole messages needs a smaller bound, configurable per gateway.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
export const MAX_STARTUP_PACKET_BYTES = 10_000;
