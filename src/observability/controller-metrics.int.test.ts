// `warden controller` as a real subprocess against the plane's kube-apiserver, scoped to a
// namespace of its own: /metrics on its health port reports the reconciles, API requests and
// writes a Connection causes, and with an OTLP endpoint each reconcile is a span.

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { kubectlOk } from '../../test/plane/kubectl.ts';
import { freePort, ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { ControllerMetric, SpanAttribute, SpanName } from './names.ts';
import { type OtlpReceiver, otlpSpans, type Sample, sampleValue, scrape, startOtlpReceiver } from './test-support.ts';

const plane = inject('plane');
const kube = plane.kube;
const ns = `obs-ctrl-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const WARDEN = new URL('../cli/main.ts', import.meta.url).pathname;

let controller: ManagedProcess | undefined;
let receiver: OtlpReceiver | undefined;
let healthPort: number;

const metrics = async (): Promise<Sample[]> => await scrape(`http://127.0.0.1:${healthPort}/metrics`);
const sum = (samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

beforeAll(async () => {
  await kubectlOk(kube, ['apply', '--server-side', '-f', 'crds/']);
  await kubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await kubectlOk(kube, ['create', 'namespace', ns]);
  healthPort = await freePort();
  receiver = await startOtlpReceiver();
  controller = new ManagedProcess({
    name: 'warden-controller-metrics',
    command: NODE,
    args: [WARDEN, 'controller', '--kubeconfig', kube.kubeconfig, '--namespace', ns, '--health-port', String(healthPort), '--oidc-issuer', plane.oidc.issuer, '--oidc-audience', plane.oidc.audience],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' },
    logFile: join(process.env.WARDEN_TEST_LOG_DIR ?? plane.dir, `${ns}-controller.log`),
  });
  await waitUntil('warden controller /readyz', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200, { timeoutMs: 30_000, process: controller });
});

afterAll(async () => {
  await controller?.stop();
  await receiver?.close();
  await kubectlOk(kube, ['delete', 'connections,secrets', '--all', '-n', ns, '--wait=false']).catch(() => {});
  await kubectlOk(kube, ['delete', 'namespace', ns, '--wait=false']).catch(() => {});
});

describe('warden controller /metrics', () => {
  it('counts the reconciles, API requests and writes a new Connection causes', async () => {
    const before = await metrics();
    const reconcilesBefore = sum(before, ControllerMetric.Reconciles, { controller: 'connection' });
    expect(sum(before, ControllerMetric.ApiRequests)).toBeGreaterThan(0); // the informers' lists

    const objects = [
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'metrics-db', namespace: ns }, stringData: { username: 'u', password: 'p' } },
      {
        apiVersion: 'warden.dev/v1alpha1',
        kind: 'Connection',
        metadata: { name: 'metrics', namespace: ns },
        spec: { protocol: 'postgres', target: { host: plane.postgres.host, port: plane.postgres.port, tls: { mode: 'disable' } }, credentialsRef: { name: 'metrics-db' } },
      },
    ];
    await kubectlOk(kube, ['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });

    await waitUntil('a Connection reconcile counted', async () => sum(await metrics(), ControllerMetric.Reconciles, { controller: 'connection' }) > reconcilesBefore, { timeoutMs: 20_000 });
    const after = await metrics();
    expect(sum(after, ControllerMetric.Writes)).toBeGreaterThan(0);
    expect(sampleValue(after, `${ControllerMetric.ReconcileDuration}_count`, { controller: 'connection' })).toBeGreaterThan(0);
    expect(sum(after, ControllerMetric.ApiRequests, { verb: 'GET' }) + sum(after, ControllerMetric.ApiRequests, { verb: 'PATCH' })).toBeGreaterThan(0);

    // The same reconcile as a span, naming the controller and the object (OTLP endpoint set).
    const spans = (): ReturnType<typeof otlpSpans> => otlpSpans(receiver?.bodies ?? []).filter((s) => s.name === SpanName.Reconcile);
    await waitUntil('a reconcile span exported', async () => spans().some((s) => s.attributes[SpanAttribute.ObjectName] === 'metrics'), { timeoutMs: 10_000 });
    expect(spans().find((s) => s.attributes[SpanAttribute.ObjectName] === 'metrics')?.attributes).toMatchObject({
      [SpanAttribute.Controller]: 'connection',
      [SpanAttribute.Namespace]: ns,
    });
    expect(receiver?.raw.join('')).not.toContain('"password"');
  });
});
