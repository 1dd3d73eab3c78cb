// Observability through the real path: `warden sidecar` as a subprocess in front of the plane's
// PostgreSQL, recording to the plane's MinIO, with OTEL_EXPORTER_OTLP_ENDPOINT pointing at a local
// OTLP/HTTP receiver. Real psql runs allowed, denied and masked statements; /metrics on the health
// port is scraped with fetch before and after, and the spans the process exports are read back.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Captured, freePort, type ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { mintToken } from '../../test/plane/tokens.ts';
import { SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, sealSidecarConfig } from '../sidecar/config.ts';
import { createTestDatabase, type TestDatabase } from '../sidecar/postgres/testing.ts';
import { createPlaneBucket, planeOidc, planePostgresTarget, planeRecording, psqlThroughGateway, renderedPolicy, startSidecarProcess, writeSidecarConfigFile } from '../sidecar/test-support.ts';
import { SidecarMetric, SpanName } from './names.ts';
import { type OtlpReceiver, otlpSpans, type Sample, sampleValue, scrape, startOtlpReceiver } from './test-support.ts';

const plane = inject('plane');
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

const psql = async (sql: string): Promise<Captured> =>
  await psqlThroughGateway(plane.postgres.binDir, { port, user: 'alice', password: token, database: 'gateway', applicationName: 'metrics-int-test' }, sql);

const metrics = async (): Promise<Sample[]> => await scrape(`http://127.0.0.1:${healthPort}/metrics`);

beforeAll(async () => {
  db = await createTestDatabase(plane.postgres, 'obs');
  await db.admin('CREATE TABLE people (id int, email text)');
  await db.admin("INSERT INTO people VALUES (1, 'alice@example.com'), (2, 'bob@example.com')");
  await db.admin(`ALTER TABLE people OWNER TO ${db.user}`);
  await createPlaneBucket(plane.minio, bucket);
  token = await mintToken(plane.oidc, { user: 'alice', groups: ['dev'] });
  receiver = await startOtlpReceiver();
  root = mkdtempSync(join(tmpdir(), 'warden-obs-'));
  port = await freePort();
  healthPort = await freePort();
  writeSidecarConfigFile(
    root,
    sealSidecarConfig({
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      connection: { namespace: 'team', name: 'metrics-db', uid: 'uid-metrics-db', generation: 1 },
      protocol: 'postgres',
      listener: { port, healthPort },
      ...planePostgresTarget(root, plane.postgres, db, { secret: 'db' }),
      oidc: planeOidc(plane.oidc, { jwks: true }),
      sessionLimits: {},
      recording: planeRecording(root, plane.minio, { bucket, prefix: 'team/metrics-db/' }),
      secretVersions: { minio: '1', db: '1', signing: '1' },
      policies: [
        renderedPolicy('devs', {
          subjects: [{ kind: 'Group', name: 'dev' }],
          rules: [{ name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } }],
          masking: { rules: [{ name: 'emails', columns: ['email'], strategy: 'redact' }] },
        }),
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
