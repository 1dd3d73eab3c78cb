// The event model shared by every gateway (docs/recording-format.md, "Events"). One JSON object
// per event, `t` = whole milliseconds since the session started, `k` = kind. Kinds are named once
// here with their on-wire value; adding a kind is a compatible change, so readers must pass
// through kinds they do not know.

import { isUtf8 } from 'node:buffer';
import { RecorderError, RecorderErrorCode } from './errors.ts';

export const EventKind = {
  SessionStart: 'session.start',
  Auth: 'auth',
  SqlQuery: 'sql.query',
  SqlResult: 'sql.result',
  TermStdin: 'term.stdin',
  TermStdout: 'term.stdout',
  TermStderr: 'term.stderr',
  TermResize: 'term.resize',
  Exec: 'exec',
  HttpRequest: 'http.request',
  HttpResponse: 'http.response',
  K8sExec: 'k8s.exec',
  /** Exit status or signal of an SSH exec/shell channel. */
  Exit: 'exit',
  /** A command line typed at an interactive SSH prompt (best-effort detection): the command index. */
  Command: 'command',
  /** An SFTP file operation. */
  Sftp: 'sftp',
  /** A forwarded TCP connection (ssh -L / -R), written when it closes. */
  Forward: 'forward',
  /** A data message of a plain WebSocket relayed by the HTTP gateway. */
  WsMessage: 'ws.message',
  Deny: 'deny',
  Approval: 'approval',
  Error: 'error',
  SessionEnd: 'session.end',
} as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

export const Protocol = {
  Postgres: 'postgres',
  Ssh: 'ssh',
  Kubernetes: 'kubernetes',
  Http: 'http',
} as const;
export type Protocol = (typeof Protocol)[keyof typeof Protocol];

/** What policy decided for a command. */
export const Decision = {
  Allow: 'allow',
  Deny: 'deny',
  RequireApproval: 'approval',
} as const;
export type Decision = (typeof Decision)[keyof typeof Decision];

export const ApprovalState = {
  Pending: 'pending',
  Approved: 'approved',
  Denied: 'denied',
  Expired: 'expired',
  /** The requester gave up (cancelled the statement, disconnected) before a decision. */
  Withdrawn: 'withdrawn',
} as const;
export type ApprovalState = (typeof ApprovalState)[keyof typeof ApprovalState];

/**
 * Kubernetes remote-command stream channels: the first byte of each frame of the
 * `v4.channel.k8s.io` / `v5.channel.k8s.io` subprotocols (k8s.io/apimachinery/pkg/util/remotecommand).
 */
export const K8sExecChannel = {
  Stdin: 0,
  Stdout: 1,
  Stderr: 2,
  Error: 3,
  Resize: 4,
  Close: 255,
} as const;
export type K8sExecChannel = (typeof K8sExecChannel)[keyof typeof K8sExecChannel];

/**
 * Bytes or text, capped by policy. Exactly one of `text` (the bytes were valid UTF-8 and are stored
 * as that string) or `b64` (standard base64 with padding, RFC 4648 §4). When the original was
 * longer than the cap, `truncated` is true and `size` is the original length in bytes; the stored
 * value is a prefix of the original bytes. `payloadBytes` gives the bytes back exactly.
 */
export type Payload = ({ text: string; b64?: never } | { b64: string; text?: never }) & {
  truncated?: true;
  size?: number;
};

/** Which way a forwarded connection goes: `local` = ssh -L (direct-tcpip), `remote` = ssh -R (tcpip-forward). */
export const ForwardDirection = {
  Local: 'local',
  Remote: 'remote',
} as const;
export type ForwardDirection = (typeof ForwardDirection)[keyof typeof ForwardDirection];

/** Which way a relayed message went. */
export const MessageDirection = {
  ToTarget: 'to-target',
  ToClient: 'to-client',
} as const;
export type MessageDirection = (typeof MessageDirection)[keyof typeof MessageDirection];

/** WebSocket data-frame opcodes (RFC 6455 §5.2) as recorded: the opcode of the message's first frame. */
export const WsMessageOpcode = {
  Text: 1,
  Binary: 2,
} as const;
export type WsMessageOpcode = (typeof WsMessageOpcode)[keyof typeof WsMessageOpcode];

