import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { capture } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import type { RecordingEvent } from '../../recorder/events.ts';
import { readSessionEvents, verifySessionFolder } from '../../recorder/reader.ts';
import { Recorder, type SessionRecorder } from '../../recorder/recorder.ts';
import { DirectoryStore } from '../../recorder/store-dir.ts';
import { signingKey } from '../../recorder/test-support.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import { HttpGateway } from './gateway.ts';
import { engineOf } from './testing.ts';

const plane = inject('plane');
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'warden-http-rec-'));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

it('records an HTTP session with the real recorder: signed, chained and readable back', async () => {
  const store = new DirectoryStore(join(work, 'bucket'));
  const recorder = await Recorder.open({ store, spoolDir: join(work, 'spool'), signingKey, prefix: 'rec/' });
  const sessions: SessionRecorder[] = [];
  const policy = engineOf({
    name: 'devs',
    spec: { subjects: [{ kind: 'Group', name: 'devs' }], rules: [{ name: 'no-bin', effect: 'Deny', http: { paths: ['/*.bin'] } }, { name: 'rest', effect: 'Allow' }] },
  });
  const gateway = await HttpGateway.start({
    connection: 'test/web',
    flavour: 'http',
    listen: { host: '127.0.0.1', port: 0 },
    upstream: { url: `http://${plane.nginx.host}:${plane.nginx.port}` },
    verifier: new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience }),
    policy,
    recorder: (info) => {
      const session = recorder.startSession({ sessionId: info.sessionId, protocol: 'http', connection: info.connection, clientAddress: info.client.addr });
      sessions.push(session);
      return session;
    },
    recorderWritesLifecycle: true,
  });
  try {
    const token = await mintToken(plane.oidc, { user: 'rita', groups: ['devs'] });
    // One curl, one connection, two requests: one allowed, one denied.
    const { stdout } = await capture('curl', ['-sS', '-H', `Authorization: Bearer ${token}`, `${gateway.url}/small.txt`, `${gateway.url}/1m.bin`]);
    expect(stdout).toContain('hello from the warden test plane');
    expect(stdout).toContain('WARDEN_HTTP_DENIED');
    // curl has closed its connection; the gateway closes the session on the socket's close.
    await sleep(100);
    await recorder.idle();
    expect(sessions).toHaveLength(1);
    const folder = (sessions[0] as SessionRecorder).folder;
    const report = await verifySessionFolder(store, folder, { trustedKeys: signingKey });
    expect(report.ok).toBe(true);
    expect(report.closed).toBe(true);
    const events: RecordingEvent[] = [];
    for await (const event of readSessionEvents(store, folder, { trustedKeys: signingKey })) events.push(event);
    expect(events.map((e) => e.k)).toEqual(['session.start', 'auth', 'http.request', 'http.response', 'http.request', 'deny', 'session.end']);
    expect(JSON.stringify(events)).not.toContain(token.slice(-30));
  } finally {
    await gateway.close();
    recorder.stop();
  }
});
