/**
 * Just-in-time approvals against the test plane's real API server: KubeApprovals running as a
 * gateway ServiceAccount (with the rendered Role's rights) creates and follows AccessRequests; the
 * ValidatingAdmissionPolicy from config/default decides who may write which decision (approvers
 * impersonated with kubectl --as/--as-group); `warden approve|deny|requests` and the kubectl plugin
 * `kubectl warden` run as real processes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AccessRequest } from '../api/types.ts';
import { capture } from '../../test/plane/proc.ts';
import { kubectl, kubectlOk } from '../../test/plane/kubectl.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeApprovals } from './kube.ts';
import type { ApprovalRequest } from './types.ts';
import { ApprovalWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhookSignature, type WebhookPayload } from './webhook.ts';

const plane = inject('plane');
const kube = plane.kube;
const ns = `approvals-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const GATEWAY = 'gw-orders';
const GATEWAY_USER = `system:serviceaccount:${ns}:${GATEWAY}`;
const REPO = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const work = mkdtempSync(join(tmpdir(), 'warden-approvals-'));

let gatewayConfig: KubeConfig;
let approvals: KubeApprovals;

const baseRequest = (over: Partial<ApprovalRequest> = {}): ApprovalRequest => ({
  requester: { user: 'bob@example.com', groups: ['developers'] },
  connection: 'orders-db',
  session: `sess-${randomBytes(3).toString('hex')}`,
  kind: 'Command',
  command: { protocol: 'postgres', text: 'DELETE FROM orders WHERE id = $1', parameters: ['42'] },
  policy: 'orders-policy',
  rule: 'deletes-need-approval',
  reason: 'deletes need a second pair of eyes',
  approvers: [
    { kind: 'User', name: 'alice@example.com' },
    { kind: 'Group', name: 'db-admins' },
  ],
  timeoutMs: 60_000,
  ...over,
});

/** kubectl as an impersonated user (the plane's admin may impersonate). */
const as = (user: string, groups: string[] = []): string[] => [`--as=${user}`, ...groups.map((g) => `--as-group=${g}`)];

const patchStatus = async (impersonate: string[], name: string, status: Record<string, unknown>): Promise<{ code: number; stderr: string }> =>
  await kubectl(kube, [...impersonate, 'patch', 'accessrequest', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })], { namespace: ns });

const decision = (user: string, d: 'Approved' | 'Denied', extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  decision: d,
  decidedBy: user,
  decidedAt: new Date().toISOString(),
  ...extra,
});

const getRequest = async (name: string): Promise<AccessRequest> =>
  JSON.parse(await kubectlOk(kube, ['get', 'accessrequest', name, '-o', 'json'], { namespace: ns })) as AccessRequest;

/** A kubeconfig file with a bearer token (the gateway's ServiceAccount token). */
function tokenKubeconfig(file: string, token: string): string {
  const admin = readFileSync(kube.kubeconfig, 'utf8');
  const ca = /certificate-authority-data:\s*(\S+)/.exec(admin)?.[1];
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'plane', cluster: { server: kube.server, ...(ca ? { 'certificate-authority-data': ca } : { 'certificate-authority': kube.caFile }) } }],
    users: [{ name: 'gw', user: { token } }],
    contexts: [{ name: 'gw', context: { cluster: 'plane', user: 'gw', namespace: ns } }],
    'current-context': 'gw',
  };
  writeFileSync(file, JSON.stringify(config));
  return file;
}