interface EventBase<K extends EventKind> {
  /** Milliseconds since the session started (a non-negative safe integer). */
  t: number;
  k: K;
}

export interface SessionStartEvent extends EventBase<typeof EventKind.SessionStart> {
  protocol: Protocol;
  /** `namespace/name` of the Connection. */
  connection: string;
  /** Wall-clock time of t = 0, RFC 3339 UTC with milliseconds. */
  startedAt: string;
  client?: { addr: string; app?: string };
  /** Target as the gateway sees it (host:port, cluster URL), never credentials. */
  target?: string;
}

export interface AuthEvent extends EventBase<typeof EventKind.Auth> {
  ok: boolean;
  /** How the client authenticated, e.g. `oidc`. */
  method: string;
  user?: string;
  groups?: string[];
  /** Why authentication failed, or which AccessPolicy admitted the subject. */
  reason?: string;
}

export interface SqlQueryEvent extends EventBase<typeof EventKind.SqlQuery> {
  /** Pairs the query with its `sql.result` / `error` events. */
  id?: number;
  text: Payload;
  /** Bind parameters in text form; null for SQL NULL. */
  params?: Array<Payload | null>;
  /** Statement class from the SQL classifier, e.g. `select`, `dml`, `ddl`. */
  class?: string;
  decision: Decision;
  /** The rule that decided, `<policy>/<rule>`. */
  rule?: string;
}

export interface SqlResultEvent extends EventBase<typeof EventKind.SqlResult> {
  id?: number;
  columns: string[];
  /** Rows in text form, at most the policy's cap; see `capRows`. */
  rows: Array<Array<string | null>>;
  /** Rows the server returned in total, whether or not all are stored. */
  rowCount: number;
  /** Bytes of the DataRow messages sent to the client for this result, all rows (after masking). */
  bytes?: number;
  truncated?: true;
  /** The CommandComplete tag, e.g. `SELECT 3`. */
  tag?: string;
  masked?: boolean;
  /** Milliseconds from forwarding the query to the end of its result (fractional). */
  durationMs?: number;
}

export interface TerminalDataEvent
  extends EventBase<typeof EventKind.TermStdin | typeof EventKind.TermStdout | typeof EventKind.TermStderr> {
  /** SSH channel number when a session has more than one. */
  ch?: number;
  data: Payload;
  /** Output in which masking replaced at least one value (set on the first event of a masked piece). */
  masked?: true;
}

export interface TerminalResizeEvent extends EventBase<typeof EventKind.TermResize> {
  ch?: number;
  cols: number;
  rows: number;
}

export interface ExecEvent extends EventBase<typeof EventKind.Exec> {
  ch?: number;
  /** The command line (SSH exec request) or the argv joined for display (Kubernetes exec). */
  command: Payload;
  /** Kubernetes exec argv, exactly. */
  argv?: string[];
  /** `namespace/pod/container` for Kubernetes exec. */
  target?: string;
  decision: Decision;
  rule?: string;
}

export interface HttpRequestEvent extends EventBase<typeof EventKind.HttpRequest> {
  /** Pairs the request with its response and with `k8s.exec` frames. */
  id: number;
  method: string;
  /** Path and query as sent by the client. */
  url: string;
  headers?: Record<string, string | string[]>;
  body?: Payload;
  decision?: Decision;
  rule?: string;
  /** Kubernetes request attributes when the target is an API server. */
  k8s?: { verb: string; resource?: string; subresource?: string; namespace?: string; name?: string };
}

export interface HttpResponseEvent extends EventBase<typeof EventKind.HttpResponse> {
  id: number;
  status: number;
  headers?: Record<string, string | string[]>;
  body?: Payload;
  /** Masking replaced at least one value in the body. */
  masked?: true;
}

export interface K8sExecEvent extends EventBase<typeof EventKind.K8sExec> {
  /** The `http.request` id of the exec/attach upgrade. */
  id: number;
  ch: K8sExecChannel;
  data: Payload;
  /** Output in which masking replaced at least one value (stdout/stderr of a masked stream). */
  masked?: true;
}

export interface ExitEvent extends EventBase<typeof EventKind.Exit> {
  ch?: number;
  /** Exit status; absent when the process ended by a signal. */
  code?: number;
  /** The signal as the target named it (e.g. `SIGTERM`) when the process was killed. */
  signal?: string;
}

