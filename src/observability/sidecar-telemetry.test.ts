import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EventKind } from '../recorder/events.ts';
import { Recorder } from '../recorder/recorder.ts';
import { DirectoryStore } from '../recorder/store-dir.ts';
import { signingKey } from '../recorder/test-support.ts';
import { SidecarMetric, SpanName } from './names.ts';
import { SidecarTelemetry } from './sidecar-telemetry.ts';
import { otlpTracesUrl, startTelemetry, type Telemetry } from './telemetry.ts';
import { otlpSpans, sampleValue, scrape, startOtlpReceiver } from './test-support.ts';

let dir: string;
let server: Server | undefined;
let telemetry: Telemetry | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-telemetry-'));
});
afterEach(async () => {
  server?.closeAllConnections();
  server?.close();
  server = undefined;
  await telemetry?.shutdown();
  telemetry = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function serve(t: Telemetry): Promise<string> {
  server = createServer((req, res) => t.handleMetrics(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  return `http://127.0.0.1:${address && typeof address === 'object' ? address.port : 0}/metrics`;
}

async function recorderWith(observer: SidecarTelemetry): Promise<Recorder> {
  const recorder = await Recorder.open({ store: new DirectoryStore(join(dir, 'bucket')), spoolDir: join(dir, 'spool'), signingKey, observer });
  observer.watchRecorder(recorder);
  return recorder;
}

const PG = { protocol: 'postgres', connection: 'shop/orders-db' } as const;

describe('SidecarTelemetry', () => {
  it('counts sessions, decisions, bytes, masking and upstream time from the recorded events', async () => {
    telemetry = await startTelemetry({ service: 'warden-sidecar', env: {} });
    expect(telemetry.tracer).toBeUndefined();
    const observer = new SidecarTelemetry({ meter: telemetry.meter, exposition: telemetry.addExposition });
    const recorder = await recorderWith(observer);
    const url = await serve(telemetry);

    const session = recorder.startSession({ sessionId: 's-1', ...PG, clientAddress: '127.0.0.1:5000' });
    session.append({ t: 1, k: EventKind.Auth, ok: true, method: 'oidc', user: 'alice', groups: ['dba'] });
    session.append({ t: 2, k: EventKind.SqlQuery, id: 1, text: { text: 'select email from customers' }, class: 'select', decision: 'allow', rule: 'p/read' });
    session.append({ t: 3, k: EventKind.SqlResult, id: 1, columns: ['email'], rows: [['a***@x']], rowCount: 1, bytes: 17, masked: true, durationMs: 2.5 });
    session.append({ t: 4, k: EventKind.SqlQuery, id: 2, text: { text: 'drop table customers' }, class: 'ddl', decision: 'deny', rule: 'p/no-ddl' });
    session.append({ t: 4, k: EventKind.Deny, reason: 'no DDL', rule: 'p/no-ddl' });
    session.append({ t: 5, k: EventKind.SqlQuery, id: 3, text: { text: 'delete from orders' }, class: 'dml', decision: 'approval' });
    session.append({ t: 6, k: EventKind.Approval, request: 'shop/ar-1', state: 'approved', by: 'bob' });

    let samples = await scrape(url);
    expect(sampleValue(samples, SidecarMetric.SessionsActive, PG)).toBe(1);
    expect(sampleValue(samples, SidecarMetric.Commands, { ...PG, decision: 'allowed' })).toBe(1);
    expect(sampleValue(samples, SidecarMetric.Commands, { ...PG, decision: 'denied' })).toBe(1);
    expect(sampleValue(samples, SidecarMetric.Commands, { ...PG, decision: 'held' })).toBe(1);
    expect(sampleValue(samples, SidecarMetric.Approvals, { ...PG, state: 'approved' })).toBe(1);
    expect(sampleValue(samples, SidecarMetric.MaskingHits, PG)).toBe(1);
    const statementBytes = ['select email from customers', 'drop table customers', 'delete from orders'].join('').length;
    expect(sampleValue(samples, SidecarMetric.Bytes, { ...PG, direction: 'in' })).toBe(statementBytes);
    // Result rows as the DataRow bytes sent to the client.
    expect(sampleValue(samples, SidecarMetric.Bytes, { ...PG, direction: 'out' })).toBe(17);
    expect(sampleValue(samples, `${SidecarMetric.UpstreamDuration}_count`, PG)).toBe(1);
    expect(sampleValue(samples, `${SidecarMetric.UpstreamDuration}_sum`, PG)).toBeCloseTo(0.0025);
    expect(sampleValue(samples, `${SidecarMetric.UpstreamDuration}_bucket`, { ...PG, le: '0.005' })).toBe(1);
    expect(sampleValue(samples, `${SidecarMetric.UpstreamDuration}_bucket`, { ...PG, le: '0.001' })).toBe(0);
    expect(sampleValue(samples, SidecarMetric.SpoolLimitBytes)).toBe(recorder.spool.maxBytes);
    expect(sampleValue(samples, SidecarMetric.StoreAvailable)).toBe(1);

    const denied = recorder.startSession({ sessionId: 's-2', ...PG });
    denied.append({ t: 1, k: EventKind.Auth, ok: false, method: 'oidc', reason: 'token expired' });
    await Promise.all([session.close('client-closed'), denied.close('denied', { phase: 'Denied' })]);
    await recorder.idle();

    samples = await scrape(url);
    expect(sampleValue(samples, SidecarMetric.SessionsActive, PG)).toBe(0);
    expect(sampleValue(samples, SidecarMetric.SessionsTotal, { ...PG, outcome: 'closed' })).toBe(1);
    expect(sampleValue(samples, SidecarMetric.SessionsTotal, { ...PG, outcome: 'denied' })).toBe(1);
    expect(sampleValue(samples, SidecarMetric.SessionsTotal, { ...PG, outcome: 'terminated' })).toBe(0);
    expect(sampleValue(samples, SidecarMetric.AuthFailures, PG)).toBe(1);
    // Both sessions' chunks are in the bucket: nothing waits, the spool is empty.
    expect(sampleValue(samples, SidecarMetric.ChunksUploaded)).toBeGreaterThanOrEqual(2);
    expect(sampleValue(samples, SidecarMetric.UploadedBytes)).toBeGreaterThan(0);
    expect(sampleValue(samples, SidecarMetric.RecordingLag)).toBe(0);
    expect(sampleValue(samples, SidecarMetric.SpoolBytes)).toBe(0);
    recorder.stop();
  });

  it('measures HTTP upstream time from request to response and counts terminal and WebSocket bytes', async () => {
    let clock = 1_000;
    telemetry = await startTelemetry({ service: 'warden-sidecar', env: {} });
    const observer = new SidecarTelemetry({ meter: telemetry.meter, exposition: telemetry.addExposition, now: () => clock });
    const recorder = await recorderWith(observer);
    const url = await serve(telemetry);
    const http = { protocol: 'kubernetes', connection: 'ops/cluster' } as const;
    const session = recorder.startSession({ sessionId: 'h-1', ...http });
    session.append({ t: 1, k: EventKind.HttpRequest, id: 7, method: 'GET', url: '/api/v1/pods', decision: 'allow', k8s: { verb: 'list', resource: 'pods' } });
    clock += 40;
    session.append({ t: 41, k: EventKind.HttpResponse, id: 7, status: 200, body: { text: '{"items":[]}' } });
    session.append({ t: 42, k: EventKind.K8sExec, id: 8, ch: 0, data: { text: 'ls\n' } });
    session.append({ t: 43, k: EventKind.K8sExec, id: 8, ch: 1, data: { text: 'a b\n' } });
    session.append({ t: 44, k: EventKind.WsMessage, id: 9, direction: 'to-client', opcode: 1, data: { b64: 'AAEC' } });
    // kubectl exec output that masking changed is a masking hit, as terminal output is for SSH.
    session.append({ t: 45, k: EventKind.K8sExec, id: 8, ch: 1, data: { text: '[REDACTED:email]\n' }, masked: true });
    const samples = await scrape(url);
    expect(sampleValue(samples, SidecarMetric.MaskingHits, http)).toBe(1);
    expect(sampleValue(samples, `${SidecarMetric.UpstreamDuration}_sum`, http)).toBeCloseTo(0.04);
    expect(sampleValue(samples, SidecarMetric.Bytes, { ...http, direction: 'in' })).toBe(3);
    expect(sampleValue(samples, SidecarMetric.Bytes, { ...http, direction: 'out' })).toBe('{"items":[]}'.length + 4 + 3 + '[REDACTED:email]\n'.length);
    await session.close('client-closed');
    recorder.stop();
  });

  it('counts terminal output that masking changed as masking hits (SSH)', async () => {
    telemetry = await startTelemetry({ service: 'warden-sidecar', env: {} });
    const observer = new SidecarTelemetry({ meter: telemetry.meter, exposition: telemetry.addExposition });
    const recorder = await recorderWith(observer);
    const url = await serve(telemetry);
    const ssh = { protocol: 'ssh', connection: 'ops/bastion' } as const;
    const session = recorder.startSession({ sessionId: 'm-1', ...ssh });
    session.append({ t: 1, k: EventKind.TermStdout, data: { text: '$ ' } });
    session.append({ t: 2, k: EventKind.TermStdout, data: { text: 'key [REDACTED:cloudKey]\r\n' }, masked: true });
    session.append({ t: 3, k: EventKind.TermStderr, data: { text: 'mail [REDACTED:email]\r\n' }, masked: true });
    const samples = await scrape(url);
    expect(sampleValue(samples, SidecarMetric.MaskingHits, ssh)).toBe(2);
    await session.close('client-closed');
    recorder.stop();
  });

  it('reports recording lag while a chunk waits for an unreachable bucket', async () => {
    let clock = 0;
    telemetry = await startTelemetry({ service: 'warden-sidecar', env: {} });
    const observer = new SidecarTelemetry({ meter: telemetry.meter, exposition: telemetry.addExposition, now: () => clock });
    // A store that never answers: the chunk stays in the spool.
    const store = new DirectoryStore(join(dir, 'bucket'));
    const stuck = { description: 'stuck', url: (k: string) => store.url(k), putOnce: () => new Promise<never>(() => undefined), get: (k: string) => store.get(k), list: (p: string) => store.list(p) };
    const recorder = await Recorder.open({ store: stuck, spoolDir: join(dir, 'spool'), signingKey, observer });
    observer.watchRecorder(recorder);
    const url = await serve(telemetry);
    const session = recorder.startSession({ sessionId: 'l-1', ...PG });
    session.flush();
    await session.spooled();
    clock += 7_500;
    const samples = await scrape(url);
    expect(sampleValue(samples, SidecarMetric.RecordingLag)).toBeCloseTo(7.5);
    expect(sampleValue(samples, SidecarMetric.SpoolBytes)).toBeGreaterThan(0);
    recorder.stop();
  });

  it('keeps a session going when an event is malformed', async () => {
    telemetry = await startTelemetry({ service: 'warden-sidecar', env: {} });
    const observer = new SidecarTelemetry({ meter: telemetry.meter, exposition: telemetry.addExposition });
    const recorder = await recorderWith(observer);
    const session = recorder.startSession({ sessionId: 'm-1', ...PG });
    const watch = observer.sessionStarted(session);
    expect(watch).toBeDefined();
    expect(() => watch?.event({ t: 1, k: EventKind.TermStdout } as never)).not.toThrow();
    await session.close('client-closed');
    recorder.stop();
  });
});

describe('traces', () => {
  it('exports a session span and command spans over OTLP/HTTP, without statement text or tokens', async () => {
    const receiver = await startOtlpReceiver();
    try {
      telemetry = await startTelemetry({ service: 'warden-sidecar', env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '50' } });
      expect(telemetry.tracesUrl).toBe(`${receiver.endpoint}/v1/traces`);
      const observer = new SidecarTelemetry({ meter: telemetry.meter, exposition: telemetry.addExposition, ...(telemetry.tracer ? { tracer: telemetry.tracer } : {}) });
      const recorder = await recorderWith(observer);
      const session = recorder.startSession({ sessionId: 't-1', ...PG, clientAddress: '10.0.0.9:4242', clientApplication: 'psql' });
      session.append({ t: 1, k: EventKind.Auth, ok: true, method: 'oidc', user: 'alice@example.com' });
      session.append({ t: 2, k: EventKind.SqlQuery, id: 1, text: { text: "select 'sekrit-literal'" }, class: 'select', decision: 'allow', rule: 'p/read' });
      session.append({ t: 3, k: EventKind.SqlResult, id: 1, columns: ['x'], rows: [], rowCount: 1, durationMs: 1.25 });
      session.append({ t: 4, k: EventKind.SqlQuery, id: 2, text: { text: "alter role x password 'hunter2'" }, class: 'ddl', decision: 'deny', rule: 'p/no-ddl' });
      await session.close('client-closed');
      await recorder.idle();
      recorder.stop();
      await telemetry.shutdown();
      telemetry = undefined;

      const spans = otlpSpans(receiver.bodies);
      const sessionSpan = spans.find((s) => s.name === SpanName.Session);
      expect(sessionSpan?.attributes).toMatchObject({
        'warden.session.id': 't-1',
        'warden.protocol': 'postgres',
        'warden.connection': 'shop/orders-db',
        'enduser.id': 'alice@example.com',
        'client.address': '10.0.0.9:4242',
        'warden.session.outcome': 'closed',
        'warden.session.commands': 1,
        'warden.session.denied': 1,
      });
      const commands = spans.filter((s) => s.name === SpanName.Command);
      expect(commands.map((c) => c.attributes['warden.decision']).sort()).toEqual(['allow', 'deny']);
      for (const c of commands) {
        expect(c.parentSpanId).toBe(sessionSpan?.spanId);
        expect(c.traceId).toBe(sessionSpan?.traceId);
      }
      const allowed = commands.find((c) => c.attributes['warden.decision'] === 'allow');
      expect(allowed?.attributes).toMatchObject({ 'warden.rule': 'p/read', 'db.statement.class': 'select', 'warden.duration_ms': 1.25, 'db.response.returned_rows': 1 });
      expect(commands.find((c) => c.attributes['warden.decision'] === 'deny')?.status).toBe(2);
      const everything = receiver.raw.join('\n');
      expect(everything).not.toContain('sekrit-literal');
      expect(everything).not.toContain('hunter2');
    } finally {
      await receiver.close();
    }
  });

  it.each([
    [{}, undefined],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }, 'http://collector:4318/v1/traces'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }, 'http://collector:4318/v1/traces'],
    [{ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' }, 'http://c:4318/custom'],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }, undefined],
    [{ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }, undefined],
  ] as Array<[NodeJS.ProcessEnv, string | undefined]>)('traces go to %j → %s', (env, url) => {
    expect(otlpTracesUrl(env)).toBe(url);
  });
});
