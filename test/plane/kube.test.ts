import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Watch } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKube } from './kube.ts';
import { kubeClient, kubectl, kubectlOk } from './kubectl.ts';
import { canConnect, type Started } from './proc.ts';
import type { KubeInfo } from './types.ts';

// Until the global setup starts the shared plane, this file starts its own control plane.
let dir: string;
let plane: Started<KubeInfo>;
let kube: KubeInfo;
const namespace = `plane-test-${process.pid}`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'warden-kube-'));
  plane = await startKube(dir, (message) => console.log(`[kube] ${message}`));
  kube = plane.info;
  await kubectlOk(kube, ['create', 'namespace', namespace]);
});

afterAll(async () => {
  await plane?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const configMap = (name: string, data: Record<string, string>): string =>
  JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace }, data });

describe('the kube test plane', () => {
  it('runs kube-apiserver and kubectl of the pinned version', async () => {
    const version = JSON.parse(await kubectlOk(kube, ['version', '--output=json'])) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    expect(kube.version).toMatch(/^v1\.36\.\d+$/);
    expect(version.serverVersion.gitVersion).toBe(kube.version);
    expect(version.clientVersion.gitVersion).toBe(kube.version);
  });

  it('stores objects written with server-side apply and reads them back', async () => {
    const manifest = configMap('applied', { greeting: 'hello' });
    await kubectlOk(kube, ['apply', '--server-side', '--field-manager=warden-test', '--filename=-'], {
      input: manifest,
    });

    const read = JSON.parse(
      await kubectlOk(kube, ['get', 'configmap', 'applied', '--output=json', '--show-managed-fields'], {
        namespace,
      }),
    );
    expect(read.data).toEqual({ greeting: 'hello' });
    expect(read.metadata.managedFields).toContainEqual(
      expect.objectContaining({ manager: 'warden-test', operation: 'Apply' }),
    );
  });

  it('delivers watch events for objects created after the watch started', async () => {
    const config = kubeClient(kube);
    const path = `/api/v1/namespaces/${namespace}/configmaps`;
    // Watching from the list's resourceVersion makes "after the watch started" exact.
    const list = JSON.parse(await kubectlOk(kube, ['get', 'configmaps', '--output=json'], { namespace }));
    const resourceVersion: string = list.metadata.resourceVersion;

    let abort: AbortController | undefined;
    const added = new Promise<string>((resolve, reject) => {
      new Watch(config)
        .watch(
          path,
          { resourceVersion },
          (phase, object: { metadata: { name: string } }) => {
            if (phase === 'ADDED' && object.metadata.name === 'watched') resolve(phase);
          },
          (error: unknown) => {
            if (error) reject(error);
          },
        )
        .then((controller) => {
          abort = controller;
        }, reject);
    });
    try {
      await kubectlOk(kube, ['create', 'configmap', 'watched', '--from-literal=a=b'], { namespace });
      await expect(added).resolves.toBe('ADDED');
    } finally {
      abort?.abort();
    }
  });

  it('enforces RBAC: a user without bindings is forbidden', async () => {
    const denied = await kubectl(kube, ['--as=nobody', 'get', 'configmaps'], { namespace });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('Forbidden');
    expect(denied.stderr).toContain('User "nobody" cannot list resource "configmaps"');

    const allowed = await kubectl(kube, ['auth', 'can-i', 'list', 'configmaps', '--as=nobody'], {
      namespace,
    });
    expect(allowed.stdout.trim()).toBe('no');
  });

  // Last: it stops the plane this file started (afterAll's stop is then a no-op).
  it('stops the API server and etcd, closing their ports', async () => {
    const { hostname, port } = new URL(kube.server);
    await plane.stop();
    expect(await canConnect(hostname, Number(port))).toBe(false);
    const after = await kubectl(kube, ['get', 'namespaces', '--request-timeout=2s']);
    expect(after.code).not.toBe(0);
  });
});
