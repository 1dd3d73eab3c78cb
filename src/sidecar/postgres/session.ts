// One client connection through the gateway, as a state machine with explicit stages:
//
//   negotiate (SSLRequest → TLS, direct TLS, GSSENCRequest declined, CancelRequest)
//   → authenticate (cleartext password over TLS only = the caller's OIDC token)
//   → admit (policy) → connect upstream (the Connection's credentials)
//   → relay (per-statement policy, masking of result rows, recording)
//   → end (client Terminate, upstream gone, limits, errors)
//
// Denied statements are not answered by the gateway itself: it sends the upstream a stand-in
// that fails in the same place (a Query or Parse that does not parse, an Execute of a portal that
// does not exist, a function call of OID 0) and rewrites the resulting ErrorResponse into the
// policy's 42501. The upstream's own state machine thereby decides the transaction status and the
// skipping of extended-protocol messages until Sync, exactly as for any other error, and the
// responses stay in order with pipelined requests.

import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { type SecureContext, TLSSocket } from 'node:tls';
import { serialize } from 'pg-protocol';
import type { ApprovalOutcome, ApprovalHandle, ApprovalRequest } from '../../approvals/types.ts';
import type { PolicySubject, SqlCommand } from '../../policy/command.ts';
import { capPayload, Decision, EventKind, type Payload, type RecordingEvent } from '../../recorder/events.ts';
import { approvalEvent, connectionName, oneLine, refusalText } from '../approvals.ts';
import { AuthError } from '../auth/errors.ts';
import type { Identity } from '../auth/oidc.ts';
import { type ClassifiedStatement, LEXER_SETTINGS, type SqlClassifier, worstClass } from './classify.ts';
import type { SessionApprovalGate } from '../session-approval.ts';
import { onAccessExpiry } from '../session-approval.ts';
import type { CellMasker, GatewayPolicy, PostgresGatewayConfig, SessionRecorder, StatementDecision } from './config.ts';
import * as backend from './protocol/backend.ts';
import type { BackendFrame, FieldDescription } from './protocol/backend.ts';
import { BackendCode, ErrorField, Severity, SqlState, type TransactionStatus } from './protocol/constants.ts';
import { ProtocolError } from './protocol/errors.ts';
import {
  decodePasswordMessage,
  type FrontendMessage,
  FrontendParser,
  type StartupPhaseMessage,
} from './protocol/frontend.ts';
import { cancelUpstream, connectUpstream, type Upstream, UpstreamError } from './upstream.ts';

/** Counters shared by all sessions of a gateway (tests assert on them; metrics read them). */
export interface GatewayStats {
  sessions: number;
  activeSessions: number;
  /** Largest number of bytes ever queued towards one client (socket buffer + framer). */
  peakBufferedBytes: number;
  deniedStatements: number;
}

/** Maps the BackendKeyData Warden gives clients to sessions, for CancelRequest. */
export class CancelRegistry {
  readonly #sessions = new Map<number, { secret: Buffer; cancel: () => void }>();

  register(cancel: () => void): { processId: number; secretKey: number } {
    let processId: number;
    do processId = randomBytes(4).readInt32BE(0) & 0x7fffffff;
    while (processId === 0 || this.#sessions.has(processId));
    const secret = randomBytes(4);
    this.#sessions.set(processId, { secret, cancel });
    return { processId, secretKey: secret.readInt32BE(0) };
  }

  unregister(processId: number): void {
    this.#sessions.delete(processId);
  }

  /** Cancels the session's running statement when pid and secret match; false otherwise. */
  cancel(processId: number, secret: Buffer): boolean {
    const entry = this.#sessions.get(processId);
    if (!entry || secret.length !== entry.secret.length || !timingSafeEqual(secret, entry.secret)) return false;
    entry.cancel();
    return true;
  }
}

export interface SessionDeps {
  config: PostgresGatewayConfig;
  classifier: SqlClassifier;
  secureContext: SecureContext | undefined;
  cancels: CancelRegistry;
  stats: GatewayStats;
  /** Session-level JIT (one per gateway, so a reconnect names the same waiting request). */
  sessionGate: SessionApprovalGate;
}

/** Startup parameters relayed to the upstream; `options` and the rest could change the session behind policy's back. */
const RELAYED_PARAMS = new Set(['application_name', 'datestyle', 'timezone', 'intervalstyle', 'extra_float_digits']);
/** Text that fails to parse on every PostgreSQL version: the stand-in for denied statements. */
const POISON_SQL = 'WARDEN_DENIED_BY_POLICY';
const STARTUP_TIMEOUT_MS = 60_000;
/** Type OIDs whose binary form is the UTF-8 text (text, varchar, bpchar, name, "char", unknown). */
const TEXT_TYPES = new Set([25, 1043, 1042, 19, 18, 705]);
const JSON_TYPES = new Set([114, 3802]);
/** Distinct RowDescriptions a session keeps decoded (by exact bytes) for reuse. */
const ROW_DESCRIPTIONS_KEPT = 16;
/** A batch of writes up to this size is copied into one buffer (one write, one TLS record); larger ones are corked. */
const COALESCE_MAX_BYTES = 64 * 1024;

/**
 * Sends the writes collected while one chunk of messages was handled: one buffer (one write, one
 * TLS record) up to COALESCE_MAX_BYTES, else corked, without copying large results.
 */
function writeBatch(batch: readonly Buffer[], socket: { cork(): void; uncork(): void }, write: (bytes: Buffer) => void): void {
  if (batch.length === 1) return write(batch[0]!);
  let bytes = 0;
  for (const b of batch) bytes += b.length;
  if (bytes <= COALESCE_MAX_BYTES) return write(Buffer.concat(batch, bytes));
  socket.cork();
  for (const b of batch) write(b);
  socket.uncork();
}

class SessionEnd extends Error {
  readonly sqlState: string;
  readonly reason: string;
  constructor(reason: string, sqlState: string, message: string) {
    super(message);
    this.reason = reason;
    this.sqlState = sqlState;
  }
}

type Denial = { reason: string; rule?: string; used?: boolean; /** SQLSTATE; default 42501. */ code?: string; hint?: string };

/** Without approvals a held command waits at most this long for its AccessRequest (policy default 5m). */
const DEFAULT_APPROVAL_TIMEOUT_MS = 5 * 60_000;
/** Client messages queued behind a held statement before reading from the client pauses. */
const HOLD_QUEUE_MAX_BYTES = 1 << 20;
/** AccessRequest spec limits (crds/warden.dev_accessrequests.yaml). */
const REQUEST_TEXT_MAX = 65_536;
const REQUEST_PARAM_MAX = 4096;
const REQUEST_PARAMS_MAX = 256;

interface Resolution {
  outcome: ApprovalOutcome;
  ids: number[];
  decision: StatementDecision;
}

/**
 * A statement held for a just-in-time approval: the message itself (run again once decided) and
 * every client message after it, kept in order until then.
 */
interface Hold {
  readonly message: FrontendMessage;
  readonly queue: FrontendMessage[];
  queuedBytes: number;
  /** Query ids recorded for the held message's statements (sql.query with decision `approval`). */
  readonly ids: number[];
  readonly decision: StatementDecision;
  handle: ApprovalHandle | undefined;
  /** The client cancelled or left: withdraw as soon as the request exists. */
  withdrawn: boolean;
}

/** No backslash and nothing outside ASCII: read the same whatever the two LEXER_SETTINGS say. */
function isPlainAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c || c > 0x7f) return false;
  }
  return true;
}

type Pending =
  | { kind: 'query'; statements: readonly ClassifiedStatement[]; ids: number[]; index: number; deny?: Denial; started: number }
  | { kind: 'function'; deny?: Denial }
  | { kind: 'parse'; name: string; statements: readonly ClassifiedStatement[]; deny?: Denial }
  | { kind: 'bind'; portal: string; statement: string }
  | { kind: 'describe'; target: 'S' | 'P'; name: string; internal: boolean }
  | { kind: 'execute'; portal: string; id: number; deny?: Denial; started: number }
  | { kind: 'close'; target: 'S' | 'P'; name: string }
  | { kind: 'sync' };

interface ResultState {
  id: number;
  started: number;
  fields: FieldDescription[] | undefined;
  names: string[][];
  /** Per column: masked by name; how the value can be read. */
  plan: Array<{ byName: boolean; kind: 'text' | 'json' | 'opaque' }> | undefined;
  rows: Array<Array<string | null>>;
  rowCount: number;
  /** Bytes of the DataRow messages sent to the client (after masking). */
  bytes: number;
  masked: boolean;
}

