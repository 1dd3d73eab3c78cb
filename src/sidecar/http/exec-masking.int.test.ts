// Masking of `kubectl exec` output: the real kubectl (v5.channel.k8s.io over WebSocket) through
// the gateway to a small API server that answers the pod lookup and speaks the channel protocol
// (a real kube-apiserver cannot exec without a kubelet). The fake sends a private key and an AWS
// key split across frames, a multi-byte character split across frames, and the exit Status.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { connect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { capture } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import { payloadBytes, type RecordingEvent } from '../../recorder/events.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import { selfSignedCert } from '../postgres/testing.ts';
import type { HttpGatewayConfig } from './config.ts';
import { HttpGateway } from './gateway.ts';
import { engineOf, type MemoryRecorder, recordingInto } from './testing.ts';
import { serializeWsFrame, websocketAccept, type WsFrame, WsFrameParser, WsOpcode } from './websocket.ts';

const plane = inject('plane');

const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLIKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzv\n-----END RSA PRIVATE KEY-----\n';
const AWS = 'AKIAIOSFODNN7EXAMPLE';
const EURO = Buffer.from('€'); // three bytes, split across two frames below
const EXIT_STATUS = JSON.stringify({
  metadata: {},
  status: 'Failure',
  message: 'command terminated with non-zero exit code: exit status 3',
  reason: 'NonZeroExitCode',
  details: { causes: [{ reason: 'ExitCode', message: '3' }] },
});

/** The frames the fake API server sends after the handshake, in order. */
function scriptedFrames(): Buffer[] {
  const data = (ch: number, bytes: string | Buffer): Buffer => serializeWsFrame(WsOpcode.Binary, Buffer.concat([Buffer.of(ch), Buffer.from(bytes)]));
  const cut = PEM.indexOf('KUpR');
  return [
    data(1, `key file:\n${PEM.slice(0, cut)}`),
    data(1, `${PEM.slice(cut)}aws=${AWS.slice(0, 8)}`),
    data(1, Buffer.concat([Buffer.from(`${AWS.slice(8)}\nprice: 5`), EURO.subarray(0, 1)])),
    data(2, 'note: ops@example.com was paged\n'),
    data(1, Buffer.concat([EURO.subarray(1), Buffer.from('\ndone\n')])),
    data(3, EXIT_STATUS),
    serializeWsFrame(WsOpcode.Close, Buffer.from([0x03, 0xe8])),
  ];
}

const POD = {
  kind: 'Pod',
  apiVersion: 'v1',
  metadata: { name: 'web-0', namespace: 'shop', uid: '1c1d4c43-4bd4-4c4e-9c43-7b1fc1b0c7a1' },
  spec: { containers: [{ name: 'app', image: 'busybox' }] },
  status: { phase: 'Running' },
};

