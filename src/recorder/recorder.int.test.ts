// The recorder against the real test plane: MinIO for the recordings, the API server for Session
// objects, and the real `warden` CLI (spawned) to read, replay, export and verify what was written.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kubeClient, kubectlOk } from '../../test/plane/kubectl.ts';
import { capture, waitUntil } from '../../test/plane/proc.ts';
import type { Session } from '../api/types.ts';
import { exportSigningKey, generateSigningKey, loadSigningKey } from './crypto.ts';
import { EventKind, type RecordingEvent } from './events.ts';
import { Recorder, type RecorderOptions } from './recorder.ts';
import { KubeSessionObjects } from './session-objects.ts';
import { listAll, ObjectLockMode } from './store.ts';
import { S3Store } from './store-s3.ts';
import { readSessionEvents } from './reader.ts';

const plane = inject('plane');
const { minio, kube } = plane;
const suffix = randomBytes(4).toString('hex');
const bucket = `rec-int-${suffix}`;
const namespace = `rec-int-${suffix}`;
const NODE = join(process.cwd(), 'node_modules/.bin/node');
const CLI = join(process.cwd(), 'src/cli/main.ts');

const key = generateSigningKey();
const otherKey = generateSigningKey();
let work: string;
let publicKeyFile: string;
let store: S3Store;
let sessionObjects: KubeSessionObjects;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'warden-rec-int-'));
  publicKeyFile = join(work, 'signing.pub');
  await writeFile(publicKeyFile, exportSigningKey(key).publicPem);
  await writeFile(join(work, 'other.pub'), exportSigningKey(otherKey).publicPem);
  store = new S3Store({ endpoint: minio.endpoint, bucket, region: minio.region, accessKey: minio.accessKey, secretKey: minio.secretKey });
  await store.ensureBucket();
  await kubectlOk(kube, ['apply', '--server-side', '-f', 'crds/']);
  await kubectlOk(kube, ['create', 'namespace', namespace]);
  sessionObjects = new KubeSessionObjects(kubeClient(kube));
});