export interface CommandEvent extends EventBase<typeof EventKind.Command> {
  ch?: number;
  /** The line as the gateway's line-editor model reconstructed it. */
  command: string;
  /** The editor model could not follow every key (history, completion): the text may differ. */
  uncertain?: true;
  decision: Decision;
  rule?: string;
}

export interface SftpEvent extends EventBase<typeof EventKind.Sftp> {
  ch?: number;
  /** `read`, `write`, `readdir`, `remove`, `rename`, `mkdir`, `rmdir`, `setstat`, `symlink`, … */
  op: string;
  path: string;
  /** Second path of `rename` / `symlink`. */
  path2?: string;
  /** Bytes read or written. */
  bytes: number;
  /** SSH_FX_* status of the operation; 3 (permission denied) for requests policy refused. */
  status: number;
  decision: typeof Decision.Allow | typeof Decision.Deny;
}

export interface ForwardEvent extends EventBase<typeof EventKind.Forward> {
  direction: ForwardDirection;
  host: string;
  port: number;
  /** Client → target bytes. */
  bytesOut: number;
  /** Target → client bytes. */
  bytesIn: number;
  decision: typeof Decision.Allow | typeof Decision.Deny;
  reason?: string;
}

export interface WsMessageEvent extends EventBase<typeof EventKind.WsMessage> {
  /** The `http.request` id of the WebSocket upgrade. */
  id: number;
  direction: MessageDirection;
  opcode: WsMessageOpcode;
  /** The message bytes (WebSocket masking key removed), joined from its fragments, capped. */
  data: Payload;
}

export interface DenyEvent extends EventBase<typeof EventKind.Deny> {
  /** The user-facing reason, as the client was told. */
  reason: string;
  rule?: string;
  /** What was denied (statement, command, request line), capped. */
  what?: Payload;
}

export interface ApprovalEvent extends EventBase<typeof EventKind.Approval> {
  /** `namespace/name` of the AccessRequest. */
  request: string;
  state: ApprovalState;
  by?: string;
  reason?: string;
}

export interface ErrorEvent extends EventBase<typeof EventKind.Error> {
  /** SQLSTATE, SSH disconnect reason, HTTP status, or a Warden error code. */
  code?: string;
  message: string;
  /** The query/request id the error belongs to. */
  id?: number;
}

export interface SessionEndEvent extends EventBase<typeof EventKind.SessionEnd> {
  /** e.g. `client-closed`, `server-closed`, `revoked`, `max-duration`, `idle-timeout`, `error`. */
  reason: string;
}

export type RecordingEvent =
  | SessionStartEvent
  | AuthEvent
  | SqlQueryEvent
  | SqlResultEvent
  | TerminalDataEvent
  | TerminalResizeEvent
  | ExecEvent
  | HttpRequestEvent
  | HttpResponseEvent
  | K8sExecEvent
  | ExitEvent
  | CommandEvent
  | SftpEvent
  | ForwardEvent
  | WsMessageEvent
  | DenyEvent
  | ApprovalEvent
  | ErrorEvent
  | SessionEndEvent;

/** SSH_FX_* status codes 0–8 (draft-ietf-secsh-filexfer-02 §7), by index. */
const SFTP_STATUS = ['ok', 'eof', 'no such file', 'permission denied', 'failure', 'bad message', 'no connection', 'connection lost', 'unsupported'] as const;

