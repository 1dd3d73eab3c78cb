// `warden dev` against the plane's real servers: what a new user gets wrong (each a DevError with
// one line saying what to do), and what works — PostgreSQL and SSH through the gateways with a
// development token, recorded to MinIO when a RecordingPolicy says so — plus the CLI itself as a
// subprocess: one line on stderr and exit code 1.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as Minio from 'minio';
import pg from 'pg';
import { Client as SshClient } from 'ssh2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../test/plane/proc.ts';
import { silentLogger } from '../controller/log.ts';
import { DevError, DevErrorCode } from './errors.ts';
import { mintIssuerToken } from './oidc.ts';
import { runDev, type RunningDev } from './run.ts';

const plane = inject('plane');
const ROOT = resolve(import.meta.dirname, '../..');
const bucket = `dev-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;

let dir: string;
let count = 0;

const pgSecret = (password: string = plane.postgres.password): string => `apiVersion: v1
kind: Secret
metadata: {name: pg}
stringData: {username: ${plane.postgres.user}, password: "${password}"}
`;
const pgConnection = (listen: number, target: { port?: number; extra?: string } = {}): string => `apiVersion: warden.dev/v1alpha1
kind: Connection
metadata: {name: pg, labels: {env: dev}}
spec:
  protocol: postgres
  target: {host: 127.0.0.1, port: ${target.port ?? plane.postgres.port}, database: ${plane.postgres.database}, tls: {mode: disable}}
  credentialsRef: {name: pg}
  listener: {port: ${listen}}
${target.extra ?? ''}`;
const policy = `apiVersion: warden.dev/v1alpha1
kind: AccessPolicy
metadata: {name: dba}
spec:
  connectionSelector: {matchLabels: {env: dev}}
  subjects: [{kind: Group, name: dba}]
  rules:
    - {name: reads, effect: Allow, sql: {statementClasses: [read, session, transaction]}}
    - {name: shell, effect: Allow, ssh: {shell: true, exec: ["echo .*"]}}
`;
const recording = (accessKey: string, endpoint: string = plane.minio.endpoint): string => `apiVersion: v1
kind: Secret
metadata: {name: minio}
stringData: {accessKeyId: "${accessKey}", secretAccessKey: "${plane.minio.secretKey}"}
---
apiVersion: warden.dev/v1alpha1
kind: RecordingPolicy
metadata: {name: minio}
spec:
  connectionSelector: {matchLabels: {env: dev}}
  storage: {s3: {endpoint: "${endpoint}", bucket: ${bucket}, region: ${plane.minio.region}, credentialsSecretRef: {name: minio}}}