interface PortalView {
  statements: readonly ClassifiedStatement[] | undefined;
  description: FieldDescription[] | undefined;
}

/** Reads whole client messages during the stages before the relay. */
class ClientReader {
  readonly parser: FrontendParser;
  #queue: FrontendMessage[] = [];
  #waiter: { resolve: (m: FrontendMessage) => void; reject: (e: Error) => void } | undefined;
  #error: Error | undefined;
  #stream: Duplex | undefined;

  constructor(parser: FrontendParser) {
    this.parser = parser;
  }

  readonly #onData = (chunk: Buffer): void => this.push(chunk);
  readonly #onEnd = (): void => this.#fail(new SessionEnd('client-closed', SqlState.ConnectionFailure, 'client closed the connection'));
  readonly #onError = (e: Error): void => this.#fail(new SessionEnd('client-error', SqlState.ConnectionFailure, e.message));

  attach(stream: Duplex): void {
    this.#stream = stream;
    stream.on('data', this.#onData);
    stream.on('end', this.#onEnd);
    stream.on('close', this.#onEnd);
    stream.on('error', this.#onError);
  }

  detach(): void {
    const s = this.#stream;
    if (!s) return;
    s.pause();
    s.off('data', this.#onData);
    s.off('end', this.#onEnd);
    s.off('close', this.#onEnd);
    s.off('error', this.#onError);
    this.#stream = undefined;
  }

  push(chunk: Buffer): void {
    try {
      for (const m of this.parser.push(chunk)) this.#deliver(m);
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  /** Messages parsed but not yet taken (must be none before a TLS upgrade). */
  get backlog(): FrontendMessage[] {
    const q = this.#queue;
    this.#queue = [];
    return q;
  }

  #deliver(m: FrontendMessage): void {
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.resolve(m);
    } else {
      this.#queue.push(m);
    }
  }

  #fail(error: Error): void {
    this.#error ??= error;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w.reject(error);
    }
  }

  async next(timeoutMs: number): Promise<FrontendMessage> {
    const queued = this.#queue.shift();
    if (queued) return queued;
    if (this.#error) throw this.#error;
    return await new Promise<FrontendMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new SessionEnd('startup-timeout', SqlState.ProtocolViolation, 'the client took too long to start the session'));
      }, timeoutMs);
      this.#waiter = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }
}

/** Wraps an already-read first chunk plus the rest of a socket as a Duplex (direct TLS). */
function replayDuplex(socket: Socket, first: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, callback) {
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end(callback);
    },
    destroy(error, callback) {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  duplex.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!duplex.push(chunk)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('error', (e) => duplex.destroy(e));
  return duplex;
}

export class PostgresSession {
  readonly id = randomUUID();
  readonly #deps: SessionDeps;
  readonly #raw: Socket;
  #client: Duplex;
  #tls = false;
  readonly #parser: FrontendParser;
  readonly #reader: ClientReader;
  readonly #startedAt = Date.now();
  readonly #t0 = performance.now();
  #recorder: SessionRecorder | undefined;
  #identity: Identity | undefined;
  #subject: PolicySubject | undefined;
  #masker: CellMasker | undefined;
  #upstream: Upstream | undefined;
  #cancelKey: { processId: number; secretKey: number } | undefined;
  #ended = false;
  #done!: () => void;
  readonly closed: Promise<void> = new Promise((resolve) => {
    this.#done = resolve;
  });
  #timers: NodeJS.Timeout[] = [];
  /** Stops the timer that ends the session when its approved access runs out. */
  #cancelAccess: (() => void) | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleMs: number | undefined;

  // Relay state. "Forward" views change when a message is sent upstream (policy needs them for
  // pipelined messages); "response" views change when the upstream confirms (masking and
  // recording read them, in response order).
  #pending: Pending[] = [];
  #txStatus: TransactionStatus = 'I';
  readonly #fwdStatements = new Map<string, readonly ClassifiedStatement[]>();
  readonly #fwdPortals = new Map<string, { statement: string; params: Array<Buffer | null> }>();
  readonly #fwdDescribed = new Set<string>();
  readonly #respStatements = new Map<string, readonly ClassifiedStatement[]>();
  readonly #respPortals = new Map<string, PortalView>();
  readonly #sqlPrepared = new Map<string, SqlCommand>();
  /**
   * What SQL `EXECUTE name` runs: a SQL PREPARE of this session, or a protocol Parse (one
   * namespace on the server), judged as the statement it named.
   */
  readonly #preparedLookup = (name: string): SqlCommand | undefined => {
    const sql = this.#sqlPrepared.get(name);
    if (sql) return sql;
    const parsed = this.#fwdStatements.get(name);
    if (!parsed || parsed.length === 0) return undefined;
    return {
      protocol: 'postgres',
      text: parsed.map((s) => s.text).join('; '),
      statementClass: parsed.map((s) => s.statementClass).reduce(worstClass),
      tables: [...new Set(parsed.flatMap((s) => s.tables))],
      flags: [...new Set(parsed.flatMap((s) => s.flags))],
    };
  };
  /** LEXER_SETTINGS the server reports with a value the parser does not assume (name → value). */
  readonly #lexerRisks = new Map<string, string>();
  #result: ResultState | undefined;
  /**
   * RowDescriptions seen lately, by their exact bytes, with the decoded fields: a driver runs the
   * same few statements over and over, and an unchanged fields array lets #newResult reuse its plan.
   */
  #rowDescriptions: Array<{ body: Buffer; fields: FieldDescription[] }> = [];
  /** Column names and masking plan per (fields array, statement); the masker is this session's and never changes. */
  /**
   * Column names and masking plan per decoded RowDescription. They depend only on the fields and
   * the statement's `outputSources`, which is compared by identity: a literal-cache hit is a fresh
   * statement object sharing its template's `outputSources` array.
   */
  readonly #plans = new WeakMap<FieldDescription[], { sources: string[][] | undefined; names: string[][]; plan: ResultState['plan'] }>();
  #nextId = 1;
  // Flow control: the client's buffer is full (stop reading the upstream), the upstream's is full
  // (stop reading the client), the recorder asked for a pause (stop reading both).
  #clientFull = false;
  #upstreamFull = false;
  #recorderFull = false;
  #relaying = false;
  // Writes collected while one chunk of messages is handled, sent as one buffer at its end
  // (undefined: write at once).
  #clientBatch: Buffer[] | undefined;
  #upstreamBatch: Buffer[] | undefined;
  // Just-in-time approval: the statement being held, and the outcome applied while it runs again.
  #hold: Hold | undefined;
  #holdFull = false;
  #resolution: Resolution | undefined;

  constructor(socket: Socket, deps: SessionDeps) {
    this.#deps = deps;
    this.#raw = socket;
    this.#client = socket;
    this.#parser = new FrontendParser(
      deps.config.maxMessageBytes === undefined ? {} : { maxMessageBytes: deps.config.maxMessageBytes },
    );
    this.#reader = new ClientReader(this.#parser);
    socket.setNoDelay(true);
    deps.stats.sessions++;
    deps.stats.activeSessions++;
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, string | number | boolean | undefined> = {}): void {
    this.#deps.config.logger?.(level, message, { session: this.id, ...fields });
  }

  #t(): number {
    return this.#recorder?.t?.() ?? Math.max(0, Math.round(performance.now() - this.#t0));
  }

  #record(event: DistributiveOmit<RecordingEvent, 't'>): void {
    if (!this.#recorder) return;
    try {
      const accepted = this.#recorder.append({ t: this.#t(), ...event } as RecordingEvent);
      if (accepted === false && !this.#recorderFull && this.#recorder.once) {
        // The recorder holds too much (memory or spool): stop reading until it has caught up.
        this.#recorderFull = true;
        this.#flow();
        this.#recorder.once('drain', () => {
          this.#recorderFull = false;
          this.#flow();
        });
      }
    } catch (error) {
      // Fail closed: a session that cannot be recorded does not go on.
      this.#log('error', 'recording failed; ending the session', { error: (error as Error).message });
      this.#end('recording-failed', { code: SqlState.AdminShutdown, message: 'Warden cannot record this session; it was ended' });
    }
  }

