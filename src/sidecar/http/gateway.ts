// The HTTP gateway: a streaming reverse proxy, Node's own http/https server towards clients
// (docs/adr/0006-http-proxy.md), undici's pool towards the target (upstream.ts; node:http for upgrades).
// Each request passes the stages in order — framing check, token, admission, request attributes
// (Kubernetes request-info for API servers), policy, then the relay with capped recording and
// response masking. A refusal at any stage is answered in the protocol (401/403/400/502 with a JSON
// or Kubernetes `Status` body) and recorded; nothing reaches the target before policy allowed it.

import { createHash, randomUUID } from 'node:crypto';
import {
  Agent as HttpAgent,
  createServer as createHttpServer,
  type IncomingMessage,
  request as httpRequest,
  type ClientRequest,
  type Server,
  type ServerOptions,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { Agent as HttpsAgent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { PassThrough, pipeline } from 'node:stream';
import type { Dispatcher, Pool } from 'undici';
import type { HttpCommand, KubernetesCommand, PolicySubject } from '../../policy/command.ts';
import { capPayload, EventKind, type HttpRequestEvent, type HttpResponseEvent, type K8sExecChannel, MessageDirection, type RecordingEvent } from '../../recorder/events.ts';
import { AuthError } from '../auth/errors.ts';
import type { Identity } from '../auth/oidc.ts';
import { BodyCapture, JsonLinesMasker, maskBody, noticingHits, readBounded } from './body.ts';
import type { BodyMasker, HttpGatewayConfig, HttpSessionRecorder, UpstreamCredentials } from './config.ts';
import { errorResponse, HttpGatewayError, HttpGatewayErrorCode } from './errors.ts';
import {
  bearerToken,
  clientResponseHeaders,
  framingProblem,
  type HeaderMap,
  impersonationHeader,
  isJsonStreamType,
  isJsonType,
  isTextType,
  recordedHeaders,
  upstreamRequestHeaders,
} from './headers.ts';
import { kubernetesCommand, RequestInfoError, type RequestInfo } from './request-info.ts';
import { BodyStream, ClientSink, createUpstreamPool, type ResponseSink, UpstreamExchange, upstreamTlsOptions } from './upstream.ts';
import {
  type ChannelMaskerOutput,
  isKubernetesChannelProtocol,
  KubernetesChannelMasker,
  type WsFrame,
  WsFrameParser,
  WsOpcode,
  WsProtocolError,
} from './websocket.ts';
import { DEFAULTS } from '../../api/types.ts';
import { remember } from '../../bounded.ts';
import type { TerminalMaskStream } from '../../masking/terminal.ts';
import type { ApprovalHandle, ApprovalOutcome } from '../../approvals/types.ts';
import { parseGoDuration } from '../../policy/duration.ts';
import { approvalEvent, connectionName, oneLine, refusalText } from '../approvals.ts';
import { onAccessExpiry, SessionApprovalGate } from '../session-approval.ts';
import type { RequestDecision } from './config.ts';

export const HTTP_GATEWAY_DEFAULTS = {
  maxRecordedBodyBytes: 64 * 1024,
  maxMaskedBodyBytes: 8 * 1024 * 1024,
  headersTimeoutMs: 30_000,
  idleTimeoutMs: 10 * 60_000,
  responseTimeoutMs: 30_000,
  approvalWaitMs: 10_000,
  /** Idle time before masked exec/attach output held back is let out (as the SSH gateway). */
  maskFlushMs: 25,
  /**
   * Largest frame of a Kubernetes exec/attach stream whose output is masked (masking needs whole
   * payloads); the API server sends at most 32 KiB. Larger: the stream is cut.
   */
  maxChannelFrameBytes: 1024 * 1024,
} as const;

/** Kubernetes subresources whose requests switch protocols (connect requests); no other request may carry an Upgrade. */
const UPGRADABLE_SUBRESOURCES: ReadonlySet<string> = new Set(['exec', 'attach', 'portforward', 'proxy']);

/** Response headers that no longer describe a body the gateway has masked (or re-framed). */
const STALE_AFTER_MASKING = ['etag', 'content-md5', 'digest', 'content-length'] as const;

/** A response that must be masked: one Content-Type and one Content-Encoding, identity; else refused. Returns the type. */
function maskableContentType(headers: HeaderMap): string | undefined {
  const encoding = headers['content-encoding'];
  const contentType = headers['content-type'];
  if (Array.isArray(encoding) || Array.isArray(contentType)) {
    throw new HttpGatewayError(HttpGatewayErrorCode.CannotMask, 502, 'the response must be masked but the target sent more than one Content-Type or Content-Encoding; the gateway refuses it');
  }
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    throw new HttpGatewayError(HttpGatewayErrorCode.CannotMask, 502, `the response must be masked but the target sent it ${encoding}-encoded; the gateway refuses it`);
  }
  return contentType;
}

function unreadableType(contentType: string | undefined): HttpGatewayError {
  return new HttpGatewayError(HttpGatewayErrorCode.CannotMask, 502, `the response must be masked but is ${contentType ?? 'of no declared type'}, which the gateway cannot read; it is refused`);
}

/** Requests held for approval remembered for retries (per requester and exact request line). */
const MAX_PENDING_APPROVALS = 10_000;
/** The optional header a client states its reason in; stored in the AccessRequest. */
const REASON_HEADER = 'x-warden-reason';

type Untimed<E> = E extends RecordingEvent ? Omit<E, 't'> : never;
type EventInput = Untimed<RecordingEvent>;

/** One recording session per client connection. */
class ConnectionSession {
  readonly #recorder: HttpSessionRecorder;
  readonly #start = Date.now();
  #lastT = 0;
  #nextId = 1;
  #accepting = true;
  #failed = false;
  #ended = false;
  lastUser: string | undefined;

  readonly #writesLifecycle: boolean;

  constructor(recorder: HttpSessionRecorder, writesLifecycle: boolean) {
    this.#recorder = recorder;
    this.#writesLifecycle = writesLifecycle;
  }

  nextId(): number {
    return this.#nextId++;
  }

  /**
   * Records an event; a recorder failure fails the session closed (throws RecordingUnavailable).
   * The event is stamped with `t` in place (callers hand over fresh objects), not copied.
   */
  record(event: EventInput): void {
    if (this.#failed) throw recordingUnavailable();
    const elapsed = this.#recorder.t ? this.#recorder.t() : Math.floor(Date.now() - this.#start);
    if (elapsed > this.#lastT) this.#lastT = elapsed;
    try {
      const timed = event as RecordingEvent;
      timed.t = this.#lastT;
      const accepted = this.#recorder.append(timed);
      if (accepted === false && this.#recorder.once) {
        this.#accepting = false;
        this.#recorder.once('drain', () => {
          this.#accepting = true;
        });
      }
    } catch (error) {
      this.#failed = true;
      throw recordingUnavailable(error);
    }
  }

  /** Whether the recorder asked the gateway to hold new requests until its spool or upload catches up. */
  get behind(): boolean {
    return !this.#accepting && this.#recorder.once !== undefined;
  }

  /** Resolves when the recorder takes new requests again (its spool or upload caught up). */
  async ready(): Promise<void> {
    if (this.#accepting || !this.#recorder.once) return;
    await new Promise<void>((resolve) => this.#recorder.once?.('drain', resolve));
  }

  end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    try {
      if (!this.#failed && !this.#writesLifecycle) this.record({ k: EventKind.SessionEnd, reason });
      void Promise.resolve(this.#recorder.close?.(reason)).catch(() => undefined);
    } catch {
      // The session is over either way.
    }
  }
}

function recordingUnavailable(cause?: unknown): HttpGatewayError {
  const error = new HttpGatewayError(
    HttpGatewayErrorCode.RecordingUnavailable,
    503,
    'the gateway cannot record this session right now, so it takes no requests (fail closed); try again shortly',
  );
  if (cause !== undefined) (error as Error & { cause?: unknown }).cause = cause;
  return error;
}

interface ConnectionState {
  session?: ConnectionSession;
  /** The recording session's id (AccessRequests name it). */
  sessionId?: string;
  /** Session-level JIT: the approved access this connection runs under, until it expires. */
  access?: { user: string; request: string; expiresAt: Date; cancel: () => void };
  /** The last token that verified on this connection and who it named. */
  verified?: { token: string; identity: Identity };
}

/**
 * The client side of a request (its ServerResponse, or the socket of an upgrade): a request held for
 * approval watches it to withdraw the AccessRequest when the client goes away.
 */
interface ClientEnd {
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/** What the admission stages decided for an allowed request. */
interface Allowed {
  identity: Identity;
  subject: PolicySubject;
  command: HttpCommand | KubernetesCommand;
  info?: RequestInfo;
  rule?: string;
  masker?: BodyMasker;
  /** The AccessRequest (`namespace/name`) that approved this request, when it was held. */
  approval?: string;
  /** A held request's body, read whole so the approval binds it (sent instead of relaying). */
  heldBody?: Buffer;
}

const NO_BODY = Buffer.alloc(0);

/** The largest body a request held for approval may carry: it is read whole and digested. */
export const MAX_HELD_BODY_BYTES = 1024 * 1024;

export class HttpGateway {
  readonly config: HttpGatewayConfig;
  readonly #server: Server;
  /** Upgrades (WebSocket) go through node:http, which hands over both sockets. */
  readonly #agent: HttpAgent;
  /** Every other request goes through undici's pool (upstream.ts). */
  readonly #pool: Pool;
  readonly #responseTimeoutMs: number;
  readonly #upstream: URL;
  /** Where upstream requests go, worked out once from the upstream URL. */
  readonly #target: { host: string; port: number; basePath: string; https: boolean };
  readonly #connections = new WeakMap<Socket, ConnectionState>();
  readonly #sockets = new Set<Socket>();
  readonly #recordCap: number;
  readonly #maskCap: number;
  readonly #credentials: UpstreamCredentials;
  readonly #gate: SessionApprovalGate;
  readonly #pending = new Map<string, { handle: ApprovalHandle; answered: boolean; settled?: ApprovalOutcome }>();
  /**
   * Approved Command requests already used to forward their request: an approval lets the exact
   * request through once (per gateway process), not again for the rest of the command window.
   */
  readonly #spentApprovals = new Map<string, true>();

  private constructor(config: HttpGatewayConfig) {
    this.config = config;
    this.#gate = new SessionApprovalGate({ approvals: config.approvals, connection: config.connection });
    this.#upstream = new URL(config.upstream.url);
    if (this.#upstream.protocol !== 'http:' && this.#upstream.protocol !== 'https:') {
      throw new Error(`the HTTP gateway's upstream must be an http:// or https:// URL, not ${this.#upstream.protocol}`);
    }
    const https = this.#upstream.protocol === 'https:';
    this.#target = {
      host: this.#upstream.hostname.replace(/^\[|\]$/g, ''),
      port: this.#upstream.port === '' ? (https ? 443 : 80) : Number(this.#upstream.port),
      basePath: this.#upstream.pathname === '/' ? '' : this.#upstream.pathname.replace(/\/$/, ''),
      https,
    };
    this.#recordCap = config.maxRecordedBodyBytes ?? HTTP_GATEWAY_DEFAULTS.maxRecordedBodyBytes;
    this.#maskCap = config.maxMaskedBodyBytes ?? HTTP_GATEWAY_DEFAULTS.maxMaskedBodyBytes;
    this.#credentials = config.upstream.credentials ?? { kind: 'none' };
    this.#agent = this.#createAgent();
    this.#responseTimeoutMs = config.upstream.responseTimeoutMs ?? HTTP_GATEWAY_DEFAULTS.responseTimeoutMs;
    this.#pool = createUpstreamPool(this.#upstream, config.upstream, this.#responseTimeoutMs);

    const options: ServerOptions = {
      // Node's parser in strict mode already refuses much of what smuggling needs; framingProblem
      // refuses the rest (headers.ts).
      insecureHTTPParser: false,
      requireHostHeader: true,
      joinDuplicateHeaders: false,
      headersTimeout: config.headersTimeoutMs ?? HTTP_GATEWAY_DEFAULTS.headersTimeoutMs,
      // Bodies may be long uploads or endless streams; the idle timeout bounds stalled ones.
      requestTimeout: 0,
      keepAliveTimeout: 5_000,
    };
    this.#server = config.tls
      ? createHttpsServer({ ...options, cert: config.tls.cert, key: config.tls.key, minVersion: 'TLSv1.2' })
      : createHttpServer(options);
    // Node resets a keep-alive socket's timeout to server.timeout when the next request begins (0,
    // none, by default), which would drop the per-connection idle timeout set below after the
    // first request: the server-wide value keeps it for every request.
    this.#server.timeout = config.idleTimeoutMs ?? HTTP_GATEWAY_DEFAULTS.idleTimeoutMs;
    // Bad input never crashes the process: whatever escapes a handler cuts that one connection.
    const contain = (work: Promise<void>, socket: Socket): void => {
      work.catch((error: unknown) => {
        this.#log('error', 'request handler failed', { error: (error as Error).message });
        socket.destroy();
      });
    };
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => contain(this.#handle(req, res, false), req.socket));
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => contain(this.#handle(req, res, true), req.socket));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => contain(this.#upgrade(req, socket, head), socket));
    this.#server.on('clientError', (error: Error & { code?: string }, socket: Socket) => {
      this.#log('info', 'refused a malformed request', { error: error.code ?? error.message });
      if (socket.writable && !socket.destroyed) {
        const body = JSON.stringify({ error: { code: HttpGatewayErrorCode.BadRequest, message: 'malformed HTTP request' } });
        socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy();
    });
    this.#server.on(config.tls ? 'secureConnection' : 'connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.setTimeout(config.idleTimeoutMs ?? HTTP_GATEWAY_DEFAULTS.idleTimeoutMs, () => socket.destroy());
      socket.once('close', () => {
        this.#sockets.delete(socket);
        this.#connections.get(socket)?.session?.end('client-closed');
      });
    });
    this.#server.on('error', (error: Error) => this.#log('error', 'listener error', { error: error.message }));
  }

  /** Starts listening; resolves once the port is bound. */
  static async start(config: HttpGatewayConfig): Promise<HttpGateway> {
    const gateway = new HttpGateway(config);
    await new Promise<void>((resolve, reject) => {
      gateway.#server.once('error', reject);
      gateway.#server.listen(config.listen.port, config.listen.host, () => {
        gateway.#server.off('error', reject);
        resolve();
      });
    });
    return gateway;
  }

  get address(): { host: string; port: number } {
    const address = this.#server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /** `http(s)://host:port` of the listener. */
  get url(): string {
    const { host, port } = this.address;
    return `${this.config.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /** Stops listening and cuts every connection (sessions end with `gateway-stopped`). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const socket of this.#sockets) {
      this.#connections.get(socket)?.session?.end('gateway-stopped');
      socket.destroy();
    }
    this.#server.closeAllConnections();
    this.#agent.destroy();
    await Promise.all([closed, this.#pool.destroy().catch(noop)]);
  }

  // -------------------------------------------------------------------------------------------
  // Stages

  #state(socket: Socket): ConnectionState {
    let state = this.#connections.get(socket);
    if (!state) {
      state = {};
      this.#connections.set(socket, state);
    }
    return state;
  }

  #session(state: ConnectionState, req: IncomingMessage): ConnectionSession | undefined {
    if (state.session) return state.session;
    const factory = this.config.recorder;
    if (!factory) return undefined;
    const address = `${req.socket.remoteAddress ?? ''}:${req.socket.remotePort ?? ''}`;
    const userAgent = req.headers['user-agent'];
    const startedAt = new Date();
    let recorder: HttpSessionRecorder;
    const sessionId = randomUUID();
    state.sessionId = sessionId;
    try {
      recorder = factory({
        sessionId,
        connection: this.config.connection,
        client: userAgent === undefined ? { addr: address } : { addr: address, app: userAgent.slice(0, 256) },
        startedAt,
      });
    } catch (error) {
      throw recordingUnavailable(error);
    }
    const session = new ConnectionSession(recorder, this.config.recorderWritesLifecycle ?? false);
    state.session = session;
    if (this.config.recorderWritesLifecycle) return session;
    session.record({
      k: EventKind.SessionStart,
      protocol: this.config.flavour === 'kubernetes' ? 'kubernetes' : 'http',
      connection: this.config.connection,
      startedAt: startedAt.toISOString(),
      client: userAgent === undefined ? { addr: address } : { addr: address, app: userAgent.slice(0, 256) },
      target: this.#upstream.host,
    });
    return session;
  }

  /**
   * The identity of the last token verified on this connection, when the request carries exactly
   * that token and it has not expired; otherwise undefined (and #authenticate verifies).
   */
  #reverified(state: ConnectionState, req: IncomingMessage): Identity | undefined {
    const cached = state.verified;
    if (cached === undefined) return undefined;
    const token = bearerToken(req.headers.authorization);
    if (token !== cached.token) return undefined;
    const expiresAt = cached.identity.expiresAt;
    return expiresAt === undefined || expiresAt.getTime() > Date.now() ? cached.identity : undefined;
  }

  async #authenticate(state: ConnectionState, req: IncomingMessage): Promise<Identity> {
    const header = req.headers.authorization;
    const token = bearerToken(header);
    if (token === undefined) {
      throw new HttpGatewayError(
        HttpGatewayErrorCode.Unauthenticated,
        401,
        header === undefined
          ? 'no token was given: send your OIDC token as Authorization: Bearer <token>'
          : 'the Authorization header is not a bearer token: send your OIDC token as Authorization: Bearer <token>',
      );
    }
    try {
      const identity = await this.config.verifier.verify(token);
      state.verified = { token, identity };
      return identity;
    } catch (error) {
      state.verified = undefined;
      const message = error instanceof AuthError ? error.message : 'the token could not be verified';
      throw new HttpGatewayError(HttpGatewayErrorCode.Unauthenticated, 401, message);
    }
  }

  /** Token, admission, request attributes, policy. Throws HttpGatewayError for a refusal. */
  async #admit(req: IncomingMessage, state: ConnectionState, session: ConnectionSession | undefined, id: number, client: ClientEnd): Promise<Allowed> {
    const problem = framingProblem(req.rawHeaders);
    if (problem !== undefined) {
      throw new HttpGatewayError(HttpGatewayErrorCode.BadRequest, 400, `the request has ${problem}; the gateway refuses ambiguous framing`);
    }
    const url = req.url ?? '';
    if (!url.startsWith('/')) {
      throw new HttpGatewayError(HttpGatewayErrorCode.BadRequest, 400, 'the request target must be a path (origin-form), not an absolute URL or *');
    }
    let identity: Identity;
    try {
      // The token this connection verified last is reused while it has not expired (no await: most
      // requests on a keep-alive connection carry the same token).
      identity = this.#reverified(state, req) ?? (await this.#authenticate(state, req));
    } catch (error) {
      if (error instanceof HttpGatewayError) session?.record({ k: EventKind.Auth, ok: false, method: 'oidc', reason: error.message });
      throw error;
    }
    const subject: PolicySubject = { user: identity.user, groups: identity.groups };
    const admission = this.config.policy.admission(subject);
    if (session && session.lastUser !== identity.user) {
      session.lastUser = identity.user;
      session.record({ k: EventKind.Auth, ok: admission.admitted, method: 'oidc', user: identity.user, groups: identity.groups, reason: admission.reason });
    }
    if (!admission.admitted) throw new HttpGatewayError(HttpGatewayErrorCode.NotAdmitted, 403, admission.reason);
    if (this.config.policy.sessionApproval !== undefined) await this.#sessionAccess(req, state, session, subject);

    const method = req.method ?? 'GET';
    let command: HttpCommand | KubernetesCommand;
    let info: RequestInfo | undefined;
    if (this.config.flavour === 'kubernetes') {
      const impersonation = impersonationHeader(req.headers as HeaderMap);
      if (impersonation !== undefined) {
        throw new HttpGatewayError(
          HttpGatewayErrorCode.BadRequest,
          403,
          `the header ${impersonation} is not allowed through Warden: the gateway calls the API server with its own credentials`,
        );
      }
      try {
        ({ info, command } = kubernetesCommand(method, url));
      } catch (error) {
        if (error instanceof RequestInfoError) throw new HttpGatewayError(HttpGatewayErrorCode.BadRequest, 400, error.message);
        throw error;
      }
    } else {
      // The host policy sees is the one the target receives: the gateway does not forward the
      // client's Host, so a client cannot pick another virtual host behind the target.
      command = { protocol: 'http', method, host: this.#upstream.host, path: url };
    }
    const decision = this.config.policy.decide(subject, command);
    const rule = decision.policy !== undefined && decision.rule !== undefined ? `${decision.policy}/${decision.rule}` : undefined;
    // A refused request: its request event (without a body) and the deny event with the reason.
    const recordRefused = (kind: 'approval' | 'deny', reason: string): void => {
      session?.record({
        k: EventKind.HttpRequest,
        id,
        method,
        url: url.slice(0, 8192),
        headers: recordedHeaders(req.headers as HeaderMap, this.#credentials),
        decision: kind,
        ...(rule === undefined ? {} : { rule }),
        ...(info ? { k8s: k8sAttributes(info) } : {}),
      });
      session?.record({ k: EventKind.Deny, reason, ...(rule === undefined ? {} : { rule }), what: { text: `${method} ${url.slice(0, 512)}` } });
    };
    let approval: string | undefined;
    let heldBody: Buffer | undefined;
    if (decision.effect === 'RequireApproval' && this.config.approvals !== undefined) {
      try {
        // The approval covers this exact body (its digest is part of the approved command), so
        // the body is read before anything is decided.
        if (!hasNoBody(req)) heldBody = await readHeldBody(req, client);
        approval = await this.#approve(req, subject, command, decision, rule, session, client, heldBody);
      } catch (error) {
        recordRefused('approval', error instanceof Error ? error.message : String(error));
        throw error;
      }
    } else if (decision.effect !== 'Allow') {
      const approval = decision.effect === 'RequireApproval';
      const reason = approval
        ? `${decision.reason}; approvals are not configured on this gateway, so the request is refused`
        : decision.reason;
      recordRefused(approval ? 'approval' : 'deny', reason);
      throw new HttpGatewayError(approval ? HttpGatewayErrorCode.ApprovalUnavailable : HttpGatewayErrorCode.Denied, 403, reason);
    }
    const masker = this.config.masking?.(subject);
    const allowed: Allowed = { identity, subject, command };
    if (info) allowed.info = info;
    if (rule !== undefined) allowed.rule = rule;
    if (masker && !masker.empty) allowed.masker = masker;
    if (approval !== undefined) allowed.approval = approval;
    if (heldBody !== undefined) allowed.heldBody = heldBody;
    return allowed;
  }

  /**
   * Session-level JIT (docs/session-approval.md): the subject may use this connection only under an
   * approved Session request. Checked on every request (cached per connection until the access
   * expires); when it expires, the connection is cut, which ends watches and exec streams too.
   */
  async #sessionAccess(req: IncomingMessage, state: ConnectionState, session: ConnectionSession | undefined, subject: PolicySubject): Promise<void> {
    const requirement = this.config.policy.sessionApproval?.(subject);
    if (requirement === undefined) return;
    const access = state.access;
    if (access !== undefined && access.user === subject.user && access.expiresAt.getTime() > Date.now()) return;
    const reason = reasonHeader(req);
    const result = await this.#gate.admit(subject, requirement, {
      ...(state.sessionId === undefined ? {} : { session: state.sessionId }),
      ...(reason === undefined ? {} : { reason }),
    });
    for (const event of result.events) session?.record(event);
    if (!result.admitted) throw new HttpGatewayError(HttpGatewayErrorCode.SessionApprovalRequired, 403, result.message);
    if (result.approval === undefined) return;
    const { request, expiresAt } = result.approval;
    const socket = req.socket;
    const first = state.access === undefined;
    state.access?.cancel();
    const cancel = onAccessExpiry(expiresAt, Date.now, () => {
      this.#log('info', 'session access expired; closing the connection', { request });
      state.session?.end('approval-expired');
      socket.destroy();
    });
    state.access = { user: subject.user, request, expiresAt, cancel };
    if (first) socket.once('close', () => state.access?.cancel());
  }

  /**
   * A request a RequireApproval rule holds: forwarded when an approval of this requester for
   * exactly this request line exists (the retry after a 403), or when one is given within
   * `approvalWaitMs`; otherwise 403 naming the AccessRequest. Returns the request's `namespace/name`.
   */
  async #approve(
    req: IncomingMessage,
    subject: PolicySubject,
    command: HttpCommand | KubernetesCommand,
    decision: RequestDecision,
    rule: string | undefined,
    session: ConnectionSession | undefined,
    client: ClientEnd,
    body: Buffer | undefined,
  ): Promise<string> {
    const approvals = this.config.approvals;
    if (approvals === undefined) throw new HttpGatewayError(HttpGatewayErrorCode.ApprovalUnavailable, 403, `${decision.reason}; approvals are not configured on this gateway`);
    const method = req.method ?? 'GET';
    // The exact request: method and origin-form URL with its query (Kubernetes exec carries the
    // command there), and for a request with a body its size and SHA-256, so an approval covers
    // that body only (README: what an approval covers).
    const line = `${method} ${(req.url ?? '').slice(0, 8192)}`;
    const text = body === undefined ? line : `${line} (body ${body.length} bytes, sha256:${createHash('sha256').update(body).digest('hex')})`;
    const requester = { user: subject.user, groups: [...subject.groups] };
    const connection = connectionName(this.config.connection);
    const held = { protocol: this.config.flavour === 'kubernetes' ? ('kubernetes' as const) : ('http' as const), text };
    const unavailable = (why: string): HttpGatewayError =>
      new HttpGatewayError(HttpGatewayErrorCode.ApprovalUnavailable, 403, `${decision.reason}; ${why}, so the request is refused`);

    let found: Awaited<ReturnType<typeof approvals.findApproved>>;
    try {
      found = await approvals.findApproved({ requester, connection, kind: 'Command', command: held });
    } catch (error) {
      throw unavailable(`approvals cannot be checked right now (${oneLine((error as Error).message)})`);
    }
    // An approval used once already covers nothing more: the request is held again (a new request).
    if (found !== undefined && this.#spend(found.request)) {
      session?.record(approvalEvent(this.config.connection, found));
      return found.request;
    }

    const key = `${subject.user}\u0000${held.protocol}\u0000${text}`;
    let entry = this.#pending.get(key);
    if (entry?.settled !== undefined) {
      // Decided after the client was told to retry: this retry hears the decision; the next one
      // asks again. (An approval whose window is over asks again at once.)
      this.#pending.delete(key);
      const settled = entry.settled;
      entry = undefined;
      if (settled.decision !== 'Approved') {
        session?.record(approvalEvent(this.config.connection, settled));
        throw new HttpGatewayError(HttpGatewayErrorCode.ApprovalDenied, 403, refusalText(`${method} ${(req.url ?? '').slice(0, 200)}`, settled));
      }
    }
    if (entry === undefined) {
      let handle: ApprovalHandle;
      const reason = reasonHeader(req);
      try {
        handle = await approvals.request({
          requester,
          connection,
          kind: 'Command',
          command: held,
          ...(decision.policy === undefined ? {} : { policy: decision.policy }),
          ...(decision.rule === undefined ? {} : { rule: decision.rule }),
          ...(reason === undefined ? {} : { reason }),
          approvers: decision.approvers ?? [],
          timeoutMs: decision.approvalTimeoutMs ?? parseGoDuration(DEFAULTS.approvalTimeout),
        });
      } catch (error) {
        throw unavailable(`the approval request could not be created (${oneLine((error as Error).message)})`);
      }
      const created: { handle: ApprovalHandle; answered: boolean; settled?: ApprovalOutcome } = { handle, answered: false };
      entry = created;
      if (this.#pending.size >= MAX_PENDING_APPROVALS) this.#pending.clear();
      this.#pending.set(key, created);
      void handle.outcome.then((outcome) => {
        if (this.#pending.get(key) !== created) return;
        // Kept only for a client that was told to retry; otherwise the wait below answered it.
        if (created.answered && outcome.decision !== 'Withdrawn') created.settled = outcome;
        else this.#pending.delete(key);
      });
      session?.record(approvalEvent(this.config.connection, { decision: 'Pending', request: handle.name, ...(rule === undefined ? {} : { reason: `rule ${rule}` }) }));
    }
    const { handle } = entry;
    const waitMs = this.config.approvalWaitMs ?? HTTP_GATEWAY_DEFAULTS.approvalWaitMs;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const result = await Promise.race<ApprovalOutcome | 'waiting' | 'gone'>([
      handle.outcome,
      new Promise((resolve) => {
        timer = setTimeout(() => resolve('waiting'), waitMs);
      }),
      new Promise((resolve) => {
        onAbort = () => resolve('gone');
        if (client.destroyed) onAbort();
        else client.once('close', onAbort);
      }),
    ]);
    clearTimeout(timer);
    if (onAbort !== undefined) client.off('close', onAbort);
    if (result === 'gone') {
      // The client gave up before any answer about this request: withdraw it. Once a 403 named it,
      // it is the user's to retry, and stays.
      if (!entry.answered) {
        void handle.withdraw().catch(() => {});
        session?.record(approvalEvent(this.config.connection, { decision: 'Withdrawn', request: handle.name }));
      }
      throw new HttpGatewayError(HttpGatewayErrorCode.ApprovalDenied, 403, `the client went away while request ${handle.name} waited`);
    }
    if (result === 'waiting') {
      entry.answered = true;
      throw new HttpGatewayError(
        HttpGatewayErrorCode.ApprovalPending,
        403,
        `waiting for approval: request ${handle.name}${rule === undefined ? '' : ` (${rule})`}; retry this exact request once it is approved (kubectl warden approve ${handle.name})`,
      );
    }
    session?.record(approvalEvent(this.config.connection, result));
    if (result.decision === 'Approved') {
      // Identical requests waiting on the same AccessRequest: the approval lets one of them through.
      if (this.#spend(result.request)) return result.request;
      throw new HttpGatewayError(
        HttpGatewayErrorCode.ApprovalDenied,
        403,
        `request ${result.request} was approved for one request, and an identical one already used it; send this one again to ask for its own approval`,
      );
    }
    throw new HttpGatewayError(HttpGatewayErrorCode.ApprovalDenied, 403, refusalText(`${method} ${(req.url ?? '').slice(0, 200)}`, result));
  }

  async #handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): Promise<void> {
    const state = this.#state(req.socket);
    let session: ConnectionSession | undefined;
    let id = 0;
    try {
      session = this.#session(state, req);
      if (session) {
        if (session.behind) await session.ready();
        id = session.nextId();
      }
      const allowed = await this.#admit(req, state, session, id, res);
      // A held body was read already, after its own 100 Continue (readHeldBody).
      if (expectContinue && allowed.heldBody === undefined) res.writeContinue();
      this.#forward(req, res, allowed, session, id);
    } catch (error) {
      this.#refuse(req, res, error, session, id);
    }
  }

  #refuse(req: IncomingMessage, res: ServerResponse, error: unknown, session: ConnectionSession | undefined, id: number): void {
    const refusal = asGatewayError(error);
    if (refusal.code === HttpGatewayErrorCode.UpstreamFailed || refusal.code === HttpGatewayErrorCode.RecordingUnavailable) {
      this.#log('warn', 'request failed', { code: refusal.code, error: refusal.message });
    }
    if (refusal.code !== HttpGatewayErrorCode.RecordingUnavailable && refusal.status >= 500) {
      try {
        session?.record({ k: EventKind.Error, code: refusal.code, message: refusal.message, ...(id > 0 ? { id } : {}) });
      } catch {
        // Already failing closed.
      }
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const { status, headers, body } = errorResponse(this.config.flavour, refusal);
    // A body the gateway did not read is not worth reading: close the connection after answering.
    const unreadBody = !req.complete && (req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined);
    if (unreadBody || refusal.code === HttpGatewayErrorCode.RecordingUnavailable || refusal.code === HttpGatewayErrorCode.BadRequest) {
      headers.connection = 'close';
    }
    res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  }

  // -------------------------------------------------------------------------------------------
  // Relay

  #upstreamHeaders(req: IncomingMessage, allowed: Allowed, upgrade?: string): HeaderMap {
    const headers = upstreamRequestHeaders(req.headers as HeaderMap, {
      flavour: this.config.flavour,
      upstreamHost: this.#upstream.host,
      credentials: this.#credentials,
      clientAddress: req.socket.remoteAddress ?? '',
      clientHost: req.headers.host,
      secure: this.config.tls !== undefined,
      needsReadableBody: allowed.masker !== undefined,
      ...(upgrade === undefined ? {} : { upgrade }),
      ...(this.config.flavour === 'kubernetes' && this.config.impersonateCaller
        ? { impersonate: { user: allowed.subject.user, groups: allowed.subject.groups } }
        : {}),
    });
    // No WebSocket extensions (permessage-deflate): the frames must stay readable to be recorded.
    // A target that answers with one anyway sets RSV bits, and the stream is cut.
    if (upgrade?.toLowerCase() === 'websocket') delete headers['sec-websocket-extensions'];
    return headers;
  }

  /** An upgrade request (WebSocket, SPDY) to the target, on node:http: its `upgrade` event hands over the socket. */
  #upgradeRequest(req: IncomingMessage, allowed: Allowed, upgrade: string): ClientRequest {
    const target = this.#target;
    const headers = this.#upstreamHeaders(req, allowed, upgrade);
    const options = { host: target.host, port: target.port, method: req.method ?? 'GET', path: target.basePath + (req.url ?? '/'), headers, agent: this.#agent };
    return target.https ? httpsRequest(options as typeof options & { agent: HttpsAgent }) : httpRequest(options);
  }

  #forward(req: IncomingMessage, res: ServerResponse, allowed: Allowed, session: ConnectionSession | undefined, id: number): void {
    const requestCapture = new BodyCapture(this.#recordCap);
    let requestRecorded = false;
    const recordRequest = (complete: boolean): void => {
      if (requestRecorded || !session) return;
      requestRecorded = true;
      const event: Untimed<HttpRequestEvent> = {
        k: EventKind.HttpRequest,
        id,
        method: req.method ?? 'GET',
        url: (req.url ?? '').slice(0, 8192),
        headers: recordedHeaders(req.headers as HeaderMap, this.#credentials),
        decision: allowed.approval === undefined ? 'allow' : 'approval',
      };
      const body = requestCapture.payload(complete);
      if (body !== undefined) event.body = body;
      if (allowed.rule !== undefined) event.rule = allowed.rule;
      if (allowed.info) event.k8s = k8sAttributes(allowed.info);
      session.record(event);
    };
    const fail = (error: unknown): void => {
      try {
        recordRequest(false);
      } catch {
        // fail closed below
      }
      this.#refuse(req, res, upstreamError(error), session, id);
    };

    // A body already read whole (held for approval), or none: no Content-Length and no
    // Transfer-Encoding (framingProblem refused any other reading), or a zero Content-Length (RFC
    // 9112 §6.3). Either is recorded whole before anything goes to the target — a recorder failure
    // throws here and is answered 503 (#handle) — and there is nothing to relay; Node's server
    // drains an empty request after the response.
    const whole = allowed.heldBody ?? (hasNoBody(req) ? NO_BODY : undefined);
    if (whole !== undefined) {
      if (whole.length > 0) requestCapture.push(whole);
      recordRequest(true);
    }

    const exchange = new UpstreamExchange((controller, status, headers) => {
      recordRequest(req.complete);
      return this.#respond(req, res, controller, status, headers, allowed, session, id);
    }, fail);
    res.once('close', () => exchange.clientClosed(res.writableFinished));
    res.on('error', noop);

    let body: Buffer | PassThrough | null;
    if (whole !== undefined) {
      body = whole.length > 0 ? whole : null;
    } else {
      // Through a PassThrough, not the request itself: undici destroys a body it gives up on, and
      // the client's request must survive a failed target to hear the 502 (#refuse closes after it).
      const pass = new PassThrough();
      body = pass;
      req.on('error', (error) => exchange.abort(error));
      req.pipe(pass);
      // The request event is written once: when the body ended, when the response begins, or when
      // the client went away — so its size is exact whenever the body was seen whole.
      req.on('data', (chunk: Buffer) => requestCapture.push(chunk));
      req.once('end', () => guard(() => recordRequest(true), res));
      req.once('close', () => {
        if (!req.complete) exchange.abort(new Error('the client broke off the request body'));
        guard(() => recordRequest(req.complete), res);
      });
    }
    const options: Dispatcher.DispatchOptions = {
      path: this.#target.basePath + (req.url ?? '/'),
      method: req.method ?? 'GET',
      headers: this.#upstreamHeaders(req, allowed),
      body,
      headersTimeout: this.#responseTimeoutMs,
    };
    this.#pool.dispatch(options, exchange);
  }

  /** The response head arrived: headers to the client, and where the body goes (a ResponseSink). */
  #respond(
    req: IncomingMessage,
    res: ServerResponse,
    controller: Dispatcher.DispatchController,
    status: number,
    upstreamHeaders: HeaderMap,
    allowed: Allowed,
    session: ConnectionSession | undefined,
    id: number,
  ): ResponseSink {
    const headers = clientResponseHeaders(upstreamHeaders);
    const capture = new BodyCapture(this.#recordCap);
    let maskedSome = false;
    const recordResponse = (complete: boolean): void => {
      if (!session) return;
      const event: Untimed<HttpResponseEvent> = { k: EventKind.HttpResponse, id, status, headers: recordedHeaders(upstreamHeaders) };
      const body = capture.payload(complete);
      if (body !== undefined) event.body = body;
      if (maskedSome) event.masked = true;
      session.record(event);
    };
    const noBody = req.method === 'HEAD' || status === 204 || status === 304 || upstreamHeaders['content-length'] === '0';
    const masker = allowed.masker === undefined ? undefined : noticingHits(allowed.masker, () => (maskedSome = true));
    const recordMasked = this.config.recordMasked ?? true;

    if (masker === undefined || noBody) {
      res.writeHead(status, headers);
      return new ClientSink(
        res,
        (chunk) => capture.push(chunk),
        (complete) => guard(() => recordResponse(complete), res),
      );
    }

    // Masking reads the declared type and encoding: one value each, or the response is refused.
    const contentType = maskableContentType(upstreamHeaders);
    for (const stale of STALE_AFTER_MASKING) delete headers[stale];

    if (isJsonStreamType(contentType)) {
      const upstream = new BodyStream(controller);
      const lines = new JsonLinesMasker(masker, this.#maskCap, this.config.flavour === 'kubernetes');
      res.writeHead(status, headers);
      (recordMasked ? lines : upstream).on('data', (chunk: Buffer) => capture.push(chunk));
      pipeline(upstream, lines, res, (error) => guard(() => recordResponse(!error), res));
      return upstream;
    }
    if (!isJsonType(contentType) && !isTextType(contentType)) throw unreadableType(contentType);
    const declared = Number(upstreamHeaders['content-length'] ?? '0');
    if (declared > this.#maskCap) {
      throw new HttpGatewayError(
        HttpGatewayErrorCode.CannotMask,
        502,
        `the response must be masked and is larger than the gateway masks (${this.#maskCap} bytes); ask for less (pagination, a narrower query)`,
      );
    }
    const upstream = new BodyStream(controller);
    readBounded(upstream, this.#maskCap).then(
      (body) => {
        if (res.destroyed) return;
        const masked = maskBody(masker, contentType, body, this.config.flavour === 'kubernetes');
        capture.push(recordMasked ? masked : body);
        recordResponse(true);
        res.writeHead(status, { ...headers, 'content-length': String(masked.length) });
        res.end(masked);
      },
    ).catch((error: unknown) => {
      this.#refuse(req, res, error, session, id);
    });
    return upstream;
  }

  // -------------------------------------------------------------------------------------------
  // Upgrades (WebSocket, SPDY): admitted like requests, then relayed byte for byte.

  async #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const state = this.#state(socket);
    let session: ConnectionSession | undefined;
    let id = 0;
    let allowed: Allowed;
    try {
      session = this.#session(state, req);
      if (session) id = session.nextId();
      allowed = await this.#admit(req, state, session, id, socket);
    } catch (error) {
      this.#refuseRaw(socket, error);
      return;
    }
    const record = (event: EventInput): void => {
      try {
        session?.record(event);
      } catch {
        socket.destroy();
      }
    };
    const what = { text: `${req.method ?? 'GET'} ${(req.url ?? '').slice(0, 512)}` };
    /** Refused before any byte reaches the target, and recorded as a denial. */
    const refuse = (reason: string, error: HttpGatewayError): void => {
      record({ k: EventKind.Deny, reason, what });
      this.#refuseRaw(socket, error);
    };
    const upgradeHeader = req.headers.upgrade ?? 'websocket';
    const subresource = allowed.info?.subresource;
    if (this.config.flavour === 'kubernetes' && upgradeHeader.toLowerCase() !== 'websocket') {
      // SPDY streams (older kubectl exec/attach/port-forward) are not parsed, so they could not be
      // recorded: refused, fail closed. kubectl since 1.31 uses WebSocket (v5.channel.k8s.io).
      refuse(`${upgradeHeader} upgrades cannot be recorded`, new HttpGatewayError(HttpGatewayErrorCode.BadRequest, 403, `the gateway records exec and attach over WebSocket only, not ${upgradeHeader}; use kubectl 1.31 or newer`));
      return;
    }
    if (this.config.flavour === 'kubernetes' && (subresource === undefined || !UPGRADABLE_SUBRESOURCES.has(subresource))) {
      // Only connect requests switch protocols. Anything else with an Upgrade header (a GET of a
      // Secret, say) would otherwise take this path, where its answer is not masked: refused.
      refuse('only exec, attach, portforward and proxy requests can be upgraded', new HttpGatewayError(HttpGatewayErrorCode.BadRequest, 400, `only exec, attach, portforward and proxy requests can switch protocols; send this request without an Upgrade header`));
      return;
    }
    if (this.config.flavour === 'http' && allowed.masker !== undefined) {
      // Plain WebSocket messages are not masked: with masking rules, no stream is opened.
      refuse('WebSocket messages cannot be masked; the upgrade is refused while masking rules apply', new HttpGatewayError(HttpGatewayErrorCode.CannotMask, 502, 'the gateway cannot mask WebSocket messages, and masking rules apply to you here; the upgrade is refused'));
      return;
    }
    // Kubernetes exec/attach output the subject's masking rules apply to is masked on its way back
    // (#relayMasked). Port-forward tunnels TCP, not terminal output: relayed as before. A proxied
    // WebSocket carries anything: with masking rules, it is refused (fail closed).
    const masking = subresource === 'portforward' ? undefined : allowed.masker;
    const terminal = subresource === 'exec' || subresource === 'attach';
    const createStream = terminal ? masking?.createStream?.bind(masking) : undefined;
    if (masking !== undefined && createStream === undefined) {
      const reason = terminal ? 'the gateway has no stream masker' : `the gateway cannot mask a ${subresource} stream`;
      refuse(`the stream must be masked but ${reason}`, new HttpGatewayError(HttpGatewayErrorCode.CannotMask, 502, `the output of this stream must be masked but ${reason}; it is refused`));
      return;
    }
    let upstream: ClientRequest;
    try {
      upstream = this.#upgradeRequest(req, { ...allowed, masker: undefined } as Allowed, upgradeHeader);
    } catch (error) {
      this.#refuseRaw(socket, error);
      return;
    }
    record({
      k: EventKind.HttpRequest,
      id,
      method: req.method ?? 'GET',
      url: (req.url ?? '').slice(0, 8192),
      headers: recordedHeaders(req.headers as HeaderMap, this.#credentials),
      decision: allowed.approval === undefined ? 'allow' : 'approval',
      ...optional('rule', allowed.rule),
      ...(allowed.info ? { k8s: k8sAttributes(allowed.info) } : {}),
    });
    upstream.once('upgrade', (response: IncomingMessage, upstreamSocket: Socket, upstreamHead: Buffer) => {
      record({ k: EventKind.HttpResponse, id, status: response.statusCode ?? 101, headers: recordedHeaders(response.headers as HeaderMap) });
      const protocol = response.headers['sec-websocket-protocol'];
      if (createStream !== undefined && !isKubernetesChannelProtocol(protocol)) {
        // Only the binary channel protocols are parsed for masking; anything else (base64
        // channels, watch over WebSocket) would pass unmasked: refused, fail closed.
        upstreamSocket.destroy();
        const reason = `the output of this stream must be masked, which the gateway does for the v1-v5.channel.k8s.io protocols only, not ${protocol ?? 'no subprotocol'}`;
        refuse(reason, new HttpGatewayError(HttpGatewayErrorCode.CannotMask, 502, `${reason}; use kubectl 1.31 or newer`));
        return;
      }
      let head101 = `HTTP/1.1 101 Switching Protocols\r\n`;
      for (let i = 0; i + 1 < response.rawHeaders.length; i += 2) head101 += `${response.rawHeaders[i]}: ${response.rawHeaders[i + 1]}\r\n`;
      socket.write(`${head101}\r\n`);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.on('error', () => socket.destroy());
      socket.on('close', () => upstreamSocket.destroy());
      this.#sockets.add(upstreamSocket);
      upstreamSocket.once('close', () => this.#sockets.delete(upstreamSocket));
      if (createStream !== undefined) {
        if (session) this.#watchFrames(socket, head, undefined, upstreamHead, this.#channelRecorder(session, id));
        this.#relayMasked(socket, upstreamSocket, upstreamHead, createStream, session ? record : undefined, id);
        socket.pipe(upstreamSocket);
        return;
      }
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      upstreamSocket.on('close', () => socket.destroy());
      if (session && this.config.flavour === 'kubernetes' && isKubernetesChannelProtocol(protocol)) {
        this.#watchFrames(socket, head, upstreamSocket, upstreamHead, this.#channelRecorder(session, id));
      } else if (session && upgradeHeader.toLowerCase() === 'websocket' && response.headers['sec-websocket-accept'] !== undefined) {
        this.#watchFrames(socket, head, upstreamSocket, upstreamHead, this.#messageRecorder(session, id));
      }
      upstreamSocket.pipe(socket);
      socket.pipe(upstreamSocket);
    });
    upstream.once('response', (response: IncomingMessage) => {
      this.#declinedUpgrade(response, socket, allowed.masker, record, id).catch((error: unknown) => {
        record({ k: EventKind.Error, id, code: asGatewayError(error).code, message: oneLine((error as Error).message) });
        this.#refuseRaw(socket, error);
      });
    });
    upstream.once('error', (error) => this.#refuseRaw(socket, upstreamError(error)));
    upstream.end();
  }

  /**
   * The target answered an upgrade request without switching protocols (a 4xx Status, say): its
   * body is read (bounded), masked like any response when the subject's masking rules apply,
   * recorded, and sent with the connection closed. Never piped through unread: that would be a
   * way around masking and recording.
   */
  async #declinedUpgrade(response: IncomingMessage, socket: Socket, bodyMasker: BodyMasker | undefined, record: (event: EventInput) => void, id: number): Promise<void> {
    const status = response.statusCode ?? 502;
    let contentType: string | undefined;
    if (bodyMasker !== undefined) {
      try {
        contentType = maskableContentType(response.headers as HeaderMap);
        // No declared type is read as text (an empty 4xx body, say).
        if (contentType !== undefined && !isJsonType(contentType) && !isTextType(contentType)) throw unreadableType(contentType);
      } catch (error) {
        response.destroy();
        throw error;
      }
    }
    const original = await readBounded(response, this.#maskCap);
    let maskedSome = false;
    const body = bodyMasker === undefined || original.length === 0 ? original : maskBody(noticingHits(bodyMasker, () => (maskedSome = true)), contentType, original, this.config.flavour === 'kubernetes');
    const stored = (this.config.recordMasked ?? true) ? body : original;
    record({
      k: EventKind.HttpResponse,
      id,
      status,
      headers: recordedHeaders(response.headers as HeaderMap),
      ...(stored.length > 0 ? { body: capPayload(stored, this.#recordCap) } : {}),
      ...(maskedSome ? { masked: true as const } : {}),
    });
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
    const headers = clientResponseHeaders(response.headers as HeaderMap);
    for (const stale of [...STALE_AFTER_MASKING, 'transfer-encoding']) delete headers[stale];
    for (const [name, value] of Object.entries(headers)) {
      for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
    }
    socket.end(Buffer.concat([Buffer.from(`${head}content-length: ${body.length}\r\nconnection: close\r\n\r\n`), body]));
  }

  /**
   * Runs one frame parser per direction beside the byte relay (the bytes already read with the
   * handshake first, so the parsers start on a frame boundary) and hands each frame to `onFrame`.
   * A stream that cannot be parsed, so not recorded, is cut: fail closed.
   */
  #watchFrames(client: Socket, clientHead: Buffer, upstream: Socket | undefined, upstreamHead: Buffer, onFrame: (frame: WsFrame, fromClient: boolean) => void): void {
    const watch = (from: Socket, head: Buffer, fromClient: boolean): void => {
      const parser = new WsFrameParser({ maxPayloadBytes: this.#recordCap + 1 });
      const feed = (chunk: Buffer): void => {
        try {
          for (const frame of parser.push(chunk)) onFrame(frame, fromClient);
        } catch (error) {
          this.#log('warn', 'cut a WebSocket stream that could not be recorded', { error: (error as Error).message });
          client.destroy();
          upstream?.destroy();
        }
      };
      if (head.length > 0) feed(head);
      from.on('data', feed);
    };
    watch(client, clientHead, true);
    // Without `upstream`, only the client's direction is watched (the other is terminated and
    // recorded by #relayMasked).
    if (upstream) watch(upstream, upstreamHead, false);
  }

  /**
   * The target-to-client direction of a Kubernetes exec/attach stream whose output must be masked:
   * terminated instead of piped (KubernetesChannelMasker re-frames stdout and stderr through one
   * terminal mask stream each; everything else goes on unchanged, in order). The idle flush lets
   * out what the masker holds back once the target has been quiet for `maskFlushMs`, so
   * interactive output does not stall; back-pressure from the client pauses the target. A frame
   * that cannot be parsed, or larger than maxChannelFrameBytes, cuts the stream: fail closed.
   */
  #relayMasked(client: Socket, upstream: Socket, upstreamHead: Buffer, createStream: () => TerminalMaskStream, record: ((event: EventInput) => void) | undefined, id: number): void {
    const recordOriginal = this.config.recordMasked === false;
    const masker = new KubernetesChannelMasker({ createStream, maxFrameBytes: HTTP_GATEWAY_DEFAULTS.maxChannelFrameBytes, recordOriginal });
    const flushMs = this.config.maskFlushMs ?? HTTP_GATEWAY_DEFAULTS.maskFlushMs;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const cut = (error: unknown): void => {
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      this.#log('warn', 'cut a Kubernetes exec/attach stream whose output could not be masked', { error: (error as Error).message });
      client.destroy();
      upstream.destroy();
    };
    const send = (out: ChannelMaskerOutput): void => {
      // capPayload marks a piece over the cap truncated, with its size.
      if (record) for (const piece of out.records) {
        record({ k: EventKind.K8sExec, id, ch: piece.ch as K8sExecChannel, data: capPayload(piece.data, this.#recordCap), ...(piece.masked ? { masked: true as const } : {}) });
      }
      if (out.wire.length === 0 || client.destroyed) return;
      if (!client.write(out.wire.length === 1 ? (out.wire[0] as Buffer) : Buffer.concat(out.wire)) && !upstream.isPaused()) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    };
    const flush = (): void => {
      timer = undefined;
      if (done) return;
      try {
        send(masker.flush());
      } catch (error) {
        cut(error);
      }
    };
    const feed = (chunk: Buffer): void => {
      if (done) return;
      try {
        const out = masker.push(chunk);
        send(out);
        if (out.pushed) {
          if (timer !== undefined) clearTimeout(timer);
          timer = setTimeout(flush, flushMs);
        }
      } catch (error) {
        cut(error);
      }
    };
    const finish = (): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      try {
        send(masker.end());
      } catch (error) {
        cut(error);
        return;
      }
      // Ended, not destroyed: what was just written still reaches the client (its idle timeout
      // covers a client that stops reading).
      client.end();
    };
    client.once('close', () => {
      done = true;
      if (timer !== undefined) clearTimeout(timer);
    });
    if (upstreamHead.length > 0) feed(upstreamHead);
    upstream.on('data', feed);
    upstream.once('end', finish);
    upstream.once('close', finish);
  }

  /**
   * Kubernetes exec/attach streams (v4/v5.channel.k8s.io: binary frames whose first byte is the
   * channel) as `k8s.exec` events, each frame capped.
   */
  #channelRecorder(session: ConnectionSession, id: number): (frame: WsFrame) => void {
    return (frame) => {
      if (frame.opcode !== WsOpcode.Binary || frame.payload.length === 0) return;
      const channel = frame.payload[0] as number;
      const data = capPayload(frame.payload.subarray(1), this.#recordCap);
      const size = frame.size - 1;
      session.record({
        k: EventKind.K8sExec,
        id,
        ch: channel as K8sExecChannel,
        data: size > this.#recordCap ? { ...data, truncated: true, size } : data,
      });
    };
  }

  /**
   * Plain WebSocket data messages as `ws.message` events: fragments joined per direction, the
   * message capped at the body cap (its true size kept); control frames are not recorded.
   */
  #messageRecorder(session: ConnectionSession, id: number): (frame: WsFrame, fromClient: boolean) => void {
    const cap = this.#recordCap;
    const open = new Map<boolean, { opcode: typeof WsOpcode.Text | typeof WsOpcode.Binary; kept: Buffer[]; keptBytes: number; size: number; complete: boolean }>();
    return (frame, fromClient) => {
      if (frame.opcode >= 0x8) return;
      let message = open.get(fromClient);
      if (frame.opcode === WsOpcode.Text || frame.opcode === WsOpcode.Binary) {
        message = { opcode: frame.opcode, kept: [], keptBytes: 0, size: 0, complete: true };
        open.set(fromClient, message);
      } else if (frame.opcode !== WsOpcode.Continuation || message === undefined) {
        throw new WsProtocolError(`unexpected WebSocket opcode ${frame.opcode}`);
      }
      message.size += frame.size;
      // Keep a contiguous prefix of at most cap + 1 bytes: enough to cut at the cap.
      if (message.complete && message.keptBytes <= cap) {
        message.kept.push(frame.payload);
        message.keptBytes += frame.payload.length;
        if (frame.payload.length < frame.size) message.complete = false;
      }
      if (!frame.fin) return;
      open.delete(fromClient);
      const data = capPayload(Buffer.concat(message.kept), cap);
      session.record({
        k: EventKind.WsMessage,
        id,
        direction: fromClient ? MessageDirection.ToTarget : MessageDirection.ToClient,
        opcode: message.opcode,
        data: message.size > cap ? { ...data, truncated: true, size: message.size } : data,
      });
    };
  }

  /** Marks an approval used; false when it was used already. Bounded: the oldest are forgotten first. */
  #spend(request: string): boolean {
    if (this.#spentApprovals.has(request)) return false;
    remember(this.#spentApprovals, MAX_PENDING_APPROVALS, request, true);
    return true;
  }

  #refuseRaw(socket: Socket, error: unknown): void {
    const refusal = asGatewayError(error);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const { status, headers, body } = errorResponse(this.config.flavour, refusal);
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`;
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`;
    socket.end(`${head}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }

  // -------------------------------------------------------------------------------------------

  #createAgent(): HttpAgent {
    const common = { keepAlive: true, maxFreeSockets: 64 };
    if (this.#upstream.protocol === 'http:') return new HttpAgent(common);
    return new HttpsAgent({ ...common, ...upstreamTlsOptions(this.config.upstream) });
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, string | number | boolean | undefined>): void {
    this.config.logger?.(level, message, { connection: this.config.connection, ...fields });
  }
}

/** The client's stated reason (header `X-Warden-Reason`), one bounded line. */
function reasonHeader(req: IncomingMessage): string | undefined {
  const value = req.headers[REASON_HEADER];
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  const line = oneLine(text, 500);
  return line === '' ? undefined : line;
}

function k8sAttributes(info: RequestInfo): { verb: string; resource?: string; subresource?: string; namespace?: string; name?: string } {
  return {
    verb: info.verb,
    ...(info.isResourceRequest ? { resource: info.apiGroup === '' ? info.resource : `${info.resource}.${info.apiGroup}` } : {}),
    ...(info.subresource === '' ? {} : { subresource: info.subresource }),
    ...(info.namespace === '' ? {} : { namespace: info.namespace }),
    ...(info.name === '' ? {} : { name: info.name }),
  };
}

function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/**
 * Reads the body of a request held for approval, whole, up to MAX_HELD_BODY_BYTES (a larger one is
 * refused: it could not be shown to or bound by an approval). Sends 100 Continue first when the
 * client waits for it.
 */
async function readHeldBody(req: IncomingMessage, client: ClientEnd): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  const tooLarge = (): HttpGatewayError =>
    new HttpGatewayError(HttpGatewayErrorCode.BadRequest, 413, `a request that needs approval may carry at most ${MAX_HELD_BODY_BYTES} bytes of body`);
  if (declared > MAX_HELD_BODY_BYTES) throw tooLarge();
  if (req.headers.expect?.toLowerCase() === '100-continue' && 'writeContinue' in client) (client as ServerResponse).writeContinue();
  let body: Buffer;
  try {
    body = await readBounded(req, MAX_HELD_BODY_BYTES);
  } catch (error) {
    throw error instanceof HttpGatewayError ? tooLarge() : error;
  }
  if (!req.complete) throw new HttpGatewayError(HttpGatewayErrorCode.BadRequest, 400, 'the client broke off the request body');
  return body;
}

/** No Content-Length (or `0`) and no Transfer-Encoding: a request without a body (RFC 9112 §6.3). */
function hasNoBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined;
}

function noop(): void {}

/** Runs a recording step; a recorder failure cuts the client connection (fail closed). */
function guard(step: () => void, res: ServerResponse): void {
  try {
    step();
  } catch {
    res.destroy();
  }
}

/** undici's codes for a target that did not connect or answer in time (responseTimeoutMs). */
const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

function upstreamError(error: unknown): HttpGatewayError {
  if (error instanceof HttpGatewayError) return error;
  const code = (error as { code?: string }).code;
  if (code !== undefined && TIMEOUT_CODES.has(code)) return new HttpGatewayError(HttpGatewayErrorCode.UpstreamTimeout, 504, 'the target did not answer in time');
  return new HttpGatewayError(
    HttpGatewayErrorCode.UpstreamFailed,
    502,
    `the gateway could not complete the request to the target${code ? ` (${code})` : ''}`,
  );
}

function asGatewayError(error: unknown): HttpGatewayError {
  if (error instanceof HttpGatewayError) return error;
  return upstreamError(error);
}
