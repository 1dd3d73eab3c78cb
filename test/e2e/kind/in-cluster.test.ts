// The whole system in a real cluster (`make kind-e2e`, hack/kind-e2e.sh): the image built from this
// tree runs the controller installed from config/default (test/e2e/kind/kustomization.yaml); a
// Connection to the in-cluster PostgreSQL becomes a real gateway pod that the cluster schedules;
// real psql connects through `kubectl port-forward` with an OIDC token; reads pass masked, writes
// are denied, recordings land in the in-cluster MinIO, Session objects appear, and the controller
// and gateway serve /metrics (read through the API server's pod proxy).
//
// Needs WARDEN_E2E_KUBECONFIG (the script sets it); without it every test is skipped.

import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { kubectl, kubectlOk } from '../../plane/kubectl.ts';
import { capture, ManagedProcess, waitUntil } from '../../plane/proc.ts';
import { mintToken } from '../../plane/tokens.ts';
import type { KubeInfo, OidcInfo } from '../../plane/types.ts';

const kubeconfig = process.env.WARDEN_E2E_KUBECONFIG;
const kube: KubeInfo = { kubeconfig: kubeconfig ?? '', kubectl: process.env.WARDEN_E2E_KUBECTL ?? 'kubectl', server: '', version: '', caFile: '' };
const NS = 'warden-e2e';
const ISSUER = `http://oidc.${NS}.svc.cluster.local`;
const psqlBin = process.env.WARDEN_E2E_PSQL ?? 'psql';

let oidc: OidcInfo;
let forward: ManagedProcess | undefined;
let localPort = 0;
let scratch = '';

const apply = async (...objects: unknown[]): Promise<void> => {
  await kubectlOk(kube, ['apply', '--server-side', '--force-conflicts', '--field-manager=warden-e2e', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
};

async function freeLocalPort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(address && typeof address === 'object' ? address.port : 0));
    });
  });
}

/** GET through the API server's pod proxy (no port-forward needed). */
async function podGet(namespace: string, selector: string, portName: string, path: string): Promise<string> {
  const pod = (await kubectlOk(kube, ['get', 'pods', '-n', namespace, '-l', selector, '--field-selector=status.phase=Running', '-o', 'jsonpath={.items[0].metadata.name}'])).trim();
  const port = (await kubectlOk(kube, ['get', 'pod', pod, '-n', namespace, '-o', `jsonpath={.spec.containers[0].ports[?(@.name=="${portName}")].containerPort}`])).trim();
  return await kubectlOk(kube, ['get', '--raw', `/api/v1/namespaces/${namespace}/pods/${pod}:${port}/proxy${path}`]);
}

const psql = async (sql: string, token: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  await capture(psqlBin, ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: { PATH: process.env.PATH, PGHOST: '127.0.0.1', PGPORT: String(localPort), PGUSER: 'alice', PGDATABASE: 'orders', PGSSLMODE: 'require', PGPASSWORD: token, PGAPPNAME: 'kind-e2e', PGCONNECT_TIMEOUT: '10' },
  });