beforeAll(async () => {
  await kubectlOk(kube, ['apply', '--server-side', '--force-conflicts', '--field-manager=warden-approvals-test', `--filename=${join(REPO, 'crds')}`]);
  await kubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/accessrequests.warden.dev']);
  await kubectlOk(kube, ['apply', '--server-side', '--force-conflicts', '--field-manager=warden-approvals-test', `--filename=${join(REPO, 'config/default/approvals.yaml')}`]);
  await kubectlOk(kube, ['create', 'namespace', ns]);
  // The gateway's ServiceAccount with the AccessRequest rules of the rendered Role (src/controller/render.ts).
  await kubectlOk(kube, ['create', 'serviceaccount', GATEWAY], { namespace: ns });
  await kubectlOk(kube, ['apply', '-f', '-'], {
    namespace: ns,
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'Role',
          metadata: { name: GATEWAY, namespace: ns },
          rules: [
            { apiGroups: ['warden.dev'], resources: ['accessrequests'], verbs: ['create', 'get', 'list', 'watch'] },
            { apiGroups: ['warden.dev'], resources: ['accessrequests/status'], verbs: ['get', 'update', 'patch'] },
          ],
        },
        {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: GATEWAY, namespace: ns },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: GATEWAY },
          subjects: [{ kind: 'ServiceAccount', name: GATEWAY, namespace: ns }],
        },
        {
          // Everybody in this test may act as an approver as far as RBAC goes: the admission policy decides.
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'RoleBinding',
          metadata: { name: 'approvers', namespace: ns },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'warden-approver' },
          subjects: [{ kind: 'Group', name: 'system:authenticated', apiGroup: 'rbac.authorization.k8s.io' }],
        },
      ],
    }),
  });
  const token = (await kubectlOk(kube, ['create', 'token', GATEWAY, '--duration=1h'], { namespace: ns })).trim();
  gatewayConfig = new KubeConfig();
  gatewayConfig.loadFromFile(tokenKubeconfig(join(work, 'gateway.kubeconfig'), token));
  approvals = new KubeApprovals(gatewayConfig, { namespace: ns, retryMs: 200 });
});

afterAll(async () => {
  await approvals?.close();
  await kubectl(kube, ['delete', 'namespace', ns, '--wait=false']);
});

describe('KubeApprovals on a real API server, as the gateway ServiceAccount', () => {
  it('creates the AccessRequest with the spec, labels and approvers, and resolves Approved when an approver decides', async () => {
    const handle = await approvals.request(baseRequest());
    expect(handle.name).toMatch(/^orders-db-[a-z0-9]+$/);
    const created = await getRequest(handle.name);
    expect(created.spec).toMatchObject({
      requester: { user: 'bob@example.com', groups: ['developers'] },
      connection: 'orders-db',
      kind: 'Command',
      command: { protocol: 'postgres', text: 'DELETE FROM orders WHERE id = $1', parameters: ['42'] },
      rule: 'deletes-need-approval',
      approvers: [{ kind: 'User', name: 'alice@example.com' }, { kind: 'Group', name: 'db-admins' }],
    });
    expect(created.metadata.labels?.['warden.dev/connection']).toBe('orders-db');

    const result = await patchStatus(as('alice@example.com'), handle.name, decision('alice@example.com', 'Approved', { comment: 'go ahead' }));
    expect(result.stderr).toBe('');
    expect(await handle.outcome).toEqual({ decision: 'Approved', request: handle.name, decidedBy: 'alice@example.com', comment: 'go ahead' });

    // findApproved: the same requester and exact command (with parameters) is covered; anything else is not.
    const query = { requester: { user: 'bob@example.com', groups: [] }, connection: 'orders-db', kind: 'Command' as const, command: baseRequest().command };
    expect((await approvals.findApproved(query))?.request).toBe(handle.name);
    expect(await approvals.findApproved({ ...query, requester: { user: 'mallory@example.com', groups: [] } })).toBeUndefined();
    expect(await approvals.findApproved({ ...query, command: { protocol: 'postgres', text: 'DELETE FROM orders WHERE id = $1', parameters: ['43'] } })).toBeUndefined();
    expect(await approvals.findApproved({ ...query, connection: 'other-db' })).toBeUndefined();
  });

  it('resolves Denied with the approver (a Group subject) and comment', async () => {
    const handle = await approvals.request(baseRequest());
    const result = await patchStatus(as('carol@example.com', ['db-admins']), handle.name, decision('carol@example.com', 'Denied', { comment: 'not during the sale' }));
    expect(result.stderr).toBe('');
    expect(await handle.outcome).toEqual({ decision: 'Denied', request: handle.name, decidedBy: 'carol@example.com', comment: 'not during the sale' });
  });

  it('expires: the gateway writes Expired at the deadline, and a late approval is refused', async () => {
    const started = Date.now();
    const handle = await approvals.request(baseRequest({ timeoutMs: 1500 }));
    expect(await handle.outcome).toEqual({ decision: 'Expired', request: handle.name });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect((await getRequest(handle.name)).status?.decision).toBe('Expired');
    const late = await patchStatus(as('alice@example.com'), handle.name, decision('alice@example.com', 'Approved'));
    expect(late.code).not.toBe(0);
    expect(late.stderr).toContain('final');
  });

  it('withdraw() marks the request Withdrawn (idempotent); approving it afterwards is refused', async () => {
    const handle = await approvals.request(baseRequest());
    await Promise.all([handle.withdraw(), handle.withdraw()]);
    expect(await handle.outcome).toEqual({ decision: 'Withdrawn', request: handle.name });
    expect((await getRequest(handle.name)).status?.decision).toBe('Withdrawn');
    const late = await patchStatus(as('alice@example.com'), handle.name, decision('alice@example.com', 'Approved'));
    expect(late.code).not.toBe(0);
  });

  it('Session kind: approved access lasts spec.duration after the decision', async () => {
    const handle = await approvals.request(baseRequest({ kind: 'Session', command: undefined, durationMs: 15 * 60_000 }) as ApprovalRequest);
    expect((await getRequest(handle.name)).spec.duration).toBe('900s');
    // Another replica (its own KubeApprovals) finds the waiting request instead of creating a second.
    const replica = new KubeApprovals(gatewayConfig, { namespace: ns });
    const bob = { requester: { user: 'bob@example.com', groups: [] }, connection: 'orders-db' };
    expect(await replica.findWaiting(bob)).toBe(handle.name);
    expect(await replica.findWaiting({ ...bob, connection: 'other-db' })).toBeUndefined();
    await patchStatus(as('alice@example.com'), handle.name, decision('alice@example.com', 'Approved'));
    const outcome = await handle.outcome;
    expect(outcome.decision).toBe('Approved');
    const until = outcome.decision === 'Approved' ? outcome.expiresAt?.getTime() ?? 0 : 0;
    expect(until - Date.now()).toBeGreaterThan(14 * 60_000);
    const found = await approvals.findApproved({ requester: { user: 'bob@example.com', groups: [] }, connection: 'orders-db', kind: 'Session' });
    expect(found?.request).toBe(handle.name);
    expect(await replica.findWaiting(bob)).toBeUndefined();
  });

  it('request() rejects when the AccessRequest cannot be created (no RBAC)', async () => {
    const other = new KubeApprovals(gatewayConfig, { namespace: 'default' });
    await expect(other.request(baseRequest())).rejects.toMatchObject({ code: 'WARDEN_APPROVAL_CREATE' });
  });
});

