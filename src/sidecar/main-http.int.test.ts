// `warden sidecar` for an http Connection as a real subprocess in front of the plane's nginx:
// bearer token in, policy per request, a policy change applied live, SIGTERM → exit 0.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, type ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { mintToken } from '../../test/plane/tokens.ts';
import type { AccessRule } from '../api/types.ts';
import { SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, sealSidecarConfig, type SidecarConfig } from './config.ts';
import { createPlaneBucket, planeOidc, planeRecording, startSidecarProcess, writeSidecarConfigFile } from './test-support.ts';

const plane = inject('plane');
const bucket = `sidecar-http-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
const logFile = join(process.env.WARDEN_TEST_LOG_DIR ?? plane.dir, `${bucket}.log`);

let root: string;
let port: number;
let gateway: ManagedProcess;
let token: string;
let base: Omit<SidecarConfig, 'hash' | 'policies'>;

const writeConfig = (rules: AccessRule[]): SidecarConfig => {
  const config = sealSidecarConfig({ ...base, policies: [{ name: 'web', uid: 'p', generation: 1, spec: { subjects: [{ kind: 'User', name: 'erin' }], rules }, problems: [] }] });
  writeSidecarConfigFile(root, config);
  return config;
};
const call = async (method: string, auth = `Bearer ${token}`): Promise<{ status: number; body: string }> => {
  const response = await fetch(`http://127.0.0.1:${port}/echo`, { method, headers: { authorization: auth }, ...(method === 'POST' ? { body: 'x' } : {}) });
  return { status: response.status, body: await response.text() };
};

beforeAll(async () => {
  await createPlaneBucket(plane.minio, bucket);
  token = await mintToken(plane.oidc, { user: 'erin' });
  root = mkdtempSync(join(tmpdir(), 'warden-sidecar-http-'));
  port = await freePort();
  const healthPort = await freePort();
  base = {
    apiVersion: SIDECAR_CONFIG_API_VERSION,
    kind: SIDECAR_CONFIG_KIND,
    connection: { namespace: 'team', name: 'web', uid: 'uid-web', generation: 1 },
    protocol: 'http',
    listener: { port, healthPort },
    target: { url: `http://${plane.nginx.host}:${plane.nginx.port}` },
    credentials: {},
    oidc: planeOidc(plane.oidc),
    sessionLimits: {},
    recording: planeRecording(root, plane.minio, { bucket, prefix: 'team/web/' }),
    secretVersions: { minio: '1', signing: '1' },
  };
  writeConfig([{ name: 'get', effect: 'Allow', http: { methods: ['GET'], paths: ['/echo'] } }]);
  gateway = await startSidecarProcess({ name: 'warden-sidecar-http', root, healthPort, logFile, gracePeriod: '2s' });
});

afterAll(async () => {
  await gateway?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('warden sidecar (http)', () => {
  it('relays allowed requests, refuses others and callers without a valid token', async () => {
    expect(await call('GET')).toEqual({ status: 200, body: 'GET /echo\n' });
    expect((await call('POST')).status).toBe(403);
    expect((await call('GET', 'Bearer not-a-token')).status).toBe(401);
  });

  it('applies a policy change to the next request within 5 s', async () => {
    writeConfig([{ name: 'get-post', effect: 'Allow', http: { methods: ['GET', 'POST'], paths: ['/echo'] } }]);
    const began = Date.now();
    await waitUntil('POST allowed', async () => (await call('POST')).status === 200, { timeoutMs: 5_000, intervalMs: 200 });
    expect(Date.now() - began).toBeLessThan(5_000);
  });

  it('exits 0 on SIGTERM', async () => {
    await gateway.stop(10_000);
    expect(gateway.child.exitCode).toBe(0);
    expect(readFileSync(logFile, 'utf8')).not.toContain(plane.minio.secretKey);
  });
});
