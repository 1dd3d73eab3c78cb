/**
 * config/default against the test plane's real API server: `kubectl apply -k` installs it, and
 * the controller, running with the ServiceAccount token it defines (not as admin), can do its
 * whole job — which proves the ClusterRole is sufficient; the rules themselves are reviewed in
 * config/default/rbac.yaml to be no wider than that.
 *
 * No kubelet here, so the controller Deployment itself never runs: the controller runs in this
 * process with that ServiceAccount's token.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { KubeClient } from '../../src/controller/kube.ts';
import { createLogger } from '../../src/controller/log.ts';
import { type RunningController, startController } from '../../src/controller/manager.ts';
import { kubeClient, kubectl, kubectlOk } from '../plane/kubectl.ts';
import { waitUntil } from '../plane/proc.ts';

const plane = inject('plane');
const kube = plane.kube;
const ns = `install-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const SA = 'system:serviceaccount:warden-system:warden-controller';
let controller: RunningController | undefined;
const logs: string[] = [];

const apply = async (...objects: unknown[]): Promise<void> => {
  await kubectlOk(kube, ['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
};

beforeAll(async () => {
  await kubectlOk(kube, ['create', 'namespace', ns]);
});

afterAll(async () => {
  await controller?.stop();
  await kubectlOk(kube, ['delete', 'connections,recordingpolicies,accesspolicies,sessions', '--all', '-n', ns, '--wait=false']).catch(() => {});
  await kubectlOk(kube, ['delete', 'namespace', ns, '--wait=false']).catch(() => {});
});

describe('config/default', () => {
  it('applies with kubectl apply -k', async () => {
    const result = await kubectl(kube, ['apply', '-k', 'config/default']);
    expect(result.stderr).not.toMatch(/error/i);
    expect(result.code).toBe(0);
    await kubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
    const deployment = JSON.parse(await kubectlOk(kube, ['get', 'deployment', 'warden-controller', '-n', 'warden-system', '-o', 'json'])) as {
      spec: { replicas: number; template: { spec: { serviceAccountName: string; containers: Array<{ image: string; args: string[]; env: Array<{ name: string; value?: string }>; securityContext: Record<string, unknown> }> } } };
    };
    const container = deployment.spec.template.spec.containers[0];
    expect(deployment.spec.template.spec.serviceAccountName).toBe('warden-controller');
    expect(container?.args).toEqual(['controller', '--leader-elect', '--health-port=8081']);
    // One image for controller and gateways: kustomize copies it into WARDEN_IMAGE.
    expect(container?.env.find((e) => e.name === 'WARDEN_IMAGE')?.value).toBe(container?.image);
    expect(container?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
  });

  it('grants the controller no more than it needs in spirit: no wildcard, no secrets update, no cluster-wide leases', async () => {
    const docs = parseAllDocuments(readFileSync('config/default/rbac.yaml', 'utf8')).map((d) => d.toJS() as { kind: string; rules?: Array<{ resources: string[]; verbs: string[] }> });
    for (const rule of docs.flatMap((d) => d.rules ?? [])) {
      expect(rule.verbs).not.toContain('*');
      expect(rule.resources).not.toContain('*');
    }
    const can = async (args: string[]) => (await kubectl(kube, ['auth', 'can-i', `--as=${SA}`, ...args])).stdout.trim();
    expect(await can(['update', 'secrets', '-n', ns])).toBe('no');
    expect(await can(['delete', 'secrets', '-n', ns])).toBe('no');
    expect(await can(['delete', 'deployments', '-n', ns])).toBe('no');
    expect(await can(['create', 'leases', '-n', ns])).toBe('no');
    expect(await can(['update', 'leases/other', '-n', 'warden-system'])).toBe('no');
    expect(await can(['escalate', 'roles', '-n', ns])).toBe('no');
    expect(await can(['patch', 'connections', '-n', ns])).toBe('no');
  });

  it('is enough for the controller to do its whole job as that ServiceAccount', async () => {
    const token = (await kubectlOk(kube, ['create', 'token', 'warden-controller', '-n', 'warden-system', '--duration=1h'])).trim();
    const admin = kubeClient(kube);
    const asController = new KubeConfig();
    asController.loadFromOptions({
      clusters: [{ name: 'plane', server: kube.server, caFile: kube.caFile }],
      users: [{ name: 'warden-controller', token }],
      contexts: [{ name: 'plane', cluster: 'plane', user: 'warden-controller' }],
      currentContext: 'plane',
    });
    await apply(
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'minio', namespace: ns }, stringData: { accessKeyId: plane.minio.accessKey, secretAccessKey: plane.minio.secretKey } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: ns }, stringData: { username: 'u', password: 'p' } },
      {
        apiVersion: 'warden.dev/v1alpha1',
        kind: 'RecordingPolicy',
        metadata: { name: 'minio', namespace: ns },
        spec: { connectionSelector: {}, storage: { s3: { endpoint: plane.minio.endpoint, bucket: ns, credentialsSecretRef: { name: 'minio' } } }, retention: { days: 7 } },
      },
      { apiVersion: 'warden.dev/v1alpha1', kind: 'AccessPolicy', metadata: { name: 'all', namespace: ns }, spec: { connectionSelector: {}, subjects: [{ kind: 'Group', name: 'dev' }] } },
      {
        apiVersion: 'warden.dev/v1alpha1',
        kind: 'Connection',
        metadata: { name: 'db', namespace: ns },
        spec: { protocol: 'postgres', target: { host: '127.0.0.1', port: 5432, tls: { mode: 'disable' } }, credentialsRef: { name: 'db' } },
      },
      {
        apiVersion: 'warden.dev/v1alpha1',
        kind: 'Session',
        metadata: { name: 'orphan', namespace: ns, labels: { 'warden.dev/pod': 'db-gateway-gone' } },
        spec: { connection: 'db', protocol: 'postgres', user: 'alice', startedAt: '2026-01-01T00:00:00Z' },
      },
    );
    controller = await startController({
      kubeConfig: asController,
      namespace: ns,
      settings: { image: 'warden:test', healthPort: 9090, oidc: { issuer: plane.oidc.issuer, audience: plane.oidc.audience } },
      leaderElection: { namespace: 'warden-system', name: 'warden-controller', leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 },
      log: createLogger({ write: (l) => void logs.push(l) }),
    });
    await controller.active();
    const client = new KubeClient(admin);
    await waitUntil(
      'Connection rendered, RecordingPolicy ready, Session terminated',
      async () => {
        const c = await client.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>('Connection', ns, 'db');
        const p = await client.get<{ status?: { conditions?: Array<{ type: string; status: string }> } }>('RecordingPolicy', ns, 'minio');
        const s = await client.get<{ status?: { phase?: string } }>('Session', ns, 'orphan');
        return (
          c.status?.conditions?.find((x) => x.type === 'RecordingReady')?.status === 'True' &&
          c.status.conditions.find((x) => x.type === 'ConfigRendered')?.status === 'True' &&
          p.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' &&
          s.status?.phase === 'Terminated'
        );
      },
      { timeoutMs: 20_000 },
    );
    for (const [kind, name] of [['ConfigMap', 'db-gateway-config'], ['Role', 'db-gateway'], ['RoleBinding', 'db-gateway'], ['Deployment', 'db-gateway'], ['Service', 'db'], ['ServiceAccount', 'db-gateway'], ['Secret', 'minio-signing']] as const) {
      expect(await client.find(kind, ns, name), `${kind} ${name}`).toBeDefined();
    }
    const events = await client.request<{ items: unknown[] }>('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`);
    expect(events.items.length).toBeGreaterThan(0);
    expect(logs.filter((l) => /Forbidden|forbidden/.test(l))).toEqual([]);
  });
});