describe('the admission policy (config/default/approvals.yaml) with impersonated users', () => {
  it('refuses self-approval, a non-approver, decidedBy spoofing, a gateway approving, and a person marking Expired', async () => {
    const handle = await approvals.request(baseRequest({ approvers: [{ kind: 'User', name: 'alice@example.com' }, { kind: 'User', name: 'bob@example.com' }] }));
    const self = await patchStatus(as('bob@example.com', ['developers']), handle.name, decision('bob@example.com', 'Approved'));
    expect(self.code).not.toBe(0);
    expect(self.stderr).toContain('the requester cannot decide their own AccessRequest');

    const stranger = await patchStatus(as('mallory@example.com', ['developers']), handle.name, decision('mallory@example.com', 'Approved'));
    expect(stranger.code).not.toBe(0);
    expect(stranger.stderr).toContain('only the approvers listed in spec.approvers may decide this AccessRequest');

    const spoof = await patchStatus(as('alice@example.com'), handle.name, decision('dave@example.com', 'Approved'));
    expect(spoof.code).not.toBe(0);
    expect(spoof.stderr).toContain('status.decidedBy must be the username of the user writing the decision');

    const gateway = await patchStatus(as(GATEWAY_USER, ['system:serviceaccounts', `system:serviceaccounts:${ns}`]), handle.name, decision(GATEWAY_USER, 'Approved'));
    expect(gateway.code).not.toBe(0);
    expect(gateway.stderr).toMatch(/may not approve or deny|only the approvers/);

    const personExpires = await patchStatus(as('alice@example.com'), handle.name, { decision: 'Expired', decidedAt: new Date().toISOString() });
    expect(personExpires.code).not.toBe(0);
    expect(personExpires.stderr).toContain('only the Warden gateway of this namespace may mark an AccessRequest Expired or Withdrawn');

    const noDecision = await patchStatus(as('alice@example.com'), handle.name, { comment: 'hm' });
    expect(noDecision.code).not.toBe(0);
    expect(noDecision.stderr).toContain('must set status.decision');

    expect((await getRequest(handle.name)).status?.decision).toBeUndefined();
    const ok = await patchStatus(as('alice@example.com'), handle.name, decision('alice@example.com', 'Approved'));
    expect(ok.stderr).toBe('');
    expect((await handle.outcome).decision).toBe('Approved');

    // Final: neither another approver nor the same one can change it.
    const flip = await patchStatus(as('alice@example.com'), handle.name, decision('alice@example.com', 'Denied'));
    expect(flip.code).not.toBe(0);
    expect(flip.stderr).toMatch(/final/);
  });

  it('lets only a ServiceAccount of the namespace create AccessRequests', async () => {
    const manifest = JSON.stringify({
      apiVersion: 'warden.dev/v1alpha1',
      kind: 'AccessRequest',
      metadata: { generateName: 'forged-', namespace: ns },
      spec: { requester: { user: 'bob@example.com' }, connection: 'orders-db', kind: 'Command', command: { protocol: 'postgres', text: 'DROP TABLE orders' }, expiresAt: new Date(Date.now() + 60_000).toISOString(), approvers: [{ kind: 'User', name: 'mallory@example.com' }] },
    });
    // RBAC lets this user create (a generous ClusterRole), the policy still refuses.
    await kubectlOk(kube, ['create', 'rolebinding', 'creator', '--clusterrole=edit', '--user=mallory@example.com'], { namespace: ns });
    await kubectlOk(kube, ['create', 'clusterrole', `${ns}-creator`, '--verb=create,get,patch,update', '--resource=accessrequests.warden.dev']);
    await kubectlOk(kube, ['create', 'rolebinding', 'creator2', `--clusterrole=${ns}-creator`, '--user=mallory@example.com'], { namespace: ns });
    const forged = await kubectl(kube, [...as('mallory@example.com'), 'create', '-f', '-'], { namespace: ns, input: manifest });
    expect(forged.code).not.toBe(0);
    expect(forged.stderr).toContain('only Warden gateways (ServiceAccounts of this namespace) create AccessRequests');
    // Nor may they change the one-line command approvers read in `kubectl get accessrequests`.
    const real = await approvals.request(baseRequest());
    expect((await getRequest(real.name)).metadata.annotations?.['warden.dev/command']).toBe('DELETE FROM orders WHERE id = $1');
    const relabel = await kubectl(kube, [...as('mallory@example.com'), 'annotate', '--overwrite', 'accessrequest', real.name, 'warden.dev/command=SELECT 1'], { namespace: ns });
    expect(relabel.code).not.toBe(0);
    expect(relabel.stderr).toContain('the warden.dev/command annotation is the command approvers read');
    await real.withdraw();
    await kubectl(kube, ['delete', 'clusterrole', `${ns}-creator`]);
  });
});