  /** Runs the session to its end; never rejects. */
  async run(): Promise<void> {
    try {
      const startup = await this.#negotiate();
      if (!startup) return;
      await this.#authenticate(startup);
      await this.#connectUpstream(startup.params);
      this.#startRelay();
    } catch (error) {
      if (error instanceof SessionEnd) {
        this.#end(error.reason, { code: error.sqlState, message: error.message });
      } else if (error instanceof ProtocolError) {
        this.#end('protocol-error', { code: SqlState.ProtocolViolation, message: `invalid message from the client: ${error.message}` });
      } else {
        this.#log('error', 'session failed', { error: (error as Error).message });
        this.#end('error', { code: SqlState.InternalError, message: 'Warden hit an internal error; the session was ended' });
      }
    }
    await this.closed;
  }

  // ---------------------------------------------------------------------------------------------
  // Stage 1: negotiate

  async #negotiate(): Promise<Extract<StartupPhaseMessage, { type: 'Startup' }> | undefined> {
    // PostgreSQL 17 direct TLS: the first byte is a TLS handshake record (0x16) instead of a
    // length; it must be negotiated with ALPN "postgresql".
    const first = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new SessionEnd('startup-timeout', SqlState.ProtocolViolation, 'no startup packet')), STARTUP_TIMEOUT_MS);
      this.#raw.once('data', (chunk: Buffer) => {
        clearTimeout(timer);
        this.#raw.pause();
        resolve(chunk);
      });
      this.#raw.once('close', () => {
        clearTimeout(timer);
        reject(new SessionEnd('client-closed', SqlState.ConnectionFailure, 'client closed the connection'));
      });
      this.#raw.once('error', () => undefined);
    });
    if (first[0] === 0x16) {
      if (!this.#deps.secureContext) throw new SessionEnd('no-tls', SqlState.ProtocolViolation, 'TLS is not configured');
      await this.#startTls(replayDuplex(this.#raw, first), true);
    } else {
      this.#reader.attach(this.#raw);
      this.#reader.push(first);
      this.#raw.resume();
    }
    for (;;) {
      const m = await this.#reader.next(STARTUP_TIMEOUT_MS);
      switch (m.type) {
        case 'SSLRequest':
          if (this.#tls || !this.#deps.secureContext) {
            this.#client.write('N');
            continue;
          }
          // Bytes after the SSLRequest and before the handshake would be unencrypted data spliced
          // into the encrypted stream (CVE-2021-23214): refuse.
          if (this.#parser.buffered > 0 || this.#reader.backlog.length > 0) {
            throw new SessionEnd('protocol-error', SqlState.ProtocolViolation, 'unexpected data after SSLRequest');
          }
          this.#reader.detach();
          this.#client.write('S');
          await this.#startTls(this.#raw, false);
          continue;
        case 'GSSENCRequest':
          this.#client.write('N');
          continue;
        case 'CancelRequest':
          this.#deps.cancels.cancel(m.processId, m.secretKey);
          this.#end('cancel-request');
          return undefined;
        case 'Startup':
          return m;
        default:
          throw new SessionEnd('protocol-error', SqlState.ProtocolViolation, `unexpected ${m.type} before the startup packet`);
      }
    }
  }

  async #startTls(stream: Duplex, direct: boolean): Promise<void> {
    const tls = new TLSSocket(stream as Socket, {
      isServer: true,
      secureContext: this.#deps.secureContext!,
      ALPNProtocols: ['postgresql'],
    });
    await new Promise<void>((resolve, reject) => {
      tls.once('secure', resolve);
      tls.once('error', (e) => reject(new SessionEnd('tls-failed', SqlState.ProtocolViolation, `TLS handshake failed: ${e.message}`)));
    });
    if (direct && tls.alpnProtocol !== 'postgresql') {
      tls.destroy();
      throw new SessionEnd('tls-failed', SqlState.ProtocolViolation, 'direct TLS requires ALPN "postgresql"');
    }
    this.#client = tls;
    this.#tls = true;
    this.#reader.attach(tls);
  }

  // ---------------------------------------------------------------------------------------------
  // Stage 2: authenticate and admit

  async #authenticate(startup: Extract<StartupPhaseMessage, { type: 'Startup' }>): Promise<void> {
    const { config } = this.#deps;
    if (startup.params.replication !== undefined && startup.params.replication !== 'false') {
      this.#openRecording(startup);
      throw new SessionEnd('denied', SqlState.FeatureNotSupported, 'Warden does not relay replication connections');
    }
    const unsupported = Object.keys(startup.params).filter((k) => k.startsWith('_pq_.'));
    if (startup.minor > 0 || unsupported.length > 0) {
      this.#client.write(backend.negotiateProtocolVersion(0, unsupported));
    }
    if (!this.#tls) {
      this.#openRecording(startup);
      this.#record({ k: EventKind.Auth, ok: false, method: 'oidc', reason: 'connection without TLS' });
      throw new SessionEnd(
        'denied',
        SqlState.InvalidAuthorizationSpecification,
        'Warden accepts your OIDC token only over TLS: connect with sslmode=require (or verify-full)',
      );
    }
    this.#client.write(backend.authenticationCleartextPassword());
    const m = await this.#reader.next(STARTUP_TIMEOUT_MS);
    if (m.type !== 'Password') throw new SessionEnd('protocol-error', SqlState.ProtocolViolation, `expected a password message, got ${m.type}`);
    let identity: Identity;
    try {
      identity = await config.verifier.verify(decodePasswordMessage(m.data));
    } catch (error) {
      const reason = error instanceof AuthError ? `${error.message} (${error.code})` : 'the token could not be checked';
      this.#openRecording(startup);
      this.#record({ k: EventKind.Auth, ok: false, method: 'oidc', reason });
      this.#log('info', 'authentication failed', { reason });
      throw new SessionEnd('denied', SqlState.InvalidPassword, `Warden: authentication failed: ${reason}`);
    }
    this.#identity = identity;
    // Opened only now, so the Session object and the manifest name the caller.
    this.#openRecording(startup, identity);
    const subject: PolicySubject = { user: identity.user, groups: identity.groups };
    this.#subject = subject;
    const admission = config.policy.admission(subject);
    this.#record({ k: EventKind.Auth, ok: admission.admitted, method: 'oidc', user: identity.user, groups: identity.groups, reason: admission.reason });
    if (!admission.admitted) {
      throw new SessionEnd('denied', SqlState.InvalidAuthorizationSpecification, `Warden: ${admission.reason}`);
    }
    await this.#admitSessionApproval(subject);
    this.#masker = config.masking?.(subject);
    this.#armLimits(subject);
  }

  /** Starts the recording (once); `identity` is absent when the caller was refused before it was known. */
  #openRecording(startup: Extract<StartupPhaseMessage, { type: 'Startup' }>, identity?: Identity): void {
    const { config } = this.#deps;
    if (!config.recorder || this.#recorder) return;
    const app = startup.params.application_name;
    const recorder = config.recorder({
      sessionId: this.id,
      protocol: 'postgres',
      connection: config.connection,
      ...(identity ? { user: identity.user, groups: identity.groups } : {}),
      clientAddress: `${this.#raw.remoteAddress ?? ''}:${this.#raw.remotePort ?? ''}`,
      ...(app ? { clientApplication: app } : {}),
      target: `${config.upstream.host}:${config.upstream.port}/${config.upstream.database}`,
    });
    this.#recorder = recorder;
    recorder.onFailure?.((error) => {
      this.#log('error', 'recording failed; ending the session', { error: error.message });
      this.#end('recording-failed', { code: SqlState.AdminShutdown, message: 'Warden cannot record this session; it was ended' });
    });
  }

  /**
   * Session-level just-in-time access (docs/session-approval.md): without an approved Session
   * request the connection is refused with the request's name (28000); with one, the session ends
   * when the approved access does.
   */
  async #admitSessionApproval(subject: PolicySubject): Promise<void> {
    const { config } = this.#deps;
    let requirement: ReturnType<NonNullable<GatewayPolicy['sessionApproval']>>;
    try {
      requirement = config.policy.sessionApproval?.(subject);
    } catch (error) {
      throw new SessionEnd('denied', SqlState.InvalidAuthorizationSpecification, `Warden: session approval could not be evaluated (${(error as Error).message})`);
    }
    if (requirement === undefined) return;
    const result = await this.#deps.sessionGate.admit(subject, requirement, { session: this.id });
    for (const event of result.events) this.#record(event);
    if (!result.admitted) throw new SessionEnd('denied', SqlState.InvalidAuthorizationSpecification, `Warden: ${result.message}`);
    if (result.approval) {
      const { request, expiresAt } = result.approval;
      this.#cancelAccess = onAccessExpiry(expiresAt, Date.now, () =>
        this.#end('approval-expired', { code: SqlState.AdminShutdown, message: `Warden: the approved access (request ${request}) expired at ${expiresAt.toISOString()}; the session was ended` }),
      );
    }
  }

  #armLimits(subject: PolicySubject): void {
    const { config } = this.#deps;
    const fromPolicy = config.policy.sessionLimits?.(subject);
    const pick = (a: number | null | undefined, b: number | undefined): number | undefined =>
      a === null || a === undefined ? b : b === undefined ? a : Math.min(a, b);
    const maxMs = pick(fromPolicy?.maxDurationMs, config.limits?.maxDurationMs);
    this.#idleMs = pick(fromPolicy?.idleTimeoutMs, config.limits?.idleTimeoutMs);
    if (maxMs !== undefined) {
      const timer = setTimeout(
        () => this.#end('max-duration', { code: SqlState.AdminShutdown, message: `Warden: the session reached its maximum duration (${maxMs} ms) and was ended` }),
        Math.max(0, maxMs - (Date.now() - this.#startedAt)),
      );
      timer.unref();
      this.#timers.push(timer);
    }
    this.#touch();
  }

  /** Restarts the idle timer (client activity). */
  #touch(): void {
    if (this.#idleMs === undefined || this.#ended) return;
    if (this.#idleTimer) this.#idleTimer.refresh();
    else {
      const ms = this.#idleMs;
      this.#idleTimer = setTimeout(() => {
        if (this.#pending.length > 0 || this.#hold) {
          this.#idleTimer?.refresh();
          return;
        }
        this.#end('idle-timeout', { code: SqlState.IdleSessionTimeout, message: `Warden: the session was idle for ${ms} ms and was ended` });
      }, ms);
      this.#idleTimer.unref();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Stage 3: upstream

  async #connectUpstream(clientParams: Record<string, string>): Promise<void> {
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(clientParams)) if (RELAYED_PARAMS.has(k.toLowerCase())) params[k] = v;
    try {
      this.#upstream = await connectUpstream(this.#deps.config.upstream, params);
    } catch (error) {
      const message = error instanceof UpstreamError ? error.message : 'unknown error';
      this.#log('warn', 'upstream connection failed', { error: message });
      throw new SessionEnd('upstream-failed', SqlState.ConnectionRejected, `Warden cannot reach the database: ${message}`);
    }
    if (this.#ended) {
      this.#upstream.socket.destroy();
      throw new SessionEnd('client-closed', SqlState.ConnectionFailure, 'client closed the connection');
    }
    const upstreamKey = this.#upstream.backendKey;
    this.#cancelKey = this.#deps.cancels.register(() => {
      // A held statement has not reached the database: cancelling it withdraws the AccessRequest.
      if (this.#hold) {
        this.#withdrawHold();
        return;
      }
      cancelUpstream(this.#deps.config.upstream, upstreamKey).catch((e: unknown) =>
        this.#log('warn', 'cancel request failed', { error: (e as Error).message }),
      );
    });
    for (const status of this.#upstream.parameterStatus) this.#observeParameterStatus(status);
    const hello = [backend.authenticationOk(), ...this.#upstream.parameterStatus];
    hello.push(backend.backendKeyData(this.#cancelKey.processId, this.#cancelKey.secretKey), backend.readyForQuery('I'));
    this.#client.write(Buffer.concat(hello));
  }

  // ---------------------------------------------------------------------------------------------
  // Stage 4: relay

  #startRelay(): void {
    const upstream = this.#upstream!;
    const backlog = this.#reader.backlog;
    this.#reader.detach();
    const client = this.#client;
    client.on('data', (chunk: Buffer) => this.#onClientData(chunk));
    client.on('end', () => this.#end('client-closed'));
    client.on('close', () => this.#end('client-closed'));
    client.on('error', () => this.#end('client-error'));
    client.on('drain', () => {
      this.#clientFull = false;
      this.#flow();
    });
    upstream.socket.on('data', (chunk: Buffer) => this.#onUpstreamData(chunk));
    upstream.socket.on('close', () =>
      this.#end('server-closed', { code: SqlState.ConnectionFailure, message: 'Warden: the database closed the connection' }),
    );
    upstream.socket.on('error', (e) => this.#log('warn', 'upstream socket error', { error: e.message }));
    upstream.socket.on('drain', () => {
      this.#upstreamFull = false;
      this.#flow();
    });
    this.#relaying = true;
    for (const m of backlog) this.#onClientMessage(m);
    for (const f of upstream.pending) this.#onUpstreamFrame(f);
    this.#flow();
  }

  /** Pauses or resumes the two sockets from the three flow-control flags. */
  #flow(): void {
    if (!this.#relaying || this.#ended) return;
    const up = this.#upstream!.socket;
    if (this.#clientFull || this.#recorderFull) up.pause();
    else up.resume();
    if (this.#upstreamFull || this.#recorderFull || this.#holdFull) this.#client.pause();
    else this.#client.resume();
  }

  #onClientData(chunk: Buffer): void {
    if (this.#ended) return;
    this.#touch();
    let messages: FrontendMessage[];
    try {
      messages = this.#parser.push(chunk);
    } catch (error) {
      this.#end('protocol-error', { code: SqlState.ProtocolViolation, message: `invalid message from the client: ${(error as Error).message}` });
      return;
    }
    const outer = this.#upstreamBatch !== undefined;
    if (!outer) this.#upstreamBatch = [];
    try {
      for (const m of messages) {
        if (this.#ended) break;
        this.#onClientMessage(m);
      }
    } finally {
      if (!outer) this.#flushUpstream();
    }
  }

  #toUpstream(bytes: Buffer): void {
    if (this.#upstreamBatch) this.#upstreamBatch.push(bytes);
    else this.#writeUpstream(bytes);
  }

  /** Sends what the current batch collected for the upstream as one write, and ends the batch. */
  #flushUpstream(): void {
    const batch = this.#upstreamBatch;
    this.#upstreamBatch = undefined;
    if (batch && batch.length > 0) writeBatch(batch, this.#upstream!.socket, (b) => this.#writeUpstream(b));
  }

  #writeUpstream(bytes: Buffer): void {
    const up = this.#upstream!.socket;
    if (!up.write(bytes) && !this.#upstreamFull) {
      this.#upstreamFull = true;
      this.#flow();
    }
  }

  #toClient(bytes: Buffer): void {
    if (this.#clientBatch) this.#clientBatch.push(bytes);
    else this.#writeClient(bytes);
  }

  /** Sends what the current batch collected for the client as one write (one TLS record), and ends the batch. */
  #flushClient(): void {
    const batch = this.#clientBatch;
    this.#clientBatch = undefined;
    if (batch && batch.length > 0) writeBatch(batch, this.#client, (b) => this.#writeClient(b));
  }

  #writeClient(bytes: Buffer): void {
    if (!this.#client.write(bytes) && !this.#clientFull) {
      this.#clientFull = true;
      this.#flow();
    }
    const buffered = this.#client.writableLength + (this.#upstream?.framer.buffered ?? 0);
    if (buffered > this.#deps.stats.peakBufferedBytes) this.#deps.stats.peakBufferedBytes = buffered;
  }

  /**
   * Follows the server's ParameterStatus reports of the settings that change how SQL text is read
   * (classify.ts, LEXER_SETTINGS). The classifier refuses changing them; this catches a value the
   * session starts with (server, database or role configuration) or gets by a path it cannot see.
   */
  #observeParameterStatus(raw: Buffer): void {
    // 'S', int32 length, name NUL, value NUL.
    const nameEnd = raw.indexOf(0, 5);
    if (nameEnd < 0) return;
    const name = raw.toString('latin1', 5, nameEnd).toLowerCase();
    const safe = LEXER_SETTINGS[name];
    if (!safe) return;
    const valueEnd = raw.indexOf(0, nameEnd + 1);
    const value = raw.toString('latin1', nameEnd + 1, valueEnd < 0 ? raw.length : valueEnd).toLowerCase();
    if (safe.has(value)) {
      this.#lexerRisks.delete(name);
    } else if (this.#lexerRisks.get(name) !== value) {
      this.#lexerRisks.set(name, value);
      this.#log('warn', 'the server reports a setting that changes how SQL is read; affected statements are refused', { setting: name, value });
    }
  }

  /**
   * Refusal of a statement the server could read differently from the classifier.
   *
   * `lexedNow`: the server reads this text when it gets there (Query, Parse). Then a text with a
   * backslash or a non-ASCII character (the only ones the two LEXER_SETTINGS change the reading
   * of) must not be pipelined behind a statement that is still running: that statement could
   * change a setting before the server reads this text (a function or view calling set_config),
   * and the ParameterStatus saying so would come too late. Sent after it finished, it is judged
   * with what the server reported. Otherwise see #lexerDenial.
   */
  #misreadDenial(statement: SqlCommand, lexedNow: boolean): StatementDecision | undefined {
    if (lexedNow && !isPlainAscii(statement.text) && this.#pending.some((p) => p.kind === 'query' || p.kind === 'execute' || p.kind === 'function')) {
      return {
        effect: 'Deny',
        reason:
          'a statement with a backslash or a non-ASCII character was pipelined behind one still running, which could change how the server reads it; send it after the previous result (or pass the value as a parameter)',
      };
    }
    return this.#lexerDenial(statement);
  }

  /**
   * Refusal while a LEXER_SETTINGS value is unsafe: with standard_conforming_strings off only a
   * backslash reads differently (so only statements with one are refused); with another client
   * encoding every statement is.
   */
  #lexerDenial(statement: SqlCommand): StatementDecision | undefined {
    if (this.#lexerRisks.size === 0) return undefined;
    const encoding = this.#lexerRisks.get('client_encoding');
    if (encoding !== undefined) {
      return { effect: 'Deny', reason: `the session's client_encoding is ${encoding}; Warden reads SQL only as UTF8 (reconnect without changing client_encoding)` };
    }
    const scs = this.#lexerRisks.get('standard_conforming_strings');
    if (scs !== undefined && statement.text.includes('\\')) {
      return {
        effect: 'Deny',
        reason: `standard_conforming_strings is ${scs} in this session, so a backslash in a string may end it where Warden's parser does not; write the string as E'…' or set standard_conforming_strings = on`,
      };
    }
    return undefined;
  }

  #decide(statement: SqlCommand): StatementDecision {
    return this.#deps.config.policy.decide(this.#subject!, statement);
  }

  /** RequireApproval where no approval can be asked for: refused, as the reason says. */
  static #refuseApproval(decision: StatementDecision): StatementDecision {
    if (decision.effect !== 'RequireApproval') return decision;
    return { ...decision, effect: 'Deny', reason: `${decision.reason}; approvals are not available on this gateway` };
  }

  #recordQuery(id: number, s: SqlCommand, decision: StatementDecision, params?: Array<Buffer | null>): void {
    const max = this.#deps.config.maxEventBytes ?? 65_536;
    this.#record({
      k: EventKind.SqlQuery,
      id,
      text: capPayload(s.text, max),
      ...(params ? { params: params.map((p) => (p === null ? null : capPayload(p, max))) } : {}),
      class: s.statementClass,
      decision: decision.effect === 'Allow' ? Decision.Allow : decision.effect === 'RequireApproval' ? Decision.RequireApproval : Decision.Deny,
      ...(decision.rule ? { rule: decision.policy ? `${decision.policy}/${decision.rule}` : decision.rule } : {}),
    });
    if (decision.effect === 'Deny') {
      this.#deps.stats.deniedStatements++;
      this.#record({
        k: EventKind.Deny,
        reason: decision.reason,
        ...(decision.rule ? { rule: decision.rule } : {}),
        what: capPayload(s.text, max) as Payload,
      });
    }
  }

  /**
   * Decides every statement before any runs. Allowed: each is recorded with its id. Denied: only
   * the first denied statement is recorded (nothing of the string runs).
   */
  #check(statements: readonly ClassifiedStatement[], params?: Array<Buffer | null>, message?: FrontendMessage): { ids: number[]; deny?: Denial } | undefined {
    const resolution = this.#resolution;
    if (resolution) return this.#resolved(resolution, statements);
    const lexedNow = message?.type === 'Query';
    const policy = statements.map((s) => this.#misreadDenial(s, lexedNow) ?? this.#decide(s));
    // Deny wins over RequireApproval: hold only when nothing in the message is denied outright.
    const needsApproval = policy.findIndex((d) => d.effect === 'RequireApproval');
    if (needsApproval >= 0 && message && this.#deps.config.approvals && !policy.some((d) => d.effect === 'Deny')) {
      const ids = statements.map((s, i) => {
        const id = this.#nextId++;
        this.#recordQuery(id, s, policy[i]!, params);
        return id;
      });
      this.#startHold(message, statements, policy[needsApproval]!, params, ids);
      return undefined;
    }
    const decisions = policy.map((d) => PostgresSession.#refuseApproval(d));
    const denied = decisions.findIndex((d) => d.effect !== 'Allow');
    if (denied >= 0) {
      const decision = decisions[denied]!;
      this.#recordQuery(this.#nextId++, statements[denied]!, decision, params);
      return { ids: [], deny: { reason: decision.reason, ...(decision.rule ? { rule: decision.rule } : {}) } };
    }
    const ids = statements.map((s, i) => {
      const id = this.#nextId++;
      this.#recordQuery(id, s, decisions[i]!, params);
      return id;
    });
    return { ids };
  }

  // ---------------------------------------------------------------------------------------------
  // Just-in-time approval: hold, ask, then run the held message again with the outcome

  #startHold(message: FrontendMessage, statements: readonly ClassifiedStatement[], decision: StatementDecision, params: Array<Buffer | null> | undefined, ids: number[]): void {
    const approvals = this.#deps.config.approvals!;
    const hold: Hold = { message, queue: [], queuedBytes: 0, ids, decision, handle: undefined, withdrawn: false };
    this.#hold = hold;
    const text = message.type === 'Query' ? message.text : statements.map((s) => s.text).join('; ');
    const request: ApprovalRequest = {
      requester: { user: this.#identity!.user, groups: [...this.#identity!.groups] },
      connection: connectionName(this.#deps.config.connection),
      session: this.id,
      kind: 'Command',
      command: {
        protocol: 'postgres',
        text: text.length > REQUEST_TEXT_MAX ? `${text.slice(0, REQUEST_TEXT_MAX - 1)}…` : text,
        ...(params && params.length > 0 ? { parameters: params.slice(0, REQUEST_PARAMS_MAX).map(parameterText) } : {}),
      },
      ...(decision.policy ? { policy: decision.policy } : {}),
      ...(decision.rule ? { rule: decision.rule } : {}),
      reason: decision.reason,
      approvers: decision.approvers ?? [],
      timeoutMs: decision.approvalTimeoutMs && decision.approvalTimeoutMs > 0 ? decision.approvalTimeoutMs : DEFAULT_APPROVAL_TIMEOUT_MS,
    };
    void (async () => {
      let outcome: ApprovalOutcome;
      try {
        const handle = await approvals.request(request);
        hold.handle = handle;
        if (hold.withdrawn) {
          await handle.withdraw();
        } else if (!this.#ended) {
          this.#recordApproval({ decision: 'Pending', request: handle.name, reason: decision.reason });
          this.#toClient(
            backend.noticeResponse({
              severity: Severity.Notice,
              code: '00000',
              message: `waiting for approval: ${handle.name}`,
              detail: `${decision.reason}. The statement runs once an approver approves AccessRequest ${handle.name}.`,
              hint: `An approver runs: kubectl warden approve ${handle.name}. Cancel the statement to withdraw the request.`,
            }),
          );
        }
        outcome = await handle.outcome;
      } catch (error) {
        outcome = { decision: 'Unavailable', reason: oneLine((error as Error).message ?? 'unknown error') };
      }
      if (this.#ended || this.#hold !== hold) return;
      this.#release(hold, outcome);
    })();
  }

  /** Applies an outcome: the held message runs (approved) or fails (anything else); then the queue. */
  #release(hold: Hold, outcome: ApprovalOutcome): void {
    this.#hold = undefined;
    this.#recordApproval(outcome);
    this.#log('info', 'approval outcome', { request: outcome.request, decision: outcome.decision, user: this.#identity?.user });
    const outer = this.#upstreamBatch !== undefined;
    if (!outer) this.#upstreamBatch = [];
    try {
      this.#resolution = { outcome, ids: hold.ids, decision: hold.decision };
      try {
        this.#onClientMessage(hold.message);
      } finally {
        this.#resolution = undefined;
      }
      for (const m of hold.queue) {
        if (this.#ended) break;
        this.#onClientMessage(m); // a later statement may be held again: the rest queue behind it
      }
    } catch (error) {
      this.#log('error', 'relay failed', { error: (error as Error).message });
      this.#end('error', { code: SqlState.InternalError, message: 'Warden hit an internal error; the session was ended' });
    } finally {
      if (!outer) this.#flushUpstream();
    }
    if (this.#holdFull && ((this.#hold as Hold | undefined)?.queuedBytes ?? 0) <= HOLD_QUEUE_MAX_BYTES) {
      this.#holdFull = false;
      this.#flow();
    }
    this.#touch();
  }

  /** The outcome as #check's answer while the held message runs again. */
  #resolved(resolution: Resolution, statements: readonly ClassifiedStatement[]): { ids: number[]; deny?: Denial } {
    const { outcome, decision } = resolution;
    // Approved text is still refused if the server would now read it differently from what the
    // approver saw (a setting changed while it waited).
    let reason: string;
    if (outcome.decision === 'Approved') {
      const misread = statements.map((s) => this.#lexerDenial(s)).find((d) => d !== undefined);
      if (misread === undefined) return { ids: resolution.ids };
      reason = misread.reason;
    } else {
      reason = outcome.decision === 'Withdrawn' ? `canceling statement due to user request (approval request ${outcome.request} withdrawn)` : refusalText('the statement', outcome);
    }
    const withdrawn = outcome.decision === 'Withdrawn';
    this.#deps.stats.deniedStatements++;
    const max = this.#deps.config.maxEventBytes ?? 65_536;
    this.#record({
      k: EventKind.Deny,
      reason,
      ...(decision.rule ? { rule: decision.rule } : {}),
      what: capPayload(statements.map((s) => s.text).join('; '), max) as Payload,
    });
    return {
      ids: [],
      deny: {
        reason,
        ...(decision.rule ? { rule: decision.rule } : {}),
        ...(withdrawn ? { code: SqlState.QueryCanceled, hint: 'Run it again to ask for approval again.' } : {}),
        ...(outcome.decision === 'Expired' ? { hint: 'Run it again to ask for approval again, and ask an approver to decide in time.' } : {}),
        ...(outcome.decision === 'Denied' ? { hint: 'An approver refused this statement; talk to them before running it again.' } : {}),
      },
    };
  }

  #withdrawHold(): void {
    const hold = this.#hold;
    if (!hold || hold.withdrawn) return;
    hold.withdrawn = true;
    // The outcome (Withdrawn) releases the hold; without a request yet, it is withdrawn once created.
    hold.handle?.withdraw().catch(() => undefined);
  }

  #recordApproval(outcome: ApprovalOutcome | { decision: 'Pending'; request: string; reason?: string }): void {
    this.#record(approvalEvent(this.#deps.config.connection, outcome));
  }

  #onClientMessage(m: FrontendMessage): void {
    const hold = this.#hold;
    if (hold) {
      if (m.type === 'Terminate') {
        this.#end('client-closed');
        return;
      }
      // Everything after the held statement waits behind it, in order.
      hold.queue.push(m);
      hold.queuedBytes += m.raw.length;
      if (hold.queuedBytes > HOLD_QUEUE_MAX_BYTES && !this.#holdFull) {
        this.#holdFull = true;
        this.#flow();
      }
      return;
    }
    switch (m.type) {
      case 'Query': {
        const statements = this.#deps.classifier.classify(m.text, this.#preparedLookup);
        const checked = this.#check(statements, undefined, m);
        if (!checked) return; // held for approval
        const { ids, deny } = checked;
        if (deny) {
          this.#pending.push({ kind: 'query', statements, ids, index: 0, deny, started: performance.now() });
          this.#toUpstream(serialize.query(POISON_SQL));
          return;
        }
        for (const s of statements) {
          // SQL PREPARE/DEALLOCATE and protocol Parse share one namespace on the server: what the
          // SQL level replaces or drops, the Parse record must not vouch for any more (Execute then
          // judges the SQL-level statement, or finds nothing and refuses).
          if (s.prepares !== undefined) {
            const prior = this.#sqlPrepared.get(s.prepares);
            // A PREPARE of an existing name fails upstream; keep the more dangerous class.
            if (!prior || prior.statementClass === 'read') this.#sqlPrepared.set(s.prepares, s);
            this.#fwdStatements.delete(s.prepares);
          }
          if (s.deallocates !== undefined) {
            if (s.deallocates === '') {
              this.#sqlPrepared.clear();
              this.#fwdStatements.clear();
            } else {
              this.#sqlPrepared.delete(s.deallocates);
              this.#fwdStatements.delete(s.deallocates);
            }
          }
        }
        this.#pending.push({ kind: 'query', statements, ids, index: 0, started: performance.now() });
        this.#toUpstream(m.raw);
        return;
      }
      case 'Parse': {
        const statements = this.#deps.classifier.classify(m.text, this.#preparedLookup);
        // Checked now (nothing of a denied Parse reaches the server) and again at each Execute.
        let deny: Denial | undefined;
        for (const s of statements) {
          let decision = this.#misreadDenial(s, true) ?? this.#decide(s);
          // With approvals, a statement that needs one is held at Execute (with its parameters):
          // preparing it runs nothing.
          if (decision.effect === 'RequireApproval' && this.#deps.config.approvals) continue;
          decision = PostgresSession.#refuseApproval(decision);
          if (decision.effect !== 'Allow') {
            this.#recordQuery(this.#nextId++, s, decision);
            deny = { reason: decision.reason, ...(decision.rule ? { rule: decision.rule } : {}) };
            break;
          }
        }
        // A named statement that exists already makes the server refuse this Parse and keep the
        // old one, so the old classification must stay (else a stale, now-denied statement could
        // run under a harmless one's name). The unnamed statement is always replaced.
        const keepsOld = m.name !== '' && this.#fwdStatements.has(m.name);
        if (deny) {
          if (!keepsOld) this.#fwdStatements.delete(m.name);
          this.#pending.push({ kind: 'parse', name: m.name, statements, deny });
          this.#toUpstream(serialize.parse({ name: m.name, text: POISON_SQL }));
          return;
        }
        if (!keepsOld) this.#fwdStatements.set(m.name, statements);
        this.#pending.push({ kind: 'parse', name: m.name, statements });
        this.#toUpstream(m.raw);
        return;
      }
      case 'Bind':
        this.#fwdPortals.set(m.portal, { statement: m.statement, params: m.params });
        this.#fwdDescribed.delete(m.portal);
        this.#pending.push({ kind: 'bind', portal: m.portal, statement: m.statement });
        this.#toUpstream(m.raw);
        return;
      case 'Describe':
        if (m.target === 'P') this.#fwdDescribed.add(m.name);
        this.#pending.push({ kind: 'describe', target: m.target, name: m.name, internal: false });
        this.#toUpstream(m.raw);
        return;
      case 'Execute': {
        const portal = this.#fwdPortals.get(m.portal);
        // Statements come from Parse, or from SQL PREPARE (Bind can name those too).
        const prepared = portal ? this.#sqlPrepared.get(portal.statement) : undefined;
        const statements = portal
          ? (this.#fwdStatements.get(portal.statement) ?? (prepared ? [{ ...prepared, text: `EXECUTE ${portal.statement}` }] : undefined))
          : undefined;
        const checked: readonly ClassifiedStatement[] = statements ?? [
          { protocol: 'postgres', text: `EXECUTE portal ${JSON.stringify(m.portal)}`, statementClass: 'unparseable', tables: [], flags: ['unknownPortal'] },
        ];
        const result = this.#check(checked, portal?.params, m);
        if (!result) return; // held for approval
        const { ids, deny } = result;
        const id = ids[0] ?? this.#nextId - 1;
        if (deny) {
          this.#pending.push({ kind: 'execute', portal: m.portal, id, deny, started: performance.now() });
          this.#toUpstream(serialize.execute({ portal: `warden_denied_${randomBytes(6).toString('hex')}` }));
          return;
        }
        if (!this.#fwdDescribed.has(m.portal) && (this.#masker || this.#recorder)) {
          // Masking and recording need the result's columns; drivers that skip Describe (pgbench
          // -M prepared) get one injected, its answer kept from the client.
          this.#fwdDescribed.add(m.portal);
          this.#pending.push({ kind: 'describe', target: 'P', name: m.portal, internal: true });
          this.#toUpstream(serialize.describe({ type: 'P', name: m.portal }));
        }
        this.#pending.push({ kind: 'execute', portal: m.portal, id, started: performance.now() });
        this.#toUpstream(m.raw);
        return;
      }
      case 'Close':
        if (m.target === 'S') this.#fwdStatements.delete(m.name);
        else this.#fwdPortals.delete(m.name);
        this.#pending.push({ kind: 'close', target: m.target, name: m.name });
        this.#toUpstream(m.raw);
        return;
      case 'Sync':
        this.#pending.push({ kind: 'sync' });
        this.#toUpstream(m.raw);
        return;
      case 'Flush':
      case 'CopyData':
      case 'CopyDone':
      case 'CopyFail':
        this.#toUpstream(m.raw);
        return;
      case 'FunctionCall': {
        // The fast-path interface calls a function by OID (libpq's large-object API uses it);
        // Warden cannot tell what the function does, so it is a write.
        const command: ClassifiedStatement = {
          protocol: 'postgres',
          text: `function call (OID ${m.functionOid})`,
          statementClass: 'write',
          tables: [],
          flags: ['functionCall'],
        };
        const result = this.#check([command], m.args, m);
        if (!result) return; // held for approval
        const { deny } = result;
        this.#pending.push({ kind: 'function', ...(deny ? { deny } : {}) });
        if (deny) {
          const poison = Buffer.from([0x46, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
          this.#toUpstream(poison);
        } else {
          this.#toUpstream(m.raw);
        }
        return;
      }
      case 'Terminate':
        this.#end('client-closed');
        return;
      default:
        this.#end('protocol-error', { code: SqlState.ProtocolViolation, message: `unexpected ${m.type} message during the session` });
    }
  }

  #onUpstreamData(chunk: Buffer): void {
    if (this.#ended) return;
    let frames: BackendFrame[];
    try {
      frames = this.#upstream!.framer.push(chunk);
    } catch (error) {
      this.#log('error', 'invalid data from the database', { error: (error as Error).message });
      this.#end('server-error', { code: SqlState.ProtocolViolation, message: 'Warden: the database sent invalid data' });
      return;
    }
    const outer = this.#clientBatch !== undefined;
    if (!outer) this.#clientBatch = [];
    try {
      for (const f of frames) {
        if (this.#ended) break;
        this.#onUpstreamFrame(f);
      }
    } catch (error) {
      this.#log('error', 'relay failed', { error: (error as Error).message });
      this.#end('error', { code: SqlState.InternalError, message: 'Warden hit an internal error; the session was ended' });
    } finally {
      if (!outer) this.#flushClient();
    }
  }

  #onUpstreamFrame(f: BackendFrame): void {
    const head = this.#pending[0];
    switch (f.code) {
      case BackendCode.ParameterStatus:
        this.#observeParameterStatus(f.raw);
        this.#toClient(f.raw);
        return;
      case BackendCode.NoticeResponse:
      case BackendCode.NotificationResponse:
        this.#toClient(f.raw);
        return;
      case BackendCode.ParseComplete:
        if (head?.kind === 'parse') {
          this.#pending.shift();
          this.#respStatements.set(head.name, head.statements);
        }
        break;
      case BackendCode.BindComplete:
        if (head?.kind === 'bind') {
          this.#pending.shift();
          this.#respPortals.set(head.portal, { statements: this.#respStatements.get(head.statement), description: undefined });
        }
        break;
      case BackendCode.RowDescription:
      case BackendCode.NoData: {
        const fields = f.code === BackendCode.NoData ? [] : this.#decodeRowDescription(f.body);
        if (head?.kind === 'describe') {
          this.#pending.shift();
          if (head.target === 'P') {
            const view = this.#respPortals.get(head.name) ?? { statements: undefined, description: undefined };
            view.description = fields;
            this.#respPortals.set(head.name, view);
          }
          if (head.internal) return;
        } else if (head?.kind === 'query' && f.code === BackendCode.RowDescription) {
          this.#result = this.#newResult(head.ids[head.index] ?? 0, head.started, fields, head.statements[head.index]);
        }
        break;
      }
      case BackendCode.DataRow:
        this.#onDataRow(f, head);
        return;
      case BackendCode.CommandComplete:
      case BackendCode.EmptyQueryResponse:
      case BackendCode.PortalSuspended: {
        const tag = f.code === BackendCode.CommandComplete ? backend.decodeCommandComplete(f.body) : undefined;
        if (head?.kind === 'execute') {
          this.#pending.shift();
          this.#finishResult(tag, head.id, head.started);
        } else if (head?.kind === 'query') {
          this.#finishResult(tag, head.ids[head.index] ?? 0, head.started);
          head.index++;
        }
        break;
      }
      case BackendCode.CloseComplete:
        if (head?.kind === 'close') {
          this.#pending.shift();
          if (head.target === 'S') this.#respStatements.delete(head.name);
          else this.#respPortals.delete(head.name);
        }
        break;
      case BackendCode.ErrorResponse:
        this.#onError(f, head);
        return;
      case BackendCode.ReadyForQuery: {
        this.#txStatus = backend.decodeReadyForQuery(f.body);
        // Everything up to and including the sync point is answered (or skipped after an error).
        while (this.#pending.length > 0) {
          const p = this.#pending.shift()!;
          if (p.kind === 'sync' || p.kind === 'query' || p.kind === 'function') break;
        }
        this.#result = undefined;
        if (this.#txStatus === 'I') {
          // The unnamed portal does not outlive its transaction.
          this.#respPortals.delete('');
        }
        break;
      }
      case BackendCode.CopyBothResponse:
        this.#end('protocol-error', { code: SqlState.FeatureNotSupported, message: 'Warden does not relay COPY BOTH (replication)' });
        return;
    }
    this.#toClient(f.raw);
  }

  #onError(f: BackendFrame, head: Pending | undefined): void {
    const fields = backend.decodeNoticeFields(f.body);
    const isFatal = fields.get(ErrorField.SeverityNonLocalized) === Severity.Fatal || fields.get(ErrorField.Severity) === Severity.Fatal;
    let out = f.raw;
    let deny: Denial | undefined;
    if (head?.kind === 'query' || head?.kind === 'function') {
      if (head.deny && !head.deny.used) {
        head.deny.used = true;
        deny = head.deny;
      }
    } else if (head && head.kind !== 'sync') {
      // Extended protocol: the failing message is the head; the server skips the rest up to Sync.
      this.#pending.shift();
      if ((head.kind === 'parse' || head.kind === 'execute') && head.deny) deny = head.deny;
      if (head.kind === 'describe' && head.internal) {
        // Our own Describe failed (no such portal): the client's Execute will fail the same way.
      }
      while (this.#pending.length > 0 && this.#pending[0]!.kind !== 'sync') this.#pending.shift();
    }
    if (deny && !isFatal) {
      out = backend.errorResponse({
        severity: Severity.Error,
        code: deny.code ?? SqlState.InsufficientPrivilege,
        message: `Warden: ${deny.reason}`,
        hint: deny.hint ?? 'Ask for access, or run a statement your policy allows.',
      });
    } else {
      this.#record({ k: EventKind.Error, code: fields.get(ErrorField.Code) ?? '', message: fields.get(ErrorField.Message) ?? '' });
    }
    this.#result = undefined;
    this.#toClient(out);
  }

  /** Decodes a RowDescription, or returns the fields of a byte-identical one seen lately (never mutated). */
  #decodeRowDescription(body: Buffer): FieldDescription[] {
    const seen = this.#rowDescriptions;
    for (let i = 0; i < seen.length; i++) {
      const entry = seen[i]!;
      if (entry.body.equals(body)) {
        if (i > 0) {
          seen.splice(i, 1);
          seen.unshift(entry);
        }
        return entry.fields;
      }
    }
    const fields = backend.decodeRowDescription(body);
    // A copy: the frame's bytes are forwarded (and may share a pooled buffer).
    seen.unshift({ body: Buffer.from(body), fields });
    if (seen.length > ROW_DESCRIPTIONS_KEPT) seen.pop();
    return fields;
  }

  #newResult(id: number, started: number, fields: FieldDescription[] | undefined, statement: ClassifiedStatement | undefined): ResultState {
    const sources = statement?.outputSources;
    const known = fields ? this.#plans.get(fields) : undefined;
    if (known && known.sources === sources) {
      return { id, started, fields, names: known.names, plan: known.plan, rows: [], rowCount: 0, bytes: 0, masked: false };
    }
    const names = (fields ?? []).map((field, i) => {
      const set = new Set([field.name.toLowerCase()]);
      if (sources && sources.length === fields!.length) for (const s of sources[i] ?? []) set.add(s);
      return [...set];
    });
    let plan: ResultState['plan'];
    if (this.#masker && fields) {
      const masker = this.#masker;
      plan = fields.map((field, i) => ({
        byName: masker.masksColumn(names[i]!),
        kind: JSON_TYPES.has(field.typeOid) && field.format === 0 ? 'json' : TEXT_TYPES.has(field.typeOid) || field.format === 0 ? 'text' : 'opaque',
      }));
    }
    if (fields) this.#plans.set(fields, { sources, names, plan });
    return { id, started, fields, names, plan, rows: [], rowCount: 0, bytes: 0, masked: false };
  }

  #onDataRow(f: BackendFrame, head: Pending | undefined): void {
    if (!this.#result && head?.kind === 'execute') {
      const view = this.#respPortals.get(head.portal);
      this.#result = this.#newResult(head.id, head.started, view?.description, view?.statements?.[0]);
    }
    const r = this.#result;
    const cap = this.#deps.config.maxRecordedRows ?? 1000;
    if (r) r.rowCount++;
    const wantRecord = this.#recorder !== undefined && r !== undefined && r.rows.length < cap;
    if (!this.#masker) {
      if (wantRecord) r.rows.push(this.#rowText(backend.decodeDataRow(f.body), r.fields));
      this.#rowToClient(r, f.raw);
      return;
    }
    const values = backend.decodeDataRow(f.body);
    if (!r?.plan || r.plan.length !== values.length) {
      // Masking is on but the columns are unknown: fail closed.
      this.#rowToClient(r, backend.dataRow(values.map(() => null)));
      return;
    }
    let changed = false;
    const masker = this.#masker;
    const plan = r.plan;
    const n = values.length;
    const out: Array<Buffer | null> = new Array(n);
    // The recorded row is the masked one, as the client sees it (text as #rowText makes it),
    // built in the same pass so each value is decoded once.
    const recorded: Array<string | null> | undefined = wantRecord ? new Array(n) : undefined;
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      if (v === null) {
        out[i] = null;
        if (recorded) recorded[i] = null;
        continue;
      }
      const p = plan[i]!;
      if (p.kind === 'opaque') {
        if (!p.byName) {
          out[i] = v;
          if (recorded) recorded[i] = this.#cellText(v, r.fields![i]);
        } else {
          changed = true;
          out[i] = null;
          if (recorded) recorded[i] = null;
        }
        continue;
      }
      const text = v.toString('utf8');
      const masked = masker.mask(r.names[i]!, text);
      if (masked === text) {
        out[i] = v;
        if (recorded) recorded[i] = text;
        continue;
      }
      changed = true;
      let value: Buffer | null;
      if (masked === null) value = null;
      else if (p.kind === 'json') value = Buffer.from(JSON.stringify(masked));
      // A masked value of a non-text type (int, date…) would not parse on the client: null it.
      else if (!TEXT_TYPES.has(r.fields![i]!.typeOid)) value = null;
      else value = Buffer.from(masked, 'utf8');
      out[i] = value;
      if (recorded) recorded[i] = value === null ? null : this.#cellText(value, r.fields![i]);
    }
    if (changed) r.masked = true;
    if (recorded) r.rows.push(recorded);
    this.#rowToClient(r, changed ? backend.dataRow(out) : f.raw);
  }

  /** A DataRow on its way to the client, counted in its result's `bytes`. */
  #rowToClient(r: ResultState | undefined, row: Buffer): void {
    if (r) r.bytes += row.length;
    this.#toClient(row);
  }

  /** One value as recorded: text when the column is text, else hex. */
  #cellText(v: Buffer, field: FieldDescription | undefined): string {
    if (!field || field.format === 0 || TEXT_TYPES.has(field.typeOid)) return v.toString('utf8');
    return `\\x${v.toString('hex')}`;
  }

  #rowText(values: Array<Buffer | null>, fields: FieldDescription[] | undefined): Array<string | null> {
    return values.map((v, i) => (v === null ? null : this.#cellText(v, fields?.[i])));
  }

  #finishResult(tag: string | undefined, id: number, started: number): void {
    const r = this.#result;
    this.#result = undefined;
    if (!this.#recorder) return;
    const cap = this.#deps.config.maxRecordedRows ?? 1000;
    this.#record({
      k: EventKind.SqlResult,
      id,
      columns: r?.fields?.map((f) => f.name) ?? [],
      rows: r?.rows ?? [],
      rowCount: r?.rowCount ?? 0,
      ...(r && r.rowCount > cap ? { truncated: true as const } : {}),
      ...(tag ? { tag } : {}),
      ...(r?.masked ? { masked: true } : {}),
      ...(r && r.bytes > 0 ? { bytes: r.bytes } : {}),
      durationMs: Math.round((performance.now() - (r?.started ?? started)) * 1000) / 1000,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Stage 5: end

  /** Ends the session from outside (shutdown, revoked access) with a FATAL 57P01. */
  terminate(reason: string, message: string): void {
    this.#end(reason, { code: SqlState.AdminShutdown, message });
  }

  /** Ends the session once: optional FATAL to the client, Terminate upstream, record, close. */
  #end(reason: string, error?: { code: string; message: string }): void {
    if (this.#ended) return;
    this.#ended = true;
    // What was relayed before the end goes out before the FATAL and the Terminate, in order.
    try {
      this.#flushClient();
      if (this.#upstream) this.#flushUpstream();
    } catch {
      // A socket already gone: nothing more to send.
    }
    for (const t of this.#timers) clearTimeout(t);
    this.#cancelAccess?.();
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    if (this.#cancelKey) this.#deps.cancels.unregister(this.#cancelKey.processId);
    this.#deps.stats.activeSessions--;
    const hold = this.#hold;
    if (hold) {
      // The client left while its statement waited: withdraw the request, record it.
      this.#hold = undefined;
      hold.withdrawn = true;
      if (hold.handle) {
        this.#recordApproval({ decision: 'Withdrawn', request: hold.handle.name });
        hold.handle.withdraw().catch(() => undefined);
      }
    }
    if (error && this.#client.writable) {
      try {
        this.#client.write(backend.errorResponse({ severity: Severity.Fatal, code: error.code, message: error.message }));
      } catch {
        // The client is gone already.
      }
    }
    this.#client.end();
    const timer = setTimeout(() => {
      this.#client.destroy();
      this.#raw.destroy();
    }, 1000);
    timer.unref();
    this.#client.once('close', () => clearTimeout(timer));
    const up = this.#upstream?.socket;
    if (up && !up.destroyed) {
      up.end(serialize.end());
      setTimeout(() => up.destroy(), 1000).unref();
    }
    this.#log('info', 'session ended', { reason, user: this.#identity?.user });
    const recorder = this.#recorder;
    if (recorder) {
      if (recorder.close) {
        // The recorder writes session.end itself when it closes.
        const phase = reason === 'denied' ? 'Denied' : reason === 'client-closed' || reason === 'server-closed' ? 'Closed' : 'Terminated';
        Promise.resolve(recorder.close(reason, { phase, ...(error ? { message: error.message } : {}) })).catch((e: unknown) =>
          this.#log('error', 'closing the recording failed', { error: (e as Error).message }),
        );
      } else {
        try {
          recorder.append({ t: this.#t(), k: EventKind.SessionEnd, reason });
        } catch {
          // Nothing more can be done for this recording.
        }
      }
    }
    this.#done();
  }
}

/** A bound parameter as the approver reads it: text when it is text, else hex (capped). */
function parameterText(value: Buffer | null): string {
  if (value === null) return 'NULL';
  const text = value.toString('utf8');
  // eslint-disable-next-line no-control-regex -- binary parameters are shown as hex
  const shown = /[\u0000-\u0008\u000e-\u001f\ufffd]/.test(text) ? `\\x${value.toString('hex')}` : text;
  return shown.length > REQUEST_PARAM_MAX ? `${shown.slice(0, REQUEST_PARAM_MAX - 1)}…` : shown;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
