// `warden sidecar` for an ssh Connection as a real subprocess in front of the plane's sshd (ssh2
// client, token as password): exec decided by policy, a policy change applied live, a generated
// host key announced in the log, SIGTERM → exit 0.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Minio from 'minio';
import { Client } from 'ssh2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort, type ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { mintToken } from '../../test/plane/tokens.ts';
import type { AccessRule } from '../api/types.ts';
import { SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, sealSidecarConfig, type SidecarConfig } from './config.ts';
import { createPlaneBucket, planeOidc, planeRecording, startSidecarProcess, writeSecretFile, writeSidecarConfigFile } from './test-support.ts';

const plane = inject('plane');
const bucket = `sidecar-ssh-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
const logFile = join(process.env.WARDEN_TEST_LOG_DIR ?? plane.dir, `${bucket}.log`);

let root: string;
let port: number;
let gateway: ManagedProcess;
let token: string;
let base: Omit<SidecarConfig, 'hash' | 'policies'>;
let minio: Minio.Client;

const secret = (name: string, key: string, value: string): { secret: string; key: string; file: string } =>
  writeSecretFile(root, name, key, value);
const writeConfig = (rules: AccessRule[]): SidecarConfig => {
  const config = sealSidecarConfig({ ...base, policies: [{ name: 'web', uid: 'p', generation: 1, spec: { subjects: [{ kind: 'User', name: 'erin' }], rules }, problems: [] }] });
  writeSidecarConfigFile(root, config);
  return config;
};
const exec = async (command: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  await new Promise((resolve, reject) => {
    const client = new Client();
    client.on('error', reject);
    client.on('ready', () => {
      client.exec(command, (error, stream) => {
        if (error) return reject(error);
        let stdout = '';
        let stderr = '';
        let code: number | null = null;
        stream.on('data', (d: Buffer) => (stdout += d.toString()));
        stream.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        stream.on('exit', (c: number | null) => (code = c));
        stream.on('close', () => {
          client.end();
          resolve({ code, stdout, stderr });
        });
      });
    });
    client.connect({ host: '127.0.0.1', port, username: plane.ssh.user, password: token, readyTimeout: 10_000 });
  });

beforeAll(async () => {
  minio = await createPlaneBucket(plane.minio, bucket);
  token = await mintToken(plane.oidc, { user: 'erin' });
  root = mkdtempSync(join(tmpdir(), 'warden-sidecar-ssh-'));
  port = await freePort();
  const healthPort = await freePort();
  base = {
    apiVersion: SIDECAR_CONFIG_API_VERSION,
    kind: SIDECAR_CONFIG_KIND,
    connection: { namespace: 'team', name: 'box', uid: 'uid-box', generation: 1 },
    protocol: 'ssh',
    listener: { port, healthPort },
    target: { host: plane.ssh.host, port: plane.ssh.port, hostKeys: plane.ssh.hostKeys },
    credentials: { username: secret('box', 'username', plane.ssh.user), privateKey: secret('box', 'privateKey', readFileSync(plane.ssh.privateKeyFile, 'utf8')) },
    oidc: planeOidc(plane.oidc),
    sessionLimits: {},
    recording: planeRecording(root, plane.minio, { bucket, prefix: 'team/box/' }),
    secretVersions: { box: '1', minio: '1', signing: '1' },
  };
  writeConfig([{ name: 'echo', effect: 'Allow', ssh: { exec: ['echo .*'] } }]);
  gateway = await startSidecarProcess({ name: 'warden-sidecar-ssh', root, healthPort, logFile, gracePeriod: '2s' });
});

afterAll(async () => {
  await gateway?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('warden sidecar (ssh)', () => {
  it('relays an allowed exec, refuses another with exit 126, and says the host key is per process', async () => {
    expect(await exec('echo hello')).toMatchObject({ code: 0, stdout: 'hello\n' });
    const denied = await exec('id');
    expect(denied.code).toBe(126);
    expect(denied.stderr).toMatch(/denied/);
    expect(readFileSync(logFile, 'utf8')).toMatch(/generated an Ed25519 host key.*changes on every restart/);
  });

  it('applies a policy change to the next command within 5 s', async () => {
    writeConfig([{ name: 'echo-id', effect: 'Allow', ssh: { exec: ['echo .*', 'id'] } }]);
    const began = Date.now();
    await waitUntil('id allowed', async () => (await exec('id')).code === 0, { timeoutMs: 5_000, intervalMs: 250 });
    expect(Date.now() - began).toBeLessThan(5_000);
  });

  it('exits 0 on SIGTERM with the sessions recorded in the bucket', async () => {
    await gateway.stop(10_000);
    expect(gateway.child.exitCode).toBe(0);
    expect(readFileSync(logFile, 'utf8')).not.toContain(token);
    const manifests: string[] = [];
    for await (const object of minio.listObjectsV2(bucket, 'team/box/', true)) if (object.name?.endsWith('manifest.json')) manifests.push(object.name);
    expect(manifests.length).toBeGreaterThanOrEqual(3);
  });
});