// Each CLI run starts a Node process: give these room on a busy two-core machine.
describe('warden requests|approve|deny and kubectl warden', { timeout: 240_000 }, () => {
  const env = (): NodeJS.ProcessEnv => {
    const { KUBECONFIG: _, ...rest } = process.env;
    return { ...rest, PATH: [join(REPO, 'bin'), dirname(process.execPath), rest.PATH ?? ''].join(delimiter) };
  };
  const warden = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    await capture(process.execPath, [join(REPO, 'bin/warden.js'), ...args, `--kubeconfig=${kube.kubeconfig}`, '-n', ns], { env: env() });
  const kubectlWarden = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    await capture(kube.kubectl, ['warden', ...args, `--kubeconfig=${kube.kubeconfig}`, '-n', ns], { env: env() });

  it('lists pending requests, approves as the caller (decidedBy from SelfSubjectReview), and explains refusals', async () => {
    const handle = await approvals.request(baseRequest({ timeoutMs: 600_000, command: { protocol: 'postgres', text: 'UPDATE orders SET status = \'void\'   WHERE placed < now() - interval \'1 year\'' } }));
    const list = await warden(['requests']);
    expect(list.stderr).toBe('');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/NAME\s+REQUESTER\s+CONNECTION\s+COMMAND\s+AGE/);
    expect(list.stdout).toContain(handle.name);
    expect(list.stdout).toContain("UPDATE orders SET status = 'void' WHERE placed < …");

    const self = await warden(['approve', handle.name, '--as=bob@example.com']);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('the requester cannot decide their own AccessRequest');

    const stranger = await kubectlWarden(['approve', handle.name, '--as=mallory@example.com']);
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toContain('only the approvers listed in spec.approvers may decide this AccessRequest');

    const ok = await kubectlWarden(['approve', handle.name, '--as=alice@example.com', '--comment', 'once']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`accessrequest.warden.dev/${handle.name} approved by alice@example.com`);
    expect(await handle.outcome).toEqual({ decision: 'Approved', request: handle.name, decidedBy: 'alice@example.com', comment: 'once' });

    const again = await warden(['deny', handle.name, '--as=alice@example.com']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`AccessRequest ${handle.name} is already decided: Approved by alice@example.com`);

    const missing = await warden(['deny', 'no-such-request']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`AccessRequest no-such-request not found in namespace ${ns}`);

    const pending = await warden(['requests']);
    expect(pending.stdout).not.toContain(handle.name);
    const all = await warden(['requests', '--all']);
    expect(all.stdout).toContain(handle.name);
  });

  it('denies with a comment through the kubectl plugin; kubectl get shows the printer columns', async () => {
    const handle = await approvals.request(baseRequest({ timeoutMs: 600_000 }));
    const denied = await kubectlWarden(['deny', handle.name, '--as=alice@example.com', '-m', 'use the archive job']);
    expect(denied.code).toBe(0);
    expect(await handle.outcome).toMatchObject({ decision: 'Denied', decidedBy: 'alice@example.com', comment: 'use the archive job' });
    const table = await kubectlOk(kube, ['get', 'accessrequests', handle.name], { namespace: ns });
    expect(table).toMatch(/NAME\s+REQUESTER\s+CONNECTION\s+COMMAND\s+DECISION\s+AGE/);
    expect(table).toMatch(/bob@example\.com\s+orders-db\s+DELETE FROM orders WHERE id = \$1\s+Denied/);
  });
});

