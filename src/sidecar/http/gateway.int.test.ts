import { type AddressInfo, connect, createServer as createNetServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { NGINX_FILES, oneMiBContent } from '../../../test/plane/nginx.ts';
import { capture, waitUntil } from '../../../test/plane/proc.ts';
import { mintToken, REJECTED_TOKEN_VARIANTS } from '../../../test/plane/tokens.ts';
import { payloadBytes, payloadText } from '../../recorder/events.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import { selfSignedCert } from '../postgres/testing.ts';
import type { HttpGatewayConfig } from './config.ts';
import { HttpGateway } from './gateway.ts';
import { type EchoUpstream, engineOf, MemoryRecorder, rawExchange, startEchoUpstream, recordingInto } from './testing.ts';
import { serializeWsFrame, WsOpcode } from './websocket.ts';

const plane = inject('plane');
const nginxUrl = `http://${plane.nginx.host}:${plane.nginx.port}`;

let verifier: TokenVerifier;
let echo: EchoUpstream;
let tls: { cert: string; key: string };
const gateways: HttpGateway[] = [];
let recorders: MemoryRecorder[] = [];

const policy = engineOf(
  {
    name: 'devs',
    spec: {
      subjects: [{ kind: 'Group', name: 'devs' }],
      approvers: [{ kind: 'Group', name: 'leads' }],
      rules: [
        { name: 'no-admin', effect: 'Deny', message: 'the admin area is off limits', http: { paths: ['/admin/**'] } },
        { name: 'no-delete', effect: 'Deny', http: { methods: ['DELETE'] } },
        { name: 'ask-for-put', effect: 'RequireApproval', http: { methods: ['PUT'] } },
        { name: 'rest', effect: 'Allow' },
      ],
    },
  },
  {
    name: 'masked',
    spec: {
      subjects: [{ kind: 'Group', name: 'masked' }],
      rules: [{ name: 'all', effect: 'Allow' }],
      masking: { rules: [{ name: 'names', jsonPaths: ['$.customer.name'] }, { name: 'pii', detectors: ['email', 'creditCard'] }] },
    },
  },
);

async function startGateway(overrides: Partial<HttpGatewayConfig> = {}): Promise<HttpGateway> {
  const gateway = await HttpGateway.start({
    connection: 'test/web',
    flavour: 'http',
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: nginxUrl },
    verifier,
    policy,
    masking: (subject) => policy.masker(subject),
    recorder: recordingInto(() => recorders),
    ...overrides,
  });
  gateways.push(gateway);
  return gateway;
}

const token = (groups = ['devs'], user = 'alice'): Promise<string> => mintToken(plane.oidc, { user, groups });
const bearer = async (groups?: string[]): Promise<Record<string, string>> => ({ authorization: `Bearer ${await token(groups)}` });

async function curl(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return await capture('curl', ['-sS', '--max-time', '20', ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
}

beforeAll(async () => {
  expect(policy.problems).toEqual([]);
  verifier = new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience });
  echo = await startEchoUpstream();
  tls = await selfSignedCert();
});

afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await echo?.close();
});