/** Discovery answers, so kubectl finds the core group. */
const API_VERSIONS = { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
const API_GROUPS = { kind: 'APIGroupList', apiVersion: 'v1', groups: [] };
const CORE_RESOURCES = {
  kind: 'APIResourceList',
  apiVersion: 'v1',
  groupVersion: 'v1',
  resources: [
    { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'] },
    { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
  ],
};

const BIG_BYTES = 32 * 1024 * 1024;

interface FakeApiServer {
  url: string;
  /** Every byte sent after each 101 handshake. */
  sent: Buffer[];
  /** The requests it received (method and URL). */
  requests: string[];
  /** What clients sent on channel 0 (stdin), joined. */
  stdin: string;
  /** Bytes of the `big` command's output written so far. */
  bigWritten: number;
  close(): Promise<void>;
}

/** Answers the pod lookup kubectl makes and an exec upgrade with `scriptedFrames`; 404 otherwise. */
async function startFakeApiServer(): Promise<FakeApiServer> {
  const fake: FakeApiServer = { url: '', sent: [], requests: [], stdin: '', bigWritten: 0, close: async () => undefined };
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    fake.requests.push(`${req.method} ${req.url}`);
    const path = req.url?.split('?')[0];
    const answer = path === '/api/v1/namespaces/shop/pods/web-0' ? POD : path === '/api' ? API_VERSIONS : path === '/apis' ? API_GROUPS : path === '/api/v1' ? CORE_RESOURCES : undefined;
    if (req.method === 'GET' && answer !== undefined) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', reason: 'NotFound', code: 404 }));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    fake.requests.push(`${req.method} ${req.url}`);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const key = req.headers['sec-websocket-key'];
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (new URL(req.url ?? '/', 'http://x').searchParams.get('command') === 'decline') {
      // The API server refusing the exec with a Status whose message carries values to mask.
      const status = JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `denied for ops@example.com, key ${AWS}`, reason: 'Forbidden', code: 403 });
      socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(status)}\r\nConnection: close\r\n\r\n${status}`);
      return;
    }
    if (typeof key !== 'string' || offered[0] === '') {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const protocol = offered.includes('v5.channel.k8s.io') ? 'v5.channel.k8s.io' : (offered[0] as string);
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${websocketAccept(key)}\r\n` +
        `Sec-WebSocket-Protocol: ${protocol}\r\n\r\n`,
    );
    const parser = new WsFrameParser();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of parser.push(chunk)) {
        if (frame.opcode === WsOpcode.Close) socket.end();
        if (frame.opcode === WsOpcode.Binary && frame.payload[0] === 0) fake.stdin += frame.payload.subarray(1).toString();
      }
    });
    const command = new URL(req.url ?? '/', 'http://x').searchParams.getAll('command').join(' ');
    if (command === 'big') {
      // 32 MiB of stdout in 32 KiB frames (the API server's frame size), honouring back-pressure.
      const frame = serializeWsFrame(WsOpcode.Binary, Buffer.concat([Buffer.of(1), Buffer.alloc(32 * 1024 - 1, 0x61)]));
      const pump = (): void => {
        while (fake.bigWritten < BIG_BYTES && !socket.destroyed) {
          fake.bigWritten += frame.length;
          if (!socket.write(frame)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
      return;
    }
    if (command === 'huge') {
      socket.write(serializeWsFrame(WsOpcode.Binary, Buffer.concat([Buffer.of(1), Buffer.alloc(2 * 1024 * 1024, 0x61)])));
      return;
    }
    if (command === 'prompt') {
      // An interactive shell's prompt, then silence: the output must not wait for more.
      socket.write(serializeWsFrame(WsOpcode.Binary, Buffer.from('\u0001/ # ')));
      return;
    }
    // Frames one by one with pauses, so they arrive in separate reads (the split is real), then the
    // connection ends once the client answered the Close.
    const frames = scriptedFrames();
    const sent: Buffer[] = [];
    const next = (): void => {
      const frame = frames.shift();
      if (frame === undefined) {
        fake.sent.push(Buffer.concat(sent));
        return;
      }
      sent.push(frame);
      socket.write(frame);
      setTimeout(next, 5);
    };
    next();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = async () => {
    for (const socket of sockets) socket.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fake;
}

const policy = engineOf(
  {
    name: 'masked',
    spec: {
      subjects: [{ kind: 'Group', name: 'masked' }],
      rules: [{ name: 'all', effect: 'Allow' }],
      masking: { rules: [{ name: 'secrets', detectors: ['privateKey', 'cloudKey', 'email'] }] },
    },
  },
  {
    name: 'plain',
    spec: {
      subjects: [{ kind: 'Group', name: 'plain' }],
      rules: [{ name: 'all', effect: 'Allow' }],
    },
  },
);

let fake: FakeApiServer;
let tls: { cert: string; key: string };
let verifier: TokenVerifier;
let dir: string;
const gateways: HttpGateway[] = [];
let recorders: MemoryRecorder[] = [];

async function startGateway(overrides: Partial<HttpGatewayConfig> = {}): Promise<HttpGateway> {
  const gateway = await HttpGateway.start({
    connection: 'test/cluster',
    flavour: 'kubernetes',
    listen: { host: '127.0.0.1', port: 0 },
    // kubectl sends its bearer token over TLS only.
    tls,
    upstream: { url: fake.url },
    verifier,
    policy,
    masking: (subject) => policy.masker(subject),
    recorder: recordingInto(() => recorders),
    ...overrides,
  });
  gateways.push(gateway);
  return gateway;
}

async function kubectlExec(gateway: HttpGateway, group: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const token = await mintToken(plane.oidc, { user: 'kim', groups: [group] });
  const kubeconfig = join(dir, `kubeconfig-${group}-${gateway.address.port}`);
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'warden', cluster: { server: gateway.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'kim', user: { token } }],
      contexts: [{ name: 'warden', context: { cluster: 'warden', user: 'kim' } }],
      'current-context': 'warden',
    }),
  );
  const { KUBECONFIG: _, ...env } = process.env;
  return await capture(
    plane.kube.kubectl,
    [`--kubeconfig=${kubeconfig}`, `--cache-dir=${join(dir, 'cache')}`, '-n', 'shop', 'exec', 'web-0', '--', 'cat', '/secret/key'],
    { env },
  );
}

