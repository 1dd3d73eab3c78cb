/**
 * The channels of one client connection, each relayed by hand to a channel on the target
 * (RFC 4254): session channels (pty-req, env, shell, exec, subsystem sftp, window-change, signal,
 * exit-status / exit-signal), direct-tcpip (ssh -L) and forwarded-tcpip (ssh -R). Every request
 * passes the policy seam first; what passes is recorded.
 */
import type { Client, ClientChannel, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import type { ApprovalHandle, ApprovalOutcome } from '../../approvals/types.ts';
import { approvalEvent, oneLine, refusalText } from '../approvals.ts';
import type { PolicySubject, SshCommand } from '../../policy/command.ts';
import { Decision, EventKind } from '../../recorder/events.ts';
import type { MaskedOutput, SshDecision, TerminalMaskStream } from './config.ts';
import { SshGatewayError, SshGatewayErrorCode } from './errors.ts';
import type { SessionLog } from './recording.ts';
import { drained, guard, pump, writeWithPressure, written } from './relay.ts';
import { parseSftpRequest, parseSftpResponse, SftpFramer, SftpMonitor, SftpStatus, sftpStatusPacket, SftpType } from './sftp.ts';
import { type InputPiece, TypedCommandDetector } from './typed-commands.ts';
import { type ExitInfo, openExec, openShell, openSubsystem, type TargetChannel } from './upstream.ts';

/** Exit status of a command the gateway refused (POSIX shells use 126 for "cannot execute"). */
export const DENIED_EXIT_STATUS = 126;
/** Exit status when the target could not be reached (what `ssh` itself uses for its own errors). */
export const UPSTREAM_FAILED_EXIT_STATUS = 255;

/** What a channel handler needs from its connection. */
export interface ConnectionContext {
  readonly subject: PolicySubject;
  readonly log: SessionLog;
  /** `namespace/name` of the Connection (AccessRequests live in its namespace). */
  readonly connection: string;
  /** Aborted when the client connection is gone. */
  readonly gone: AbortSignal;
  /**
   * Creates the AccessRequest for a command held by a RequireApproval rule; undefined when the
   * gateway has no approvals (such commands are then refused). Rejects when it cannot be created.
   */
  readonly requestApproval: ((text: string, decision: SshDecision, reason?: string) => Promise<ApprovalHandle>) | undefined;
  readonly record: { input: boolean; output: boolean };
  readonly maskFlushMs: number;
  /** The target connection; rejects with an SshGatewayError whose message is for the user. */
  upstream(): Promise<Client>;
  decide(command: SshCommand): SshDecision;
  /** A masking stream for terminal output, or undefined when no rule applies. */
  masker(): TerminalMaskStream | undefined;
  /** Client activity (resets the idle timer). */
  activity(): void;
  nextChannelId(): number;
  /** Registers a live channel; `stop(message, status)` tells its user why and closes it. Returns the unregister function. */
  track(stop: (message: string, status: number) => void): () => void;
  /** A bug or unexpected state in a handler: logged, and the connection is closed (never the process). */
  fail(where: string, error: unknown): void;
  /** Ends the whole connection (a typed command was denied, recording failed…). */
  terminate(reason: string, message: string): void;
  diag(line: string): void;
}

/** The user-facing text of a refusal. */
export function denialMessage(what: string, decision: SshDecision): string {
  const why = decision.message ?? decision.reason;
  if (decision.effect === 'RequireApproval') {
    return `warden: ${what} requires approval (${why}); approvals are not configured on this gateway, so it is refused`;
  }
  return `warden: ${what} denied: ${why}`;
}

const toEventDecision = (d: SshDecision): Decision =>
  d.effect === 'Allow' ? Decision.Allow : d.effect === 'Deny' ? Decision.Deny : Decision.RequireApproval;

const ruleOf = (d: SshDecision): { rule?: string } =>
  d.rule === undefined ? {} : { rule: d.policy === undefined ? d.rule : `${d.policy}/${d.rule}` };

/** Bytes of input typed while a line waits for approval before the client is slowed down (SSH window). */
const MAX_HELD_INPUT = 64 * 1024;

/**
 * Holds a command for approval: creates the AccessRequest, tells the user through `say`, records
 * each state, and resolves with the outcome. `abort` (client gone, Ctrl-C, session ending) withdraws
 * the request unless it was answered already. Never rejects.
 */
export async function holdForApproval(
  ctx: ConnectionContext,
  text: string,
  decision: SshDecision,
  say: (line: string) => void,
  abort: AbortSignal,
  reason?: string,
): Promise<ApprovalOutcome> {
  const create = ctx.requestApproval;
  abort = AbortSignal.any([abort, ctx.gone]);
  if (create === undefined) return { decision: 'Unavailable', reason: 'approvals are not configured on this gateway' };
  let handle: ApprovalHandle;
  try {
    handle = await create(text, decision, reason);
  } catch (error) {
    const outcome: ApprovalOutcome = { decision: 'Unavailable', reason: `the approval request could not be created: ${oneLine((error as Error).message)}` };
    ctx.log.add({ k: EventKind.Error, message: outcome.reason });
    return outcome;
  }
  const rule = ruleOf(decision).rule;
  ctx.log.add(approvalEvent(ctx.connection, { decision: 'Pending', request: handle.name, ...(rule === undefined ? {} : { reason: `rule ${rule}` }) }));
  if (abort.aborted) {
    await handle.withdraw().catch(() => {});
  } else {
    say(`warden: waiting for approval: ${handle.name}${rule === undefined ? '' : ` (${rule})`}`);
  }
  let settled = false;
  const withdrawn = new Promise<ApprovalOutcome>((resolve) => {
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      // The request is withdrawn unless a decision is already in (withdraw is idempotent and
      // leaves a decided request alone). Recorded now: the recording closes right after a disconnect.
      void handle.withdraw().catch(() => {});
      const outcome: ApprovalOutcome = { decision: 'Withdrawn', request: handle.name };
      ctx.log.add(approvalEvent(ctx.connection, outcome));
      resolve(outcome);
    };
    if (abort.aborted) onAbort();
    else abort.addEventListener('abort', onAbort, { once: true });
  });
  // Waiting for a human is not idling: the idle timeout must not end the session meanwhile (the
  // wait itself is bounded by the request's expiry).
  const busy = setInterval(() => ctx.activity(), 5_000);
  const outcome = await Promise.race([handle.outcome, withdrawn]).finally(() => clearInterval(busy));
  if (!settled) {
    settled = true;
    ctx.log.add(approvalEvent(ctx.connection, outcome));
  }
  return outcome;
}