afterAll(async () => {
  await kubectlOk(kube, ['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

function recorderOptions(overrides: Partial<RecorderOptions> = {}): RecorderOptions {
  return {
    store,
    spoolDir: join(work, `spool-${randomBytes(3).toString('hex')}`),
    signingKey: key,
    prefix: 'recordings/int',
    maxChunkBytes: 2048,
    retry: { baseMs: 20, maxMs: 200 },
    ...overrides,
  };
}

/** The `warden` CLI as a user runs it: bucket credentials in the environment, the public key in a file. */
async function warden(args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return await capture(NODE, [CLI, ...args], {
    env: {
      PATH: process.env.PATH,
      HOME: work,
      WARDEN_S3_ENDPOINT: minio.endpoint,
      AWS_ACCESS_KEY_ID: minio.accessKey,
      AWS_SECRET_ACCESS_KEY: minio.secretKey,
      AWS_REGION: minio.region,
    },
  });
}

function terminalEvents(count: number): RecordingEvent[] {
  const events: RecordingEvent[] = [{ t: 0, k: EventKind.TermResize, cols: 100, rows: 30 }];
  for (let i = 1; i <= count; i++) {
    events.push({ t: i * 7, k: i % 10 === 0 ? EventKind.TermStdin : EventKind.TermStdout, data: { text: `output line ${i} ✓ ${'#'.repeat(i % 40)}\r\n` } });
  }
  // A multi-byte character split across two events, and bytes that are not UTF-8.
  events.push({ t: count * 7 + 1, k: EventKind.TermStdout, data: { b64: Buffer.from([0xe2, 0x9c]).toString('base64') } });
  events.push({ t: count * 7 + 2, k: EventKind.TermStdout, data: { b64: Buffer.from([0x93, 0x0a, 0xff]).toString('base64') } });
  return events;
}

async function recordTerminal(sessionId: string, events: readonly RecordingEvent[]): Promise<{ location: string; folder: string }> {
  const recorder = await Recorder.open(recorderOptions());
  const session = recorder.startSession({ sessionId, protocol: 'ssh', connection: `${namespace}/bastion`, user: 'alice' });
  for (const event of events) session.append(event);
  const result = await session.close('client-closed');
  expect(result.shipped).toBe(true);
  return { location: result.location, folder: session.folder };
}

describe('round trip: events in → objects in MinIO → the CLI gives the same events back', { timeout: 180_000 }, () => {
  it('exports exactly the recorded events as JSONL, replays asciicast v2 and verifies', async () => {
    const events = terminalEvents(400);
    const { location, folder } = await recordTerminal(`round-${suffix}`, events);
    expect(location).toBe(`s3://${bucket}/${folder}`);
    const objects = (await listAll(store, folder)).map((o) => o.key.slice(folder.length));
    expect(objects.length).toBeGreaterThan(5);
    expect(objects.at(-1)).toBe('manifest.json');

    const exported = await warden(['export', location, '--format', 'jsonl', '--public-key', publicKeyFile]);
    expect(exported.stderr).toBe('');
    expect(exported.code).toBe(0);
    const lines = exported.stdout.trim().split('\n').map((line) => JSON.parse(line) as RecordingEvent);
    expect(lines[0]).toMatchObject({ k: 'session.start', protocol: 'ssh', connection: `${namespace}/bastion` });
    expect(lines.slice(1, -1)).toEqual(events);
    expect(lines.at(-1)).toMatchObject({ k: 'session.end', reason: 'client-closed' });

    const csv = await warden(['export', location, '--format', 'csv', '--public-key', publicKeyFile]);
    expect(csv.code).toBe(0);
    expect(csv.stdout.split('\n')[0]).toBe('t,time,kind,id,decision,rule,class,text,rows,status,detail');

    const cast = await warden(['replay', location, '--format', 'asciicast', '--public-key', publicKeyFile]);
    expect(cast.code).toBe(0);
    const [header, ...frames] = cast.stdout.trim().split('\n').map((line) => JSON.parse(line) as unknown);
    expect(header).toMatchObject({ version: 2, width: 100, height: 30 });
    const output = (frames as Array<[number, string, string]>).filter((f) => f[1] === 'o').map((f) => f[2]).join('');
    const expected = events
      .filter((e) => e.k === EventKind.TermStdout)
      .map((e) => Buffer.from((e as { data: { text?: string; b64?: string } }).data.text ?? (e as { data: { b64: string } }).data.b64, (e as { data: { text?: string } }).data.text === undefined ? 'base64' : 'utf8'));
    expect(output).toBe(new TextDecoder().decode(Buffer.concat(expected), { stream: true }));
    expect(output).toContain('✓\n'); // the split character was joined across events

    const verify = await warden(['verify', location, '--public-key', publicKeyFile]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^OK s3:\/\/.*closed, manifest verified, chunks 0\.\.\d+ verified \(405 events\)/m);
  });

  it('replays a SQL session as a timeline with results', async () => {
    const recorder = await Recorder.open(recorderOptions());
    const session = recorder.startSession({ sessionId: `sql-${suffix}`, protocol: 'postgres', connection: `${namespace}/orders`, user: 'bob' });
    session.append({ t: 5, k: EventKind.SqlQuery, id: 1, text: { text: 'SELECT id, email FROM customers LIMIT 2' }, class: 'read', decision: 'allow' });
    session.append({ t: 9, k: EventKind.SqlResult, id: 1, columns: ['id', 'email'], rows: [['1', 'a***@example.com'], ['2', null]], rowCount: 2, tag: 'SELECT 2', masked: true });
    session.append({ t: 20, k: EventKind.SqlQuery, id: 2, text: { text: 'DROP TABLE customers' }, class: 'ddl', decision: 'deny', rule: 'prod/no-ddl' });
    session.append({ t: 20, k: EventKind.Deny, reason: 'DDL is not allowed on orders', rule: 'prod/no-ddl' });
    const { location } = await session.close('client-closed');
    const replay = await warden(['replay', location, '--public-key', publicKeyFile]);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toContain('SQL #1 [allow, read] SELECT id, email FROM customers LIMIT 2');
    expect(replay.stdout).toMatch(/a\*\*\*@example\.com/);
    expect(replay.stdout).toContain('(2 rows, SELECT 2, masked)');
    expect(replay.stdout).toContain('SQL #2 [deny, ddl, prod/no-ddl] DROP TABLE customers');
    const cast = await warden(['replay', location, '--format', 'asciicast', '--public-key', publicKeyFile]);
    expect(cast.code).toBe(2);
    expect(cast.stderr).toContain('asciicast is for terminal (ssh) sessions');
  });
});

describe('tampering with objects in MinIO: warden verify fails and names the problem', { timeout: 180_000 }, () => {
  let victim: { location: string; folder: string };
  let donor: { location: string; folder: string };
  const chunk = (folder: string, seq: number): string => `${folder}chunk-${String(seq).padStart(8, '0')}`;
  const overwrite = async (objectKey: string, bytes: Uint8Array): Promise<void> => {
    await store.client.putObject(bucket, objectKey, Buffer.from(bytes));
  };

  beforeAll(async () => {
    donor = await recordTerminal(`donor-${suffix}`, terminalEvents(200));
  });

  // Each case tampers with a fresh recording.
  async function fresh(name: string): Promise<{ location: string; folder: string }> {
    victim = await recordTerminal(`${name}-${suffix}`, terminalEvents(200));
    const ok = await warden(['verify', victim.location, '--public-key', publicKeyFile]);
    expect(ok.code).toBe(0);
    return victim;
  }

  it.each([
    {
      what: 'one byte of a chunk modified',
      tamper: async (v: { folder: string }) => {
        const bytes = Buffer.from((await store.get(chunk(v.folder, 1)))!);
        bytes[bytes.length - 100] = (bytes[bytes.length - 100] ?? 0) ^ 0x01;
        await overwrite(chunk(v.folder, 1), bytes);
      },
      expected: [/PROBLEM CHUNK_BAD_SIGNATURE chunk-00000001: .*altered/, /PROBLEM MANIFEST_DIGEST_MISMATCH chunk-00000001/],
    },
    {
      what: 'a chunk deleted',
      tamper: async (v: { folder: string }) => {
        await store.client.removeObject(bucket, chunk(v.folder, 2));
      },
      expected: [/PROBLEM CHUNK_MISSING chunk 2: chunk-00000002 is missing/],
    },
    {
      what: 'two chunks reordered',
      tamper: async (v: { folder: string }) => {
        const [a, b] = [await store.get(chunk(v.folder, 1)), await store.get(chunk(v.folder, 2))];
        await overwrite(chunk(v.folder, 1), b!);
        await overwrite(chunk(v.folder, 2), a!);
      },
      expected: [/PROBLEM CHUNK_MISPLACED chunk-00000001: chunk-00000001 holds chunk 2, not 1/, /PROBLEM CHUNK_MISPLACED chunk-00000002/],
    },
    {
      what: 'a chunk swapped in from another session',
      tamper: async (v: { folder: string }) => {
        await overwrite(chunk(v.folder, 1), (await store.get(chunk(donor.folder, 1)))!);
      },
      expected: [/PROBLEM CHUNK_FOREIGN_SESSION chunk-00000001: .*of session donor-/],
    },
    {
      what: 'the manifest truncated',
      tamper: async (v: { folder: string }) => {
        const bytes = (await store.get(`${v.folder}manifest.json`))!;
        await overwrite(`${v.folder}manifest.json`, bytes.subarray(0, bytes.length - 40));
      },
      expected: [/PROBLEM MANIFEST_TRUNCATED manifest.json: manifest.json is truncated/],
    },
  ])('$what', async ({ what, tamper, expected }) => {
    const v = await fresh(`tamper-${what.replace(/[^a-z]+/g, '-').slice(0, 40)}`);
    await tamper(v);
    const result = await warden(['verify', v.location, '--public-key', publicKeyFile]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    for (const pattern of expected) expect(result.stdout).toMatch(pattern);
    expect(result.stdout).toMatch(/^FAILED s3:\/\/.* \d+ problems? in session/m);
    // Reading the events stops at the damage instead of returning altered data.
    const exported = await warden(['export', v.location, '--public-key', publicKeyFile]);
    if (what !== 'the manifest truncated') {
      expect(exported.code).toBe(1);
      expect(exported.stderr).toMatch(/warden: (CHUNK_|CHAIN_)/);
    }
  });

  it('a recording signed by an untrusted key fails; usage errors exit 2', async () => {
    const intact = await recordTerminal(`trust-${suffix}`, terminalEvents(20));
    const wrongKey = await warden(['verify', intact.location, '--public-key', join(work, 'other.pub')]);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stdout).toContain('CHUNK_UNKNOWN_SIGNER');
    const noKey = await warden(['verify', intact.location]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('--public-key');
    const badOption = await warden(['verify', intact.location, '--public-key', publicKeyFile, '--frobnicate']);
    expect(badOption.code).toBe(2);
  });
});

describe('Session objects', { timeout: 180_000 }, () => {
  it('creates the Session at start, updates counts in batches and ends Closed with the final digest', async () => {
    const recorder = await Recorder.open(recorderOptions({ sessionObjects: { client: sessionObjects, namespace, intervalMs: 300 } }));
    const session = recorder.startSession({
      sessionId: `obj-${suffix}`,
      protocol: 'postgres',
      connection: `${namespace}/orders`,
      user: 'carol@example.com',
      groups: ['dba'],
      clientAddress: '10.0.0.7:51234',
      clientApplication: 'psql',
    });
    const ref = { namespace, name: session.sessionId };
    await waitUntil('Session created and Active', async () => (await sessionObjects.get(ref))?.status?.phase === 'Active', { timeoutMs: 60_000 });
    const created = (await sessionObjects.get(ref)) as Session;
    expect(created.spec).toEqual({
      connection: 'orders',
      protocol: 'postgres',
      user: 'carol@example.com',
      groups: ['dba'],
      clientAddress: '10.0.0.7:51234',
      clientApplication: 'psql',
      startedAt: session.startedAt.toISOString(),
    });
    expect(created.metadata.labels).toMatchObject({ 'warden.dev/connection': 'orders' });

    for (let i = 0; i < 1000; i++) {
      session.append({ t: session.t(), k: EventKind.SqlQuery, id: i, text: { text: `SELECT ${i}` }, decision: i % 100 === 0 ? 'deny' : 'allow' });
    }
    await waitUntil('counts written', async () => (await sessionObjects.get(ref))?.status?.commands === 990, { timeoutMs: 60_000 });
    const result = await session.close('client-closed');
    // 1000 events, a handful of API writes: create, first status, a few batches, the final ones.
    expect(session.statusWrites).toBeLessThanOrEqual(8);
    const final = (await sessionObjects.get(ref)) as Session;
    expect(final.status).toMatchObject({
      phase: 'Closed',
      commands: 990,
      denied: 10,
      recording: { location: result.location, chunks: result.manifest.chunks.length, headDigest: `sha256:${result.manifest.final}` },
    });
    expect(final.status?.endedAt).toBeDefined();
    // kubectl shows it as an audit listing.
    const listed = await kubectlOk(kube, ['get', 'sessions', '-n', namespace]);
    expect(listed).toMatch(new RegExp(`obj-${suffix}\\s+carol@example.com\\s+orders\\s+postgres\\s+Closed\\s+990`));
    // warden sessions filters by user and connection.
    const cli = await capture(NODE, [CLI, 'sessions', '--kubeconfig', kube.kubeconfig, '-n', namespace, '--user', 'carol@example.com', '-o', 'wide'], { env: { PATH: process.env.PATH, HOME: work } });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain(`obj-${suffix}`);
    expect(cli.stdout).toContain(result.location);
    const none = await capture(NODE, [CLI, 'sessions', '--kubeconfig', kube.kubeconfig, '-A', '--connection', 'nope', '--since', '1h'], { env: { PATH: process.env.PATH, HOME: work } });
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');
    // warden replay finds the recording through the Session object.
    const replay = await warden(['replay', `obj-${suffix}`, '--kubeconfig', kube.kubeconfig, '--public-key', publicKeyFile]);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain('SQL #999 [allow] SELECT 999');
  });

  it('writes a terminated session as Terminated with its reason', async () => {
    const recorder = await Recorder.open(recorderOptions({ sessionObjects: { client: sessionObjects, namespace, intervalMs: 300 } }));
    const session = recorder.startSession({ sessionId: `term-${suffix}`, protocol: 'ssh', connection: `${namespace}/bastion`, user: 'dave' });
    session.append({ t: 1, k: EventKind.TermStdout, data: { text: '$ ' } });
    await session.close('revoked', { message: 'access revoked by policy change' });
    const final = (await sessionObjects.get({ namespace, name: session.sessionId })) as Session;
    expect(final.status).toMatchObject({ phase: 'Terminated', reason: 'access revoked by policy change' });

    const denied = recorder.startSession({ sessionId: `denied-${suffix}`, protocol: 'postgres', connection: `${namespace}/orders` });
    denied.append({ t: 1, k: EventKind.Auth, ok: false, method: 'oidc', reason: 'token expired' });
    await denied.close('denied', { phase: 'Denied', message: 'token expired' });
    const deniedObject = (await sessionObjects.get({ namespace, name: denied.sessionId })) as Session;
    expect(deniedObject.spec.user).toBe('unauthenticated');
    expect(deniedObject.status).toMatchObject({ phase: 'Denied', reason: 'token expired' });
    expect(deniedObject.status?.endedAt).toBeDefined();
  });
});

describe('crash: the recording process is killed mid-session', { timeout: 180_000 }, () => {
  it('uploads the spool after restart; the session verifies up to the last sealed chunk and ends Terminated', async () => {
    const spoolDir = join(work, 'crash-spool');
    const sessionId = `crash-${suffix}`;
    const seed = randomBytes(32).toString('hex');
    const config = {
      endpoint: 'http://127.0.0.1:1', // first run: the bucket is unreachable, everything stays in the spool
      bucket,
      region: minio.region,
      accessKey: minio.accessKey,
      secretKey: minio.secretKey,
      spoolDir,
      prefix: 'recordings/crash',
      signingSeed: seed,
      sessionId,
      kubeconfig: kube.kubeconfig,
      namespace,
      maxChunkAgeMs: 200,
    };
    const script = join(process.cwd(), 'test/recorder/record-process.ts');
    const child: ChildProcess = spawn(NODE, [script], {
      env: { PATH: process.env.PATH, WARDEN_RECORD_CONFIG: JSON.stringify({ ...config, mode: 'stream' }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let lastSpooled = -1;
    let stdout = '';
    child.stdout?.on('data', (data: Buffer) => {
      stdout += data.toString();
      for (const line of stdout.split('\n').slice(0, -1)) lastSpooled = Math.max(lastSpooled, (JSON.parse(line) as { spooled: number }).spooled);
      stdout = stdout.slice(stdout.lastIndexOf('\n') + 1);
    });
    const ref = { namespace, name: sessionId };
    await waitUntil('chunks spooled', async () => lastSpooled >= 4, { timeoutMs: 60_000 });
    await waitUntil('Session Active', async () => (await sessionObjects.get(ref))?.status?.phase === 'Active', { timeoutMs: 60_000 });
    const killedAfter = lastSpooled;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const left = (await readdir(join(spoolDir, sessionId))).filter((name) => name.startsWith('chunk-'));
    expect(left.length).toBeGreaterThanOrEqual(killedAfter + 1);

    const recover = await capture(NODE, [script], {
      env: { PATH: process.env.PATH, WARDEN_RECORD_CONFIG: JSON.stringify({ ...config, mode: 'recover', endpoint: minio.endpoint }) },
    });
    expect(recover.code, recover.stderr).toBe(0);
    const [recovered] = JSON.parse(recover.stdout) as Array<{ sessionId: string; chunksUploaded: number; closed: boolean }>;
    expect(recovered).toMatchObject({ sessionId, closed: false });
    expect(recovered!.chunksUploaded).toBe(left.length);
    expect(await readdir(spoolDir)).toEqual([]);

    const session = (await sessionObjects.get(ref)) as Session;
    expect(session.status?.phase).toBe('Terminated');
    expect(session.status?.endedAt).toBeDefined();
    expect(session.status?.reason).toContain('stopped before the session closed');
    const location = session.status?.recording?.location as string;
    expect(session.status?.recording?.chunks).toBe(left.length);

    await writeFile(join(work, 'crash.pub'), exportSigningKey(loadSigningKey(seed)).publicPem);
    const strict = await warden(['verify', location, '--public-key', join(work, 'crash.pub')]);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toContain('MANIFEST_MISSING');
    const open = await warden(['verify', location, '--allow-open', '--public-key', join(work, 'crash.pub')]);
    expect(open.code, open.stdout).toBe(0);
    const through = Number(/chunks 0\.\.(\d+) verified/.exec(open.stdout)?.[1]);
    expect(through).toBeGreaterThanOrEqual(killedAfter);
    expect(through).toBe(left.length - 1);
  });
});

describe('object lock', () => {
  it('with a COMPLIANCE policy every chunk is locked: deleting one through the S3 API is refused', async () => {
    const lockedStore = new S3Store({ endpoint: minio.endpoint, bucket: `rec-lock-int-${suffix}`, region: minio.region, accessKey: minio.accessKey, secretKey: minio.secretKey, sse: 'S3' });
    await lockedStore.ensureBucket({ objectLock: true });
    const recorder = await Recorder.open(recorderOptions({ store: lockedStore, retention: { mode: ObjectLockMode.Compliance, days: 1 } }));
    const session = recorder.startSession({ sessionId: `locked-${suffix}`, protocol: 'ssh', connection: `${namespace}/bastion` });
    for (const event of terminalEvents(50)) session.append(event);
    const result = await session.close('client-closed');
    expect(result.shipped).toBe(true);
    const objectKey = `${session.folder}chunk-00000000`;
    const stat = await lockedStore.client.statObject(lockedStore.bucket, objectKey);
    const versionId = stat.versionId ?? '';
    expect(await lockedStore.client.getObjectRetention(lockedStore.bucket, objectKey, { versionId })).toMatchObject({ mode: 'COMPLIANCE' });
    await expect(lockedStore.client.removeObject(lockedStore.bucket, objectKey, { versionId })).rejects.toThrow();
    await expect(lockedStore.client.removeObject(lockedStore.bucket, objectKey, { versionId, governanceBypass: true })).rejects.toThrow();
    const events: RecordingEvent[] = [];
    for await (const event of readSessionEvents(lockedStore, session.folder, { trustedKeys: key })) events.push(event);
    expect(events).toHaveLength(55);
  });
});

