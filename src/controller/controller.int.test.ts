/**
 * The controller against the test plane's real kube-apiserver and MinIO, run in-process and
 * scoped to a namespace of its own (other test files share the API server).
 *
 * The plane runs no kube-controller-manager and no kubelet: nothing garbage-collects owned
 * objects when their owner goes, and no Deployment ever gets ready pods. So these tests check
 * that ownerReferences are right (which is what makes a real cluster's garbage collector delete
 * the objects), and play the Deployment controller's part by writing Deployment status.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client as MinioClient } from 'minio';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import type { Condition, Connection, RecordingPolicy, Session } from '../api/types.ts';
import { parseSidecarConfig, SIDECAR_CONFIG_KEY } from '../sidecar/config.ts';
import { kubeClient, kubectlOk } from '../../test/plane/kubectl.ts';
import { waitUntil } from '../../test/plane/proc.ts';
import { KubeClient, type KubeObject } from './kube.ts';
import { createLogger } from './log.ts';
import { type RunningController, startController } from './manager.ts';

const plane = inject('plane');
const kube = plane.kube;
const suffix = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const ns = `ctrl-${suffix}`;
const bucket = `ctrl-${suffix}`;
const lockedBucket = `ctrl-lock-${suffix}`;

let controller: RunningController;
let client: KubeClient;
const logLines: string[] = [];

const apply = async (...objects: unknown[]): Promise<void> => {
  await kubectlOk(kube, ['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
};

type Obj = any; // eslint-disable-line @typescript-eslint/no-explicit-any -- tests read arbitrary fields of live objects

const get = async <T = Obj>(kind: string, name: string): Promise<T | undefined> => (await client.find<KubeObject>(kind, ns, name)) as T | undefined;
const condition = (c: { status?: { conditions?: Condition[] } } | undefined, type: string) => c?.status?.conditions?.find((x) => x.type === type);

async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  let value: T | undefined | false;
  await waitUntil(what, async () => Boolean((value = await probe())), { timeoutMs, intervalMs: 100 });
  return value as T;
}

const secret = (name: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: ns }, stringData: data });
const connection = (name: string, spec: Partial<Connection['spec']> = {}, labels: Record<string, string> = { team: 'orders' }) => ({
  apiVersion: 'warden.dev/v1alpha1',
  kind: 'Connection',
  metadata: { name, namespace: ns, labels },
  spec: { protocol: 'postgres', target: { host: plane.postgres.host, port: plane.postgres.port, tls: { mode: 'disable' } }, credentialsRef: { name: `${name}-db` }, ...spec },
});
const recordingPolicy = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: 'warden.dev/v1alpha1',
  kind: 'RecordingPolicy',
  metadata: { name, namespace: ns },
  spec: { connectionSelector: { matchLabels: { team: 'orders' } }, storage: { s3: { endpoint: plane.minio.endpoint, bucket, credentialsSecretRef: { name: 'minio' } } }, ...spec },
});
const accessPolicy = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: 'warden.dev/v1alpha1',
  kind: 'AccessPolicy',
  metadata: { name, namespace: ns },
  spec: { subjects: [{ kind: 'Group', name: 'developers' }], ...spec },
});

async function events(name: string): Promise<Array<{ reason: string; note: string; type: string }>> {
  const list = await client.request<{ items: Array<{ reason: string; note: string; type: string; regarding: { name: string } }> }>('GET', `/apis/events.k8s.io/v1/namespaces/${ns}/events`);
  return list.items.filter((e) => e.regarding.name === name);
}

async function sidecarConfig(connectionName: string) {
  const cm = await get<{ data?: Record<string, string> }>('ConfigMap', `${connectionName}-gateway-config`);
  const text = cm?.data?.[SIDECAR_CONFIG_KEY];
  return text === undefined ? undefined : parseSidecarConfig(text);
}

beforeAll(async () => {
  await kubectlOk(kube, ['apply', '--server-side', '-f', 'crds/']);
  await kubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await kubectlOk(kube, ['create', 'namespace', ns]);
  client = new KubeClient(kubeClient(kube));
  await apply(
    secret('minio', { accessKeyId: plane.minio.accessKey, secretAccessKey: plane.minio.secretKey }),
    secret('minio-wrong', { accessKeyId: plane.minio.accessKey, secretAccessKey: 'not-the-password' }),
    secret('orders-db', { username: 'warden', password: 'hunter2-do-not-log' }),
    recordingPolicy('minio', { sessionRetention: '2s' }),
  );
  controller = await startController({
    kubeConfig: kubeClient(kube),
    namespace: ns,
    settings: { image: 'warden:test', healthPort: 9090, oidc: { issuer: plane.oidc.issuer, audience: plane.oidc.audience } },
    healthPort: 0,
    healthHost: '127.0.0.1',
    log: createLogger({ level: 'debug', write: (line) => void logLines.push(line) }),
  });
  await controller.active();
});

afterAll(async () => {
  await controller?.stop();
  await kubectlOk(kube, ['delete', 'connections,accesspolicies,recordingpolicies,sessions', '--all', '-n', ns, '--wait=false']).catch(() => {});
  await kubectlOk(kube, ['delete', 'namespace', ns, '--wait=false']).catch(() => {});
});

describe('the controller, against a real API server', () => {
  let orders: Obj;

  it('serves /healthz and /readyz', async () => {
    const health = await fetch(`http://127.0.0.1:${controller.healthPort}/healthz`);
    const ready = await fetch(`http://127.0.0.1:${controller.healthPort}/readyz`);
    expect([health.status, ready.status]).toEqual([200, 200]);
  });

  it('makes the RecordingPolicy ready: creates the bucket, generates a signing key', async () => {
    const policy = await eventually('RecordingPolicy ready', async () => {
      const p = await get<RecordingPolicy>('RecordingPolicy', 'minio');
      return condition(p, 'Ready')?.status === 'True' ? p : undefined;
    });
    expect(policy.status?.bucket).toMatchObject({ name: bucket, objectLockEnabled: false });
    expect(policy.status?.signing?.publicKey).toContain('BEGIN PUBLIC KEY');
    const minio = new MinioClient({ endPoint: plane.minio.host, port: plane.minio.port, useSSL: false, accessKey: plane.minio.accessKey, secretKey: plane.minio.secretKey });
    expect(await minio.bucketExists(bucket)).toBe(true);
    expect(await get('Secret', 'minio-signing')).toBeDefined();
    expect((await events('minio')).map((e) => e.reason)).toEqual(expect.arrayContaining(['BucketCreated', 'SigningKeyGenerated', 'BucketReady']));
  });

  it('applies a Connection as ConfigMap, ServiceAccount, Role, RoleBinding, Deployment and Service owned by it', async () => {
    await apply(connection('orders', { credentialsRef: { name: 'orders-db' } }), accessPolicy('readers', { connections: ['orders'], rules: [{ name: 'read', effect: 'Allow', sql: { statementClasses: ['read'] } }] }));
    orders = await eventually('Connection rendered', async () => {
      const c = await get('Connection', 'orders');
      return condition(c, 'ConfigRendered')?.status === 'True' ? c : undefined;
    });
    const owned = [
      ['ConfigMap', 'orders-gateway-config'],
      ['ServiceAccount', 'orders-gateway'],
      ['Role', 'orders-gateway'],
      ['RoleBinding', 'orders-gateway'],
      ['Deployment', 'orders-gateway'],
      ['Service', 'orders'],
    ] as const;
    for (const [kind, name] of owned) {
      const object = await eventually<Obj>(`${kind} ${name}`, () => get(kind, name));
      expect(object.metadata?.ownerReferences, `${kind} ${name}`).toEqual([
        { apiVersion: 'warden.dev/v1alpha1', kind: 'Connection', name: 'orders', uid: orders.metadata?.uid, controller: true, blockOwnerDeletion: true },
      ]);
      expect(object.metadata?.managedFields?.map((f: { manager: string }) => f.manager)).toContain('warden-controller');
    }
    const config = await sidecarConfig('orders');
    expect(config?.policies.map((p) => p.name)).toEqual(['readers']);
    expect(config?.recording?.s3.bucket).toBe(bucket);
    // Credentials are referenced as files, never inlined.
    const cm = await get<{ data: Record<string, string> }>('ConfigMap', 'orders-gateway-config');
    expect(JSON.stringify(cm)).not.toContain('hunter2');
    expect(logLines.join('')).not.toContain('hunter2');
  });

  it('writes the status: endpoint, recording, policies, conditions; Ready once a gateway pod is ready', async () => {
    const before = await eventually('RecordingReady', async () => {
      const c = await get<Connection>('Connection', 'orders');
      return condition(c, 'RecordingReady')?.status === 'True' ? c : undefined;
    });
    expect(before.status).toMatchObject({
      observedGeneration: 1,
      endpoint: `orders.${ns}.svc:5432`,
      readyReplicas: 0,
      policies: ['readers'],
      recording: { policy: 'minio', endpoint: plane.minio.endpoint, bucket, prefix: `${ns}/orders/` },
    });
    expect(condition(before, 'Ready')).toMatchObject({ status: 'False', reason: 'GatewayNotReady', message: '0 of 1 gateway pods are ready' });
    // No kubelet here: play the Deployment controller and report one ready replica.
    await client.mergePatch('Deployment', ns, 'orders-gateway', { status: { replicas: 1, readyReplicas: 1, availableReplicas: 1, updatedReplicas: 1 } }, 'status');
    const after = await eventually('Ready', async () => {
      const c = await get<Connection>('Connection', 'orders');
      return condition(c, 'Ready')?.status === 'True' ? c : undefined;
    });
    expect(condition(after, 'Ready')).toMatchObject({ reason: 'GatewayReady', message: '1 of 1 gateway pods are ready' });
    expect(after.status?.readyReplicas).toBe(1);
    expect(condition(after, 'Degraded')).toMatchObject({ status: 'False', reason: 'AsExpected' });
  });

  it('re-renders the ConfigMap within seconds of an AccessPolicy change, without touching the Deployment', async () => {
    const deploymentBefore = await get('Deployment', 'orders-gateway');
    const began = Date.now();
    await apply(accessPolicy('readers', { connections: ['orders'], rules: [{ name: 'read', effect: 'Allow', sql: { statementClasses: ['read'] } }, { name: 'no-ddl', effect: 'Deny', sql: { statementClasses: ['ddl'] } }] }));
    const config = await eventually('new rule in the ConfigMap', async () => {
      const c = await sidecarConfig('orders');
      return c?.policies[0]?.spec.rules?.length === 2 ? c : undefined;
    }, 5_000);
    const ms = Date.now() - began;
    expect(config.policies[0]?.spec.rules?.map((r) => r.name)).toEqual(['read', 'no-ddl']);
    expect(ms).toBeLessThan(5_000);
    expect((await get('Deployment', 'orders-gateway'))?.metadata?.resourceVersion).toBe(deploymentBefore?.metadata?.resourceVersion);
    expect((await events('orders')).some((e) => e.reason === 'ConfigUpdated')).toBe(true);
  });

  it('selects by label too, and drops a policy that stops selecting', async () => {
    await apply(accessPolicy('team-wide', { connectionSelector: { matchLabels: { team: 'orders' } } }));
    await eventually('label-selected policy', async () => (await sidecarConfig('orders'))?.policies.length === 2);
    await apply(accessPolicy('team-wide', { connectionSelector: { matchLabels: { team: 'billing' } } }));
    await eventually('policy dropped', async () => (await sidecarConfig('orders'))?.policies.length === 1);
    const c = await eventually('status.policies', async () => {
      const x = await get<Connection>('Connection', 'orders');
      return x?.status?.policies?.length === 1 ? x : undefined;
    });
    expect(c.status?.policies).toEqual(['readers']);
    const readers = await eventually('AccessPolicy status', async () => {
      const p = await get('AccessPolicy', 'readers');
      return condition(p, 'Ready')?.status === 'True' ? p : undefined;
    });
    expect(readers.status).toMatchObject({ observedGeneration: readers.metadata.generation, connections: ['orders'] });
    expect(condition(readers, 'Ready')).toMatchObject({ reason: 'PolicyValid', message: 'selects 1 Connection' });
  });

  it('writes nothing when nothing changed, also when a resync re-applies everything', async () => {
    await sleep(500);
    const kinds = [
      ['Connection', 'orders'],
      ['ConfigMap', 'orders-gateway-config'],
      ['ServiceAccount', 'orders-gateway'],
      ['Role', 'orders-gateway'],
      ['RoleBinding', 'orders-gateway'],
      ['Deployment', 'orders-gateway'],
      ['Service', 'orders'],
    ] as const;
    const versions = async () => Promise.all(kinds.map(async ([kind, name]) => (await get(kind, name))?.metadata?.resourceVersion));
    const before = await versions();
    const patchesBefore = controller.client.requests.byVerb.get('PATCH') ?? 0;
    controller.connections.resync();
    await sleep(1_000);
    // A plain resync sends nothing at all: the applied hashes match.
    expect(controller.client.requests.byVerb.get('PATCH') ?? 0).toBe(patchesBefore);
    controller.connections.resync(true);
    await sleep(1_500);
    // The drift-repair resync does apply, and the API server finds nothing to change.
    expect(controller.client.requests.byVerb.get('PATCH') ?? 0).toBeGreaterThan(patchesBefore);
    expect(await versions()).toEqual(before);
  });

  it('repairs an owned object someone deleted', async () => {
    await client.delete('Service', ns, 'orders');
    const service = await eventually<Obj>('Service back', () => get('Service', 'orders'));
    expect(service.metadata?.ownerReferences?.[0]?.name).toBe('orders');
  });

  it('puts back a field someone edited (our annotation alone would not show it)', async () => {
    await client.mergePatch('Deployment', ns, 'orders-gateway', { spec: { replicas: 5 } });
    await eventually('replicas restored', async () => (await get('Deployment', 'orders-gateway'))?.spec?.replicas === 1);
  });

  it('passes a Secret rotation to the configuration (to wake the gateways), not to the pod template', async () => {
    const before = await sidecarConfig('orders');
    const deploymentBefore = await get('Deployment', 'orders-gateway');
    await apply(secret('orders-db', { username: 'warden', password: 'rotated-do-not-log' }));
    const after = await eventually('secret version in config', async () => {
      const c = await sidecarConfig('orders');
      return c && c.secretVersions['orders-db'] !== before?.secretVersions['orders-db'] ? c : undefined;
    }, 5_000);
    expect(after.hash).not.toBe(before?.hash);
    expect((await get('Deployment', 'orders-gateway'))?.metadata?.resourceVersion).toBe(deploymentBefore?.metadata?.resourceVersion);
  });

  it('reports a missing Secret as a condition and an Event, leaves other Connections alone, and heals when it appears', async () => {
    const ordersBefore = await get('Connection', 'orders');
    await apply(connection('broken', { credentialsRef: { name: 'broken-gateway' } }));
    const broken = await eventually('ConfigRendered False', async () => {
      const c = await get<Connection>('Connection', 'broken');
      return condition(c, 'ConfigRendered')?.status === 'False' ? c : undefined;
    });
    expect(condition(broken, 'ConfigRendered')).toMatchObject({ reason: 'SecretNotFound', message: `Secret ${ns}/broken-gateway not found` });
    expect(condition(broken, 'Ready')).toMatchObject({ status: 'False', reason: 'ConfigNotRendered' });
    expect(await get('ConfigMap', 'broken-gateway-config')).toBeUndefined();
    const warning = await eventually('Event', async () => (await events('broken')).find((e) => e.reason === 'SecretNotFound'));
    expect(warning).toMatchObject({ type: 'Warning', note: `Secret ${ns}/broken-gateway not found` });
    expect((await get('Connection', 'orders'))?.metadata?.resourceVersion).toBe(ordersBefore?.metadata?.resourceVersion);

    await apply(secret('broken-gateway', { username: 'warden' }));
    const missingKey = await eventually('SecretKeyMissing', async () => {
      const c = await get<Connection>('Connection', 'broken');
      return condition(c, 'ConfigRendered')?.reason === 'SecretKeyMissing' ? c : undefined;
    });
    expect(condition(missingKey, 'ConfigRendered')?.message).toBe(`Secret ${ns}/broken-gateway has no key 'password'`);

    await apply(secret('broken-gateway', { username: 'warden', password: 'x' }));
    await eventually('healed', async () => condition(await get<Connection>('Connection', 'broken'), 'ConfigRendered')?.status === 'True');
    expect(await get('ConfigMap', 'broken-gateway-config')).toBeDefined();
  });

  it('names the policy and rule of an invalid pattern, and renders that policy fail-closed', async () => {
    await apply(accessPolicy('readers', { connections: ['orders'], masking: { rules: [{ name: 'card-numbers', patterns: ['(\\d+)\\1'] }] } }));
    const c = await eventually('Degraded InvalidPolicy', async () => {
      const x = await get<Connection>('Connection', 'orders');
      return condition(x, 'Degraded')?.reason === 'InvalidPolicy' ? x : undefined;
    });
    expect(condition(c, 'Degraded')?.message).toContain(`AccessPolicy ${ns}/readers rule "card-numbers": pattern`);
    expect(condition(c, 'ConfigRendered')?.status).toBe('True');
    // The gateway gets the policy with its problems and denies its subjects everything.
    const config = await eventually('problems in the configuration', async () => {
      const x = await sidecarConfig('orders');
      return x?.policies[0]?.problems.length ? x : undefined;
    });
    expect(config.policies[0]?.problems[0]).toMatchObject({ code: expect.stringMatching(/^POLICY_INVALID_/), policy: 'readers', rule: 'card-numbers' });
    await eventually('Warning event', async () => (await events('orders')).find((e) => e.reason === 'InvalidPolicy' && e.type === 'Warning'));
    // The policy's own status says the same, where its author looks.
    const ap = await eventually('AccessPolicy not ready', async () => {
      const p = await get('AccessPolicy', 'readers');
      return condition(p, 'Ready')?.status === 'False' ? p : undefined;
    });
    expect(condition(ap, 'Ready')).toMatchObject({ reason: 'InvalidPolicy' });
    expect(condition(ap, 'Ready')?.message).toContain('rule "card-numbers"');
    await apply(accessPolicy('readers', { connections: ['orders'], rules: [{ name: 'read', effect: 'Allow' }] }));
    await eventually('healthy again', async () => condition(await get<Connection>('Connection', 'orders'), 'Degraded')?.status === 'False');
  });

  it('reports a wrong MinIO password on the RecordingPolicy and on the Connections it records, not others', async () => {
    await apply(
      recordingPolicy('wrong-password', { connectionSelector: { matchLabels: { team: 'audit' } }, storage: { s3: { endpoint: plane.minio.endpoint, bucket: `${bucket}-x`, credentialsSecretRef: { name: 'minio-wrong' } } } }),
      secret('audit-db', { username: 'u', password: 'p' }),
      connection('audit', { credentialsRef: { name: 'audit-db' } }, { team: 'audit' }),
    );
    const policy = await eventually('RecordingPolicy not ready', async () => {
      const p = await get<RecordingPolicy>('RecordingPolicy', 'wrong-password');
      return condition(p, 'Ready')?.status === 'False' ? p : undefined;
    });
    expect(condition(policy, 'Ready')).toMatchObject({ reason: 'AccessDenied' });
    expect(condition(policy, 'Ready')?.message).toContain('check the access key in storage.s3.credentialsSecretRef');
    expect(condition(policy, 'Ready')?.message).not.toContain('not-the-password');
    await eventually('Warning event', async () => (await events('wrong-password')).find((e) => e.reason === 'AccessDenied' && e.type === 'Warning'));
    const audit = await eventually('audit RecordingReady False', async () => {
      const c = await get<Connection>('Connection', 'audit');
      return condition(c, 'RecordingReady')?.reason === 'RecordingPolicyNotReady' ? c : undefined;
    });
    expect(condition(audit, 'Ready')).toMatchObject({ status: 'False', reason: 'RecordingNotReady' });
    expect(condition(await get<Connection>('Connection', 'orders'), 'Ready')?.status).toBe('True');
  });

  it('creates a bucket with object lock, default retention and a lifecycle rule when the policy asks', async () => {
    await apply(recordingPolicy('locked', {
      connectionSelector: { matchLabels: { team: 'nobody' } },
      storage: { s3: { endpoint: plane.minio.endpoint, bucket: lockedBucket, prefix: 'prod/', credentialsSecretRef: { name: 'minio' } } },
      retention: { days: 3, objectLock: { mode: 'GOVERNANCE' } },
    }));
    const policy = await eventually('locked ready', async () => {
      const p = await get<RecordingPolicy>('RecordingPolicy', 'locked');
      return condition(p, 'Ready')?.status === 'True' ? p : condition(p, 'Ready')?.status === 'False' ? Promise.reject(new Error(condition(p, 'Ready')?.message)) : undefined;
    });
    expect(policy.status?.bucket?.objectLockEnabled).toBe(true);
    const minio = new MinioClient({ endPoint: plane.minio.host, port: plane.minio.port, useSSL: false, accessKey: plane.minio.accessKey, secretKey: plane.minio.secretKey });
    const lock = (await (minio.getObjectLockConfig.bind(minio) as (b: string) => Promise<Record<string, unknown>>)(lockedBucket));
    expect(lock).toMatchObject({ objectLockEnabled: 'Enabled', mode: 'GOVERNANCE', unit: 'Days', validity: 3 });
    const lifecycle = await minio.getBucketLifecycle(lockedBucket);
    expect([lifecycle?.Rule].flat()).toEqual([expect.objectContaining({ ID: 'warden-retention', Expiration: expect.objectContaining({ Days: 3 }) })]);
  });

  it('refuses object lock on an existing bucket that lacks it, with a message saying what to do', async () => {
    await apply(recordingPolicy('lock-too-late', { connectionSelector: { matchLabels: { team: 'nobody' } }, retention: { days: 1, objectLock: { mode: 'COMPLIANCE' } } }));
    const policy = await eventually('not ready', async () => {
      const p = await get<RecordingPolicy>('RecordingPolicy', 'lock-too-late');
      return condition(p, 'Ready')?.status === 'False' ? p : undefined;
    });
    expect(condition(policy, 'Ready')).toMatchObject({ reason: 'ObjectLockUnavailable' });
  });

  it('marks Active Sessions whose gateway pod is gone as Terminated, and leaves those whose pod exists', async () => {
    await apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: ns } });
    await apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orders-gateway-alive', namespace: ns }, spec: { containers: [{ name: 'g', image: 'warden:test' }] } });
    const session = (name: string, pod: string) => ({
      apiVersion: 'warden.dev/v1alpha1',
      kind: 'Session',
      metadata: { name, namespace: ns, labels: { 'warden.dev/pod': pod } },
      spec: { connection: 'orders', protocol: 'postgres', user: 'alice@example.com', startedAt: new Date(Date.now() - 90_000).toISOString().replace(/\.\d+Z$/, 'Z') },
    });
    await apply(session('orphan', 'orders-gateway-gone'), session('alive', 'orders-gateway-alive'));
    // A Session without a phase counts as Active (the gateway sets it right after creating it).
    await client.mergePatch('Session', ns, 'alive', { status: { phase: 'Active' } }, 'status');
    controller.sessions.sweep();
    const orphan = await eventually('orphan terminated', async () => {
      const s = await get<Session>('Session', 'orphan');
      return s?.status?.phase === 'Terminated' ? s : undefined;
    });
    expect(orphan.status?.reason).toContain('GatewayPodGone: gateway pod orders-gateway-gone no longer exists');
    expect(orphan.status?.duration).toMatch(/^1m3\ds$/);
    controller.sessions.sweep();
    await sleep(500);
    expect((await get<Session>('Session', 'alive'))?.status?.phase).toBe('Active');
  });

  it('prunes ended Sessions older than the RecordingPolicy sessionRetention', async () => {
    // RecordingPolicy "minio" selects "orders" and keeps Sessions for 2s; "orphan" ended above.
    await eventually('orphan pruned', async () => (await get('Session', 'orphan')) === undefined, 10_000);
    expect(await get('Session', 'alive')).toBeDefined();
  });

  it('sets ownerReferences so that deleting the Connection deletes its objects (the plane has no garbage collector to show it)', async () => {
    await kubectlOk(kube, ['delete', 'connection', 'broken', '-n', ns]);
    await sleep(500);
    // With a garbage collector these would now go; here we check what it would act on.
    const cm = await get('ConfigMap', 'broken-gateway-config');
    expect(cm?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'Connection', name: 'broken', controller: true, blockOwnerDeletion: true });
    // And the controller does not recreate or touch anything for a Connection that is gone.
    expect(logLines.some((l) => l.includes('"level":"error"'))).toBe(false);
  });
});