/** Handles one `session` channel from the client. */
export function handleSession(ctx: ConnectionContext, session: Session): void {
  const ch = ctx.nextChannelId();
  guard(session, (error) => ctx.fail(`session channel ${ch}`, error));
  let pty: PseudoTtyInfo | undefined;
  const env: Record<string, string> = {};
  let upstream: ClientChannel | undefined;
  /** window-change and signal requests that arrive before the target channel is open. */
  const queued: Array<(u: ClientChannel) => void> = [];
  const whenUpstream = (fn: (u: ClientChannel) => void): void => {
    if (upstream !== undefined) fn(upstream);
    else queued.push(fn);
  };

  session.on('pty', (accept, _reject, info) => {
    pty = info;
    ctx.log.add({ k: EventKind.TermResize, ch, cols: info.cols, rows: info.rows });
    accept?.();
  });
  session.on('env', (accept, _reject, info) => {
    // Relayed as env requests; the target's sshd applies its own AcceptEnv filter.
    if (Object.keys(env).length < 64 && info.key.length < 256 && info.val.length < 4096) env[info.key] = info.val;
    accept?.();
  });
  session.on('window-change', (accept, _reject, info) => {
    if (pty !== undefined) pty = { ...pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
    ctx.log.add({ k: EventKind.TermResize, ch, cols: info.cols, rows: info.rows });
    whenUpstream((u) => u.setWindow(info.rows, info.cols, info.height, info.width));
    accept?.();
  });
  session.on('signal', (accept, _reject, info) => {
    whenUpstream((u) => {
      try {
        u.signal(info.name);
      } catch {
        // Unknown signal names are dropped, as OpenSSH's server does.
      }
    });
    accept?.();
  });
  // Agent forwarding would hand the target a way to use the client's keys: always refused.
  session.on('auth-agent', (_accept, reject) => reject?.());
  session.on('x11', (_accept, reject) => reject?.());

  const start = (
    channel: ServerChannel,
    open: (client: Client) => Promise<TargetChannel>,
    mode: { terminal: boolean; typed: boolean },
    guarded = false,
  ): void => {
    let stopped = false;
    if (!guarded) guardChannel(ctx, ch, channel);
    const untrack = ctx.track((message, status) => {
      stopped = true;
      if (channel.writable) channel.stderr.write(`\r\n${message}\r\n`);
      channel.exit(status);
      channel.end();
      upstream?.close();
    });
    channel.on('close', () => {
      untrack();
      upstream?.close();
    });
    // Input waits in the channel (and, once its buffer is full, in the client's SSH window) until
    // the target channel is open: nothing is lost, nothing is read ahead unboundedly.
    channel.pause();
    ctx
      .upstream()
      .then(open)
      .then(
        (target) => {
          const u = target.stream;
          if (stopped || channel.destroyed) {
            u.close();
            return;
          }
          guardChannel(ctx, ch, u);
          upstream = u;
          for (const fn of queued.splice(0)) fn(u);
          relaySession(ctx, ch, channel, target, mode);
        },
        (error: unknown) => {
          const message =
            error instanceof SshGatewayError ? `warden: ${error.message}` : `warden: the target refused the request (${(error as Error).message})`;
          ctx.log.add({ k: EventKind.Error, code: error instanceof SshGatewayError ? error.code : SshGatewayErrorCode.UpstreamFailed, message });
          if (channel.writable) channel.stderr.write(`${message}\r\n`);
          channel.exit(UPSTREAM_FAILED_EXIT_STATUS);
          channel.end();
        },
      )
      .catch((error: unknown) => ctx.fail(`channel ${ch}`, error));
  };

  const refuse = (channel: ServerChannel, message: string): void => {
    guardChannel(ctx, ch, channel);
    if (channel.writable) channel.stderr.write(`${message}\r\n`);
    channel.exit(DENIED_EXIT_STATUS);
    channel.end();
  };

  /**
   * Holds a channel's request (exec, shell) for approval, then runs it or refuses it. Client input
   * waits in the channel (and then in the client's SSH window) meanwhile; the client leaving or the
   * connection ending withdraws the request.
   */
  const holdThenRun = (channel: ServerChannel, text: string, decision: SshDecision, what: string, run: (guarded: boolean) => void): void => {
    channel.pause();
    guardChannel(ctx, ch, channel);
    const abort = new AbortController();
    const untrack = ctx.track((message, status) => {
      abort.abort();
      if (channel.writable) channel.stderr.write(`${message}\r\n`);
      channel.exit(status);
      channel.end();
    });
    channel.once('close', () => abort.abort());
    const say = (line: string): void => {
      if (channel.writable) channel.stderr.write(`${line}\r\n`);
    };
    void holdForApproval(ctx, text, decision, say, abort.signal)
      .then((outcome) => {
        untrack();
        if (abort.signal.aborted || ctx.gone.aborted || channel.destroyed) return;
        if (outcome.decision === 'Approved') {
          say(`warden: approved by ${outcome.decidedBy} (request ${outcome.request}${outcome.comment ? `: ${oneLine(outcome.comment)}` : ''})`);
          run(true);
          return;
        }
        const message = `warden: ${refusalText(what, outcome)}`;
        ctx.log.add({ k: EventKind.Deny, reason: message, ...ruleOf(decision), what: ctx.log.payload(text) });
        say(message);
        channel.exit(DENIED_EXIT_STATUS);
        channel.end();
      })
      .catch((error: unknown) => ctx.fail(`channel ${ch}`, error));
  };

  session.on('shell', (accept) => {
    ctx.activity();
    const decision = ctx.decide({ protocol: 'ssh', kind: 'shell' });
    const channel = accept();
    const run = (guarded: boolean): void =>
      start(channel, (client) => openShell(client, pty === undefined ? false : ptyOptions(pty), { env }), {
        terminal: pty !== undefined,
        typed: pty !== undefined,
      }, guarded);
    if (decision.effect === 'RequireApproval' && ctx.requestApproval !== undefined) {
      holdThenRun(channel, '(interactive shell)', decision, 'the interactive shell', run);
      return;
    }
    if (decision.effect !== 'Allow') {
      const message = denialMessage('interactive shell', decision);
      ctx.log.add({ k: EventKind.Deny, reason: message, ...ruleOf(decision), what: ctx.log.payload('shell') });
      refuse(channel, message);
      return;
    }
    run(false);
  });

  session.on('exec', (accept, _reject, info) => {
    ctx.activity();
    const decision = ctx.decide({ protocol: 'ssh', kind: 'exec', command: info.command });
    ctx.log.add({ k: EventKind.Exec, ch, command: ctx.log.payload(info.command), decision: toEventDecision(decision), ...ruleOf(decision) });
    const channel = accept();
    const what = `command ${JSON.stringify(truncate(info.command, 200))}`;
    const options = pty === undefined ? { env } : { env, pty: ptyOptions(pty) };
    const run = (guarded: boolean): void =>
      start(channel, (client) => openExec(client, info.command, options), { terminal: pty !== undefined, typed: false }, guarded);
    if (decision.effect === 'RequireApproval' && ctx.requestApproval !== undefined) {
      // Held before anything reaches the target: the target channel is opened only once approved.
      holdThenRun(channel, info.command, decision, what, run);
      return;
    }
    if (decision.effect !== 'Allow') {
      refuse(channel, denialMessage(what, decision));
      return;
    }
    run(false);
  });

  session.on('subsystem', (accept, reject, info) => {
    ctx.activity();
    if (info.name !== 'sftp') {
      const message = `warden: subsystem ${JSON.stringify(truncate(info.name, 64))} is not supported`;
      ctx.log.add({ k: EventKind.Deny, reason: message, what: ctx.log.payload(info.name) });
      if (reject !== undefined) reject();
      else refuse(accept(), message);
      return;
    }
    // Opening SFTP at all needs at least read access; each request is checked again below.
    const decision = ctx.decide({ protocol: 'ssh', kind: 'sftp', operation: 'read', path: '/' });
    const channel = accept();
    if (decision.effect !== 'Allow') {
      const message = denialMessage('SFTP', decision);
      ctx.log.add({ k: EventKind.Deny, reason: message, ...ruleOf(decision), what: ctx.log.payload('sftp') });
      refuse(channel, message);
      return;
    }
    let stopped = false;
    guardChannel(ctx, ch, channel);
    const untrack = ctx.track(() => {
      stopped = true;
      channel.end();
      upstream?.close();
    });
    channel.on('close', () => {
      untrack();
      upstream?.close();
    });
    channel.pause();
    ctx
      .upstream()
      .then((client) => openSubsystem(client, 'sftp'))
      .then(
        (target) => {
          const u = target.stream;
          if (stopped || channel.destroyed) {
            u.close();
            return;
          }
          guardChannel(ctx, ch, u);
          upstream = u;
          relaySftp(ctx, ch, channel, target);
        },
        (error: unknown) => {
          const message = error instanceof SshGatewayError ? `warden: ${error.message}` : `warden: the target refused SFTP (${(error as Error).message})`;
          ctx.log.add({ k: EventKind.Error, message });
          if (channel.writable) channel.stderr.write(`${message}\r\n`);
          channel.exit(UPSTREAM_FAILED_EXIT_STATUS);
          channel.end();
        },
      )
      .catch((error: unknown) => ctx.fail(`channel ${ch}`, error));
  });
}

/** Channel and its stderr: listener exceptions and stray 'error' events end the connection, never the process. */
export function guardChannel(ctx: ConnectionContext, ch: number, channel: ServerChannel | ClientChannel): void {
  guard(channel, (error) => ctx.fail(`channel ${ch}`, error));
  guard(channel.stderr, (error) => ctx.fail(`channel ${ch} stderr`, error));
  channel.on('error', (e: Error) => ctx.diag(`channel ${ch}: ${e.message}`));
  channel.stderr.on('error', (e: Error) => ctx.diag(`channel ${ch} stderr: ${e.message}`));
}

function ptyOptions(p: PseudoTtyInfo): { rows: number; cols: number; height: number; width: number; term: string; modes: PseudoTtyInfo['modes'] } {
  return { rows: p.rows, cols: p.cols, height: p.height, width: p.width, term: p.term, modes: p.modes };
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n)}…`;
}

const CTRL_C = Uint8Array.of(0x03);

/** Relays an open shell/exec channel pair until the target closes it, then reports its exit. */
function relaySession(
  ctx: ConnectionContext,
  ch: number,
  channel: ServerChannel,
  target: TargetChannel,
  mode: { terminal: boolean; typed: boolean },
): void {
  const upstream = target.stream;
  const detector = mode.typed ? new TypedCommandDetector() : undefined;
  const exit = target.exit;
  let refused = false;

  // Client → target. Interactive input goes through the typed-command detector: a line is decided
  // before the Enter that submits it is passed on. A line held for approval keeps its Enter, and
  // everything typed after it, at the gateway until the decision (see README: what is held).
  const queue: InputPiece[] = [];
  let queuedBytes = 0;
  let held: AbortController | undefined;
  const say = (line: string): void => {
    if (channel.writable) channel.write(`\r\n${line}\r\n`);
  };
  const handle = (piece: InputPiece): void => {
    if (piece.line === undefined || piece.line.command.trim().length === 0) {
      writeWithPressure(upstream, piece.data, channel);
      return;
    }
    const command = piece.line.command;
    const decision = ctx.decide({ protocol: 'ssh', kind: 'typed', command });
    ctx.log.add({
      k: EventKind.Command,
      ch,
      command,
      ...(piece.line.uncertain ? { uncertain: true as const } : {}),
      decision: toEventDecision(decision),
      ...ruleOf(decision),
    });
    if (decision.effect === 'Allow') {
      writeWithPressure(upstream, piece.data, channel);
      return;
    }
    // Everything but the Enter reaches the shell; the line is not submitted (yet).
    const enter = piece.data.subarray(piece.data.length - 1);
    writeWithPressure(upstream, piece.data.subarray(0, piece.data.length - 1), channel);
    const what = `command ${JSON.stringify(truncate(command, 200))}`;
    if (decision.effect === 'Deny' || ctx.requestApproval === undefined) {
      const message = denialMessage(what, decision);
      ctx.log.add({ k: EventKind.Deny, reason: message, ...ruleOf(decision), what: ctx.log.payload(command) });
      refused = true;
      ctx.terminate('denied-command', `${message}; closing the session`);
      return;
    }
    const abort = new AbortController();
    held = abort;
    // The approver sees the line as the detector modelled it; say when that may not be what runs.
    const uncertain = piece.line.uncertain
      ? 'typed line that used history, completion or keys the gateway cannot follow: what the shell runs may differ from this text'
      : undefined;
    void holdForApproval(ctx, command, decision, say, abort.signal, uncertain)
      .then((outcome) => {
        held = undefined;
        if (channel.destroyed || refused) return;
        if (outcome.decision === 'Approved') {
          say(`warden: approved by ${outcome.decidedBy} (request ${outcome.request})`);
          writeWithPressure(upstream, enter, channel);
        } else {
          // The line must never run: Ctrl-C makes the shell (readline, zle, the tty's line
          // discipline) abandon it, and input typed meanwhile is dropped with it.
          const message = `warden: ${refusalText(what, outcome)}; the line was discarded`;
          ctx.log.add({ k: EventKind.Deny, reason: message, ...ruleOf(decision), what: ctx.log.payload(command) });
          say(message);
          writeWithPressure(upstream, CTRL_C, channel);
          queue.length = 0;
          queuedBytes = 0;
        }
        drain();
      })
      .catch((error: unknown) => ctx.fail(`channel ${ch}`, error));
  };
  const drain = (): void => {
    while (held === undefined && !refused && queue.length > 0) {
      const piece = queue.shift() as InputPiece;
      queuedBytes -= piece.data.length;
      handle(piece);
    }
    if (held === undefined && channel.isPaused() && queuedBytes < MAX_HELD_INPUT) channel.resume();
  };
  channel.on('close', () => held?.abort());

  channel.on('data', (chunk: Buffer) => {
    if (refused) return;
    ctx.activity();
    if (ctx.record.input) ctx.log.terminal('stdin', chunk, ch);
    if (detector === undefined) {
      writeWithPressure(upstream, chunk, channel);
      return;
    }
    for (const piece of detector.feed(chunk)) {
      if (held !== undefined) {
        // Waiting for a decision: Ctrl-C gives up (withdraws); the rest waits its turn, bounded.
        if (piece.data.includes(0x03)) held.abort();
        queue.push(piece);
        queuedBytes += piece.data.length;
        if (queuedBytes >= MAX_HELD_INPUT) channel.pause();
        continue;
      }
      handle(piece);
      if (refused) return;
    }
  });
  channel.on('end', () => upstream.end());
  channel.resume();

  // Target → client, through masking, recorded as the client saw it.
  const out = outputPath(ctx, ch, channel, 'stdout', detector);
  const err = outputPath(ctx, ch, channel, 'stderr', undefined);
  const behind = (): Promise<void> | undefined => ctx.log.behind();
  pump(upstream, channel, out.map, behind);
  pump(upstream.stderr, channel.stderr, err.map, behind);

  channel.on('close', () => {
    out.cancel();
    err.cancel();
  });
  void Promise.all([drained(upstream), drained(upstream.stderr), target.closed])
    .then(async () => {
    out.end();
    err.end();
    await Promise.all([written(channel), written(channel.stderr)]);
    sendExit(ctx, ch, channel, exit.value);
    channel.end();
  })
    .catch((error: unknown) => ctx.fail(`channel ${ch}`, error));
}

/** Passes the exit on exactly: a status as the same number, a signal as the same signal. */
function sendExit(ctx: ConnectionContext, ch: number, channel: ServerChannel, exit: ExitInfo | undefined): void {
  if (exit === undefined) return;
  if ('code' in exit) {
    ctx.log.add({ k: EventKind.Exit, ch, code: exit.code });
    channel.exit(exit.code);
    return;
  }
  ctx.log.add({ k: EventKind.Exit, ch, signal: exit.signal });
  try {
    channel.exit(exit.signal, exit.dump, exit.desc);
  } catch {
    // A signal name ssh2 does not know: no exit-signal, as OpenSSH does for unknown names.
  }
}

/** Masking + recording of one output stream, with the idle flush the masker needs. */
function outputPath(
  ctx: ConnectionContext,
  ch: number,
  channel: ServerChannel,
  kind: 'stdout' | 'stderr',
  detector: TypedCommandDetector | undefined,
): { map: (chunk: Buffer) => Uint8Array | undefined; end: () => void; cancel: () => void } {
  const masker = ctx.masker();
  const target = kind === 'stdout' ? channel : channel.stderr;
  let timer: NodeJS.Timeout | undefined;
  const emit = (bytes: Uint8Array, masked = false): Uint8Array => {
    if (bytes.length > 0) {
      detector?.observeOutput(bytes);
      if (ctx.record.output) ctx.log.terminal(kind, bytes, ch, masked);
    }
    return bytes;
  };
  const emitMasked = ({ bytes, hits }: MaskedOutput): Uint8Array => emit(bytes, (hits?.length ?? 0) > 0);
  const flush = (): void => {
    timer = undefined;
    if (masker === undefined) return;
    const bytes = emitMasked(masker.flush());
    if (bytes.length > 0 && target.writable) target.write(bytes);
  };
  return {
    map: (chunk) => {
      ctx.activity();
      if (masker === undefined) return emit(chunk);
      const bytes = emitMasked(masker.push(chunk));
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(flush, ctx.maskFlushMs);
      return bytes;
    },
    cancel: () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
    end: () => {
      if (timer !== undefined) clearTimeout(timer);
      if (masker === undefined) return;
      const bytes = emitMasked(masker.end());
      if (bytes.length > 0 && target.writable) target.write(bytes);
    },
  };
}

/**
 * Relays SFTP, enforcing policy per request: client packets are framed and checked before they
 * go on; a refused request is answered by the gateway with SSH_FX_PERMISSION_DENIED (the client
 * shows the message) and never reaches the target. Responses pass through unchanged while a
 * monitor pairs them with requests for the recording.
 */
function relaySftp(ctx: ConnectionContext, ch: number, channel: ServerChannel, target: TargetChannel): void {
  const upstream = target.stream;
  const requests = new SftpFramer();
  const responses = new SftpFramer();
  const monitor = new SftpMonitor();
  let monitoring = true;
  const record = (ops: ReturnType<SftpMonitor['response']>): void => {
    for (const op of ops) {
      ctx.log.add({ k: EventKind.Sftp, ch, op: op.op, path: op.path, ...(op.path2 === undefined ? {} : { path2: op.path2 }), bytes: op.bytes, status: op.status, decision: Decision.Allow });
    }
  };

  channel.on('data', (chunk: Buffer) => {
    ctx.activity();
    let packets: Buffer[];
    try {
      packets = requests.push(chunk);
    } catch (error) {
      ctx.log.add({ k: EventKind.Error, code: (error as SshGatewayError).code, message: (error as Error).message });
      channel.end();
      return;
    }
    for (const packet of packets) {
      let req: ReturnType<typeof parseSftpRequest>;
      try {
        req = parseSftpRequest(packet);
      } catch (error) {
        ctx.log.add({ k: EventKind.Error, code: (error as SshGatewayError).code, message: (error as Error).message });
        channel.end();
        return;
      }
      const pathBearing = req.path !== undefined || req.type === SftpType.Fsetstat || req.type === SftpType.Extended;
      if (pathBearing && req.type !== SftpType.Init) {
        const decision = ctx.decide({ protocol: 'ssh', kind: 'sftp', operation: req.access, path: req.path ?? '' });
        if (decision.effect !== 'Allow') {
          const message = denialMessage(`SFTP ${req.op} of ${req.path ?? 'an open file'}`, decision);
          ctx.log.add({ k: EventKind.Sftp, ch, op: req.op, path: req.path ?? '', ...(req.path2 === undefined ? {} : { path2: req.path2 }), bytes: 0, status: SftpStatus.PermissionDenied, decision: Decision.Deny });
          if (req.id !== undefined) writeWithPressure(channel, sftpStatusPacket(req.id, SftpStatus.PermissionDenied, message), channel);
          continue;
        }
      }
      if (monitoring) record(monitor.request(req));
      writeWithPressure(upstream, packet, channel);
    }
  });
  channel.on('end', () => upstream.end());
  channel.resume();

  pump(upstream, channel, (chunk) => {
    ctx.activity();
    if (monitoring) {
      try {
        for (const packet of responses.push(chunk)) record(monitor.response(parseSftpResponse(packet)));
      } catch {
        // A server we cannot parse still gets relayed; only the operation log stops.
        monitoring = false;
        ctx.log.add({ k: EventKind.Error, message: 'SFTP responses could not be parsed; file operations are no longer recorded for this channel' });
      }
    }
    return chunk;
  });
  pump(upstream.stderr, channel.stderr);
  const exit = target.exit;
  void Promise.all([drained(upstream), target.closed])
    .then(async () => {
    record(monitor.flush());
    await Promise.all([written(channel), written(channel.stderr)]);
    sendExit(ctx, ch, channel, exit.value);
    channel.end();
  })
    .catch((error: unknown) => ctx.fail(`sftp channel ${ch}`, error));
}
