/**
 * The SSH gateway: an SSH server for clients (OIDC token at the password or keyboard-interactive
 * prompt, the SSH username naming the target account) that relays each authorised channel to the
 * target over its own SSH connection, deciding every request by policy, masking terminal output
 * and recording the session.
 *
 * Per client connection: handshake → authentication (token, admission, account, recording opened)
 * → ready: the target connection is opened at once; channels opened meanwhile wait for it →
 * channels relayed (channels.ts, forward.ts) → end (client gone, target gone, limit reached, policy
 * closed it, or recording failed), recorded as `session.end` with its reason.
 */
import { randomUUID } from 'node:crypto';
import { type AddressInfo, createServer, type Server as NetServer } from 'node:net';
import ssh2, { type AuthContext, type Client, type ClientInfo, type Connection } from 'ssh2';
import type { PolicySubject, SshCommand } from '../../policy/command.ts';
import { EventKind, Protocol } from '../../recorder/events.ts';
import { AuthError, AuthErrorCode } from '../auth/errors.ts';
import type { Identity } from '../auth/oidc.ts';
import { type ConnectionContext, DENIED_EXIT_STATUS, handleSession, UPSTREAM_FAILED_EXIT_STATUS } from './channels.ts';
import { clientAlgorithms, type SshDecision, type SshGatewayConfig, type SshSessionInfo } from './config.ts';
import { SshGatewayError, SshGatewayErrorCode } from './errors.ts';
import { handleDirectTcpip, RemoteForwards } from './forward.ts';
import { generateEd25519HostKey, type PinnedHostKey } from './host-keys.ts';
import { SessionLog } from './recording.ts';
import { guard } from './relay.ts';
import { coalesceWrites, ssh2NativeCrypto, useKeyObjectsInSsh2 } from './transport.ts';
import { connectUpstream, parsePins, type UpstreamConnection, upstreamRetryable } from './upstream.ts';
import type { ApprovalHandle } from '../../approvals/types.ts';
import { DEFAULTS } from '../../api/types.ts';
import { parseGoDuration } from '../../policy/duration.ts';
import { connectionName } from '../approvals.ts';
import { onAccessExpiry, SessionApprovalGate } from '../session-approval.ts';

// ssh2 is CommonJS without named exports Node can detect: take them from the default export.
const { Server } = ssh2;
type Server = InstanceType<typeof Server>;

/** Token attempts per connection before the gateway hangs up (OpenSSH's MaxAuthTries is 6). */
export const MAX_AUTH_ATTEMPTS = 3;
/** Longest token accepted at the prompt; real JWTs are a few KiB. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const AUTH_METHODS = ['keyboard-interactive', 'password'] as const;
/** Target account names the gateway accepts (POSIX-ish user names). */
const ACCOUNT_NAME = /^[a-z_][a-z0-9_.-]{0,63}$/i;

interface EarlyUpstream {
  account: string;
  connection: Promise<UpstreamConnection>;
  /** The caller is authenticated and admitted: the connection may log in. */
  admit(): void;
  /** The caller was refused or left: close it. */
  cancel(): void;
}

export interface SshGatewayAddress {
  host: string;
  port: number;
}

export class SshGateway {
  readonly config: SshGatewayConfig;
  readonly #server: Server;
  /** Accepts TCP connections and hands them to ssh2 (injectSocket) with writes coalesced (transport.ts). */
  readonly #listener: NetServer;
  readonly #pins: PinnedHostKey[];
  readonly #connections = new Set<ClientConnection>();
  readonly #log: (line: string) => void;
  readonly #gate: SessionApprovalGate;

