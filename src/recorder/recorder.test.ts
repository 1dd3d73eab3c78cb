import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import { EventKind, type RecordingEvent } from './events.ts';
import { Recorder, type RecorderOptions } from './recorder.ts';
import { readSessionEvents, verifySessionFolder } from './reader.ts';
import type { PutOptions, PutOutcome, RecordingStore, StoredObject } from './store.ts';
import { DirectoryStore } from './store-dir.ts';
import { encryptionKey, signingKey } from './test-support.ts';
import { backoffDelay } from './uploader.ts';
import type { SessionObjectClient } from './session-objects.ts';
import type { SessionStatus } from '../api/types.ts';

/** A real directory store behind a switch: while `down`, writes fail as an unreachable bucket would. */
class SwitchableStore implements RecordingStore {
  down = false;
  attempts = 0;
  readonly inner: DirectoryStore;
  readonly description: string;
  constructor(inner: DirectoryStore) {
    this.inner = inner;
    this.description = inner.description;
  }
  url(key: string): string {
    return this.inner.url(key);
  }
  async putOnce(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutOutcome> {
    this.attempts += 1;
    if (this.down) throw new RecorderError(RecorderErrorCode.StoreUnavailable, 'connect ECONNREFUSED (switched off)');
    return await this.inner.putOnce(key, bytes, options);
  }
  get(key: string): Promise<Uint8Array | undefined> {
    return this.inner.get(key);
  }
  list(prefix: string): AsyncIterable<StoredObject> {
    return this.inner.list(prefix);
  }
}

function stdout(t: number, text: string): RecordingEvent {
  return { t, k: EventKind.TermStdout, data: { text } };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-recorder-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function options(store: RecordingStore, overrides: Partial<RecorderOptions> = {}): RecorderOptions {
  return {
    store,
    spoolDir: join(dir, 'spool'),
    signingKey,
    prefix: 'recordings',
    maxChunkBytes: 4096,
    retry: { baseMs: 5, maxMs: 20 },
    ...overrides,
  };
}

describe('Recorder with a directory store', () => {
  it('ships every event and the manifest; reading the folder back gives the same events', async () => {
    const store = new DirectoryStore(join(dir, 'bucket'));
    const recorder = await Recorder.open(options(store));
    const session = recorder.startSession({ sessionId: 'round-trip', protocol: 'ssh', connection: 'ops/bastion', user: 'alice' });
    const sent: RecordingEvent[] = [];
    for (let i = 0; i < 500; i++) {
      const event = stdout(i, `line ${i} ${'x'.repeat(i % 50)}\r\n`);
      sent.push(event);
      session.append(event);
    }
    const result = await session.close('client-closed');
    expect(result.shipped).toBe(true);
    expect(result.manifest.chunks.length).toBeGreaterThan(5);
    expect(result.location).toBe(store.url(session.folder));

    const read: RecordingEvent[] = [];
    for await (const event of readSessionEvents(store, session.folder, { trustedKeys: signingKey })) read.push(event);
    expect(read.at(0)?.k).toBe(EventKind.SessionStart);
    expect(read.slice(1, -1)).toEqual(sent);
    expect(read.at(-1)).toMatchObject({ k: EventKind.SessionEnd, reason: 'client-closed' });

    const report = await verifySessionFolder(store, session.folder, { trustedKeys: signingKey });
    expect(report.ok).toBe(true);
    expect(report.closed).toBe(true);
    // The spool is empty once everything is in the store.
    expect(await readdir(join(dir, 'spool'))).toEqual([]);
    expect(recorder.spool.usedBytes).toBe(0);
  });

  it('seals a quiet session by its timer', async () => {
    const store = new DirectoryStore(join(dir, 'bucket'));
    const recorder = await Recorder.open(options(store, { maxChunkAgeMs: 30 }));
    const session = recorder.startSession({ sessionId: 'quiet', protocol: 'ssh', connection: 'ops/bastion' });
    session.append(stdout(1, '$ '));
    // Nothing flushes or closes the session: only the 30 ms timer can seal and ship the chunk.
    await vi.waitFor(
      async () => {
        const keys = [];
        for await (const object of store.list(session.folder)) keys.push(object.key.slice(session.folder.length));
        expect(keys).toEqual(['chunk-00000000']);
      },
      { timeout: 10_000, interval: 20 },
    );
    await session.close('client-closed');
  });

  it('waits out an unreachable store and loses nothing', async () => {
    const store = new SwitchableStore(new DirectoryStore(join(dir, 'bucket')));
    const recorder = await Recorder.open(options(store));
    store.down = true;
    const session = recorder.startSession({ sessionId: 'outage', protocol: 'ssh', connection: 'ops/bastion' });
    for (let i = 0; i < 200; i++) session.append(stdout(i, `output ${i}\n`.repeat(5)));
    const closing = session.close('client-closed');
    await vi.waitFor(() => expect(store.attempts).toBeGreaterThan(2), { timeout: 10_000, interval: 10 });
    expect(recorder.uploader.available).toBe(false);
    expect(recorder.spool.usedBytes).toBeGreaterThan(0);
    store.down = false;
    const result = await closing;
    expect(result.shipped).toBe(true);
    const report = await verifySessionFolder(store, session.folder, { trustedKeys: signingKey });
    expect(report).toMatchObject({ ok: true, events: 202 });
  });

  it('tells the session SPOOL_FULL when the store stays down and the spool passes its bound, and keeps the data', async () => {
    const store = new SwitchableStore(new DirectoryStore(join(dir, 'bucket')));
    store.down = true;
    const recorder = await Recorder.open(options(store, { spoolMaxBytes: 8192 }));
    const session = recorder.startSession({ sessionId: 'full', protocol: 'ssh', connection: 'ops/bastion' });
    const failures: RecorderError[] = [];
    session.onFailure((error) => failures.push(error));
    let accepted = true;
    for (let i = 0; i < 2000 && failures.length === 0; i++) {
      accepted = session.append(stdout(i, randomBytes(300).toString('base64'))) && accepted;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(failures[0]?.code).toBe(RecorderErrorCode.SpoolFull);
    expect(accepted).toBe(false); // back-pressure was signalled before the bound
    // Back online: everything accepted so far reaches the store.
    store.down = false;
    const result = await session.close('storage-failure');
    expect(result.shipped).toBe(true);
    const report = await verifySessionFolder(store, session.folder, { trustedKeys: signingKey });
    expect(report.ok).toBe(true);
  });

  it('asks the gateway to pause when it holds more than the memory high-water mark, and drains', async () => {
    const store = new DirectoryStore(join(dir, 'bucket'));
    const recorder = await Recorder.open(options(store, { memoryHighWaterBytes: 16 * 1024, maxChunkBytes: 8192 }));
    const session = recorder.startSession({ sessionId: 'pressure', protocol: 'ssh', connection: 'ops/bastion' });
    let refused = 0;
    // A synchronous burst: nothing reaches the disk until the event loop turns.
    for (let i = 0; i < 100; i++) if (!session.append(stdout(i, randomBytes(750).toString('base64')))) refused += 1;
    expect(refused).toBeGreaterThan(0);
    expect(session.memoryBytes).toBeLessThan(200 * 1024);
    await new Promise<void>((resolve) => session.once('drain', resolve));
    expect(session.memoryBytes).toBeLessThanOrEqual(16 * 1024);
    expect((await session.close('client-closed')).shipped).toBe(true);
  });

  it('keeps what it holds in memory under the high-water mark plus one chunk while a gateway honours back-pressure', async () => {
    const store = new DirectoryStore(join(dir, 'bucket'));
    const highWater = 2 * 1024 * 1024;
    const chunk = 256 * 1024;
    const recorder = await Recorder.open(options(store, { memoryHighWaterBytes: highWater, maxChunkBytes: chunk }));
    const session = recorder.startSession({ sessionId: 'bounded', protocol: 'ssh', connection: 'ops/bastion' });
    // 4 KiB blocks of random base64, 64 different ones: a chunk holds no repeats, so it barely compresses.
    const blocks = Array.from({ length: 64 }, () => randomBytes(3072).toString('base64'));
    let peak = 0;
    let pauses = 0;
    for (let i = 0; i < 8192; i++) {
      // 32 MiB of output, produced as fast as the recorder lets it.
      if (!session.append(stdout(i, blocks[i % blocks.length] as string))) {
        pauses += 1;
        await new Promise<void>((resolve) => session.once('drain', resolve));
      }
      peak = Math.max(peak, session.memoryBytes);
    }
    expect(pauses).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(highWater + 2 * chunk);
    expect((await session.close('client-closed')).shipped).toBe(true);
  });

  it('uploads what a stopped recorder left in its spool on the next start', async () => {
    const store = new SwitchableStore(new DirectoryStore(join(dir, 'bucket')));
    store.down = true;
    const first = await Recorder.open(options(store));
    const session = first.startSession({ sessionId: 'left-over', protocol: 'ssh', connection: 'ops/bastion' });
    for (let i = 0; i < 100; i++) session.append(stdout(i, `row ${i}\n`.repeat(10)));
    session.flush();
    // Wait until every sealed chunk is durable in the spool (a fixed sleep raced with the spool
    // writes on a loaded machine), then stop as if the process died: nothing reached the store.
    await session.spooled();
    first.stop();
    store.down = false;

    const second = await Recorder.open(options(store));
    expect(second.spool.usedBytes).toBeGreaterThan(0);
    const recovered = await second.recover();
    expect(recovered).toEqual([{ sessionId: 'left-over', chunksUploaded: expect.any(Number), closed: false }]);
    const report = await verifySessionFolder(store, session.folder, { trustedKeys: signingKey, allowOpen: true });
    expect(report).toMatchObject({ ok: true, closed: false, events: 101 });
    expect(second.spool.usedBytes).toBe(0);
  });
});

describe('recovery of a closed session', () => {
  it('uploads chunks and the manifest a stopped recorder left, so the session verifies as closed', async () => {
    const store = new SwitchableStore(new DirectoryStore(join(dir, 'bucket')));
    store.down = true;
    const first = await Recorder.open(options(store));
    const session = first.startSession({ sessionId: 'closed-offline', protocol: 'ssh', connection: 'ops/bastion' });
    for (let i = 0; i < 50; i++) session.append(stdout(i, `row ${i}\n`.repeat(20)));
    void session.close('client-closed');
    await session.spooled(); // chunks and manifest durable in the spool; the store is still down
    first.stop();
    store.down = false;
    const second = await Recorder.open(options(store));
    expect(await second.recover()).toEqual([{ sessionId: 'closed-offline', chunksUploaded: expect.any(Number), closed: true }]);
    const report = await verifySessionFolder(store, session.folder, { trustedKeys: signingKey });
    expect(report).toMatchObject({ ok: true, closed: true, events: 52 });
  });
});

describe('client-side encryption', () => {
  it('ships encrypted chunks that verify without the key and decode with it', async () => {
    const store = new DirectoryStore(join(dir, 'bucket'));
    const recorder = await Recorder.open(options(store, { encryption: { key: encryptionKey } }));
    const session = recorder.startSession({ sessionId: 'sealed', protocol: 'postgres', connection: 'db/orders' });
    session.append({ t: 1, k: EventKind.SqlQuery, text: { text: 'SELECT secret FROM vault' }, decision: 'allow' });
    expect((await session.close('client-closed')).shipped).toBe(true);
    const chunk = Buffer.from((await store.get(`${session.folder}chunk-00000000`))!);
    expect(chunk.includes(Buffer.from('SELECT secret'))).toBe(false);
    const withoutKey = await verifySessionFolder(store, session.folder, { trustedKeys: signingKey });
    expect(withoutKey).toMatchObject({ ok: true, bodiesChecked: false });
    const events: RecordingEvent[] = [];
    for await (const event of readSessionEvents(store, session.folder, { trustedKeys: signingKey, decryptionKeys: [encryptionKey] })) events.push(event);
    expect(events[1]).toMatchObject({ k: EventKind.SqlQuery, text: { text: 'SELECT secret FROM vault' } });
  });
});

describe('Session status counts', () => {
  it('counts typed commands, refused SFTP operations and forwards, and WebSocket bytes', async () => {
    const statuses: SessionStatus[] = [];
    const client: SessionObjectClient = {
      create: async () => undefined,
      patchStatus: async (_ref, status) => void statuses.push(structuredClone(status)),
      get: async () => undefined,
      list: async () => [],
    };
    const store = new DirectoryStore(join(dir, 'bucket'));
    const recorder = await Recorder.open(options(store, { sessionObjects: { client, namespace: 'ops', intervalMs: 10 } }));
    const session = recorder.startSession({ sessionId: 'counted', protocol: 'ssh', connection: 'ops/bastion' });
    session.append({ t: 1, k: EventKind.Command, command: 'ls', decision: 'allow' });
    session.append({ t: 2, k: EventKind.Command, command: 'sudo su', decision: 'deny' });
    session.append({ t: 3, k: EventKind.Exit, code: 0 });
    session.append({ t: 4, k: EventKind.Sftp, op: 'write', path: '/tmp/a', bytes: 10, status: 0, decision: 'allow' });
    session.append({ t: 5, k: EventKind.Sftp, op: 'remove', path: '/etc/passwd', bytes: 0, status: 3, decision: 'deny' });
    session.append({ t: 6, k: EventKind.Forward, direction: 'local', host: 'db', port: 5432, bytesOut: 1, bytesIn: 2, decision: 'allow' });
    session.append({ t: 7, k: EventKind.Forward, direction: 'remote', host: '0.0.0.0', port: 80, bytesOut: 0, bytesIn: 0, decision: 'deny' });
    session.append({ t: 8, k: EventKind.WsMessage, id: 0, direction: 'to-target', opcode: 1, data: { text: 'abc' } });
    session.append({ t: 9, k: EventKind.WsMessage, id: 0, direction: 'to-client', opcode: 2, data: { b64: 'AA==', truncated: true, size: 100 } });
    expect((await session.close('client-closed')).shipped).toBe(true);
    expect(statuses.at(-1)).toMatchObject({ commands: 1, denied: 3, approvals: 0, bytesIn: 3, bytesOut: 100 });
  });
});

describe('backoffDelay', () => {
  it.each([
    [0, 0, 50],
    [0, 1, 100],
    [3, 0, 400],
    [10, 1, 5000],
  ])('attempt %i with random %d gives %i ms (base 100, max 5000)', (attempt, random, expected) => {
    expect(backoffDelay(attempt, { baseMs: 100, maxMs: 5000 }, () => random)).toBe(expected);
  });
});
