// Controller benchmark: BENCH_CONNECTIONS Connections (default 1000) created at once against a
// real kube-apiserver + etcd (and MinIO for the RecordingPolicy), reconciled by the controller
// running in this process.
//
//   node_modules/.bin/node bench/controller.ts
//   BENCH_CONNECTIONS=200 node_modules/.bin/node bench/controller.ts
//
// Prints: time until every Connection is rendered and applied (six objects each, status
// written), counted from the first create and from the last; API requests the controller sent
// per Connection (by verb); the controller's memory (RSS and V8 heap after a GC; this process
// is the controller plus a little bench code); then the same for one AccessPolicy change that
// re-renders every Connection, and for a resync in which nothing changed.
// Run with --expose-gc for the heap figure after GC.

import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { Cache } from '../src/controller/informers.ts';
import { KubeClient, type KubeObject } from '../src/controller/kube.ts';
import { createLogger, silentLogger } from '../src/controller/log.ts';
import { startController } from '../src/controller/manager.ts';
import { startKube } from '../test/plane/kube.ts';
import { kubeClient, kubectlOk } from '../test/plane/kubectl.ts';
import { startMinio } from '../test/plane/minio.ts';

const N = Number(process.env.BENCH_CONNECTIONS ?? 1000);
const ns = 'bench';
const log = (m: string): void => void process.stderr.write(`[bench] ${m}\n`);
const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'));
const kube = await startKube(join(dir, 'kube'), log);
const minio = await startMinio(join(dir, 'minio'), log);

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