  constructor(config: SshGatewayConfig) {
    this.config = config;
    this.#log = config.log ?? (() => {});
    this.#gate = new SessionApprovalGate({ approvals: config.approvals, connection: config.connection, ...(config.now ? { now: config.now } : {}) });
    this.#pins = parsePins(config.upstream);
    if (config.upstream.privateKey === undefined && config.upstream.password === undefined) {
      throw new SshGatewayError(SshGatewayErrorCode.ConfigInvalid, 'the Connection has no credentials for the target: set privateKey or password in its Secret');
    }
    if (this.#pins.length === 0 && config.upstream.insecureSkipHostKeyVerification !== true) {
      throw new SshGatewayError(
        SshGatewayErrorCode.ConfigInvalid,
        'spec.target.hostKeys is empty: pin the target host key(s) (ssh-keyscan) or set insecureSkipHostKeyVerification: true',
      );
    }
    this.#server = new Server(
      {
        hostKeys: [config.hostKey],
        algorithms: clientAlgorithms(),
        ident: 'Warden',
      },
      (client, info) => this.#accept(client, info),
    );
    this.#server.maxConnections = config.limits?.maxConnections ?? 1000;
    this.#server.on('error', (error: Error) => this.#log(`ssh gateway: listener error: ${error.message}`));
    useKeyObjectsInSsh2();
    if (!ssh2NativeCrypto()) {
      this.#log('ssh gateway: ssh2\'s native crypto binding is not built; using its JavaScript ciphers (about half the throughput). Build it with `node scripts/build-native.ts` (docs/adr/0013).');
    }
    this.#listener = createServer((socket) => {
      coalesceWrites(socket);
      // ssh2 applies maxConnections and starts the handshake as for its own listener.
      this.#server.injectSocket(socket);
    });
    this.#listener.on('error', (error: Error) => this.#log(`ssh gateway: listener error: ${error.message}`));
  }

  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<SshGatewayAddress> {
    return new Promise((resolve, reject) => {
      this.#listener.once('error', reject);
      this.#listener.listen(this.config.listen.port, this.config.listen.host ?? '0.0.0.0', () => {
        this.#listener.off('error', reject);
        const address = this.#listener.address() as AddressInfo;
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /** Number of client connections open now. */
  get connections(): number {
    return this.#connections.size;
  }

  /** Stops listening and ends every session (recorded as `shutdown`). */
  async close(): Promise<void> {
    const closing = new Promise<void>((resolve) => this.#listener.close(() => resolve()));
    await Promise.all([...this.#connections].map((c) => c.end('shutdown', 'warden: the gateway is shutting down')));
    await closing;
  }

  #accept(client: Connection, info: ClientInfo): void {
    const connection = new ClientConnection(this.config, this.#pins, client, info, this.#log, this.#gate);
    this.#connections.add(connection);
    connection.closed.then(
      () => this.#connections.delete(connection),
      () => this.#connections.delete(connection),
    );
  }
}

/** Generates an Ed25519 host key (OpenSSH format) for when no Secret provides one. */
export function generateHostKey(): string {
  return generateEd25519HostKey().privateKey;
}

class ClientConnection {
  readonly closed: Promise<void>;
  readonly #config: SshGatewayConfig;
  readonly #pins: PinnedHostKey[];
  readonly #conn: Connection;
  readonly #info: ClientInfo;
  readonly #diag: (line: string) => void;
  readonly #now: () => number;
  readonly #gate: SessionApprovalGate;
  /** Session-level JIT: when the approved access ends (the session is ended then). */
  #access: { request: string; expiresAt: Date } | undefined;
  #sessionId: string | undefined;
  /** Aborted when the client connection is gone: requests held for approval are withdrawn. */
  readonly #gone = new AbortController();
  #cancelAccessTimer: (() => void) | undefined;
  readonly #stops = new Set<(message: string, status: number) => void>();
  #resolveClosed!: () => void;
  #subject: PolicySubject | undefined;
  #account = '';
  #log: SessionLog | undefined;
  #upstream: Promise<Client> | undefined;
  /** The target connection started during authentication, held after key exchange until admission. */
  #early: EarlyUpstream | undefined;
  #upstreamClient: Client | undefined;
  #attempts = 0;
  #channelIds = 0;
  #ended = false;
  #endReason = 'client-closed';
  #authTimer: NodeJS.Timeout | undefined;
  #maxTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #idleMs: number | null = null;
  #lastActivity = 0;
  #masker: { empty: boolean; createStream(): ReturnType<NonNullable<ConnectionContext['masker']>> & object } | undefined;

  constructor(config: SshGatewayConfig, pins: PinnedHostKey[], conn: Connection, info: ClientInfo, diag: (line: string) => void, gate: SessionApprovalGate) {
    this.#config = config;
    this.#gate = gate;
    this.#pins = pins;
    this.#conn = conn;
    this.#info = info;
    this.#diag = diag;
    this.#now = config.now ?? Date.now;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    // Garbage on the port, a dead peer, a protocol error: ssh2 reports it here. Never fatal; and
    // no listener below may take the process down either.
    guard(conn, (error) => {
      diag(`ssh gateway: client ${info.ip}: internal error: ${(error as Error)?.stack ?? String(error)}`);
      void this.end('error', 'warden: internal error; the session is closed');
    });
    conn.on('error', (error: Error) => diag(`ssh gateway: client ${info.ip}: ${error.message}`));
    conn.on('close', () => void this.#onClose());
    conn.on('authentication', (ctx) => this.#authenticate(ctx));
    conn.on('ready', () => this.#ready());
    this.#authTimer = setTimeout(() => {
      diag(`ssh gateway: client ${info.ip} did not authenticate in time`);
      conn.end();
    }, config.limits?.authTimeoutMs ?? 30_000);
  }

  // --- authentication ---------------------------------------------------------------------

  #authenticate(ctx: AuthContext): void {
    this.#connectEarly(ctx.username);
    if (ctx.method === 'password') {
      this.#checkToken(ctx, ctx.password, undefined).catch((error: unknown) => this.#authFailed(error));
      return;
    }
    if (ctx.method === 'keyboard-interactive') {
      // No name or instruction: OpenSSH would print them on every login.
      ctx.prompt([{ prompt: 'Token: ', echo: false }], '', '', (answers) => {
        if (!Array.isArray(answers)) {
          ctx.reject([...AUTH_METHODS]);
          return;
        }
        this.#checkToken(ctx, answers[0], (message) => {
          // An info request with no prompts: OpenSSH prints its name and instruction, so the user
          // learns why (the password method has no way to say).
          ctx.prompt([], 'Warden: access refused', message, () => ctx.reject([...AUTH_METHODS]));
        }).catch((error: unknown) => this.#authFailed(error));
      });
      return;
    }
    // none, publickey, hostbased: say which methods work.
    ctx.reject([...AUTH_METHODS]);
  }

  /**
   * Starts the target connection while the caller authenticates, so that its TCP connect, banner
   * exchange and key exchange (most of the upstream setup time: sshd forks and re-executes itself
   * per connection) overlap the token prompt and verification. Nothing about the account is sent
   * before the caller is admitted ({@link connectUpstream}'s `admitted`): the target sees a
   * connection that stops after key exchange, and the host key is checked against the pins as
   * usual. Once per client connection, and only for a client that completed its own key exchange
   * with the gateway and asked to authenticate, so unauthenticated peers cannot make the gateway
   * open more than one target connection each (bounded by maxConnections and the 30 s
   * authentication timeout); a refused or departed caller closes it (#cancelEarly).
   */
  #connectEarly(account: string): void {
    if (this.#early !== undefined || this.#ended) return;
    const fixed = this.#config.upstream.user;
    if ((fixed !== undefined && account !== fixed) || !ACCOUNT_NAME.test(account)) return;
    let admit!: () => void;
    let cancel!: () => void;
    const admitted = new Promise<void>((resolve, reject) => {
      admit = resolve;
      cancel = () => reject(new Error('cancelled'));
    });
    admitted.catch(() => {});
    const early: EarlyUpstream = {
      account,
      connection: connectUpstream(this.#config.upstream, this.#pins, account, { admitted }),
      admit,
      cancel,
    };
    // Failures are looked at when (and if) the connection is used: #ready retries or reports them.
    early.connection.catch(() => {});
    this.#early = early;
  }

  #cancelEarly(): void {
    this.#early?.cancel();
  }

  /**
   * The target connection for the admitted caller: the early one when it was opened for this
   * account, else a new one; an early one that failed for a reason another attempt could fix (a
   * ready timeout while the user typed the token, a target restart) is retried once, at once.
   */
  #connectAdmitted(): Promise<UpstreamConnection> {
    const early = this.#early;
    const fresh = (): Promise<UpstreamConnection> => connectUpstream(this.#config.upstream, this.#pins, this.#account);
    if (early === undefined) return fresh();
    if (early.account !== this.#account) {
      early.cancel();
      return fresh();
    }
    early.admit();
    return early.connection.catch((error: unknown) => {
      if (this.#ended || !upstreamRetryable(error)) throw error;
      return fresh();
    });
  }

  /** A bug during authentication: hang up, keep the process. */
  #authFailed(error: unknown): void {
    this.#diag(`ssh gateway: client ${this.#info.ip}: authentication failed internally: ${(error as Error)?.stack ?? String(error)}`);
    this.#conn.end();
  }

  async #checkToken(ctx: AuthContext, token: string | undefined, explain: ((message: string) => void) | undefined): Promise<void> {
    this.#attempts++;
    const refuse = (message: string): void => {
      this.#diag(`ssh gateway: client ${this.#info.ip} refused: ${message}`);
      if (this.#attempts >= MAX_AUTH_ATTEMPTS) {
        // Let the explanation reach the client before hanging up.
        if (explain !== undefined) explain(message);
        else ctx.reject([...AUTH_METHODS]);
        setTimeout(() => this.#conn.end(), 200).unref();
        return;
      }
      if (explain !== undefined) explain(message);
      else ctx.reject([...AUTH_METHODS]);
    };
    let identity: Identity;
    try {
      if (token !== undefined && token.length > MAX_TOKEN_LENGTH) throw new AuthError(AuthErrorCode.Malformed, 'the token is too long');
      identity = await this.#config.verifier.verify(token);
    } catch (error) {
      refuse(error instanceof AuthError ? `${error.message} [${error.code}]` : 'the token could not be checked; try again shortly');
      return;
    }
    const subject: PolicySubject = { user: identity.user, groups: identity.groups };
    const account = ctx.username;
    let admission: { admitted: boolean; reason: string };
    try {
      admission = this.#config.policy.admission(subject);
    } catch (error) {
      // A policy bug admits nobody.
      admission = { admitted: false, reason: `policy evaluation failed (${(error as Error).message})` };
    }
    const fixed = this.#config.upstream.user;
    let denied: string | undefined;
    if (!admission.admitted) denied = `${identity.user} may not use this connection: ${admission.reason}`;
    else if (fixed !== undefined && account !== fixed) {
      denied = `this connection logs in to the target as '${fixed}' only; connect as ${fixed}@<gateway>`;
    } else if (!ACCOUNT_NAME.test(account)) denied = `'${account.slice(0, 64)}' is not a valid account name`;
    const sessionInfo: SshSessionInfo = {
      id: randomUUID(),
      identity,
      account,
      client: { addr: `${this.#info.ip}:${this.#info.port}`, app: this.#info.header.versions.software },
      target: `${this.#config.upstream.host}:${this.#config.upstream.port}`,
      startedAt: new Date(this.#now()),
    };
    let log: SessionLog;
    try {
      log = await this.#openRecording(sessionInfo);
    } catch (error) {
      refuse(`recording is unavailable, so no session can start (${(error as Error).message})`);
      return;
    }
    if (denied === undefined) {
      // Session-level JIT: only while an approved Session request exists (docs/session-approval.md).
      let requirement: ReturnType<NonNullable<SshGatewayConfig['policy']['sessionApproval']>>;
      try {
        requirement = this.#config.policy.sessionApproval?.(subject);
      } catch (error) {
        requirement = undefined;
        denied = `session approval could not be evaluated (${(error as Error).message})`;
      }
      if (denied === undefined && requirement !== undefined) {
        const gate = await this.#gate.admit(subject, requirement, { session: sessionInfo.id });
        for (const event of gate.events) log.add(event);
        if (!gate.admitted) denied = gate.message;
        else if (gate.approval !== undefined) this.#access = { request: gate.approval.request, expiresAt: gate.approval.expiresAt };
      }
    }
    if (denied !== undefined) {
      log.add({ k: EventKind.Auth, ok: false, method: 'oidc', user: identity.user, groups: identity.groups, reason: denied });
      log.add({ k: EventKind.SessionEnd, reason: 'denied' });
      await log.close().catch(() => {});
      refuse(denied);
      return;
    }
    if (this.#ended) {
      // The client left while the recording was being opened.
      log.add({ k: EventKind.SessionEnd, reason: 'client-closed' });
      await log.close().catch(() => {});
      return;
    }
    this.#subject = subject;
    this.#sessionId = sessionInfo.id;
    this.#account = account;
    this.#log = log;
    log.add({ k: EventKind.Auth, ok: true, method: 'oidc', user: identity.user, groups: identity.groups, reason: admission.reason });
    ctx.accept();
  }

  async #openRecording(info: SshSessionInfo): Promise<SessionLog> {
    const recorder = await this.#config.recorder(info);
    const log = new SessionLog(recorder, {
      now: this.#now,
      maxEventBytes: this.#config.limits?.maxEventBytes ?? 65_536,
      onFailure: () => void this.end('recording-failed', 'warden: recording is no longer possible, so the session is closed'),
    });
    log.add({
      k: EventKind.SessionStart,
      protocol: Protocol.Ssh,
      connection: this.#config.connection,
      startedAt: info.startedAt.toISOString(),
      client: info.client,
      target: `${info.account}@${info.target}`,
    });
    return log;
  }

  // --- session -----------------------------------------------------------------------------

  #ready(): void {
    if (this.#authTimer !== undefined) clearTimeout(this.#authTimer);
    const subject = this.#subject as PolicySubject;
    const log = this.#log as SessionLog;
    const masker = this.#config.policy.masker?.(subject);
    this.#masker = masker !== undefined && !masker.empty ? masker : undefined;

    const policyLimits = this.#config.policy.sessionLimits(subject);
    const maxMs = stricter(policyLimits.maxDurationMs, this.#config.limits?.maxDurationMs);
    this.#idleMs = stricter(policyLimits.idleTimeoutMs, this.#config.limits?.idleTimeoutMs);
    if (maxMs !== null) {
      this.#maxTimer = setTimeout(() => void this.end('max-duration', `warden: the session reached its maximum duration (${formatMs(maxMs)})`), maxMs);
    }
    const access = this.#access;
    if (access !== undefined) {
      this.#cancelAccessTimer = onAccessExpiry(access.expiresAt, this.#now, () =>
        void this.end('approval-expired', `warden: the approved access (request ${access.request}) has expired; the session is closed`),
      );
    }
    this.#activity();

    this.#upstream = this.#connectAdmitted().then((u) => {
      this.#upstreamClient = u.client;
      log.add({ k: EventKind.Auth, ok: true, method: 'target-hostkey', reason: `${u.hostKey.reason} ${u.hostKey.fingerprint}` });
      guard(u.client, (error) => void this.end('error', `warden: internal error (${(error as Error)?.message ?? String(error)})`));
      u.client.on('error', (error: Error) => this.#diag(`ssh gateway: target connection: ${error.message}`));
      u.client.on('close', () => void this.end('server-closed', 'warden: the target closed the connection'));
      return u.client;
    });
    this.#upstream.catch((error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      log.add({ k: EventKind.Error, code: error instanceof SshGatewayError ? error.code : SshGatewayErrorCode.UpstreamFailed, message });
      this.#diag(`ssh gateway: ${this.#info.ip} → target: ${message}`);
      // Channels report the failure to the user themselves; a client that opened none (ssh -N) is
      // disconnected after a moment.
      setTimeout(() => void this.end('target-unavailable', `warden: ${message}`), 2_000).unref();
    });

    const ctx = this.#context();
    const remote = new RemoteForwards(ctx, this.#conn);
    this.#conn.on('session', (accept) => handleSession(ctx, accept()));
    this.#conn.on('tcpip', (accept, reject, info) => handleDirectTcpip(ctx, this.#conn, accept, reject, info));
    this.#conn.on('request', (accept, reject, name, info) => {
      if (name === 'tcpip-forward' || name === 'cancel-tcpip-forward') remote.request(accept, reject, name, info as { bindAddr: string; bindPort: number });
      else reject?.();
    });
  }

  #context(): ConnectionContext {
    const subject = this.#subject as PolicySubject;
    const log = this.#log as SessionLog;
    return {
      subject,
      log,
      connection: this.#config.connection,
      gone: this.#gone.signal,
      requestApproval: this.#config.approvals === undefined ? undefined : (text, decision, reason) => this.#requestApproval(text, decision, reason),
      record: { input: this.#config.record?.input ?? true, output: this.#config.record?.output ?? true },
      maskFlushMs: this.#config.limits?.maskFlushMs ?? 25,
      upstream: () => this.#upstream ?? Promise.reject(new SshGatewayError(SshGatewayErrorCode.UpstreamFailed, 'not connected')),
      decide: (command: SshCommand): SshDecision => {
        try {
          return this.#config.policy.decide(subject, command);
        } catch (error) {
          // A policy bug must not open anything: fail closed.
          return { effect: 'Deny', reason: `policy evaluation failed (${(error as Error).message})` };
        }
      },
      masker: () => this.#masker?.createStream(),
      activity: () => this.#activity(),
      nextChannelId: () => this.#channelIds++,
      track: (stop) => {
        this.#stops.add(stop);
        return () => this.#stops.delete(stop);
      },
      terminate: (reason, message) => void this.end(reason, message),
      fail: (where, error) => {
        this.#diag(`ssh gateway: ${this.#info.ip}: ${where}: internal error: ${(error as Error)?.stack ?? String(error)}`);
        this.#log?.add({ k: EventKind.Error, code: SshGatewayErrorCode.Internal, message: `internal error in ${where}` });
        void this.end('error', 'warden: internal error; the session is closed');
      },
      diag: (line) => this.#diag(`ssh gateway: ${this.#info.ip}: ${line}`),
    };
  }

  #requestApproval(text: string, decision: SshDecision, reason: string | undefined): Promise<ApprovalHandle> {
    const approvals = this.#config.approvals;
    if (approvals === undefined) return Promise.reject(new Error('approvals are not configured on this gateway'));
    const subject = this.#subject as PolicySubject;
    return approvals.request({
      requester: { user: subject.user, groups: [...subject.groups] },
      connection: connectionName(this.#config.connection),
      ...(this.#sessionId === undefined ? {} : { session: this.#sessionId }),
      kind: 'Command',
      command: { protocol: 'ssh', text },
      ...(decision.policy === undefined ? {} : { policy: decision.policy }),
      ...(decision.rule === undefined ? {} : { rule: decision.rule }),
      ...(reason === undefined ? {} : { reason }),
      approvers: decision.approvers ?? [],
      timeoutMs: decision.approvalTimeoutMs ?? parseGoDuration(DEFAULTS.approvalTimeout),
    });
  }

  #activity(): void {
    if (this.#idleMs === null) return;
    // Resetting a timer on every packet is costly; re-arm lazily from the last activity time.
    this.#lastActivity = this.#now();
    if (this.#idleTimer !== undefined) return;
    const idleMs = this.#idleMs;
    const check = (): void => {
      const quiet = this.#now() - this.#lastActivity;
      if (quiet >= idleMs) {
        this.#idleTimer = undefined;
        void this.end('idle-timeout', `warden: the session was idle for ${formatMs(idleMs)} and is closed`);
      } else this.#idleTimer = setTimeout(check, idleMs - quiet);
    };
    this.#idleTimer = setTimeout(check, idleMs);
  }

  /** Ends the connection: tells open channels why, closes the target, records the end. */
  async end(reason: string, message: string): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#endReason = reason;
    // A denied typed command ends like a denied exec; everything else like a lost connection.
    const status = reason === 'denied-command' ? DENIED_EXIT_STATUS : UPSTREAM_FAILED_EXIT_STATUS;
    for (const stop of [...this.#stops]) {
      try {
        stop(message, status);
      } catch {
        // The channel is already gone.
      }
    }
    // Give the messages a moment to leave before the transport closes.
    await new Promise((resolve) => setTimeout(resolve, 50));
    this.#cancelEarly();
    try {
      this.#conn.end();
    } finally {
      this.#upstreamClient?.end();
    }
  }

  async #onClose(): Promise<void> {
    for (const timer of [this.#authTimer, this.#maxTimer, this.#idleTimer]) if (timer !== undefined) clearTimeout(timer);
    this.#cancelAccessTimer?.();
    this.#gone.abort();
    this.#ended = true;
    this.#cancelEarly();
    this.#upstreamClient?.end();
    this.#upstream?.then((c) => c.end()).catch(() => {});
    if (this.#log !== undefined) {
      this.#log.add({ k: EventKind.SessionEnd, reason: this.#endReason });
      await this.#log.close().catch((error: unknown) => this.#diag(`ssh gateway: closing the recording failed: ${(error as Error).message}`));
    }
    this.#resolveClosed();
  }
}

/** The stricter of two limits; null = none. 0 is a limit (the engine's fail-closed value for an unreadable one). */
function stricter(a: number | null, b: number | undefined): number | null {
  const values = [a, b].filter((v): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0);
  return values.length === 0 ? null : Math.min(...values);
}

function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