/** The bytes of one channel in the recording, joined. */
function recorded(events: RecordingEvent[], ch: number): string {
  return Buffer.concat(
    events.flatMap((e) => (e.k === 'k8s.exec' && e.ch === ch ? [Buffer.from(payloadBytes(e.data))] : [])),
  ).toString('utf8');
}

beforeAll(async () => {
  expect(policy.problems).toEqual([]);
  verifier = new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience });
  fake = await startFakeApiServer();
  tls = await selfSignedCert();
  dir = await mkdtemp(join(tmpdir(), 'warden-exec-mask-'));
});

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await fake?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Kubernetes exec output masking (kubectl, v5.channel.k8s.io)', () => {
  it('masks secrets split across frames in what kubectl prints and in the recording', async () => {
    recorders = [];
    const gateway = await startGateway();
    const { stdout, stderr, code } = await kubectlExec(gateway, 'masked');
    // The exit Status on channel 3 went through unchanged: kubectl reports the command's status.
    expect(code).toBe(3);
    expect(stdout).toBe('key file:\n[REDACTED:privateKey]\naws=[REDACTED:cloudKey]\nprice: 5€\ndone\n');
    expect(stderr).toContain('note: [REDACTED:email] was paged\n');
    expect(stderr).toContain('command terminated with exit code 3');
    expect(stdout + stderr).not.toContain('KUpR');
    expect(stdout + stderr).not.toContain('MIIBOgIB');
    expect(stdout + stderr).not.toContain(AWS.slice(0, 8));
    expect(fake.requests.some((r) => r.startsWith('GET /api/v1/namespaces/shop/pods/web-0/exec?'))).toBe(true);

    await sleep(50);
    const events = recorders.flatMap((r) => r.events);
    expect(recorded(events, 1)).toBe(stdout);
    expect(recorded(events, 2)).toBe('note: [REDACTED:email] was paged\n');
    expect(recorded(events, 3)).toBe(EXIT_STATUS);
    const exec = events.filter((e) => e.k === 'k8s.exec');
    expect(exec.filter((e) => e.masked === true).map((e) => e.ch).sort()).toEqual(expect.arrayContaining([1, 2]));
    expect(exec.filter((e) => e.ch === 3).every((e) => e.masked === undefined)).toBe(true);
    expect(JSON.stringify(events)).not.toContain('KUpR');
    expect(JSON.stringify(events)).not.toContain(AWS);
  });

  it('records the unmasked output when the RecordingPolicy stores unmasked values, the client still masked', async () => {
    recorders = [];
    const gateway = await startGateway({ recordMasked: false });
    const { stdout, code } = await kubectlExec(gateway, 'masked');
    expect(code).toBe(3);
    expect(stdout).toBe('key file:\n[REDACTED:privateKey]\naws=[REDACTED:cloudKey]\nprice: 5€\ndone\n');
    await sleep(50);
    const events = recorders.flatMap((r) => r.events);
    expect(recorded(events, 1)).toBe(`key file:\n${PEM}aws=${AWS}\nprice: 5€\ndone\n`);
    expect(events.some((e) => e.k === 'k8s.exec' && e.ch === 1 && e.masked === true)).toBe(true);
  });

  it('passes the target\'s bytes unchanged when no masking rule applies', async () => {
    recorders = [];
    const gateway = await startGateway();
    const { stdout, code } = await kubectlExec(gateway, 'plain');
    expect(code).toBe(3);
    // Unmasked, the euro sign reaches kubectl in two writes, which the test's output capture decodes
    // one by one (so it may show as replacement characters); the raw check below is byte-exact.
    expect(stdout).toMatch(new RegExp(`^key file:\n${PEM.replace(/[+]/g, '\\+')}aws=${AWS}\nprice: 5(€|\uFFFD+)\ndone\n$`));

    // Byte for byte, with a raw WebSocket client: everything after the 101 is what the target sent.
    const before = fake.sent.length;
    const exec = await openExec(gateway, 'plain', 'cat');
    await waitFor(() => fake.sent.length > before && exec.body().includes(fake.sent.at(-1) as Buffer));
    exec.socket.destroy();
    expect(exec.body().equals(fake.sent.at(-1) as Buffer)).toBe(true);
    expect(exec.body().includes(Buffer.from(AWS.slice(0, 8)))).toBe(true);
  });

  it('lets out an interactive prompt after a short idle time (the output does not stall)', async () => {
    recorders = [];
    const gateway = await startGateway();
    const exec = await openExec(gateway, 'masked', 'prompt');
    const started = Date.now();
    await waitFor(() => exec.frames().some((f) => f.payload.toString() === '\u0001/ # '), 2_000);
    expect(Date.now() - started).toBeLessThan(1_000);
    // The client's direction is relayed and recorded as before.
    exec.socket.write(serializeWsFrame(WsOpcode.Binary, Buffer.from('\u0000id\n'), { mask: Buffer.from([1, 2, 3, 4]) }));
    await waitFor(() => recorded(recorders.flatMap((r) => r.events), 0) === 'id\n');
    await waitFor(() => fake.stdin.includes('id\n'));
    exec.socket.destroy();
  });

  it('pauses the target while the client does not read (back-pressure), and loses nothing', async () => {
    const gateway = await startGateway();
    fake.bigWritten = 0;
    const exec = await openExec(gateway, 'masked', 'big');
    exec.socket.pause();
    let last = -1;
    // Wait until the target is stuck: nothing more written for 300 ms.
    await waitFor(() => {
      const stuck = fake.bigWritten === last;
      last = fake.bigWritten;
      return stuck;
    }, 10_000, 300);
    expect(fake.bigWritten).toBeLessThan(BIG_BYTES / 2);
    exec.socket.resume();
    const expected = (BIG_BYTES / (32 * 1024)) * (32 * 1024 - 1);
    await waitFor(() => exec.channelBytes(1) >= expected, 20_000);
    expect(exec.channelBytes(1)).toBe(expected);
    exec.socket.destroy();
  });

  it('cuts a stream whose frame is larger than the gateway masks (fail closed)', async () => {
    const logged: string[] = [];
    const gateway = await startGateway({ logger: (_level, message, fields) => logged.push(`${message} ${fields?.error ?? ''}`) });
    const exec = await openExec(gateway, 'masked', 'huge');
    await exec.closed;
    expect(exec.channelBytes(1)).toBe(0);
    expect(logged.some((l) => l.includes('could not be masked') && l.includes('larger than'))).toBe(true);
  });

  it("masks and records the API server's answer when it declines the upgrade (never piped through unread)", async () => {
    recorders = [];
    const text = await unswitchedAnswer('decline', 'v5.channel.k8s.io');
    expect(text).toMatch(/^HTTP\/1\.1 403 /);
    expect(text).toContain('denied for ');
    expect(text).not.toContain('ops@example.com');
    expect(text).not.toContain(AWS);
    const response = recorders.flatMap((r) => r.of('http.response'))[0];
    expect(response).toMatchObject({ status: 403, masked: true });
    expect(response?.body?.text).toContain('denied for ');
    expect(response?.body?.text).not.toContain('ops@example.com');
  });

  it('refuses a stream protocol it cannot mask (base64 channels) when masking applies', async () => {
    const text = await unswitchedAnswer('cat', 'v4.base64.channel.k8s.io');
    expect(text).toMatch(/^HTTP\/1\.1 502 /);
    expect(text).toContain('must be masked');
  });
});