`;

async function manifests(...documents: string[]): Promise<string> {
  const folder = join(dir, `m${++count}`);
  await mkdir(folder);
  await writeFile(join(folder, 'all.yaml'), documents.join('\n---\n'));
  return folder;
}

async function dev(folder: string, extra: Partial<Parameters<typeof runDev>[0]> = {}): Promise<RunningDev> {
  return await runDev({ files: [folder], stateDir: join(dir, 'state'), issuerPort: 0, log: silentLogger, checkTimeoutMs: 3000, graceMs: 500, ...extra });
}

/** The one failure of a run that starts nothing (and stops what it started). */
async function onlyFailure(folder: string): Promise<DevError> {
  const running = await dev(folder);
  await running.stop();
  expect(running.started).toHaveLength(0);
  expect(running.failed).toHaveLength(1);
  const error = running.failed[0]?.error as DevError;
  expect(error.message).not.toContain('\n');
  return error;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-dev-run-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('warden dev: configuration errors, one line each', () => {
  it('PostgreSQL unreachable', async () => {
    const dead = await freePort();
    const error = await onlyFailure(await manifests(pgSecret(), pgConnection(await freePort(), { port: dead }), policy));
    expect(error.code).toBe(DevErrorCode.TargetUnreachable);
    expect(error.message).toBe(`PostgreSQL at 127.0.0.1:${dead} is unreachable (connect ECONNREFUSED 127.0.0.1:${dead}): start it, or give its address with --postgres-url postgres://user:password@host:5432/database`);
  });

  it('PostgreSQL refusing the password', async () => {
    const error = await onlyFailure(await manifests(pgSecret('wrong-password'), pgConnection(await freePort()), policy));
    expect(error.code).toBe(DevErrorCode.TargetAuthFailed);
    expect(error.message).toMatch(/^PostgreSQL at 127\.0\.0\.1:\d+ refused the login of database user "postgres" to database "\w+" \(.*password authentication failed.*\): check the user, password and database in Secret default\/pg or in --postgres-url$/);
    expect(error.message).not.toContain('wrong-password');
  });

  it('wrong MinIO credentials', async () => {
    const error = await onlyFailure(await manifests(pgSecret(), pgConnection(await freePort()), policy, recording('not-the-access-key')));
    expect(error.code).toBe(DevErrorCode.StorageAuthFailed);
    expect(error.message).toMatch(
      /^recording storage http:\/\/127\.0\.0\.1:\d+ refused the credentials \((AccessDenied|InvalidAccessKeyId)\): fix accessKeyId\/secretAccessKey in Secret default\/minio \(RecordingPolicy minio\), or remove the RecordingPolicy to record locally$/,
    );
  });

  it('MinIO unreachable', async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const error = await onlyFailure(await manifests(pgSecret(), pgConnection(await freePort()), policy, recording(plane.minio.accessKey, endpoint)));
    expect(error.code).toBe(DevErrorCode.StorageUnreachable);
    expect(error.message).toMatch(new RegExp(`^recording storage ${endpoint} \\(bucket ${bucket}\\) is unreachable \\(ECONNREFUSED\\): start it, fix storage\\.s3\\.endpoint of RecordingPolicy minio, or remove the RecordingPolicy to record locally$`));
  });

  it.each([
    ['an issuer without discovery', async () => `${plane.oidc.issuer}/other`, /^OIDC issuer http:\/\/127\.0\.0\.1:\d+\/other has no discovery document at .* \(HTTP 404\): check spec\.oidc\.issuer of Connection default\/pg \(or drop spec\.oidc to use the development issuer\)$/],
    ['an issuer nobody serves', async () => `http://127.0.0.1:${await freePort()}`, /^OIDC issuer http:\/\/127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\): check spec\.oidc\.issuer/],
  ])('wrong OIDC issuer: %s', async (_what, issuer, message) => {
    const oidc = `  oidc: {issuer: "${await issuer()}", audience: warden}\n`;
    const error = await onlyFailure(await manifests(pgSecret(), pgConnection(await freePort(), { extra: oidc }), policy));
    expect(error.code).toBe(DevErrorCode.IssuerInvalid);
    expect(error.message).toMatch(message);
  });

  it('listener port in use', async () => {
    const blocker: Server = createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    try {
      const error = await onlyFailure(await manifests(pgSecret(), pgConnection(port), policy));
      expect(error.code).toBe(DevErrorCode.PortInUse);
      expect(error.message).toBe(`Connection default/pg: port ${port} on 127.0.0.1 is already in use (another warden dev, or a server?): stop it or set spec.listener.port of Connection default/pg to a free port`);
    } finally {
      blocker.close();
    }
  });

  it('issuer port in use stops everything', async () => {
    const blocker: Server = createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    try {
      const error = await dev(await manifests(pgSecret(), pgConnection(await freePort()), policy), { issuerPort: port }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DevError);
      expect((error as DevError).code).toBe(DevErrorCode.PortInUse);
      expect((error as DevError).message).toMatch(/^development OIDC issuer: port \d+ on 127\.0\.0\.1 is already in use .*choose another port with --issuer-port$/);
    } finally {
      blocker.close();
    }
  });
});

