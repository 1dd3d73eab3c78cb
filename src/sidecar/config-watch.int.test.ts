/**
 * The reload path of the sidecar configuration, end to end against a real API server: the
 * controller renders a Connection; a watcher running with the gateway's own ServiceAccount token
 * (so the rendered Role is what authorises it) sees an AccessPolicy change within 5 s, refuses
 * a tampered document, and falls back to the mounted file when it has no API access.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import { kubeClient, kubectl, kubectlOk } from '../../test/plane/kubectl.ts';
import { waitUntil } from '../../test/plane/proc.ts';
import { KubeClient } from '../controller/kube.ts';
import { silentLogger } from '../controller/log.ts';
import { type RunningController, startController } from '../controller/manager.ts';
import { SIDECAR_CONFIG_KEY, type SidecarConfig } from './config.ts';
import { type ConfigSource, readSecretValue, SidecarConfigWatcher } from './config-watch.ts';

const plane = inject('plane');
const kube = plane.kube;
const ns = `reload-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'warden-config-'));
const file = join(dir, SIDECAR_CONFIG_KEY);
let controller: RunningController;
let client: KubeClient;
const watchers: SidecarConfigWatcher[] = [];

const apply = async (...objects: unknown[]): Promise<void> => {
  await kubectlOk(kube, ['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
};
const policy = (rules: Array<{ name: string; effect: string }>) => ({
  apiVersion: 'warden.dev/v1alpha1',
  kind: 'AccessPolicy',
  metadata: { name: 'readers', namespace: ns },
  spec: { connections: ['app'], subjects: [{ kind: 'Group', name: 'dev' }], rules },
});
const configMapText = async (): Promise<string> =>
  (await client.get<{ data: Record<string, string> }>('ConfigMap', ns, 'app-gateway-config')).data[SIDECAR_CONFIG_KEY] ?? '';

function gatewayKubeConfig(token: string): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'plane', server: kube.server, caFile: kube.caFile }],
    users: [{ name: 'gateway', token }],
    contexts: [{ name: 'plane', cluster: 'plane', user: 'gateway' }],
    currentContext: 'plane',
  });
  return config;
}

function recorder() {
  const seen: Array<{ source: ConfigSource; config: SidecarConfig }> = [];
  const invalid: Array<{ source: ConfigSource; message: string }> = [];
  return {
    seen,
    invalid,
    onConfig: (config: SidecarConfig, source: ConfigSource) => void seen.push({ source, config }),
    onInvalid: (error: Error, source: ConfigSource) => void invalid.push({ source, message: error.message }),
  };
}

beforeAll(async () => {
  await kubectlOk(kube, ['apply', '--server-side', '-f', 'crds/']);
  await kubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await kubectlOk(kube, ['create', 'namespace', ns]);
  client = new KubeClient(kubeClient(kube));
  await apply(
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'app-credentials', namespace: ns }, stringData: { token: 't0ken' } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'unrelated', namespace: ns }, stringData: { key: 'value' } },
    { apiVersion: 'warden.dev/v1alpha1', kind: 'Connection', metadata: { name: 'app', namespace: ns }, spec: { protocol: 'http', target: { url: 'http://127.0.0.1:1' }, credentialsRef: { name: 'app-credentials' } } },
    policy([{ name: 'get', effect: 'Allow' }]),
  );
  controller = await startController({
    kubeConfig: kubeClient(kube),
    namespace: ns,
    settings: { image: 'warden:test', healthPort: 9090, oidc: { issuer: plane.oidc.issuer, audience: plane.oidc.audience } },
    log: silentLogger,
  });
  await waitUntil('ConfigMap rendered', async () => (await client.find('ConfigMap', ns, 'app-gateway-config')) !== undefined, { timeoutMs: 15_000 });
  // What kubelet would mount.
  writeFileSync(file, await configMapText());
});

afterAll(async () => {
  await Promise.all(watchers.map((w) => w.stop()));
  await controller?.stop();
  await kubectlOk(kube, ['delete', 'connections,accesspolicies', '--all', '-n', ns, '--wait=false']).catch(() => {});
  await kubectlOk(kube, ['delete', 'namespace', ns, '--wait=false']).catch(() => {});
});

describe('a gateway watching its configuration', () => {
  let token: string;

  it('may read its own ConfigMap and referenced Secrets, and nothing else', async () => {
    token = (await kubectlOk(kube, ['create', 'token', 'app-gateway', '-n', ns])).trim();
    const as = `--as=system:serviceaccount:${ns}:app-gateway`;
    const can = async (...args: string[]) => (await kubectl(kube, ['auth', 'can-i', as, '-n', ns, ...args])).stdout.trim();
    expect(await can('get', 'configmaps/app-gateway-config')).toBe('yes');
    expect(await can('get', 'configmaps/other')).toBe('no');
    expect(await can('get', 'secrets/app-credentials')).toBe('yes');
    expect(await can('get', 'secrets/unrelated')).toBe('no');
    expect(await can('list', 'secrets')).toBe('no');
    expect(await can('create', 'sessions.warden.dev')).toBe('yes');
    expect(await can('update', 'accessrequests.warden.dev/status')).toBe('no');
  });

  it('applies an AccessPolicy change through the API within 5 s, without restarting', async () => {
    const events = recorder();
    const watcher = new SidecarConfigWatcher({ file, api: { kubeConfig: gatewayKubeConfig(token), namespace: ns, configMap: 'app-gateway-config' }, ...events });
    watchers.push(watcher);
    const first = await watcher.start();
    expect(first.policies[0]?.spec.rules?.map((r) => r.name)).toEqual(['get']);
    await waitUntil('API watch connected', async () => watcher.apiHealthy, { timeoutMs: 5_000 });

    const began = Date.now();
    await apply(policy([{ name: 'get', effect: 'Allow' }, { name: 'no-delete', effect: 'Deny' }]));
    await waitUntil('new configuration', async () => events.seen.length > 0, { timeoutMs: 5_000 });
    const ms = Date.now() - began;
    expect(events.seen[0]?.source).toBe('api');
    expect(events.seen[0]?.config.policies[0]?.spec.rules?.map((r) => r.name)).toEqual(['get', 'no-delete']);
    expect(watcher.current?.hash).toBe(events.seen[0]?.config.hash);
    expect(ms).toBeLessThan(5_000);
    console.info(`policy change reached the watcher in ${ms} ms`);
  });

  it('learns of a Secret rotation (the document carries Secret versions)', async () => {
    const events = recorder();
    const watcher = new SidecarConfigWatcher({ file, api: { kubeConfig: gatewayKubeConfig(token), namespace: ns, configMap: 'app-gateway-config' }, ...events });
    watchers.push(watcher);
    await watcher.start();
    await waitUntil('API watch connected', async () => watcher.apiHealthy, { timeoutMs: 5_000 });
    const before = watcher.current?.secretVersions['app-credentials'];
    await apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'app-credentials', namespace: ns }, stringData: { token: 'rotated' } });
    await waitUntil('rotation seen', async () => (watcher.current?.secretVersions['app-credentials'] ?? before) !== before, { timeoutMs: 5_000 });
    // The new value at once through the API, where the mounted file (here: never refreshed) lags.
    const ref = watcher.current?.credentials.token;
    if (!ref) throw new Error('no token credential rendered');
    writeFileSync(join(dir, 'token'), 't0ken');
    const mounted = { ...ref, file: join(dir, 'token') };
    expect((await readSecretValue(mounted, { kubeConfig: gatewayKubeConfig(token), namespace: ns })).toString()).toBe('rotated');
    expect((await readSecretValue(mounted)).toString()).toBe('t0ken');
  });

  it('refuses a tampered document and keeps the current one', async () => {
    const events = recorder();
    const watcher = new SidecarConfigWatcher({ file, api: { kubeConfig: gatewayKubeConfig(token), namespace: ns, configMap: 'app-gateway-config' }, ...events });
    watchers.push(watcher);
    await watcher.start();
    await waitUntil('API watch connected', async () => watcher.apiHealthy, { timeoutMs: 5_000 });
    await waitUntil('caught up', async () => watcher.current?.hash === JSON.parse(await configMapText()).hash, { timeoutMs: 5_000 });
    const good = watcher.current?.hash;
    const tampered = JSON.parse(await configMapText()) as SidecarConfig;
    tampered.policies = [];
    // Someone edits the ConfigMap by hand (the controller will put it back on its next pass).
    await client.mergePatch('ConfigMap', ns, 'app-gateway-config', { data: { [SIDECAR_CONFIG_KEY]: JSON.stringify(tampered) } });
    await waitUntil('refused', async () => events.invalid.length > 0, { timeoutMs: 5_000 });
    expect(events.invalid[0]?.message).toContain('$.hash: does not match the content');
    expect(watcher.current?.hash).toBe(good);
  });

  it('falls back to the mounted file without API access', async () => {
    const events = recorder();
    const watcher = new SidecarConfigWatcher({ file, pollMs: 100, ...events });
    watchers.push(watcher);
    await watcher.start();
    await waitUntil('controller restored the ConfigMap', async () => JSON.parse(await configMapText()).policies.length === 1, { timeoutMs: 15_000 });
    writeFileSync(file, await configMapText());
    await waitUntil('file change seen', async () => events.seen.length > 0, { timeoutMs: 2_000 });
    expect(events.seen.at(-1)?.source).toBe('file');
  });
});
