/**
 * TCP forwarding through the gateway (RFC 4254 §7): `ssh -L` opens direct-tcpip channels, which
 * the gateway re-opens on the target; `ssh -R` sends tcpip-forward, which the gateway asks the
 * target for, and every connection the target accepts comes back as a forwarded-tcpip channel the
 * gateway opens towards the client. Each destination is decided by policy; each connection is
 * recorded when it closes, with its byte counts.
 */
import type { ClientChannel, Connection, ServerChannel, TcpipBindInfo, TcpipRequestInfo } from 'ssh2';
import type { Client } from 'ssh2';
import { Decision, EventKind, ForwardDirection } from '../../recorder/events.ts';
import { type ConnectionContext, denialMessage } from './channels.ts';
import { guard, pump } from './relay.ts';
import { openForwardOut } from './upstream.ts';

/** RFC 4254 §5.1 reason codes. */
const OPEN_FAILURE = { AdministrativelyProhibited: 1, ConnectFailed: 2 } as const;

/**
 * Rejects a channel open with a reason and description the client prints ("open failed:
 * administratively prohibited: warden: …"). ssh2's reject() sends no description, so the one
 * outgoing CHANNEL_OPEN_FAILURE is rewritten; if ssh2's internals change shape, plain reject() is used.
 */
function rejectWithMessage(conn: Connection, reject: () => void, reason: number, description: string): void {
  const proto = (conn as unknown as { _protocol?: { channelOpenFail?: (r: number, c: number, d: string) => void } })._protocol;
  const original = proto?.channelOpenFail;
  if (proto === undefined || typeof original !== 'function') {
    reject();
    return;
  }
  proto.channelOpenFail = (remote: number) => original.call(proto, remote, reason, description);
  try {
    reject();
  } finally {
    proto.channelOpenFail = original;
  }
}

/** Splices two channels with back-pressure and reports bytes each way when both are done. */
function splice(a: ServerChannel | ClientChannel, b: ServerChannel | ClientChannel, ctx: ConnectionContext, done: (aToB: number, bToA: number) => void): void {
  guard(a, (error) => ctx.fail('forwarded channel', error));
  guard(b, (error) => ctx.fail('forwarded channel', error));
  let aToB = 0;
  let bToA = 0;
  pump(a, b, (chunk) => {
    ctx.activity();
    aToB += chunk.length;
    return chunk;
  });
  pump(b, a, (chunk) => {
    ctx.activity();
    bToA += chunk.length;
    return chunk;
  });
  a.on('end', () => b.end());
  b.on('end', () => a.end());
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  let closed = 0;
  const onClose = (): void => {
    closed++;
    if (closed === 1) {
      a.destroy();
      b.destroy();
    }
    if (closed === 2) done(aToB, bToA);
  };
  a.once('close', onClose);
  b.once('close', onClose);
}

/** ssh -L: a direct-tcpip channel from the client. */
export function handleDirectTcpip(
  ctx: ConnectionContext,
  conn: Connection,
  accept: () => ServerChannel,
  reject: () => void,
  info: TcpipRequestInfo,
): void {
  ctx.activity();
  const decision = ctx.decide({ protocol: 'ssh', kind: 'forward', direction: 'local', host: info.destIP, port: info.destPort });
  if (decision.effect !== 'Allow') {
    const message = denialMessage(`port forwarding to ${info.destIP}:${info.destPort}`, decision);
    ctx.log.add({ k: EventKind.Forward, direction: ForwardDirection.Local, host: info.destIP, port: info.destPort, bytesOut: 0, bytesIn: 0, decision: Decision.Deny, reason: message });
    rejectWithMessage(conn, reject, OPEN_FAILURE.AdministrativelyProhibited, message);
    return;
  }
  ctx
    .upstream()
    .then((client) => openForwardOut(client, info.srcIP, info.srcPort, info.destIP, info.destPort))
    .then(
      (target) => {
        const upstream = target.stream;
        const channel = accept();
        const untrack = ctx.track(() => channel.destroy());
        splice(channel, upstream, ctx, (out, into) => {
          untrack();
          ctx.log.add({ k: EventKind.Forward, direction: ForwardDirection.Local, host: info.destIP, port: info.destPort, bytesOut: out, bytesIn: into, decision: Decision.Allow });
        });
      },
      (error: unknown) => {
        const message = `warden: the target could not connect to ${info.destIP}:${info.destPort} (${(error as Error).message})`;
        ctx.log.add({ k: EventKind.Error, message });
        rejectWithMessage(conn, reject, OPEN_FAILURE.ConnectFailed, message);
      },
    )
    .catch((error: unknown) => ctx.fail('direct-tcpip channel', error));
}