try {
  const info = kube.info;
  const apply = async (docs: unknown[]): Promise<void> => {
    await kubectlOk(info, ['apply', '--server-side', '--field-manager=bench', '-f', '-'], { input: docs.map((d) => stringify(d)).join('---\n') });
  };
  await kubectlOk(info, ['apply', '--server-side', '-f', 'crds/']);
  await kubectlOk(info, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await kubectlOk(info, ['create', 'namespace', ns]);
  await apply([
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'minio', namespace: ns }, stringData: { accessKeyId: minio.info.accessKey, secretAccessKey: minio.info.secretKey } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db', namespace: ns }, stringData: { username: 'u', password: 'p' } },
    { apiVersion: 'warden.dev/v1alpha1', kind: 'RecordingPolicy', metadata: { name: 'minio', namespace: ns }, spec: { connectionSelector: {}, storage: { s3: { endpoint: minio.info.endpoint, bucket: 'bench', credentialsSecretRef: { name: 'minio' } } } } },
    { apiVersion: 'warden.dev/v1alpha1', kind: 'AccessPolicy', metadata: { name: 'all', namespace: ns }, spec: { connectionSelector: {}, subjects: [{ kind: 'Group', name: 'dev' }], rules: [{ name: 'read', effect: 'Allow' }] } },
  ]);

  gc();
  const baseline = process.memoryUsage();
  const controller = await startController({
    kubeConfig: kubeClient(info),
    namespace: ns,
    settings: { image: 'warden:bench', healthPort: 9090, oidc: { issuer: 'https://idp.example.com', audience: 'warden' } },
    log: createLogger({ level: 'warn' }),
    resyncMs: 3_600_000,
  });
  await controller.active();
  // The bench watches (informers) rather than polling lists, so that observing costs the API
  // server next to nothing.
  const observer = new KubeClient(kubeClient(info));
  const configMaps = new Cache<KubeObject & { data?: Record<string, string> }>(observer, { kind: 'ConfigMap', namespace: ns, labelSelector: 'app.kubernetes.io/managed-by=warden-controller', log: silentLogger });
  const connections = new Cache<KubeObject & { status?: { conditions?: Array<{ type: string; status: string }> } }>(observer, { kind: 'Connection', namespace: ns, log: silentLogger });
  await Promise.all([configMaps.start(), connections.start()]);

  const allRendered = async (predicate: (config: string) => boolean): Promise<void> => {
    for (;;) {
      const rendered = connections.list(ns).filter((c) => c.status?.conditions?.some((x) => x.type === 'ConfigRendered' && x.status === 'True')).length;
      const matching = configMaps.list(ns).filter((cm) => predicate(cm.data?.['sidecar-config.json'] ?? '')).length;
      if (matching >= N && rendered >= N) return;
      await sleep(200);
    }
  };
  const snapshot = () => ({ total: controller.client.requests.total, byVerb: new Map(controller.client.requests.byVerb) });
  const delta = (before: ReturnType<typeof snapshot>) => {
    const verbs = [...controller.client.requests.byVerb].map(([verb, n]) => `${verb} ${((n - (before.byVerb.get(verb) ?? 0)) / N).toFixed(2)}`).join(', ');
    return `${((controller.client.requests.total - before.total) / N).toFixed(2)} per Connection (${verbs})`;
  };

  // 1. Create N Connections at once.
  const before = snapshot();
  const cpuBefore = process.cpuUsage();
  const began = Date.now();
  const docs = Array.from({ length: N }, (_, i) => ({
    apiVersion: 'warden.dev/v1alpha1',
    kind: 'Connection',
    metadata: { name: `db-${i}`, namespace: ns, labels: { team: `t${i % 10}` } },
    spec: { protocol: 'postgres', target: { host: `db-${i}.internal`, port: 5432 }, credentialsRef: { name: 'db' } },
  }));
  for (let i = 0; i < N; i += 250) await apply(docs.slice(i, i + 250));
  const created = Date.now();
  await allRendered((c) => c.length > 0);
  const done = Date.now();
  const cpu = process.cpuUsage(cpuBefore);
  await sleep(1_000);
  gc();
  const memory = process.memoryUsage();
  process.stdout.write(
    `\n${N} Connections (postgres), controller in-process, 4 workers, 2 cores shared with kube-apiserver + etcd:\n` +
      `  creating them (kubectl apply --server-side, 250 per call): ${((created - began) / 1000).toFixed(1)} s\n` +
      `  all rendered and applied (6 objects + status each): ${((done - began) / 1000).toFixed(1)} s after the first create, ${((done - created) / 1000).toFixed(1)} s after the last\n` +
      `  API requests: ${delta(before)}\n` +
      `  CPU of this process (controller + the bench's two informers): ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s, ${((cpu.user + cpu.system) / 1e3 / N).toFixed(1)} ms per Connection; load average during the run ${loadavg()[0]?.toFixed(1)}\n` +
      `  controller memory: RSS ${mib(memory.rss)} (${mib(memory.rss - baseline.rss)} over the bench process before start), V8 heap used ${mib(memory.heapUsed)}\n`,
  );

  // 2. One AccessPolicy change that touches every Connection.
  const beforePolicy = snapshot();
  const policyBegan = Date.now();
  await apply([{ apiVersion: 'warden.dev/v1alpha1', kind: 'AccessPolicy', metadata: { name: 'all', namespace: ns }, spec: { connectionSelector: {}, subjects: [{ kind: 'Group', name: 'dev' }], rules: [{ name: 'read', effect: 'Allow' }, { name: 'no-ddl', effect: 'Deny' }] } }]);
  await allRendered((c) => c.includes('"no-ddl"'));
  process.stdout.write(`  an AccessPolicy change re-rendered all ${N} ConfigMaps in ${((Date.now() - policyBegan) / 1000).toFixed(1)} s; API requests: ${delta(beforePolicy)}\n`);

  // 3. A resync with nothing to do.
  const beforeResync = snapshot();
  const resyncBegan = Date.now();
  controller.connections.resync();
  while (controller.connections.queue.length > 0) await sleep(50);
  await sleep(500);
  process.stdout.write(`  a resync with nothing changed: ${((Date.now() - resyncBegan) / 1000).toFixed(1)} s, API requests: ${delta(beforeResync)}\n\n`);
  await controller.stop();
  await Promise.all([configMaps.stop(), connections.stop()]);
  observer.close();
} finally {
  await minio.stop();
  await kube.stop();
  await rm(dir, { recursive: true, force: true });
}
