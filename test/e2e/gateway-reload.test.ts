/**
 * Controller → rendered Deployment → a local `warden sidecar` process (test/e2e/local-gateway.ts,
 * no kubelet here) → Ready; then an AccessPolicy change and a Secret rotation reach the running
 * process within 5 s without restarting it, while a PostgreSQL session opened through the gateway
 * before the changes stays open and usable. Command, arguments, environment, volumes and
 * ServiceAccount are the rendered ones.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { stringify } from 'yaml';
import { KubeClient } from '../../src/controller/kube.ts';
import { silentLogger } from '../../src/controller/log.ts';
import { type RunningController, startController } from '../../src/controller/manager.ts';
import { kubeClient, kubectlOk } from '../plane/kubectl.ts';
import { mintToken } from '../plane/tokens.ts';
import { freePort, waitUntil } from '../plane/proc.ts';
import { type LocalGateway, startLocalGateway } from './local-gateway.ts';

const plane = inject('plane');
const kube = plane.kube;
const ns = `e2e-gw-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
let controller: RunningController;
let gateway: LocalGateway | undefined;
let client: KubeClient;
let listenerPort: number;
let session: pg.Client | undefined;
const logFile = join(process.env.WARDEN_TEST_LOG_DIR ?? plane.dir, `${ns}-gateway.log`);

const apply = async (...objects: unknown[]): Promise<void> => {
  await kubectlOk(kube, ['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
};
const policy = (rules: Array<{ name: string; effect: string; sql?: { statementClasses: string[] } }>) => ({
  apiVersion: 'warden.dev/v1alpha1',
  kind: 'AccessPolicy',
  metadata: { name: 'readers', namespace: ns },
  spec: { connections: ['orders'], subjects: [{ kind: 'Group', name: 'dev' }], rules },
});
const lines = (): Array<{ msg: string; hash?: string; port?: number; policies?: string[] }> =>
  readFileSync(logFile, 'utf8').trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const ready = async () =>
  (await client.get<{ status?: { conditions?: Array<{ type: string; status: string; reason: string }> } }>('Connection', ns, 'orders')).status?.conditions?.find((c) => c.type === 'Ready');

beforeAll(async () => {
  await kubectlOk(kube, ['apply', '--server-side', '-f', 'crds/']);
  await kubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await kubectlOk(kube, ['create', 'namespace', ns]);
  client = new KubeClient(kubeClient(kube));
  listenerPort = await freePort();
  await apply(
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'minio', namespace: ns }, stringData: { accessKeyId: plane.minio.accessKey, secretAccessKey: plane.minio.secretKey } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'orders-db', namespace: ns }, stringData: { username: plane.postgres.user, password: plane.postgres.password } },
    { apiVersion: 'warden.dev/v1alpha1', kind: 'RecordingPolicy', metadata: { name: 'minio', namespace: ns }, spec: { connectionSelector: {}, storage: { s3: { endpoint: plane.minio.endpoint, bucket: ns, credentialsSecretRef: { name: 'minio' } } } } },
    policy([{ name: 'read', effect: 'Allow', sql: { statementClasses: ['read'] } }]),
    {
      apiVersion: 'warden.dev/v1alpha1',
      kind: 'Connection',
      metadata: { name: 'orders', namespace: ns },
      spec: { protocol: 'postgres', target: { host: plane.postgres.host, port: plane.postgres.port, tls: { mode: 'disable' } }, credentialsRef: { name: 'orders-db' }, listener: { port: listenerPort } },
    },
  );
  controller = await startController({
    kubeConfig: kubeClient(kube),
    namespace: ns,
    settings: { image: 'warden:e2e', healthPort: await freePort(), oidc: { issuer: plane.oidc.issuer, audience: plane.oidc.audience } },
    log: silentLogger,
  });
  await waitUntil('RecordingReady and rendered', async () => {
    const c = await client.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>('Connection', ns, 'orders');
    return ['ConfigRendered', 'RecordingReady'].every((t) => c.status?.conditions?.find((x) => x.type === t)?.status === 'True');
  }, { timeoutMs: 20_000 });
});

afterAll(async () => {
  await session?.end().catch(() => {});
  await gateway?.stop();
  await controller?.stop();
  await kubectlOk(kube, ['delete', 'connections,accesspolicies,recordingpolicies', '--all', '-n', ns, '--wait=false']).catch(() => {});
  await kubectlOk(kube, ['delete', 'namespace', ns, '--wait=false']).catch(() => {});
});

describe('a gateway started from the rendered Deployment', () => {
  it('starts with the rendered arguments, environment and volumes, and makes the Connection Ready', async () => {
    expect((await ready())?.reason).toBe('GatewayNotReady');
    gateway = await startLocalGateway({ kube, namespace: ns, deployment: 'orders-gateway', logFile });
    await gateway.ready(30_000);
    expect(lines().find((l) => l.msg === 'gateway listening')?.port).toBe(listenerPort);
    await waitUntil('Ready', async () => (await ready())?.status === 'True', { timeoutMs: 10_000 });
    expect(readFileSync(logFile, 'utf8')).not.toContain(plane.postgres.password);
    // A session opened now must survive the changes below.
    const token = await mintToken(plane.oidc, { user: 'dana', groups: ['dev'] });
    session = new pg.Client({ host: '127.0.0.1', port: listenerPort, user: 'dana', database: 'x', password: token, ssl: { rejectUnauthorized: false } });
    session.on('error', () => undefined);
    await session.connect();
    expect((await session.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('applies an AccessPolicy change within 5 s without restarting', async () => {
    const pid = gateway?.process.child.pid;
    const began = Date.now();
    await apply(policy([{ name: 'read', effect: 'Allow', sql: { statementClasses: ['read'] } }, { name: 'no-ddl', effect: 'Deny', sql: { statementClasses: ['ddl'] } }]));
    await waitUntil('reloaded', async () => lines().some((l) => l.msg === 'configuration applied'), { timeoutMs: 5_000, process: gateway?.process });
    expect(Date.now() - began).toBeLessThan(5_000);
    expect(gateway?.process.exited).toBe(false);
    expect(gateway?.process.child.pid).toBe(pid);
    expect((await session!.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
  });

  it('learns of a Secret rotation the same way', async () => {
    const before = lines().filter((l) => l.msg === 'configuration applied').length;
    await apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'orders-db', namespace: ns }, stringData: { username: plane.postgres.user, password: plane.postgres.password, rotatedAt: String(Date.now()) } });
    await waitUntil('reloaded after rotation', async () => lines().filter((l) => l.msg === 'configuration applied').length > before, { timeoutMs: 5_000, process: gateway?.process });
    expect(lines().some((l) => l.msg.startsWith('target credentials re-read'))).toBe(true);
    expect((await session!.query('SELECT 3 AS three')).rows).toEqual([{ three: 3 }]);
  });
});