describe('HTTP gateway: relaying to nginx', () => {
  it('serves curl over TLS with a bearer token and records request and response', async () => {
    recorders = [];
    const gateway = await startGateway({ tls });
    const { stdout, code, stderr } = await curl(['-k', '-H', `Authorization: Bearer ${await token()}`, `${gateway.url}${NGINX_FILES.small.path}`]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe(NGINX_FILES.small.body);
    await sleep(50);
    const recorder = recorders[0] as MemoryRecorder;
    expect(recorder.of('session.start')[0]).toMatchObject({ protocol: 'http', connection: 'test/web' });
    expect(recorder.of('auth')[0]).toMatchObject({ ok: true, user: 'alice@example.com', groups: ['devs'] });
    const request = recorder.of('http.request')[0];
    expect(request).toMatchObject({ id: 1, method: 'GET', url: '/small.txt', decision: 'allow', rule: 'devs/rest' });
    expect(request?.headers?.authorization).toBe('[redacted]');
    const response = recorder.of('http.response')[0];
    expect(response).toMatchObject({ id: 1, status: 200, body: { text: NGINX_FILES.small.body } });
    expect(JSON.stringify(recorder.events)).not.toContain((await token()).slice(0, 20));
  });

  it('streams 1 MiB intact and records only the capped prefix', async () => {
    recorders = [];
    const gateway = await startGateway({ maxRecordedBodyBytes: 1000 });
    const response = await fetch(`${gateway.url}${NGINX_FILES.oneMiB.path}`, { headers: await bearer() });
    expect(response.status).toBe(200);
    expect(Buffer.from(await response.arrayBuffer()).equals(oneMiBContent())).toBe(true);
    await sleep(50);
    const recorded = recorders[0]?.of('http.response')[0]?.body;
    expect(recorded).toMatchObject({ truncated: true, size: NGINX_FILES.oneMiB.size });
    expect(Buffer.from(payloadBytes(recorded as never)).equals(oneMiBContent().subarray(0, 1000))).toBe(true);
  });

  it('relays a chunked 1 MiB upload and records its prefix', async () => {
    recorders = [];
    const gateway = await startGateway({ upstream: { url: echo.url }, maxRecordedBodyBytes: 64 });
    const before = echo.requests.length;
    const body = oneMiBContent();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < body.length; i += 100_000) controller.enqueue(body.subarray(i, i + 100_000));
        controller.close();
      },
    });
    const response = await fetch(`${gateway.url}/headers`, { method: 'POST', body: stream, duplex: 'half', headers: await bearer() } as RequestInit);
    expect(response.status).toBe(200);
    const seen = (await response.json()) as { headers: Record<string, string>; bodyBytes: number };
    expect(seen.bodyBytes).toBe(body.length);
    expect(echo.requests.length).toBe(before + 1);
    await sleep(50);
    const request = recorders[0]?.of('http.request')[0];
    expect(request?.body).toMatchObject({ truncated: true, size: body.length });
    expect(Buffer.from(payloadBytes(request?.body as never)).equals(body.subarray(0, 64))).toBe(true);
  });

  it('uploads with curl -T (chunked) to nginx', async () => {
    const gateway = await startGateway();
    const { stdout, code } = await curl([
      '-H', `Authorization: Bearer ${await token()}`, '-H', 'Transfer-Encoding: chunked', '-X', 'POST', '--data-binary', '@-', `${gateway.url}/echo?x=1`,
    ]);
    expect(code).toBe(0);
    expect(stdout).toBe('POST /echo?x=1\n');
  });

  it('answers Expect: 100-continue only after the token and policy passed', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const body = 'z'.repeat(2 * 1024 * 1024);
    const send = async (authorization: string): Promise<string> =>
      (
        await capture('curl', ['-sS', '--max-time', '20', '-H', 'Expect: 100-continue', '-H', `Authorization: ${authorization}`, '--data-binary', '@-', '-w', '\n%{http_code}', `${gateway.url}/headers`], {
          input: body,
        })
      ).stdout;
    const before = echo.requests.length;
    expect((await send('Bearer bad')).trim().split('\n').at(-1)).toBe('401');
    expect(echo.requests.length).toBe(before);
    const ok = (await send(`Bearer ${await token()}`)).trim().split('\n');
    expect(ok.at(-1)).toBe('200');
    expect((JSON.parse(ok[0] as string) as { bodyBytes: number }).bodyBytes).toBe(body.length);
  });

  it('keeps a slow reader correct and does not buffer an endless body (back-pressure)', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const auth = await token();
    const socket = connect({ host: '127.0.0.1', port: gateway.address.port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(`GET /endless HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${auth}\r\n\r\n`);
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    await sleep(300);
    // The client stops reading; the gateway must stop reading from the target too.
    socket.pause();
    // Buffers on the way fill up, then the target's writes stall (waited for, not guessed: the
    // machine may be busy).
    let stalled = -1;
    for (let i = 0; i < 50 && stalled !== echo.endlessWritten; i++) {
      stalled = echo.endlessWritten;
      await sleep(300);
    }
    await sleep(500);
    expect(echo.endlessWritten).toBe(stalled);
    // In flight between the target and the paused client: kernel socket buffers and stream
    // high-water marks on two loopback hops (measured ≈ 14 MB here), not an ever-growing buffer.
    expect(stalled - received).toBeLessThan(32 * 1024 * 1024);
    socket.resume();
    await sleep(300);
    expect(received).toBeGreaterThan(0);
    expect(echo.endlessWritten).toBeGreaterThan(stalled);
    socket.destroy();
  });

  it('cuts the client off when the target breaks off mid-body, and records the body as incomplete', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const { response, timedOut } = await rawExchange(gateway.address.port, `GET /cut HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await token()}\r\n\r\n`, 5_000);
    // A short body must not look complete: the client's connection is closed, not left waiting.
    expect(timedOut).toBe(false);
    expect(response).toMatch(/^HTTP\/1\.1 200/);
    expect(response).toMatch(/content-length: 1000/i);
    expect(response.length - response.indexOf('\r\n\r\n') - 4).toBe(100);
    const recorded = recorders.at(-1)!.of('http.response');
    expect(recorded).toHaveLength(1);
    expect(recorded[0]!.body).toMatchObject({ truncated: true });
    expect(payloadText(recorded[0]!.body!)).toBe('b'.repeat(100));
  });

  it('lets go of the target when the client goes away mid-response, and records the body as incomplete', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const closedBefore = echo.endlessClosed;
    const socket = connect({ host: '127.0.0.1', port: gateway.address.port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(`GET /endless HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await token()}\r\n\r\n`);
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    socket.destroy();
    for (let i = 0; i < 100 && echo.endlessClosed === closedBefore; i++) await sleep(50);
    expect(echo.endlessClosed).toBe(closedBefore + 1);
    const recorder = recorders.at(-1)!;
    for (let i = 0; i < 100 && recorder.of('http.response').length === 0; i++) await sleep(50);
    const recorded = recorder.of('http.response');
    expect(recorded).toHaveLength(1);
    expect(recorded[0]!.body).toMatchObject({ truncated: true });
    expect(recorded[0]!.body).not.toHaveProperty('size');
  });

  it('serves a slow reader of 1 MiB the exact bytes', async () => {
    const gateway = await startGateway();
    const auth = await token();
    const socket = connect({ host: '127.0.0.1', port: gateway.address.port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(`GET /1m.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${auth}\r\n\r\n`);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      socket.pause();
      setTimeout(() => socket.resume(), 2);
    });
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const all = Buffer.concat(chunks);
    const split = all.indexOf('\r\n\r\n');
    expect(all.subarray(0, split).toString()).toMatch(/^HTTP\/1\.1 200/);
    expect(all.subarray(split + 4).equals(oneMiBContent())).toBe(true);
  });
});

