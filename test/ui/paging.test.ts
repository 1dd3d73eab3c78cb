// Server-side paging of the session list against the real API server with thousands of Session
// objects: every matching session is returned exactly once across continue tokens, a connection
// filter becomes a label selector, and one request reads a bounded number of objects. Prints the
// latencies that docs/ui.md quotes.

import { randomBytes } from 'node:crypto';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kubeClient, kubectlOk } from '../plane/kubectl.ts';
import { API_VERSION, GROUP, RESOURCES, type Session, VERSION } from '../../src/api/types.ts';
import { CONNECTION_LABEL } from '../../src/recorder/session-objects.ts';
import type { Grants } from '../../src/ui/access.ts';
import { listSessions, type SessionFilter } from '../../src/ui/listing.ts';
import { KubeSource } from '../../src/ui/sources.ts';

const plane = inject('plane');
const namespace = `ui-paging-${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
const COUNT = Number(process.env.WARDEN_UI_PAGING_SESSIONS ?? 1_000);
const CONNECTIONS = 10;
let source: KubeSource;

const grants: Grants = {
  connections: new Set(Array.from({ length: CONNECTIONS }, (_, i) => `${namespace}/conn-${i}`)),
  policyOf: new Map(),
};

beforeAll(async () => {
  await kubectlOk(plane.kube, ['apply', '--server-side', '--force-conflicts', '--field-manager=ui-test', '-f', 'crds/']);
  await kubectlOk(plane.kube, ['create', 'namespace', namespace]);
  const api = kubeClient(plane.kube).makeApiClient(CustomObjectsApi);
  const began = Date.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < COUNT) {
      const i = next++;
      const connection = `conn-${i % CONNECTIONS}`;
      const body: Session = {
        apiVersion: API_VERSION,
        kind: 'Session',
        metadata: { name: `s-${String(i).padStart(6, '0')}`, namespace, labels: { [CONNECTION_LABEL]: connection } },
        spec: { connection, protocol: i % 2 === 0 ? 'postgres' : 'ssh', user: i % 100 === 7 ? 'rare-user' : `user-${i % 37}`, startedAt: new Date(Date.UTC(2026, 10, 1) + i * 60_000).toISOString() },
      };
      await api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: RESOURCES.Session.plural, body });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  console.log(`[ui paging] created ${COUNT} Session objects in ${Date.now() - began} ms`);
  source = new KubeSource(kubeClient(plane.kube));
}, 300_000);

afterAll(async () => {
  await kubectlOk(plane.kube, ['delete', 'namespace', namespace, '--wait=false']);
});

async function timed(filter: SessionFilter, limit: number, continueToken?: string): Promise<{ ms: number; result: Awaited<ReturnType<typeof listSessions>> }> {
  const began = performance.now();
  const result = await listSessions(source.fetchSessions, { filter: { namespace, ...filter }, grants, limit, ...(continueToken ? { continueToken } : {}) });
  return { ms: performance.now() - began, result };
}

describe(`session list paging over ${COUNT} Session objects in the real API server`, () => {
  it('returns the first page of 50 reading one API page', async () => {
    await timed({}, 50); // warm the client
    const { ms, result } = await timed({}, 50);
    console.log(`[ui paging] first page, no filter: ${ms.toFixed(1)} ms, ${result.scanned} objects read`);
    expect(result.items).toHaveLength(50);
    expect(result.scanned).toBe(50);
    expect(result.continue).toBeDefined();
  });

  it('uses a label selector for a connection filter and pages through all of its sessions exactly once', async () => {
    const names: string[] = [];
    let token: string | undefined;
    let requests = 0;
    let slowest = 0;
    do {
      const { ms, result } = await timed({ connection: 'conn-3' }, 100, token);
      slowest = Math.max(slowest, ms);
      requests += 1;
      expect(result.items.every((s) => s.connection === 'conn-3')).toBe(true);
      names.push(...result.items.map((s) => s.name));
      token = result.continue;
    } while (token);
    console.log(`[ui paging] connection filter (label selector): ${names.length} sessions in ${requests} requests, slowest ${slowest.toFixed(1)} ms`);
    expect(names).toHaveLength(COUNT / CONNECTIONS);
    expect(new Set(names).size).toBe(names.length);
  });

  it('finds rare sessions by user, within the scan budget per request', async () => {
    const names: string[] = [];
    let token: string | undefined;
    let requests = 0;
    let total = 0;
    do {
      const { ms, result } = await timed({ user: 'rare-user' }, 50, token);
      total += ms;
      requests += 1;
      expect(result.scanned).toBeLessThanOrEqual(5_000 + 500);
      names.push(...result.items.map((s) => s.name));
      token = result.continue;
    } while (token);
    console.log(`[ui paging] rare user filter: ${names.length} sessions in ${requests} requests, ${total.toFixed(1)} ms in all`);
    expect(names).toHaveLength(COUNT / 100);
  });
});