describe('the approval webhook', () => {
  it('is called, signed, when a request is created and when it is decided; a receiver verifies the signature and refuses a tampered body', async () => {
    const secret = randomBytes(24).toString('hex');
    const received: Array<{ payload: WebhookPayload; valid: boolean; tampered: boolean; replayed: boolean }> = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const headers = { signature: req.headers[SIGNATURE_HEADER] as string | undefined, timestamp: req.headers[TIMESTAMP_HEADER] as string | undefined };
        received.push({
          payload: JSON.parse(body) as WebhookPayload,
          valid: verifyWebhookSignature(secret, headers, body),
          tampered: verifyWebhookSignature(secret, headers, body.replace('orders-db', 'other-db')),
          replayed: verifyWebhookSignature(secret, headers, body, Math.floor(Date.now() / 1000) + 3600),
        });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const webhook = new ApprovalWebhook({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/warden`, secret });
      const notifying = new KubeApprovals(gatewayConfig, { namespace: ns, retryMs: 200, notify: webhook.notify });
      const handle = await notifying.request(baseRequest());
      await patchStatus(as('alice@example.com'), handle.name, decision('alice@example.com', 'Approved', { comment: 'ok' }));
      await handle.outcome;
      await webhook.idle();
      expect(received.map((r) => [r.payload.type, r.valid, r.tampered, r.replayed])).toEqual([
        ['accessrequest.created', true, false, false],
        ['accessrequest.decided', true, false, false],
      ]);
      expect(received[0]!.payload).toMatchObject({ name: handle.name, namespace: ns, requester: 'bob@example.com', connection: 'orders-db', command: { text: 'DELETE FROM orders WHERE id = $1' } });
      expect(received[0]!.payload.text).toContain(`kubectl warden approve ${handle.name} -n ${ns}`);
      expect(received[1]!.payload).toMatchObject({ decision: 'Approved', decidedBy: 'alice@example.com', comment: 'ok' });
    } finally {
      server.close();
    }
  });
});