describe('HTTP gateway: idle timeout', () => {
  it('ends a keep-alive connection whose second request stalls, not only the first', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url }, idleTimeoutMs: 1_000 });
    const auth = await token();
    const socket = connect(gateway.address.port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write(`GET /small HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${auth}\r\n\r\n`);
    await waitUntil('the first response', async () => /HTTP\/1\.1 200 /.test(received), { timeoutMs: 10_000 });
    // The second request promises a body and stalls after half of it.
    socket.write(`POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${auth}\r\nContent-Length: 10\r\n\r\nabcde`);
    const stalledAt = Date.now();
    const result = await Promise.race([closed, sleep(8_000).then(() => undefined)]);
    socket.destroy();
    expect(result, 'the gateway kept a stalled keep-alive connection open').toBeDefined();
    expect(result! - stalledAt).toBeLessThan(4_000);
  });
});

describe('HTTP gateway: refusals', () => {
  it.each(REJECTED_TOKEN_VARIANTS)('refuses a %s token with 401 and WWW-Authenticate', async (variant) => {
    const gateway = await startGateway();
    const bad = await mintToken(plane.oidc, { user: 'alice', groups: ['devs'] }, variant);
    const response = await fetch(`${gateway.url}/small.txt`, { headers: { authorization: `Bearer ${bad}` } });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="warden", error="invalid_token"/);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('WARDEN_HTTP_UNAUTHENTICATED');
    expect(JSON.stringify(body)).not.toContain(bad.slice(-20));
  });

  it.each([
    ['no Authorization header', undefined],
    ['a Basic header', `Basic ${Buffer.from('alice:pw').toString('base64')}`],
    ['an empty bearer', 'Bearer '],
    ['garbage', 'Bearer not.a.jwt'],
  ])('refuses %s with 401', async (_what, authorization) => {
    const gateway = await startGateway();
    const response = await fetch(`${gateway.url}/small.txt`, { headers: authorization === undefined ? {} : { authorization } });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('Bearer');
  });

  it('refuses a caller no policy admits with 403', async () => {
    const gateway = await startGateway();
    const response = await fetch(`${gateway.url}/small.txt`, { headers: await bearer(['strangers']) });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: { code: 'WARDEN_HTTP_NOT_ADMITTED' } });
  });

  it.each([
    ['GET', '/admin/users', 'devs', 'no-admin', 'the admin area is off limits'],
    ['GET', '/%61dmin/users', 'devs', 'no-admin', 'off limits'],
    ['DELETE', '/small.txt', 'devs', 'no-delete', 'no-delete'],
    ['GET', '/x/../admin/users', 'devs', undefined, 'dot segment'],
    ['GET', '/x/%2e%2e/admin', 'devs', undefined, 'dot segment'],
    ['GET', '/a%2Fb', 'devs', undefined, 'encoded slash'],
  ])('denies %s %s with 403 and records it', async (method, path, group, rule, reason) => {
    recorders = [];
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const before = echo.requests.length;
    // curl --path-as-is keeps dot segments as written.
    const { stdout } = await curl(['--path-as-is', '-X', method, '-H', `Authorization: Bearer ${await token([group])}`, '-w', '\n%{http_code}', `${gateway.url}${path}`]);
    const lines = stdout.trim().split('\n');
    const body = lines[0];
    const status = lines.at(-1);
    expect(status).toBe('403');
    expect(JSON.parse(body as string)).toMatchObject({ error: { code: 'WARDEN_HTTP_DENIED' } });
    expect((JSON.parse(body as string) as { error: { message: string } }).error.message).toContain(reason);
    expect(echo.requests.length).toBe(before);
    const deny = recorders[0]?.of('deny')[0];
    expect(deny?.reason).toContain(reason);
    if (rule) expect(deny?.rule).toBe(`devs/${rule}`);
  });

  it('refuses a request needing approval (approvals are not wired in yet)', async () => {
    const gateway = await startGateway();
    const response = await fetch(`${gateway.url}/small.txt`, { method: 'PUT', body: 'x', headers: await bearer() });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: { code: 'WARDEN_HTTP_APPROVAL_UNAVAILABLE' } });
  });

  it('answers 503 and forwards nothing once the recorder fails (fail closed)', async () => {
    // Session start, auth, request and response of the first request are taken; then it fails.
    class FailingRecorder extends MemoryRecorder {
      override append(event: Parameters<MemoryRecorder['append']>[0]): boolean {
        if (this.events.length >= 4) throw new Error('disk full');
        return super.append(event);
      }
    }
    const gateway = await startGateway({ upstream: { url: echo.url }, recorder: () => new FailingRecorder() });
    const before = echo.requests.length;
    const auth = `Authorization: Bearer ${await token()}\r\n`;
    const socket = connect({ host: '127.0.0.1', port: gateway.address.port });
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(`GET /first HTTP/1.1\r\nHost: x\r\n${auth}\r\n`);
    // One keep-alive connection, the second request once the first was answered whole.
    for (let i = 0; i < 100 && !received.endsWith('0\r\n\r\n'); i++) await sleep(50);
    expect(received).toMatch(/^HTTP\/1\.1 200/);
    socket.write(`GET /second HTTP/1.1\r\nHost: x\r\n${auth}\r\n`);
    await closed;
    expect(received).toMatch(/HTTP\/1\.1 503[^]*WARDEN_HTTP_RECORDING_UNAVAILABLE/);
    expect(echo.requests.slice(before).map((r) => r.url)).toEqual(['/first']);
  });

  it('answers 502 when the target is down', async () => {
    const gateway = await startGateway({ upstream: { url: 'http://127.0.0.1:1' } });
    const response = await fetch(`${gateway.url}/small.txt`, { headers: await bearer() });
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ error: { code: 'WARDEN_HTTP_UPSTREAM_FAILED' } });
  });

  it('answers 504 when the target takes the request but does not answer in time', async () => {
    const silent = createNetServer((socket) => socket.resume());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const recorder = new MemoryRecorder();
      const port = (silent.address() as AddressInfo).port;
      const gateway = await startGateway({ upstream: { url: `http://127.0.0.1:${port}`, responseTimeoutMs: 300 }, recorder: () => recorder });
      const began = Date.now();
      const response = await fetch(`${gateway.url}/small.txt`, { headers: await bearer() });
      expect(response.status).toBe(504);
      expect(await response.json()).toMatchObject({ error: { code: 'WARDEN_HTTP_UPSTREAM_TIMEOUT' } });
      expect(Date.now() - began).toBeLessThan(5_000);
      expect(recorder.of('error')).toMatchObject([{ code: 'WARDEN_HTTP_UPSTREAM_TIMEOUT' }]);
    } finally {
      silent.close();
    }
  });
});