describe('warden dev: the gateways run', () => {
  let running: RunningDev;
  let pgPort: number;
  let sshPort: number;
  let token: string;

  beforeAll(async () => {
    pgPort = await freePort();
    sshPort = await freePort();
    const ssh = `apiVersion: v1
kind: Secret
metadata: {name: ssh}
stringData:
  username: ${plane.ssh.user}
  privateKey: ${JSON.stringify(readFileSync(plane.ssh.privateKeyFile, 'utf8'))}
---
apiVersion: warden.dev/v1alpha1
kind: Connection
metadata: {name: box, labels: {env: dev}}
spec:
  protocol: ssh
  target: {host: 127.0.0.1, port: ${plane.ssh.port}, hostKeys: ${JSON.stringify(plane.ssh.hostKeys)}}
  credentialsRef: {name: ssh}
  listener: {port: ${sshPort}}
`;
    running = await dev(await manifests(pgSecret(), pgConnection(pgPort), policy, recording(plane.minio.accessKey), ssh), { metricsPort: 0 });
    const key = await running.state.issuerKey({ create: false });
    if (!key) throw new Error('no issuer key');
    token = await mintIssuerToken(key, { issuer: running.issuer.issuer, audience: running.audience }, { user: 'alice', groups: ['dba'] });
  });
  afterAll(async () => {
    await running.stop();
  });

  it('starts both Connections, recording to the RecordingPolicy\'s bucket', () => {
    expect(running.failed.map((f) => f.error.message)).toEqual([]);
    expect(running.started.map((s) => `${s.name} ${s.recordings}`)).toEqual([`box s3://${bucket}/default/box/`, `pg s3://${bucket}/default/pg/`]);
    expect(running.startupMs).toBeLessThan(30_000);
  });

  it('relays PostgreSQL for a development token and records the session in MinIO', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'alice', password: token, database: 'x', ssl: { rejectUnauthorized: false } });
    await client.connect();
    expect((await client.query('SELECT 40 + 2 AS answer')).rows).toEqual([{ answer: 42 }]);
    await expect(client.query('CREATE TABLE nope (id int)')).rejects.toThrow(/Warden: denied/);
    await client.end();
    const minio = new Minio.Client({ endPoint: plane.minio.host, port: plane.minio.port, useSSL: false, accessKey: plane.minio.accessKey, secretKey: plane.minio.secretKey, region: plane.minio.region });
    const deadline = Date.now() + 20_000;
    let keys: string[] = [];
    while (!keys.some((k) => k.endsWith('/manifest.json')) && Date.now() < deadline) {
      keys = [];
      for await (const item of minio.listObjectsV2(bucket, 'default/pg/', true)) keys.push((item as { name: string }).name);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(keys.some((k) => k.endsWith('/manifest.json'))).toBe(true);
    // The session and its two decisions are counted on the metrics endpoint (--metrics-port).
    if (!running.metricsUrl) throw new Error('no metrics URL');
    const scraped = await (await fetch(running.metricsUrl)).text();
    const series = (name: string, labels: string): number =>
      Number(scraped.split('\n').find((l) => l.startsWith(`${name}{`) && labels.split(',').every((label) => l.includes(label)))?.split(' ').at(-1) ?? NaN);
    expect(series('warden_commands_total', 'connection="default/pg",decision="allowed"')).toBeGreaterThanOrEqual(1);
    expect(series('warden_commands_total', 'connection="default/pg",decision="denied"')).toBe(1);
    expect(series('warden_sessions_total', 'connection="default/pg",outcome="closed"')).toBe(1);
    expect((await fetch(running.metricsUrl.replace('/metrics', '/'))).status).toBe(404);
  });

  it('relays SSH for a development token as the password', async () => {
    const output = await new Promise<string>((resolvePromise, reject) => {
      const client = new SshClient();
      client.on('error', reject);
      client.on('ready', () => {
        client.exec('echo through-warden', (error, stream) => {
          if (error) return reject(error);
          let out = '';
          stream.on('data', (d: Buffer) => (out += d.toString()));
          stream.on('close', () => {
            client.end();
            resolvePromise(out);
          });
        });
      });
      client.connect({ host: '127.0.0.1', port: sshPort, username: plane.ssh.user, password: token, readyTimeout: 10_000 });
    });
    expect(output.trim()).toBe('through-warden');
  });
});

// Each subprocess loads the whole CLI (seconds on a busy machine).
describe('warden dev as a command', { timeout: 120_000 }, () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolvePromise) => {
      const child = spawn(process.execPath, ['src/cli/main.ts', 'dev', '--state-dir', join(dir, 'cli-state'), '--issuer-port', '0', ...args], { cwd: ROOT, env: { ...process.env, ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    });

  it('prints one line and exits 1 for invalid YAML', async () => {
    const folder = join(dir, 'bad-yaml');
    await mkdir(folder);
    await writeFile(join(folder, 'broken.yaml'), 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: [unclosed\n');
    const result = await run(['-f', folder]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^warden dev: .*broken\.yaml:\d+: invalid YAML: .*\n$/);
  });

  it('prints one line and exits 1 when the sample\'s PostgreSQL is unreachable', async () => {
    const dead = await freePort();
    const result = await run(['-f', 'config/samples/local/postgres.yaml', '-f', 'config/samples/local/policies.yaml', '--postgres-url', `postgres://postgres:hunter2@127.0.0.1:${dead}/app`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`warden dev: Connection default/local-postgres not started: PostgreSQL at 127.0.0.1:${dead} is unreachable (connect ECONNREFUSED 127.0.0.1:${dead}): start it, or give its address with --postgres-url postgres://user:password@host:5432/database\n`);
    expect(result.stderr + result.stdout).not.toContain('hunter2');
  });

  it('mints a token only once warden dev has made the key', async () => {
    const child = spawn(process.execPath, ['src/cli/main.ts', 'dev', 'token', '--user', 'alice', '--state-dir', join(dir, 'never-started')], { cwd: ROOT, env: { ...process.env, npm_lifecycle_event: '' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^warden dev: no development issuer key in .*never-started: start `warden dev` first \(it creates the key\)\n$/);
  });
});
