// The `ssh2-relay` reference target of bench/ssh.ts: the ceiling of the library the SSH gateway is
// built on. A bare man-in-the-middle relay written with ssh2 and nothing else of Warden's session
// logic — no policy, no recording, no SFTP parsing, no masking — run as a process of its own so
// that its CPU per MiB is read from /proc like the gateway child's. Not a product entry point.
//
// What it shares with the gateway, so that the comparison is fair (src/sidecar/ssh/gateway.ts):
// the algorithms offered to clients (clientAlgorithms), ssh2's transport patches
// (`useKeyObjectsInSsh2`, `coalesceWrites` on the accepted sockets; transport.ts) and the target
// connection itself (`connectUpstream`: UPSTREAM_ALGORITHMS, the pinned host key, coalesced
// writes, the plane's key).
//
// Any client authentication is accepted (OpenSSH's first `none` request already logs in). Per
// client connection one target connection, opened once the client is in; `exec` channels and the
// `sftp` subsystem are opened on the target and relayed as raw channel streams: stdin, stdout and
// stderr piped with back-pressure (stream.pipe), the target's EOF and exit status passed on.
// Anything else (shell, pty, env, forwarding) is refused.
//
// Reads one JSON object (RelayConfig) on stdin, prints `{"ready":true,"port":N,"publicKey":"…"}`
// once it listens and `{"stopped":true}` after SIGTERM.

import { readFile } from 'node:fs/promises';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import ssh2, { type ClientChannel, type Connection, type ServerChannel } from 'ssh2';
import { clientAlgorithms } from '../src/sidecar/ssh/config.ts';
import { generateEd25519HostKey } from '../src/sidecar/ssh/host-keys.ts';
import { coalesceWrites, ssh2NativeCrypto, useKeyObjectsInSsh2 } from '../src/sidecar/ssh/transport.ts';
import { connectUpstream, parsePins } from '../src/sidecar/ssh/upstream.ts';

export interface RelayConfig {
  upstream: { host: string; port: number; user: string; privateKeyFile: string; hostKeys: string[] };
}

type Client = InstanceType<typeof ssh2.Client>;

/** Resolves once `r` has ended or is gone. */
const ended = (r: Readable): Promise<void> =>
  new Promise((resolve) => {
    if (r.readableEnded || r.destroyed) resolve();
    r.once('end', resolve);
    r.once('close', resolve);
  });

/** Relays one client channel to a just-opened target channel, then passes the exit status on. */
function relayChannel(channel: ServerChannel, target: ClientChannel): void {
  // Listeners before anything else runs: ssh2 can emit data, exit and close in one go.
  let exit: [number] | [string, boolean, string] | undefined;
  target.on('exit', (code: number | null, signal?: string, dump?: boolean, desc?: string) => {
    exit = code !== null && code !== undefined ? [code] : [signal ?? 'KILL', dump === true, desc ?? ''];
  });
  const closed = new Promise<void>((resolve) => target.once('close', () => resolve()));
  channel.pipe(target);
  target.pipe(channel, { end: false });
  target.stderr.pipe(channel.stderr, { end: false });
  channel.once('close', () => target.close());
  void Promise.all([ended(target), ended(target.stderr), closed]).then(() => {
    if (channel.destroyed) return;
    // After the data still queued in the channel (an empty write's callback), as OpenSSH does.
    channel.write(Buffer.alloc(0), () => {
      if (exit !== undefined) (channel.exit as (...a: unknown[]) => void)(...exit);
      channel.end();
    });
  });
}

function refuse(channel: ServerChannel, message: string): void {
  channel.stderr.write(`ssh2-relay: ${message}\r\n`);
  channel.exit(255);
  channel.end();
}

function onClient(conn: Connection, config: RelayConfig, privateKey: string): void {
  let upstream: Promise<Client> | undefined;
  conn.on('error', () => undefined);
  conn.on('authentication', (ctx) => ctx.accept());
  conn.on('ready', () => {
    upstream = connectUpstream({ ...config.upstream, privateKey }, parsePins(config.upstream), config.upstream.user).then((u) => {
      u.client.on('error', () => undefined);
      u.client.on('close', () => conn.end());
      return u.client;
    });
    upstream.catch(() => conn.end());
  });
  conn.on('close', () => void upstream?.then((c) => c.end(), () => undefined));
  conn.on('session', (acceptSession) => {
    const session = acceptSession();
    // Input waits in the channel (then in the client's SSH window) until the target channel is open.
    const open = (channel: ServerChannel, opener: (c: Client, cb: (error: Error | undefined, t: ClientChannel) => void) => void): void => {
      channel.pause();
      channel.on('error', () => undefined);
      if (upstream === undefined) return refuse(channel, 'no target connection');
      upstream.then(
        (client) => opener(client, (error, target) => (error ? refuse(channel, error.message) : relayChannel(channel, target))),
        (error: unknown) => refuse(channel, (error as Error).message),
      );
    };
    session.on('exec', (accept, _reject, info) => open(accept(), (c, cb) => c.exec(info.command, cb)));
    session.on('subsystem', (accept, reject, info) => {
      if (info.name !== 'sftp') return reject();
      open(accept(), (c, cb) => c.subsys('sftp', cb));
    });
  });
}

async function main(): Promise<void> {
  const config = JSON.parse(await text(process.stdin)) as RelayConfig;
  const privateKey = await readFile(config.upstream.privateKeyFile, 'utf8');
  const hostKey = generateEd25519HostKey('ssh2-relay');

  useKeyObjectsInSsh2();
  if (!ssh2NativeCrypto()) process.stderr.write('ssh2-relay: ssh2\'s native crypto binding is not built; using its JavaScript ciphers\n');
  const server = new ssh2.Server(
    {
      hostKeys: [hostKey.privateKey],
      algorithms: clientAlgorithms(),
      ident: 'ssh2-relay',
    },
    (conn) => onClient(conn, config, privateKey),
  );
  const connections = new Set<Socket>();
  const listener = createServer((socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    coalesceWrites(socket);
    server.injectSocket(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const { port } = listener.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ ready: true, port, publicKey: hostKey.publicKey })}\n`);

  const stop = (): void => {
    listener.close();
    for (const socket of connections) socket.destroy();
    process.stdout.write(`${JSON.stringify({ stopped: true })}\n`, () => process.exit(0));
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, stop);
}

await main();