describe('HTTP gateway: header hygiene and credentials', () => {
  it.each([
    [{ kind: 'bearer', token: 'upstream-secret' } as const, 'authorization', 'Bearer upstream-secret'],
    [{ kind: 'basic', username: 'svc', password: 'p@ss' } as const, 'authorization', `Basic ${Buffer.from('svc:p@ss').toString('base64')}`],
    [{ kind: 'headers', headers: { 'X-Api-Key': 'k-123' } } as const, 'x-api-key', 'k-123'],
  ])('strips the caller token, injects %j and sets X-Forwarded-*', async (credentials, header, value) => {
    recorders = [];
    const gateway = await startGateway({ upstream: { url: echo.url, credentials } });
    // curl, not fetch: fetch will not send Connection or Proxy-Authorization.
    const { stdout } = await curl([
      '-H', `Authorization: Bearer ${await token()}`,
      '-H', 'X-Api-Key: client-chosen',
      '-H', 'X-Forwarded-For: 6.6.6.6',
      '-H', 'Forwarded: for=6.6.6.6',
      '-H', 'Connection: x-drop-me',
      '-H', 'X-Drop-Me: hop',
      '-H', 'Proxy-Authorization: Basic Zm9vOmJhcg==',
      `${gateway.url}/headers`,
    ]);
    const seen = (JSON.parse(stdout) as { headers: Record<string, string> }).headers;
    expect(seen[header]).toBe(value);
    if (credentials.kind !== 'headers') expect(seen['x-api-key']).toBe('client-chosen');
    if (credentials.kind === 'headers') expect(seen.authorization).toBeUndefined();
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen.forwarded).toBeUndefined();
    expect(seen['x-drop-me']).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(seen.host).toBe(new URL(echo.url).host);
    await sleep(20);
    // The echo endpoint sends the injected credentials back in its body (as a careless target
    // might); everything else the gateway recorded must be free of them.
    const recorded = JSON.stringify(recorders[0]?.events.filter((e) => e.k !== 'http.response'));
    expect(recorders[0]?.of('http.request')[0]?.headers?.authorization).toBe('[redacted]');
    for (const secret of ['upstream-secret', 'p@ss', 'k-123', Buffer.from('svc:p@ss').toString('base64')]) expect(recorded).not.toContain(secret);
  });
});

