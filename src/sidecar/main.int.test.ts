// `warden sidecar` as a real subprocess in front of the plane's PostgreSQL: config document and
// Secrets as files under a scratch WARDEN_FS_ROOT (as local-gateway.ts lays them out), recording
// to the plane's MinIO, real psql (sslmode=require, OIDC token as password). A policy change in
// the file reaches new statements within 5 s while an open session stays usable; SIGTERM → exit 0
// with the recordings in the bucket.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Minio from 'minio';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Captured, freePort, type ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { mintToken } from '../../test/plane/tokens.ts';
import type { AccessRule } from '../api/types.ts';
import { type RenderedPolicy, SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, sealSidecarConfig, type SidecarConfig } from './config.ts';
import { createTestDatabase, type TestDatabase } from './postgres/testing.ts';
import { createPlaneBucket, planeOidc, planePostgresTarget, planeRecording, psqlThroughGateway, renderedPolicy, startSidecarProcess, writeSidecarConfigFile } from './test-support.ts';

const plane = inject('plane');
const bucket = `sidecar-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;

let db: TestDatabase;
let root: string;
let port: number;
let healthPort: number;
let gateway: ManagedProcess;
let token: string;
let minio: Minio.Client;
const logFile = join(process.env.WARDEN_TEST_LOG_DIR ?? plane.dir, `${bucket}-sidecar.log`);

const policy = (rules: AccessRule[]): RenderedPolicy => renderedPolicy('devs', { subjects: [{ kind: 'Group', name: 'dev' }], rules });

let base: Omit<SidecarConfig, 'hash' | 'policies'>;
const writeConfig = (rules: AccessRule[]): SidecarConfig => {
  const config = sealSidecarConfig({ ...base, policies: [policy(rules)] });
  writeSidecarConfigFile(root, config);
  return config;
};

const psql = async (sql: string): Promise<Captured> =>
  await psqlThroughGateway(plane.postgres.binDir, { port, user: 'alice', password: token, database: 'gateway', applicationName: 'sidecar-int-test' }, sql);

const logLines = (): Array<Record<string, unknown>> =>
  readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

beforeAll(async () => {
  db = await createTestDatabase(plane.postgres, 'sidecar');
  await db.admin('CREATE TABLE notes (id int, body text)');
  await db.admin("INSERT INTO notes VALUES (1, 'hello')");
  await db.admin(`ALTER TABLE notes OWNER TO ${db.user}`);
  minio = await createPlaneBucket(plane.minio, bucket);
  token = await mintToken(plane.oidc, { user: 'alice', groups: ['dev'] });
  root = mkdtempSync(join(tmpdir(), 'warden-sidecar-'));
  port = await freePort();
  healthPort = await freePort();
  base = {
    apiVersion: SIDECAR_CONFIG_API_VERSION,
    kind: SIDECAR_CONFIG_KIND,
    connection: { namespace: 'team', name: 'orders', uid: 'uid-orders', generation: 1 },
    protocol: 'postgres',
    listener: { port, healthPort },
    // The username file ends in a newline, as Secrets written by hand often do: the gateway trims it.
    ...planePostgresTarget(root, plane.postgres, db, { secret: 'orders-db', username: `${db.user}\n` }),
    oidc: planeOidc(plane.oidc, { jwks: true }),
    sessionLimits: {},
    recording: planeRecording(root, plane.minio, { bucket, prefix: 'team/orders/' }),
    secretVersions: { minio: '1', 'orders-db': '1', signing: '1' },
  };
  writeConfig([{ name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } }]);
  gateway = await startSidecarProcess({ name: 'warden-sidecar', root, healthPort, logFile, gracePeriod: '5s', env: { POD_NAME: 'orders-gateway-test' } });
});

afterAll(async () => {
  await gateway?.stop();
  await db?.drop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('warden sidecar (postgres)', () => {
  it('answers /healthz and /readyz, and logs structured JSON without secrets', async () => {
    expect((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status).toBe(200);
    const ready = (await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json()) as { ready: boolean; hash: string };
    expect(ready.ready).toBe(true);
    expect(ready.hash).toMatch(/^sha256:/);
    const lines = logLines();
    expect(lines.some((l) => l.msg === 'gateway listening' && l.port === port)).toBe(true);
    expect(lines.some((l) => String(l.msg).includes('self-signed certificate'))).toBe(true);
    const text = readFileSync(logFile, 'utf8');
    for (const secret of [db.password, plane.minio.secretKey, token]) expect(text).not.toContain(secret);
  });

  it('lets reads through and denies writes with 42501 (real psql, sslmode=require)', async () => {
    const read = await psql('SELECT body FROM notes WHERE id = 1');
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout.trim()).toBe('hello');
    const write = await psql("INSERT INTO notes VALUES (2, 'nope')");
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/denied/i);
    // psql prints the SQLSTATE with VERBOSITY verbose; the pg client shows it directly below.
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'alice', database: 'gateway', password: token, ssl: { rejectUnauthorized: false } });
    await client.connect();
    await expect(client.query("INSERT INTO notes VALUES (2, 'nope')")).rejects.toMatchObject({ code: '42501' });
    await client.end();
    const rows = await db.admin('SELECT count(*)::int AS n FROM notes');
    expect(rows.rows[0]).toEqual({ n: 1 });
  });

  it('applies a policy change to new statements within 5 s while an open session stays usable', async () => {
    const open = new pg.Client({ host: '127.0.0.1', port, user: 'alice', database: 'gateway', password: token, ssl: { rejectUnauthorized: false } });
    await open.connect();
    try {
      await expect(open.query("INSERT INTO notes VALUES (3, 'before')")).rejects.toMatchObject({ code: '42501' });
      const config = writeConfig([
        { name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } },
        { name: 'writes', effect: 'Allow', sql: { statementClasses: ['write'], tables: ['notes'] } },
      ]);
      const changed = Date.now();
      await waitUntil('write allowed after the policy change', async () => (await psql("INSERT INTO notes VALUES (4, 'new session')")).code === 0, {
        timeoutMs: 5_000,
        intervalMs: 200,
      });
      const elapsed = Date.now() - changed;
      expect(elapsed).toBeLessThan(5_000);
      // The session opened before the change is still there and follows the new policy.
      expect((await open.query('SELECT count(*)::int AS n FROM notes')).rows[0]).toEqual({ n: 2 });
      await open.query("INSERT INTO notes VALUES (5, 'old session')");
      // DDL is still not allowed.
      await expect(open.query('DROP TABLE notes')).rejects.toMatchObject({ code: '42501' });
      const applied = logLines().find((l) => l.msg === 'configuration applied' && l.hash === config.hash);
      expect(applied).toMatchObject({ source: 'file', policies: ['devs'] });
      console.info(`policy change reached new statements after ${elapsed} ms (file poll 500 ms)`);
    } finally {
      await open.end();
    }
  });

  it('logs a target change as needing a restart and keeps serving', async () => {
    base = { ...base, target: { ...base.target, port: 1 } };
    const config = writeConfig([{ name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } }]);
    await waitUntil('restart warning', async () => logLines().some((l) => String(l.msg).includes('needs a restart') && l.hash === config.hash), { timeoutMs: 5_000 });
    expect(logLines().find((l) => String(l.msg).includes('needs a restart') && l.hash === config.hash)).toMatchObject({ fields: ['$.target'] });
    const read = await psql('SELECT count(*) FROM notes');
    expect(read.code, read.stderr).toBe(0);
  });

  it('on SIGTERM refuses new sessions, lets an open one finish, flushes recordings and exits 0', async () => {
    const open = new pg.Client({ host: '127.0.0.1', port, user: 'alice', database: 'gateway', password: token, ssl: { rejectUnauthorized: false } });
    open.on('error', () => undefined); // ended by the gateway if the test fails before open.end()
    await open.connect();
    const pid = gateway.child.pid!;
    process.kill(pid, 'SIGTERM');
    await waitUntil('not ready', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`).catch(() => undefined))?.status !== 200, { timeoutMs: 3_000 });
    expect((await psql('SELECT 1')).code).not.toBe(0);
    // Inside the grace period the open session still works.
    expect((await open.query('SELECT count(*)::int AS n FROM notes')).rows[0]).toEqual({ n: 3 });
    expect(gateway.exited).toBe(false);
    await open.end();
    await waitUntil('exit', async () => gateway.exited, { timeoutMs: 10_000 });
    expect(gateway.child.exitCode).toBe(0);
    const lines = logLines();
    expect(lines.some((l) => l.msg === 'stopped')).toBe(true);
    expect(lines.some((l) => l.msg === 'recordings flushed')).toBe(true);
    const keys: string[] = [];
    for await (const object of minio.listObjectsV2(bucket, 'team/orders/', true)) if (object.name) keys.push(object.name);
    expect(keys.some((k) => k.endsWith('manifest.json'))).toBe(true);
  });
});
