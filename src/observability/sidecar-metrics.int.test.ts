// Observability through the real path: `warden sidecar` as a subprocess in front of the plane's
// PostgreSQL, recording to the plane's MinIO, with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local
// OTLP/HTTP receiver. Real psql runs allowed, denied and masked statements; /metrics on the health
// port is scraped with fetch before and after, and the spans the process exports are read back.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as Minio from 'minio';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { capture, freePort, type ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { mintToken } from '../../test/plane/tokens.ts';
import { SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, sealSidecarConfig } from '../sidecar/config.ts';
import { createTestDatabase, type TestDatabase } from '../sidecar/postgres/testing.ts';
import { startSidecarProcess, writeSecretFile, writeSidecarConfigFile } from '../sidecar/test-support.ts';
import { SidecarMetric, SpanName } from './names.ts';
import { type OtlpReceiver, otlpSpans, type Sample, sampleValue, scrape, startOtlpReceiver } from './test-support.ts';

const plane = inject('plane');
const psqlBin = join(plane.postgres.binDir, 'psql');
const bucket = `obs-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
const PG = { protocol: 'postgres', connection: 'team/metrics-db' } as const;

let db: TestDatabase;
let root: string;
let port: number;
let healthPort: number;
let gateway: ManagedProcess | undefined;
let receiver: OtlpReceiver;
let token: string;
const logFile = join(process.env.WARDEN_TEST_LOG_DIR ?? plane.dir, `${bucket}-sidecar.log`);

const psql = async (sql: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  await capture(psqlBin, ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: {
      PATH: process.env.PATH,
      PGHOST: '127.0.0.1',
      PGPORT: String(port),
      PGUSER: 'alice',
      PGDATABASE: 'gateway',
      PGSSLMODE: 'require',
      PGPASSWORD: token,
      PGAPPNAME: 'metrics-int-test',
      PGCONNECT_TIMEOUT: '5',
    },
  });

const metrics = async (): Promise<Sample[]> => await scrape(`http://127.0.0.1:${healthPort}/metrics`);

beforeAll(async () => {
  db = await createTestDatabase(plane.postgres, 'obs');
  await db.admin('CREATE TABLE people (id int, email text)');
  await db.admin("INSERT INTO people VALUES (1, 'alice@example.com'), (2, 'bob@example.com')");
  await db.admin(`ALTER TABLE people OWNER TO ${db.user}`);
  const minio = new Minio.Client({ endPoint: plane.minio.host, port: plane.minio.port, useSSL: false, accessKey: plane.minio.accessKey, secretKey: plane.minio.secretKey, region: plane.minio.region });
  await minio.makeBucket(bucket, plane.minio.region);
  token = await mintToken(plane.oidc, { user: 'alice', groups: ['dev'] });
  receiver = await startOtlpReceiver();
  root = mkdtempSync(join(tmpdir(), 'warden-obs-'));
  port = await freePort();
  healthPort = await freePort();
  const secret = (name: string, key: string, value: string): { secret: string; key: string; file: string } => writeSecretFile(root, name, key, value);
  const signing = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  writeSidecarConfigFile(
    root,
    sealSidecarConfig({
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      connection: { namespace: 'team', name: 'metrics-db', uid: 'uid-metrics-db', generation: 1 },
      protocol: 'postgres',
      listener: { port, healthPort },
      target: { host: plane.postgres.host, port: plane.postgres.port, database: db.database, tls: { mode: 'disable' } },
      credentials: { username: secret('db', 'username', db.user), password: secret('db', 'password', db.password) },
      oidc: { issuer: plane.oidc.issuer, audience: plane.oidc.audience, usernameClaim: 'preferred_username', groupsClaim: 'groups', jwksUri: plane.oidc.jwksUri },
      sessionLimits: {},
      recording: {
        policy: 'minio',
        s3: {
          endpoint: plane.minio.endpoint,
          bucket,
          region: plane.minio.region,
          pathStyle: true,
          prefix: 'team/metrics-db/',
          accessKeyId: secret('minio', 'accessKeyId', plane.minio.accessKey),
          secretAccessKey: secret('minio', 'secretAccessKey', plane.minio.secretKey),
          sse: 'none',
        },
        record: { input: true, output: true, maxEventBytes: 65536, maxResultRows: 100 },
        signingKey: secret('signing', 'key.pem', signing),
        storeMasked: true,
        onStorageFailure: 'FailClosed',
      },
      secretVersions: { minio: '1', db: '1', signing: '1' },
      policies: [
        {
          name: 'devs',
          uid: 'uid-devs',
          generation: 1,
          spec: {
            subjects: [{ kind: 'Group', name: 'dev' }],
            rules: [{ name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } }],
            masking: { rules: [{ name: 'emails', columns: ['email'], strategy: 'redact' }] },
          },
          problems: [],
        },
      ],
    }),
  );
  gateway = await startSidecarProcess({
    name: 'warden-sidecar-metrics',
    root,
    healthPort,
    logFile,
    gracePeriod: '5s',
    env: { POD_NAME: 'metrics-db-gateway-test', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' },
  });
});