describe('HTTP gateway: masking', () => {
  it('masks JSON responses by path and detectors for a subject with masking rules', async () => {
    recorders = [];
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const response = await fetch(`${gateway.url}/json`, { headers: await bearer(['masked']) });
    expect(response.status).toBe(200);
    expect(response.headers.get('etag')).toBeNull();
    const text = await response.text();
    expect(Number(response.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    expect(text).not.toContain('alice@example.com');
    expect(text).not.toContain('bob@example.org');
    expect(text).not.toContain('4111 1111 1111 1111');
    expect(text).not.toContain('Alice');
    await sleep(20);
    const recorded = recorders[0]?.of('http.response')[0];
    expect(payloadText(recorded?.body as never)).toBe(text);
    // Marked as masked (the masking-hits metric counts it).
    expect(recorded?.masked).toBe(true);
    // The upstream was asked for an identity encoding so the body is readable.
    expect(echo.requests.at(-1)?.headers['accept-encoding']).toBe('identity');
  });

  it('passes JSON unmasked for a subject without masking rules', async () => {
    recorders = [];
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const text = await (await fetch(`${gateway.url}/json`, { headers: await bearer() })).text();
    expect(text).toContain('alice@example.com');
    await sleep(20);
    expect(recorders[0]?.of('http.response')[0]?.masked).toBeUndefined();
  });

  it('masks text responses with detectors (nginx echo)', async () => {
    const gateway = await startGateway();
    const text = await (await fetch(`${gateway.url}/echo?contact=carol@example.com`, { headers: await bearer(['masked']) })).text();
    expect(text.startsWith('GET /echo?contact=')).toBe(true);
    expect(text).not.toContain('carol@example.com');
  });

  it('refuses an upgrade for a subject with masking rules (WebSocket messages are not masked), and passes on nothing of the target', async () => {
    recorders = [];
    const gateway = await startGateway();
    // nginx's /echo would ignore the Upgrade header and answer 200 with the URI in the body.
    const { response } = await rawExchange(
      gateway.address.port,
      `GET /echo?contact=carol@example.com HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await token(['masked'])}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expect(response.startsWith('HTTP/1.1 502 ')).toBe(true);
    expect(response).toContain('cannot mask WebSocket messages');
    expect(response).not.toContain('carol@example.com');
    await sleep(20);
    expect(recorders[0]?.of('deny')[0]?.reason).toContain('WebSocket messages cannot be masked');
  });

  it('masks newline-delimited JSON line by line', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const text = await (await fetch(`${gateway.url}/ndjson`, { headers: await bearer(['masked']) })).text();
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(JSON.stringify(JSON.parse(line))).not.toMatch(/@example\.com/);
  });

  it('refuses (502) a body it must mask but cannot read, rather than sending it unmasked', async () => {
    const gateway = await startGateway();
    const response = await fetch(`${gateway.url}/1m.bin`, { headers: await bearer(['masked']) });
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ error: { code: 'WARDEN_HTTP_CANNOT_MASK' } });
  });

  it('refuses (502) a JSON body over the masking bound', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url }, maxMaskedBodyBytes: 20 });
    const response = await fetch(`${gateway.url}/json`, { headers: await bearer(['masked']) });
    expect(response.status).toBe(502);
    expect(await response.json()).toMatchObject({ error: { code: 'WARDEN_HTTP_CANNOT_MASK' } });
  });
});

describe('HTTP gateway: request smuggling', () => {
  const attempts: Array<[string, (auth: string) => string]> = [
    ['Content-Length and Transfer-Encoding', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /headers HTTP/1.1\r\nHost: x\r\n\r\n`],
    ['two different Content-Lengths', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nContent-Length: 4\r\nContent-Length: 30\r\n\r\nabcdGET /headers HTTP/1.1\r\n\r\n`],
    ['two equal Content-Lengths', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd`],
    ['a signed Content-Length', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nContent-Length: +4\r\n\r\nabcd`],
    ['a Content-Length list', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nContent-Length: 4, 4\r\n\r\nabcd`],
    ['Transfer-Encoding: gzip, chunked', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding: xchunked', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`],
    ['two Transfer-Encoding headers', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['a space before the colon', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`],
    ['an obs-folded Transfer-Encoding', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`],
    ['a bare LF line ending', (a) => `POST /headers HTTP/1.1\nHost: x\nAuthorization: Bearer ${a}\nContent-Length: 4\nTransfer-Encoding: chunked\n\n0\n\n`],
    ['two Host headers', (a) => `GET /headers HTTP/1.1\r\nHost: x\r\nHost: y\r\nAuthorization: Bearer ${a}\r\n\r\n`],
    ['an absolute-form target', (a) => `GET http://evil.test/headers HTTP/1.1\r\nHost: evil.test\r\nAuthorization: Bearer ${a}\r\n\r\n`],
    ['a chunk size with a bad extension', (a) => `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${a}\r\nTransfer-Encoding: chunked\r\n\r\n4;\x00\r\nabcd\r\n0\r\n\r\n`],
  ];

  it.each(attempts)('refuses %s with 400 and closes, forwarding nothing', async (_what, request) => {
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const before = echo.requests.length;
    const { response, timedOut } = await rawExchange(gateway.address.port, request(await token()));
    expect(timedOut).toBe(false);
    expect(response).toMatch(/^HTTP\/1\.1 400 /);
    expect(response.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    await sleep(50);
    expect(echo.requests.length).toBe(before);
  });

  it('takes a well-formed keep-alive pipeline of two requests', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const auth = await token();
    const { response } = await rawExchange(
      gateway.address.port,
      `POST /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${auth}\r\nContent-Length: 4\r\n\r\nabcdGET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${auth}\r\n\r\n`,
    );
    expect(response.match(/HTTP\/1\.1 200 /g)).toHaveLength(2);
  });
});

describe('HTTP gateway: upgrades', () => {
  it('relays a WebSocket echo (Node WebSocket client) and records the handshake and the messages', async () => {
    recorders = [];
    const gateway = await startGateway({ upstream: { url: echo.url }, maxRecordedBodyBytes: 1024 });
    const ws = new WebSocket(`${gateway.url.replace('http', 'ws')}/chat`, { headers: await bearer() } as never);
    const messages: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => {
        ws.send('hello');
        ws.send('x'.repeat(70_000));
      };
      ws.onmessage = (event) => {
        messages.push(String(event.data));
        if (messages.length === 2) resolve();
      };
      ws.onerror = () => reject(new Error('websocket error'));
    });
    ws.close();
    expect(messages[0]).toBe('hello');
    expect(messages[1]).toHaveLength(70_000);
    await sleep(20);
    expect(recorders[0]?.of('http.request')[0]).toMatchObject({ method: 'GET', url: '/chat', decision: 'allow' });
    expect(recorders[0]?.of('http.response')[0]).toMatchObject({ status: 101 });
    expect(echo.requests.at(-1)?.headers.authorization).toBeUndefined();
    // The client offered permessage-deflate; the gateway keeps frames readable by not passing it on.
    expect(echo.requests.at(-1)?.headers['sec-websocket-extensions']).toBeUndefined();
    await waitFor(() => (recorders[0]?.of('ws.message').length ?? 0) >= 4);
    const upgradeId = recorders[0]?.of('http.request')[0]?.id;
    const recorded = recorders[0]?.of('ws.message') ?? [];
    for (const direction of ['to-target', 'to-client'] as const) {
      // Each direction in order; the two directions interleave as the network has it.
      expect(recorded.filter((m) => m.direction === direction).map((m) => [m.id, m.opcode, m.data])).toEqual([
        [upgradeId, 1, { text: 'hello' }],
        [upgradeId, 1, { text: 'x'.repeat(1024), truncated: true, size: 70_000 }],
      ]);
    }
  });

  it('records fragmented and binary WebSocket messages whole, skipping control frames', async () => {
    recorders = [];
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const socket = connect({ host: '127.0.0.1', port: gateway.address.port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    const mask = Buffer.from([9, 8, 7, 6]);
    // The first frames travel in the same packet as the handshake: the gateway must parse them too.
    socket.write(
      Buffer.concat([
        Buffer.from(
          'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
            `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate\r\nAuthorization: Bearer ${await token()}\r\n\r\n`,
        ),
        serializeWsFrame(WsOpcode.Text, Buffer.from('frag'), { fin: false, mask }),
      ]),
    );
    await waitFor(() => Buffer.concat(received).includes('\r\n\r\n'));
    socket.write(serializeWsFrame(WsOpcode.Ping, Buffer.from('p'), { mask }));
    socket.write(serializeWsFrame(WsOpcode.Continuation, Buffer.from('ment ✓'), { fin: true, mask }));
    socket.write(serializeWsFrame(WsOpcode.Binary, Buffer.from([0, 0xff, 1]), { mask }));
    await waitFor(() => (recorders[0]?.of('ws.message').length ?? 0) >= 4);
    socket.destroy();
    const recorded = recorders[0]?.of('ws.message') ?? [];
    // The echo target answers frame by frame (its pong inside the fragmented message): its
    // fragments are joined the same way.
    for (const direction of ['to-target', 'to-client'] as const) {
      expect(recorded.filter((m) => m.direction === direction).map((m) => [m.opcode, m.data])).toEqual([
        [1, { text: 'fragment ✓' }],
        [2, { b64: Buffer.from([0, 0xff, 1]).toString('base64') }],
      ]);
    }
  });

  it('refuses an upgrade with a bad token before reaching the target', async () => {
    const gateway = await startGateway({ upstream: { url: echo.url } });
    const before = echo.requests.length;
    const { response } = await rawExchange(
      gateway.address.port,
      'GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer nope\r\n\r\n',
    );
    expect(response).toMatch(/^HTTP\/1\.1 401 /);
    expect(response).toMatch(/www-authenticate: Bearer/i);
    expect(echo.requests.length).toBe(before);
  });

  it('refuses SPDY upgrades on the Kubernetes flavour (they could not be recorded)', async () => {
    const gateway = await startGateway({ flavour: 'kubernetes', upstream: { url: echo.url } });
    const before = echo.requests.length;
    const { response } = await rawExchange(
      gateway.address.port,
      `POST /api/v1/namespaces/shop/pods/web-0/exec?command=sh HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\nAuthorization: Bearer ${await token()}\r\n\r\n`,
    );
    expect(response).toMatch(/^HTTP\/1\.1 403 /);
    expect(response).toContain('"kind":"Status"');
    expect(echo.requests.length).toBe(before);
  });

  it('records Kubernetes exec channels (v5.channel.k8s.io) frame by frame', async () => {
    recorders = [];
    const gateway = await startGateway({ flavour: 'kubernetes', upstream: { url: echo.url } });
    const socket = connect({ host: '127.0.0.1', port: gateway.address.port });
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.write(
      'GET /api/v1/namespaces/shop/pods/web-0/exec?command=sh&stdin=true&stdout=true HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\nAuthorization: Bearer ${await token()}\r\n\r\n`,
    );
    await waitFor(() => Buffer.concat(received).includes('\r\n\r\n'));
    expect(Buffer.concat(received).toString('latin1')).toMatch(/^HTTP\/1\.1 101 [\s\S]*Sec-WebSocket-Protocol: v5\.channel\.k8s\.io/i);
    socket.write(serializeWsFrame(WsOpcode.Binary, Buffer.concat([Buffer.from([0]), Buffer.from('id\n')]), { mask: Buffer.from([1, 2, 3, 4]) }));
    await waitFor(() => (recorders[0]?.of('k8s.exec').length ?? 0) >= 2);
    socket.destroy();
    const exec = recorders[0]?.of('k8s.exec') ?? [];
    expect(exec.map((e) => [e.ch, payloadText(e.data)])).toEqual([
      [0, 'id\n'],
      [0, 'id\n'],
    ]);
    expect(recorders[0]?.of('http.request')[0]).toMatchObject({ k8s: { verb: 'get', resource: 'pods', subresource: 'exec', namespace: 'shop', name: 'web-0' } });
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(10);
  }
}
