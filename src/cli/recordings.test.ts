import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../api/types.ts';
import { DirectoryStore } from '../recorder/store-dir.ts';
import { S3Store } from '../recorder/store-s3.ts';
import { writeFile } from 'node:fs/promises';
import { exportSigningKey } from '../recorder/crypto.ts';
import { encryptionKey, signingKey } from '../recorder/test-support.ts';
import { loadDecryptionKeys, loadPublicKeys, storeForLocation, UsageError } from './recording-access.ts';
import { filterSessions, parseTimeBound, sessionTable } from './sessions.ts';
import { formatReport } from './verify.ts';

const env = { WARDEN_S3_ENDPOINT: 'http://127.0.0.1:9000', AWS_ACCESS_KEY_ID: 'id', AWS_SECRET_ACCESS_KEY: 'secret' };

describe('storeForLocation', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warden-cli-'));
    await mkdir(join(dir, 'p/2026/11/22/sess-1'), { recursive: true });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads public keys from PEM files and decryption keys as [kid=]file', async () => {
    await writeFile(join(dir, 'signing.pub'), exportSigningKey(signingKey).publicPem);
    await writeFile(join(dir, 'enc.key'), Buffer.alloc(32, 3).toString('hex'));
    expect(loadPublicKeys({ publicKey: [join(dir, 'signing.pub')] }).map((k) => k.keyId)).toEqual([signingKey.keyId]);
    expect(loadPublicKeys({}, { WARDEN_PUBLIC_KEY: join(dir, 'signing.pub') })[0]?.keyId).toBe(signingKey.keyId);
    expect(() => loadPublicKeys({}, {})).toThrow(/--public-key/);
    await writeFile(join(dir, 'not-a-key'), 'hello');
    expect(() => loadPublicKeys({ publicKey: [join(dir, 'not-a-key')] })).toThrow(UsageError);
    expect(() => loadPublicKeys({ publicKey: [join(dir, 'missing')] })).toThrow(/cannot read public key/);
    expect(loadDecryptionKeys({ decryptionKey: [join(dir, 'enc.key')] })[0]?.keyId).toBe(encryptionKey.keyId);
    expect(loadDecryptionKeys({ decryptionKey: [`rotated-1=${join(dir, 'enc.key')}`] })[0]?.keyId).toBe('rotated-1');
  });

  it('opens s3:// locations with the credentials from the environment', () => {
    const { store, folder } = storeForLocation('s3://recordings/prod/2026/11/22/sess-1', {}, env);
    expect(store).toBeInstanceOf(S3Store);
    expect(store.url(folder)).toBe('s3://recordings/prod/2026/11/22/sess-1/');
  });

  it('opens a local session folder by path or file:// URL', () => {
    const byPath = storeForLocation(join(dir, 'p/2026/11/22/sess-1/'), {}, env);
    expect(byPath.store).toBeInstanceOf(DirectoryStore);
    expect(byPath.folder).toBe('sess-1/');
    const byUrl = storeForLocation(`file://${join(dir, 'p/2026/11/22/sess-1')}`, {}, env);
    expect(byUrl.store.url(byUrl.folder)).toBe(byPath.store.url(byPath.folder));
  });

  it('opens a key under --dir', () => {
    const { store, folder } = storeForLocation('p/2026/11/22/sess-1', { dir }, env);
    expect(store.url(folder)).toBe(`file://${dir}/p/2026/11/22/sess-1/`);
  });

  it.each([
    ['s3://bucket-only', {}, env, /must name a session folder/],
    ['s3://b/p/x/', {}, {}, /--endpoint or WARDEN_S3_ENDPOINT/],
    ['s3://b/p/x/', {}, { WARDEN_S3_ENDPOINT: 'http://h:1' }, /AWS_ACCESS_KEY_ID/],
    ['/no/such/folder', {}, env, /cannot open session folder/],
  ])('says what is missing for %s', (location, options, environment, message) => {
    expect(() => storeForLocation(location, options, environment)).toThrow(UsageError);
    expect(() => storeForLocation(location, options, environment)).toThrow(message);
  });
});

function session(name: string, user: string, connection: string, startedAt: string, phase = 'Closed'): Session {
  return {
    apiVersion: 'warden.dev/v1alpha1',
    kind: 'Session',
    metadata: { name, namespace: 'ns' },
    spec: { user, connection, protocol: 'ssh', startedAt },
    status: { phase: phase as 'Closed', commands: 3, recording: { location: `s3://b/${name}/` } },
  };
}

describe('warden sessions filters', () => {
  const sessions = [
    session('a', 'alice', 'db', '2026-11-22T10:00:00Z'),
    session('b', 'bob', 'db', '2026-11-22T11:00:00Z', 'Active'),
    session('c', 'alice', 'host', '2026-11-22T12:00:00Z'),
  ];

  it('filters by user, connection, phase and time range, newest first', () => {
    expect(filterSessions(sessions, { user: 'alice' }).map((s) => s.metadata.name)).toEqual(['c', 'a']);
    expect(filterSessions(sessions, { connection: 'db' }).map((s) => s.metadata.name)).toEqual(['b', 'a']);
    expect(filterSessions(sessions, { phase: 'Active' }).map((s) => s.metadata.name)).toEqual(['b']);
    expect(
      filterSessions(sessions, { since: Date.parse('2026-11-22T10:30:00Z'), until: Date.parse('2026-11-22T12:00:00Z') }).map((s) => s.metadata.name),
    ).toEqual(['b']);
  });

  it('parses RFC 3339 times and durations back from now', () => {
    const now = Date.parse('2026-11-22T12:00:00Z');
    expect(parseTimeBound('--since', '2026-11-22T10:00:00Z', now)).toBe(Date.parse('2026-11-22T10:00:00Z'));
    expect(parseTimeBound('--since', '90m', now)).toBe(now - 90 * 60_000);
    expect(parseTimeBound('--since', '7d', now)).toBe(now - 7 * 86_400_000);
    expect(() => parseTimeBound('--since', 'yesterday', now)).toThrow(/RFC 3339 time .* or a duration/);
  });

  it('prints an aligned table, with the client and location when wide', () => {
    const [header, first] = sessionTable(filterSessions(sessions, { user: 'bob' }), true);
    expect(header).toMatch(/^NAMESPACE\s+NAME\s+USER\s+CONNECTION\s+PROTOCOL\s+PHASE\s+COMMANDS\s+DENIED\s+STARTED\s+DURATION\s+CLIENT\s+LOCATION$/);
    expect(first).toMatch(/^ns\s+b\s+bob\s+db\s+ssh\s+Active\s+3\s+0\s+2026-11-22T11:00:00Z\s+s3:\/\/b\/b\/$/);
  });
});

describe('warden verify output', () => {
  it('prints one line per problem and a FAILED summary', () => {
    const lines = formatReport(
      {
        ok: false,
        sessionId: 's',
        closed: true,
        objects: 3,
        verifiedThrough: 0,
        events: 10,
        bodiesChecked: true,
        problems: [{ code: 'CHUNK_MISSING', message: 'chunk-00000001 is missing: chunk 1 was deleted or never written', seq: 1 }],
        notes: [],
      },
      's3://b/p/s/',
    );
    expect(lines).toEqual([
      'PROBLEM CHUNK_MISSING chunk 1: chunk-00000001 is missing: chunk 1 was deleted or never written',
      'FAILED s3://b/p/s/: 1 problem in session s; chunks 0..0 verified (10 events)',
    ]);
  });
});