/**
 * ssh -R: manages the client's tcpip-forward requests. The target listens (forwardIn); connections
 * it accepts are opened back to the client as forwarded-tcpip channels.
 */
export class RemoteForwards {
  readonly #ctx: ConnectionContext;
  readonly #conn: Connection;
  readonly #bound = new Set<string>();
  #listening = false;

  constructor(ctx: ConnectionContext, conn: Connection) {
    this.#ctx = ctx;
    this.#conn = conn;
  }

  request(accept: ((port?: number) => void) | undefined, reject: (() => void) | undefined, name: string, info: TcpipBindInfo): void {
    const ctx = this.#ctx;
    if (name === 'cancel-tcpip-forward') {
      void ctx.upstream().then(
        (client) =>
          client.unforwardIn(info.bindAddr, info.bindPort, (error) => {
            this.#bound.delete(`${info.bindAddr}:${info.bindPort}`);
            if (error) reject?.();
            else accept?.();
          }),
        () => reject?.(),
      )
        .catch((error: unknown) => ctx.fail('cancel-tcpip-forward', error));
      return;
    }
    if (name !== 'tcpip-forward') {
      reject?.();
      return;
    }
    const decision = ctx.decide({ protocol: 'ssh', kind: 'forward', direction: 'remote', host: info.bindAddr, port: info.bindPort });
    if (decision.effect !== 'Allow') {
      const message = denialMessage(`remote port forwarding from ${info.bindAddr}:${info.bindPort}`, decision);
      ctx.log.add({ k: EventKind.Forward, direction: ForwardDirection.Remote, host: info.bindAddr, port: info.bindPort, bytesOut: 0, bytesIn: 0, decision: Decision.Deny, reason: message });
      ctx.diag(message);
      reject?.();
      return;
    }
    void ctx.upstream().then(
      (client) => {
        this.#listen(client);
        client.forwardIn(info.bindAddr, info.bindPort, (error, port) => {
          if (error) {
            ctx.log.add({ k: EventKind.Error, message: `the target refused to listen on ${info.bindAddr}:${info.bindPort}: ${error.message}` });
            reject?.();
            return;
          }
          this.#bound.add(`${info.bindAddr}:${port}`);
          accept?.(port);
        });
      },
      () => reject?.(),
    )
      .catch((error: unknown) => ctx.fail('tcpip-forward', error));
  }

  #listen(client: Client): void {
    if (this.#listening) return;
    this.#listening = true;
    client.on('tcp connection', (info, acceptUp, rejectUp) => {
      const ctx = this.#ctx;
      if (!this.#bound.has(`${info.destIP}:${info.destPort}`)) {
        rejectUp();
        return;
      }
      this.#conn.forwardOut(info.destIP, info.destPort, info.srcIP, info.srcPort, (error, channel) => {
        if (error) {
          rejectUp();
          return;
        }
        const upstream = acceptUp();
        const untrack = ctx.track(() => channel.destroy());
        splice(upstream, channel, ctx, (fromTarget, fromClient) => {
          untrack();
          ctx.log.add({
            k: EventKind.Forward,
            direction: ForwardDirection.Remote,
            host: info.destIP,
            port: info.destPort,
            bytesOut: fromClient,
            bytesIn: fromTarget,
            decision: Decision.Allow,
          });
        });
      });
    });
  }
}
