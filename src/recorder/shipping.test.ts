// Pure logic of the shipping layer: the directory store, the spool's crash-safety, the Session
// status batching and its helpers. The S3 store and Session objects are tested against the real
// servers in *.int.test.ts.

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Session, SessionSpec, SessionStatus } from '../api/types.ts';
import { RecorderErrorCode } from './errors.ts';
import {
  formatDuration,
  isValidSessionObjectName,
  phaseForEndReason,
  type SessionObjectClient,
  type SessionRef,
  SessionStatusReporter,
} from './session-objects.ts';
import { Spool } from './spool.ts';
import { assertValidKey, listAll, PutOutcome } from './store.ts';
import { DirectoryStore } from './store-dir.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-shipping-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('DirectoryStore', () => {
  it('writes once: identical retries are AlreadyStored, different bytes OBJECT_EXISTS', async () => {
    const store = new DirectoryStore(dir);
    expect(await store.putOnce('p/2026/11/22/s/chunk-00000000', Buffer.from('a'))).toBe(PutOutcome.Created);
    expect(await store.putOnce('p/2026/11/22/s/chunk-00000000', Buffer.from('a'))).toBe(PutOutcome.AlreadyStored);
    await expect(store.putOnce('p/2026/11/22/s/chunk-00000000', Buffer.from('b'))).rejects.toMatchObject({ code: RecorderErrorCode.ObjectExists });
    expect(Buffer.from((await store.get('p/2026/11/22/s/chunk-00000000'))!).toString()).toBe('a');
    expect(await store.get('p/2026/11/22/s/missing')).toBeUndefined();
  });

  it('lists by prefix in key order, without temporary files', async () => {
    const store = new DirectoryStore(dir);
    await store.putOnce('a/s/chunk-00000001', Buffer.from('1'));
    await store.putOnce('a/s/chunk-00000000', Buffer.from('0'));
    await store.putOnce('a/t/chunk-00000000', Buffer.from('x'));
    await writeFile(join(dir, 'a/s/.tmp-dead'), 'partial');
    expect((await listAll(store, 'a/s/')).map((o) => o.key)).toEqual(['a/s/chunk-00000000', 'a/s/chunk-00000001']);
    expect((await listAll(store, 'a/')).map((o) => o.key)).toHaveLength(3);
  });

  it.each(['', '/abs', 'a/../b', 'a//b', 'a/./b', 'a\\b'])('refuses the key %j', (key) => {
    expect(() => assertValidKey(key)).toThrow(/not a valid relative key/);
  });
});

describe('Spool', () => {
  const info = { v: 1 as const, sessionId: 's1', folder: 'p/2026/11/22/s1/', startedAt: '2026-11-22T00:00:00.000Z' };

  it('counts what an earlier process left and removes interrupted writes', async () => {
    const first = new Spool(dir, 1000);
    await first.open();
    await first.openSession(info);
    await first.writeChunk('s1', 0, Buffer.alloc(100));
    await first.writeChunk('s1', 1, Buffer.alloc(50));
    await writeFile(join(dir, 's1', '.tmp-abc'), 'half a chunk');
    expect(first.usedBytes).toBe(150);

    const second = new Spool(dir, 1000);
    await second.open();
    expect(second.usedBytes).toBe(150);
    const [session] = await second.scan();
    expect(session).toMatchObject({ info, chunks: [0, 1], manifest: false });
    expect(await readdir(join(dir, 's1'))).not.toContain('.tmp-abc');
  });

  it('drops a session folder whose session.json never became durable', async () => {
    const spool = new Spool(dir, 1000);
    await spool.open();
    await writeFile(join(dir, 'orphan'), '');
    await rm(join(dir, 'orphan'));
    await (await import('node:fs/promises')).mkdir(join(dir, 'orphan'));
    expect(await spool.scan()).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('reports the bound as full only past maxBytes', async () => {
    const spool = new Spool(dir, 100);
    await spool.open();
    await spool.openSession(info);
    await spool.writeChunk('s1', 0, Buffer.alloc(100));
    expect(spool.full).toBe(false);
    await spool.writeManifest('s1', Buffer.alloc(1));
    expect(spool.full).toBe(true);
    await spool.remove('s1', 'manifest.json', 1);
    expect(spool.full).toBe(false);
  });
});

/** An in-memory stand-in for the API server behind the SessionObjectClient interface, counting writes. */
class MemorySessions implements SessionObjectClient {
  readonly objects = new Map<string, Session>();
  patches: SessionStatus[] = [];
  failNext = 0;
  async create(ref: SessionRef, spec: SessionSpec): Promise<void> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('connection refused');
    }
    this.objects.set(ref.name, { apiVersion: 'warden.dev/v1alpha1', kind: 'Session', metadata: { name: ref.name, namespace: ref.namespace }, spec });
  }
  async patchStatus(ref: SessionRef, status: SessionStatus): Promise<void> {
    const object = this.objects.get(ref.name);
    if (!object) throw new Error('not found');
    this.patches.push(structuredClone(status));
    object.status = { ...object.status, ...status };
  }
  async get(ref: SessionRef): Promise<Session | undefined> {
    return this.objects.get(ref.name);
  }
  async list(): Promise<Session[]> {
    return [...this.objects.values()];
  }
}

const spec: SessionSpec = { connection: 'orders', protocol: 'postgres', user: 'alice', startedAt: '2026-11-22T00:00:00.000Z' };

describe('SessionStatusReporter', () => {
  it('batches: many updates within an interval become one write', async () => {
    const api = new MemorySessions();
    const reporter = new SessionStatusReporter(api, { namespace: 'ns', name: 's' }, { intervalMs: 50 });
    let commands = 0;
    reporter.setSnapshot(() => ({ commands }));
    reporter.start(spec, { phase: 'Active' });
    for (let i = 0; i < 1000; i++) {
      commands += 1;
      reporter.touch();
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(api.patches.length).toBeLessThanOrEqual(2);
    expect(api.objects.get('s')?.status).toMatchObject({ phase: 'Active', commands: 1000 });
    expect(await reporter.finish({ phase: 'Closed', endedAt: '2026-11-22T00:01:00.000Z' })).toBe(true);
    expect(api.objects.get('s')?.status).toMatchObject({ phase: 'Closed', commands: 1000 });
  });

  it('retries the create when the API server was unreachable at start', async () => {
    const api = new MemorySessions();
    api.failNext = 1;
    const reporter = new SessionStatusReporter(api, { namespace: 'ns', name: 's' }, { intervalMs: 20 });
    reporter.start(spec, { phase: 'Active' });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(api.objects.get('s')?.status?.phase).toBe('Active');
  });
});

describe('helpers', () => {
  it.each([
    [0, '0s'],
    [999, '0s'],
    [45_000, '45s'],
    [750_000, '12m30s'],
    [7_500_000, '2h5m0s'],
  ])('formatDuration(%i) = %s', (ms, expected) => {
    expect(formatDuration(ms)).toBe(expected);
  });

  it.each([
    ['client-closed', 'Closed'],
    ['server-closed', 'Closed'],
    ['revoked', 'Terminated'],
    ['storage-failure', 'Terminated'],
  ])('a session ended by %s is %s', (reason, phase) => {
    expect(phaseForEndReason(reason)).toBe(phase);
  });

  it.each([
    ['3f1c9a2e-7b7d-4c1e-9a51-0b7f2d1f0c11', true],
    ['obj-abc.def', true],
    ['Upper', false],
    ['-lead', false],
    ['a_b', false],
  ])('Session object name %s valid: %s', (name, valid) => {
    expect(isValidSessionObjectName(name)).toBe(valid);
  });
});