afterAll(async () => {
  await gateway?.stop();
  await receiver?.close();
  await db?.drop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('warden sidecar /metrics and traces (postgres, real psql)', () => {
  it('serves Prometheus metrics on the health port, with the recorder gauges before any session', async () => {
    const response = await fetch(`http://127.0.0.1:${healthPort}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const samples = await metrics();
    expect(sampleValue(samples, SidecarMetric.StoreAvailable)).toBe(1);
    expect(sampleValue(samples, SidecarMetric.SpoolLimitBytes)).toBeGreaterThan(0);
    expect(sampleValue(samples, SidecarMetric.RecordingLag)).toBe(0);
    expect((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status).toBe(200);
  });

  it('moves the session, command, masking, bytes and latency counters as psql runs statements', async () => {
    const before = await metrics();
    const allowedBefore = sampleValue(before, SidecarMetric.Commands, { ...PG, decision: 'allowed' }) ?? 0;
    const deniedBefore = sampleValue(before, SidecarMetric.Commands, { ...PG, decision: 'denied' }) ?? 0;

    const read = await psql('SELECT email FROM people ORDER BY id');
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).not.toContain('alice@example.com');
    const write = await psql("UPDATE people SET email = 'x' WHERE id = 1");
    expect(write.code).not.toBe(0);
    expect(write.stderr).toContain('denied');
    const count = await psql('SELECT count(*) FROM people');
    expect(count.stdout.trim()).toBe('2');

    // Each psql run is one session; they close as psql exits.
    await waitUntil('three sessions closed', async () => (sampleValue(await metrics(), SidecarMetric.SessionsTotal, { ...PG, outcome: 'closed' }) ?? 0) >= 3, { timeoutMs: 10_000 });
    const after = await metrics();
    expect(sampleValue(after, SidecarMetric.Commands, { ...PG, decision: 'allowed' })).toBeGreaterThanOrEqual(allowedBefore + 2);
    expect(sampleValue(after, SidecarMetric.Commands, { ...PG, decision: 'denied' })).toBe(deniedBefore + 1);
    expect(sampleValue(after, SidecarMetric.SessionsActive, PG)).toBe(0);
    expect(sampleValue(after, SidecarMetric.MaskingHits, PG)).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, SidecarMetric.Bytes, { ...PG, direction: 'in' })).toBeGreaterThan(0);
    expect(sampleValue(after, `${SidecarMetric.UpstreamDuration}_count`, PG)).toBeGreaterThanOrEqual(2);
    expect(sampleValue(after, `${SidecarMetric.UpstreamDuration}_sum`, PG)).toBeGreaterThan(0);
    // Recordings reach MinIO: chunks counted, the spool drains.
    await waitUntil('chunks uploaded', async () => (sampleValue(await metrics(), SidecarMetric.ChunksUploaded) ?? 0) >= 3, { timeoutMs: 15_000 });
    await waitUntil('spool empty', async () => sampleValue(await metrics(), SidecarMetric.SpoolBytes) === 0, { timeoutMs: 15_000 });
    expect(sampleValue(await metrics(), SidecarMetric.UploadedBytes)).toBeGreaterThan(0);
  });

  it('counts a refused token as an authentication failure and a denied session', async () => {
    const before = await metrics();
    const failuresBefore = sampleValue(before, SidecarMetric.AuthFailures, PG) ?? 0;
    const good = token;
    token = 'not-a-token';
    try {
      const refused = await psql('SELECT 1');
      expect(refused.code).not.toBe(0);
    } finally {
      token = good;
    }
    await waitUntil('auth failure counted', async () => (sampleValue(await metrics(), SidecarMetric.AuthFailures, PG) ?? 0) > failuresBefore, { timeoutMs: 10_000 });
  });

  it('exports a span per session and per statement to the OTLP endpoint, never the token or statement text', async () => {
    await waitUntil(
      'session spans received',
      () => Promise.resolve(otlpSpans(receiver.bodies).filter((s) => s.name === SpanName.Session && s.attributes['warden.session.outcome'] === 'closed').length >= 3),
      { timeoutMs: 15_000 },
    );
    const spans = otlpSpans(receiver.bodies);
    const sessions = spans.filter((s) => s.name === SpanName.Session);
    const alice = sessions.filter((s) => s.attributes['enduser.id'] === 'alice');
    expect(alice.length).toBeGreaterThanOrEqual(3);
    expect(alice[0]?.attributes).toMatchObject({ 'warden.protocol': 'postgres', 'warden.connection': 'team/metrics-db', 'warden.client.application': 'metrics-int-test' });
    const commands = spans.filter((s) => s.name === SpanName.Command);
    const denied = commands.find((c) => c.attributes['warden.decision'] === 'deny');
    expect(denied?.attributes['db.statement.class']).toBeDefined();
    expect(sessions.some((s) => s.spanId === denied?.parentSpanId)).toBe(true);
    const allowed = commands.filter((c) => c.attributes['warden.decision'] === 'allow');
    expect(allowed.some((c) => c.attributes['warden.rule'] === 'devs/reads' && typeof c.attributes['warden.duration_ms'] === 'number')).toBe(true);
    const raw = receiver.raw.join('\n');
    expect(raw).not.toContain(token);
    expect(raw).not.toContain(db.password);
    expect(raw).not.toContain('alice@example.com');
    expect(raw).not.toContain('UPDATE people');
  });
});