/** An exec for a masked subject whose protocol is not switched: the whole HTTP answer, as text. */
async function unswitchedAnswer(command: string, protocol: string): Promise<string> {
  const exec = await openExec(await startGateway(), 'masked', command, protocol, false);
  await exec.closed;
  return Buffer.concat(exec.received).toString('utf8');
}

interface RawExec {
  socket: TLSSocket;
  /** Resolves when the connection is closed. */
  closed: Promise<void>;
  received: Buffer[];
  /** Bytes after the 101 response. */
  body(): Buffer;
  frames(): WsFrame[];
  /** Data bytes received on one channel. */
  channelBytes(ch: number): number;
}

/** An exec upgrade from a raw TLS socket: the test sees exactly the bytes the gateway sends. */
async function openExec(gateway: HttpGateway, group: string, command: string, protocol = 'v5.channel.k8s.io', switched = true): Promise<RawExec> {
  const token = await mintToken(plane.oidc, { user: 'kim', groups: [group] });
  const socket = connect({ host: '127.0.0.1', port: gateway.address.port, rejectUnauthorized: false });
  socket.on('error', () => socket.destroy());
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const received: Buffer[] = [];
  // Counted as it arrives (a 32 MiB stream is not joined again on every check).
  const parser = new WsFrameParser({ maxPayloadBytes: 64 });
  let inBody = false;
  let switchedProtocols = true;
  let pending = Buffer.alloc(0);
  const counts = new Map<number, number>();
  const kept: WsFrame[] = [];
  socket.on('data', (chunk: Buffer) => {
    received.push(chunk);
    let data = chunk;
    if (!inBody) {
      pending = Buffer.concat([pending, chunk]);
      const end = pending.indexOf('\r\n\r\n');
      if (end === -1) return;
      inBody = true;
      data = pending.subarray(end + 4);
      if (!pending.subarray(0, 13).equals(Buffer.from('HTTP/1.1 101 '))) switchedProtocols = false;
    }
    if (!switchedProtocols) return;
    for (const frame of parser.push(data)) {
      if (kept.length < 100) kept.push(frame);
      if (frame.opcode === WsOpcode.Binary) counts.set(frame.payload[0] as number, (counts.get(frame.payload[0] as number) ?? 0) + frame.size - 1);
    }
  });
  await new Promise<void>((resolve) => socket.once('secureConnect', resolve));
  socket.write(
    `GET /api/v1/namespaces/shop/pods/web-0/exec?command=${command}&stdout=true&stderr=true HTTP/1.1\r\nHost: x\r\n` +
      'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
      `Sec-WebSocket-Protocol: ${protocol}\r\nAuthorization: Bearer ${token}\r\n\r\n`,
  );
  if (switched) await waitFor(() => inBody);
  const body = (): Buffer => {
    const all = Buffer.concat(received);
    return all.subarray(all.indexOf('\r\n\r\n') + 4);
  };
  return { socket, closed, received, body, frames: () => kept, channelBytes: (ch) => counts.get(ch) ?? 0 };
}

async function waitFor(condition: () => boolean, timeoutMs = 5_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(everyMs);
  }
}