describe.skipIf(!kubeconfig)('Warden in a kind cluster', () => {
  beforeAll(async () => {
    scratch = mkdtempSync(join(process.env.WARDEN_E2E_LOG_DIR ?? tmpdir(), 'warden-kind-e2e-'));
    // The issuer's keys: the public half is served in-cluster, the private half stays here.
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const kid = `e2e-${randomBytes(4).toString('hex')}`;
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
    oidc = { issuer: ISSUER, jwksUri: `${ISSUER}/jwks.json`, audience: 'warden', privateJwk: { ...(await exportJWK(privateKey)), kid, alg: 'RS256' }, kid, alg: 'RS256' };
    await apply({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'oidc-jwks', namespace: NS },
      data: {
        'jwks.json': JSON.stringify({ keys: [publicJwk] }),
        'openid-configuration': JSON.stringify({ issuer: ISSUER, jwks_uri: `${ISSUER}/jwks.json`, id_token_signing_alg_values_supported: ['RS256'] }),
      },
    });
    await kubectlOk(kube, ['rollout', 'status', 'deployment/oidc', '-n', NS, '--timeout=180s']);

    await apply(
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'orders-db-credentials', namespace: NS }, stringData: { username: 'warden', password: 'e2e-postgres-password' } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'minio', namespace: NS }, stringData: { accessKeyId: 'warden-e2e', secretAccessKey: 'e2e-minio-password' } },
      {
        apiVersion: 'warden.dev/v1alpha1',
        kind: 'RecordingPolicy',
        metadata: { name: 'minio', namespace: NS },
        spec: { connectionSelector: {}, storage: { s3: { endpoint: `http://minio.${NS}.svc.cluster.local:9000`, bucket: 'warden-e2e', pathStyle: true, credentialsSecretRef: { name: 'minio' } } } },
      },
      {
        apiVersion: 'warden.dev/v1alpha1',
        kind: 'Connection',
        metadata: { name: 'orders-db', namespace: NS },
        spec: { protocol: 'postgres', target: { host: `postgres.${NS}.svc.cluster.local`, port: 5432, database: 'orders', tls: { mode: 'disable' } }, credentialsRef: { name: 'orders-db-credentials' } },
      },
      {
        apiVersion: 'warden.dev/v1alpha1',
        kind: 'AccessPolicy',
        metadata: { name: 'developers', namespace: NS },
        spec: {
          connections: ['orders-db'],
          subjects: [{ kind: 'Group', name: 'dev' }],
          rules: [{ name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } }],
          masking: { rules: [{ name: 'emails', columns: ['email'], strategy: 'redact' }] },
        },
      },
    );
  });

  afterAll(async () => {
    await forward?.stop();
  });

  it('runs the controller from the built image, and serves its /metrics', async () => {
    const text = await podGet('warden-system', 'app.kubernetes.io/component=controller', 'health', '/metrics');
    expect(text).toContain('warden_controller_api_requests_total');
  });

  it('turns the Connection into a gateway pod the cluster runs, and reports it Ready', async () => {
    const wait = await kubectl(kube, ['wait', '--for=condition=Ready', 'connection/orders-db', '-n', NS, '--timeout=300s']);
    if (wait.code !== 0) {
      const dump = await kubectl(kube, ['get', 'connection/orders-db', 'deployment/orders-db-gateway', 'pods', '-n', NS, '-o', 'yaml']);
      throw new Error(`Connection orders-db not Ready: ${wait.stderr}\n${dump.stdout.slice(-4000)}`);
    }
    const ready = await kubectlOk(kube, ['get', 'deployment', 'orders-db-gateway', '-n', NS, '-o', 'jsonpath={.status.readyReplicas}']);
    expect(Number(ready)).toBeGreaterThanOrEqual(1);
  });

  it('lets psql read through the gateway with an OIDC token, masks emails, and denies writes', async () => {
    const servicePort = (await kubectlOk(kube, ['get', 'service', 'orders-db', '-n', NS, '-o', 'jsonpath={.spec.ports[0].port}'])).trim();
    localPort = await freeLocalPort();
    forward = new ManagedProcess({
      name: 'port-forward',
      command: kube.kubectl,
      args: [`--kubeconfig=${kube.kubeconfig}`, 'port-forward', '-n', NS, 'service/orders-db', `${localPort}:${servicePort}`],
      logFile: join(scratch, 'port-forward.log'),
    });
    const token = await mintToken(oidc, { user: 'alice', groups: ['dev'] });
    await waitUntil('psql through the gateway', async () => (await psql('SELECT 1', token)).code === 0, { timeoutMs: 60_000, process: forward });

    const read = await psql('SELECT email FROM customers ORDER BY id', token);
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).not.toContain('alice@example.com');
    const write = await psql('DELETE FROM customers', token);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/denied/);
    const stranger = await psql('SELECT 1', await mintToken(oidc, { user: 'mallory', groups: ['guests'] }));
    expect(stranger.code).not.toBe(0);
  });

  it('records the sessions: Session objects for alice, the gateway counters moved', async () => {
    await waitUntil(
      'Session objects',
      async () => {
        const users = await kubectlOk(kube, ['get', 'sessions', '-n', NS, '-o', 'jsonpath={.items[*].spec.user}']);
        return users.split(' ').filter((u) => u === 'alice').length >= 3;
      },
      { timeoutMs: 60_000 },
    );
    const metrics = await podGet(NS, 'warden.dev/connection=orders-db,app.kubernetes.io/component=gateway', 'health', '/metrics');
    expect(metrics).toMatch(/warden_commands_total\{[^}]*decision="denied"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/warden_commands_total\{[^}]*decision="allowed"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/warden_masking_hits_total\{[^}]*\} [1-9]/);
    expect(metrics).toMatch(/warden_recording_chunks_uploaded_total [1-9]/);
  });
});