/** An `sftp` event's status for people, e.g. `permission denied`; unknown codes as `status N`. */
export function sftpStatusText(status: number): string {
  return SFTP_STATUS[status] ?? `status ${status}`;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lenientUtf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * Caps `data` at `maxBytes` bytes. Bytes that are valid UTF-8 are stored as `text`, anything else
 * as `b64`, so `payloadBytes(capPayload(bytes, n))` is exactly `bytes` whenever it fits. Over the
 * cap, the stored value is a prefix of at most `maxBytes` bytes, cut on a UTF-8 character boundary
 * when the data is text. String input is measured in UTF-8 bytes; strings with unpaired surrogates
 * have no exact UTF-8 form, so pass the original bytes when exactness matters (terminal data).
 */
export function capPayload(data: Uint8Array | string, maxBytes: number): Payload {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RecorderError(
      RecorderErrorCode.OptionInvalid,
      `capPayload: maxBytes must be a non-negative integer, got ${maxBytes}`,
    );
  }
  if (typeof data === 'string') {
    const size = Buffer.byteLength(data, 'utf8');
    if (size <= maxBytes) return { text: data };
    const bytes = Buffer.from(data, 'utf8');
    return { text: bytes.subarray(0, utf8Boundary(bytes, maxBytes)).toString('utf8'), truncated: true, size };
  }
  const size = data.length;
  if (size <= maxBytes) {
    const text = decodeStrictUtf8(data);
    return text === undefined ? { b64: base64(data) } : { text };
  }
  // Over the cap: prefer readable text cut on a character boundary; fall back to base64 of the
  // full `maxBytes` prefix when the bytes are not UTF-8 anyway.
  const text = decodeStrictUtf8(data.subarray(0, utf8Boundary(data, maxBytes)));
  return text === undefined
    ? { b64: base64(data.subarray(0, maxBytes)), truncated: true, size }
    : { text, truncated: true, size };
}

/** The stored bytes of a payload (a prefix of the original when `truncated`). */
export function payloadBytes(payload: Payload): Uint8Array {
  if (payload.b64 !== undefined) return new Uint8Array(Buffer.from(payload.b64, 'base64'));
  return new Uint8Array(Buffer.from(payload.text ?? '', 'utf8'));
}

/** The payload as text for display; invalid UTF-8 becomes U+FFFD. */
export function payloadText(payload: Payload): string {
  if (payload.text !== undefined) return payload.text;
  return lenientUtf8.decode(payloadBytes(payload));
}

/** Original size in bytes of the payload's data. */
/**
 * Original byte size of a payload without materialising its bytes (runs for every event: the
 * recorder's and the metrics' byte counts). Assumes padded base64, as capPayload writes it.
 */
export function payloadLength(payload: Payload): number {
  if (payload.size !== undefined) return payload.size;
  if (payload.text !== undefined) return Buffer.byteLength(payload.text, 'utf8');
  const b64 = payload.b64 ?? '';
  return Math.floor((b64.length * 3) / 4) - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
}

export function payloadSize(payload: Payload): number {
  return payload.size ?? payloadBytes(payload).length;
}

/**
 * Keeps whole rows while both caps hold (cells measured as UTF-8 bytes, NULL as 0), so the stored
 * result is always a prefix of the real one. Record the server's row count separately.
 */
export function capRows(
  rows: ReadonlyArray<ReadonlyArray<string | null>>,
  caps: { maxRows: number; maxBytes: number },
): { rows: Array<Array<string | null>>; truncated: boolean } {
  const kept: Array<Array<string | null>> = [];
  let bytes = 0;
  for (const row of rows) {
    if (kept.length >= caps.maxRows) break;
    let rowBytes = 0;
    for (const cell of row) rowBytes += cell === null ? 0 : Buffer.byteLength(cell, 'utf8');
    if (bytes + rowBytes > caps.maxBytes) break;
    bytes += rowBytes;
    kept.push([...row]);
  }
  return { rows: kept, truncated: kept.length < rows.length };
}

/**
 * The session's event clock: whole milliseconds since `start`, never negative and never going
 * backwards even if the injected clock does. Give every event of a session its `t` from one of these.
 */
export function createSessionClock(now: () => number, start: number = now()): () => number {
  let last = 0;
  return () => {
    const elapsed = Math.floor(now() - start);
    if (elapsed > last) last = elapsed;
    return last;
  };
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}

/** The bytes as text when they are well-formed UTF-8; checked first, so binary data costs no exception. */
function decodeStrictUtf8(bytes: Uint8Array): string | undefined {
  return isUtf8(bytes) ? strictUtf8.decode(bytes) : undefined;
}

/** Largest cut ≤ `max` that does not split a UTF-8 sequence of well-formed input. */
function utf8Boundary(bytes: Uint8Array, max: number): number {
  let cut = max;
  // Continuation bytes are 10xxxxxx and a character has at most 3 of them (RFC 3629 §3): step
  // back to the lead byte of the character that straddles `max`.
  while (cut > 0 && max - cut < 3 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return cut;
}
