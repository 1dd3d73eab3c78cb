/**
 * Leader election on a real API server's Leases, and the `warden controller` command as a real
 * subprocess: exactly one of two controllers leads; a graceful stop hands over at once (the
 * Lease is released); a killed leader is replaced once its Lease expires; JSON logs; health.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';
import { kubeClient, kubectlOk } from '../../test/plane/kubectl.ts';
import { freePort, ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { KubeClient } from './kube.ts';
import { silentLogger } from './log.ts';
import { type RunningController, startController } from './manager.ts';

const plane = inject('plane');
const kube = plane.kube;
const ns = `leader-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const MAIN = new URL('../cli/main.ts', import.meta.url).pathname;
let client: KubeClient;
const running: RunningController[] = [];
const processes: ManagedProcess[] = [];

const fast = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 300 };

async function candidate(leaseName: string): Promise<RunningController> {
  const controller = await startController({
    kubeConfig: kubeClient(kube),
    namespace: ns,
    settings: { image: 'warden:test', healthPort: 9090, oidc: { issuer: plane.oidc.issuer, audience: plane.oidc.audience } },
    leaderElection: { namespace: ns, name: leaseName, ...fast },
    log: silentLogger,
  });
  running.push(controller);
  return controller;
}

async function holder(leaseName: string): Promise<string | undefined> {
  const lease = await client.find<{ spec?: { holderIdentity?: string } }>('Lease', ns, leaseName);
  return lease?.spec?.holderIdentity || undefined;
}

const apply = async (...objects: unknown[]): Promise<void> => {
  await kubectlOk(kube, ['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
};

const connection = (name: string) => ({
  apiVersion: 'warden.dev/v1alpha1',
  kind: 'Connection',
  metadata: { name, namespace: ns },
  spec: { protocol: 'http', target: { url: 'http://127.0.0.1:1' } },
});

beforeAll(async () => {
  await kubectlOk(kube, ['apply', '--server-side', '-f', 'crds/']);
  await kubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd', '--all']);
  await kubectlOk(kube, ['create', 'namespace', ns]);
  client = new KubeClient(kubeClient(kube));
});

afterAll(async () => {
  await Promise.all(running.map((c) => c.stop()));
  await Promise.all(processes.map((p) => p.stop()));
  await kubectlOk(kube, ['delete', 'connections', '--all', '-n', ns, '--wait=false']).catch(() => {});
  await kubectlOk(kube, ['delete', 'namespace', ns, '--wait=false']).catch(() => {});
});

describe('leader election', () => {
  it('lets exactly one of two controllers lead, and hands over at once on a graceful stop', async () => {
    const [a, b] = [await candidate('pair'), await candidate('pair')];
    await waitUntil('a leader', async () => a.isLeader() || b.isLeader(), { timeoutMs: 10_000 });
    // Watch for a while: never two leaders, never a change of leader.
    const first = a.isLeader() ? a : b;
    const second = first === a ? b : a;
    for (let i = 0; i < 20; i++) {
      expect([a.isLeader(), b.isLeader()].filter(Boolean)).toHaveLength(1);
      expect(first.isLeader()).toBe(true);
      await sleep(100);
    }
    expect(await holder('pair')).toBe(first.identity);
    await first.active();
    expect(second.isActive()).toBe(false);

    const stoppedAt = Date.now();
    await first.stop();
    await waitUntil('handover', async () => second.isLeader(), { timeoutMs: 5_000 });
    // Released Lease: faster than waiting out the 3 s lease.
    expect(Date.now() - stoppedAt).toBeLessThan(2_500);
    expect(await holder('pair')).toBe(second.identity);
    await second.active();
    await apply(connection('after-handover'));
    await waitUntil('the new leader reconciles', async () => (await client.find('ConfigMap', ns, 'after-handover-gateway-config')) !== undefined, { timeoutMs: 10_000 });
    await second.stop();
  });
});

describe('warden controller (subprocess)', () => {
  let proc: ManagedProcess;
  let healthPort: number;
  let logFile: string;

  const start = async (name: string): Promise<ManagedProcess> => {
    healthPort = await freePort();
    logFile = join(plane.dir, `${ns}-${name}.log`);
    const p = new ManagedProcess({
      name,
      command: NODE,
      args: [
        MAIN, 'controller',
        '--kubeconfig', kube.kubeconfig,
        '--namespace', ns,
        '--leader-elect', '--lease-namespace', ns, '--lease-name', 'cli',
        '--lease-duration', '3s', '--renew-deadline', '2s', '--retry-period', '300ms',
        '--health-port', String(healthPort),
        '--oidc-issuer', plane.oidc.issuer, '--oidc-audience', plane.oidc.audience,
        '--image', 'warden:cli-test',
      ],
      logFile,
    });
    processes.push(p);
    return p;
  };

  it('runs from the CLI: health endpoints, leadership, reconciles, JSON logs', async () => {
    proc = await start('cli-1');
    await waitUntil('readyz', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200, { timeoutMs: 20_000, process: proc });
    expect((await fetch(`http://127.0.0.1:${healthPort}/healthz`)).status).toBe(200);
    await waitUntil('CLI holds the lease', async () => (await holder('cli'))?.includes(`_${proc.child.pid}_`) ?? false, { timeoutMs: 10_000, process: proc });
    await apply(connection('from-cli'));
    // The Deployment is applied after the ConfigMap: wait for the last one.
    await waitUntil('Deployment from the CLI controller', async () => (await client.find('Deployment', ns, 'from-cli-gateway')) !== undefined, { timeoutMs: 10_000, process: proc });
    const deployment = await client.get<{ spec: { template: { spec: { containers: Array<{ image: string }> } } } }>('Deployment', ns, 'from-cli-gateway');
    expect(deployment.spec.template.spec.containers[0]?.image).toBe('warden:cli-test');
    const lines = readFileSync(logFile, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThan(2);
    for (const line of lines) expect(() => JSON.parse(line), line).not.toThrow();
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(expect.arrayContaining(['became the leader', 'warden controller started']));
  });

  it('is replaced by another candidate once killed (the Lease expires)', async () => {
    const standby = await candidate('cli');
    await sleep(1_000);
    expect(standby.isLeader()).toBe(false);
    const killedAt = Date.now();
    process.kill(-(proc.child.pid as number), 'SIGKILL');
    await waitUntil('standby takes over', async () => standby.isLeader(), { timeoutMs: 10_000 });
    const took = Date.now() - killedAt;
    // Not before the 3 s lease has run out (measured from when the standby last saw it renewed).
    expect(took).toBeGreaterThan(2_000);
    expect(took).toBeLessThan(8_000);
    await standby.stop();
  });

  it('exits 0 on SIGTERM and releases the Lease', async () => {
    const p = await start('cli-2');
    await waitUntil('CLI leads', async () => (await holder('cli'))?.includes(`_${p.child.pid}_`) ?? false, { timeoutMs: 15_000, process: p });
    const exited = new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code)));
    p.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await holder('cli')).toBeUndefined();
  });
});
