// Just-in-time approvals through the Kubernetes flavour of the HTTP gateway (issue 8): real kubectl
// and curl in front, the plane's API server behind, and the real KubeApprovals against the same
// API server; approvers decide by writing the AccessRequest's status with kubectl.
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AccessRequest } from '../../api/types.ts';
import { kubeClient, kubectl, kubectlOk } from '../../../test/plane/kubectl.ts';
import { capture } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import { selfSignedCert } from '../postgres/testing.ts';
import { approvalsPlane, type ApprovalsPlane } from '../approval-test-support.ts';
import { HttpGateway, MAX_HELD_BODY_BYTES } from './gateway.ts';
import { type EchoUpstream, engineOf, type MemoryRecorder, startEchoUpstream, recordingInto } from './testing.ts';

const plane = inject('plane');
const BOSS = 'boss@example.com';
const WAIT_MS = 3_000;

const policy = engineOf(
  {
    name: 'ops',
    spec: {
      subjects: [{ kind: 'Group', name: 'ops' }],
      approvers: [{ kind: 'User', name: BOSS }],
      approvalTimeout: '60s',
      rules: [
        { name: 'deletes', effect: 'RequireApproval', kubernetes: { verbs: ['delete'], resources: ['configmaps'] } },
        { name: 'read', effect: 'Allow', kubernetes: { verbs: ['get', 'list', 'watch'], resources: ['configmaps', 'namespaces'] } },
      ],
    },
  },
  {
    name: 'hasty',
    spec: {
      subjects: [{ kind: 'Group', name: 'hasty' }],
      approvers: [{ kind: 'User', name: BOSS }],
      approvalTimeout: '1s',
      rules: [{ name: 'deletes', effect: 'RequireApproval', kubernetes: { verbs: ['delete'], resources: ['configmaps'] } }],
    },
  },
  {
    name: 'jit',
    spec: {
      subjects: [{ kind: 'Group', name: 'oncall' }],
      approvers: [{ kind: 'User', name: BOSS }],
      sessionApproval: { required: true, maxDuration: '6s' },
      rules: [{ name: 'read', effect: 'Allow', kubernetes: { verbs: ['get', 'list', 'watch'], resources: ['configmaps'] } }],
    },
  },
);

let gateway: HttpGateway;
let dir: string;
let ap: ApprovalsPlane;
let ns: string;
const recorders: MemoryRecorder[] = [];

function adminUpstreamTls(): { mode: 'verify-full'; ca: string; cert: string; key: string } {
  const admin = kubeClient(plane.kube);
  const b64 = (value: string | undefined): string => Buffer.from(value ?? '', 'base64').toString('utf8');
  return { mode: 'verify-full', ca: b64(admin.getCurrentCluster()?.caData), cert: b64(admin.getCurrentUser()?.certData), key: b64(admin.getCurrentUser()?.keyData) };
}

async function kubectlAs(user: string, groups: string[], args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  const token = await mintToken(plane.oidc, { user, groups });
  const file = join(dir, `kubeconfig-${user}`);
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'warden', cluster: { server: gateway.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: 'warden', context: { cluster: 'warden', user, namespace: ns } }],
      'current-context': 'warden',
    }),
  );
  const { KUBECONFIG: _, ...env } = process.env;
  return await capture(plane.kube.kubectl, [`--kubeconfig=${file}`, `--cache-dir=${join(dir, 'cache')}`, ...args], { env });
}

/** The request line, or the line with the digest of the body it carried (kubectl sends DeleteOptions). */
const sameLine = (r: AccessRequest, line: string): boolean => r.spec.command?.text === line || (r.spec.command?.text ?? '').startsWith(`${line} (body `);
const pendingFor = (line: string) => (r: AccessRequest): boolean => sameLine(r, line) && r.status?.decision === undefined;
const deleteLine = (name: string): string => `DELETE /api/v1/namespaces/${ns}/configmaps/${name}`;
const exists = async (name: string): Promise<boolean> => (await kubectl(plane.kube, ['get', 'configmap', name], { namespace: ns })).code === 0;

beforeAll(async () => {
  expect(policy.problems).toEqual([]);
  dir = await mkdtemp(join(tmpdir(), 'warden-http-approvals-'));
  ap = await approvalsPlane(plane, 'http-approvals');
  ns = ap.namespace;
  gateway = await HttpGateway.start({
    connection: `${ns}/cluster-jit`,
    flavour: 'kubernetes',
    listen: { host: '127.0.0.1', port: 0 },
    tls: await selfSignedCert(),
    upstream: { url: plane.kube.server, tls: adminUpstreamTls() },
    verifier: new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience }),
    policy,
    approvals: ap.approvals,
    approvalWaitMs: WAIT_MS,
    recorder: recordingInto(() => recorders),
  });
  for (const name of ['doomed', 'quick', 'kept', 'abandoned', 'rushed']) {
    await kubectlOk(plane.kube, ['create', 'configmap', name, '--from-literal=a=b'], { namespace: ns });
  }
});

afterAll(async () => {
  await gateway?.close();
  await ap?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Kubernetes requests held for approval', () => {
  it('answers 403 naming the request after the bounded wait; the retry after approval goes through', async () => {
    const started = Date.now();
    const first = await kubectlAs('kim', ['ops'], ['delete', 'configmap', 'doomed']);
    const waited = Date.now() - started;
    expect(first.code).not.toBe(0);
    const request = await ap.waitFor('the AccessRequest', pendingFor(deleteLine('doomed')));
    const name = request.metadata.name ?? '';
    expect(first.stderr).toContain(`Error from server (Forbidden): waiting for approval: request ${name} (ops/deletes); retry this exact request once it is approved`);
    expect(waited).toBeGreaterThanOrEqual(WAIT_MS);
    expect(request.spec).toMatchObject({ requester: { user: 'kim@example.com' }, connection: 'cluster-jit', kind: 'Command', command: { protocol: 'kubernetes' }, policy: 'ops', rule: 'deletes' });
    expect(await exists('doomed')).toBe(true);

    await ap.decide(name, 'Approved', BOSS, 'clean-up');
    const retry = await kubectlAs('kim', ['ops'], ['delete', 'configmap', 'doomed']);
    expect(retry.stderr).toBe('');
    expect(retry.stdout).toContain('configmap "doomed" deleted');
    expect(await exists('doomed')).toBe(false);
    // The retry did not create another request.
    expect((await ap.list()).filter((r) => sameLine(r, deleteLine('doomed')))).toHaveLength(1);
    const requests = recorders.flatMap((r) => r.of('http.request')).filter((r) => r.method === 'DELETE' && r.url.endsWith('/configmaps/doomed'));
    expect(requests.map((r) => r.decision)).toEqual(['approval', 'approval']);
    const approvals = recorders.flatMap((r) => r.of('approval')).filter((e) => e.request === `${ns}/${name}`);
    expect(approvals.map((e) => e.state)).toEqual(['pending', 'approved']);
  });

  it('forwards at once when approved within the wait', async () => {
    const pending = kubectlAs('kim', ['ops'], ['delete', 'configmap', 'quick']);
    const request = await ap.waitFor('the AccessRequest', pendingFor(deleteLine('quick')), WAIT_MS);
    await ap.decide(request.metadata.name ?? '', 'Approved', BOSS);
    const result = await pending;
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('configmap "quick" deleted');
  });

  it('tells the retry who denied it', async () => {
    const first = await kubectlAs('kim', ['ops'], ['delete', 'configmap', 'kept']);
    expect(first.stderr).toContain('waiting for approval');
    const request = await ap.waitFor('the AccessRequest', pendingFor(deleteLine('kept')));
    await ap.decide(request.metadata.name ?? '', 'Denied', BOSS, 'we still need it');
    // The gateway learns the decision from its watch.
    await new Promise((r) => setTimeout(r, 500));
    const retry = await kubectlAs('kim', ['ops'], ['delete', 'configmap', 'kept']);
    expect(retry.code).not.toBe(0);
    expect(retry.stderr).toContain(`Error from server (Forbidden): DELETE ${deleteLine('kept').slice(7)} was denied by ${BOSS} (request ${request.metadata.name}: we still need it)`);
    expect(await exists('kept')).toBe(true);
  });

  it('refuses when the request expires without a decision', async () => {
    const result = await kubectlAs('hank', ['hasty'], ['delete', 'configmap', 'rushed']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/was not approved in time: request \S+ expired/);
    expect(await exists('rushed')).toBe(true);
  });

  it('withdraws the request when the client gives up before any answer', async () => {
    const token = await mintToken(plane.oidc, { user: 'kim', groups: ['ops'] });
    const url = `${gateway.url}/api/v1/namespaces/${ns}/configmaps/abandoned`;
    const curl = await capture('curl', ['-sk', '--max-time', '1', '-X', 'DELETE', '-H', `Authorization: Bearer ${token}`, url]);
    expect(curl.code).toBe(28);
    const request = await ap.waitFor('the withdrawn request', (r) => sameLine(r, deleteLine('abandoned')) && r.status?.decision === 'Withdrawn', 10_000);
    expect(request.status?.decision).toBe('Withdrawn');
    expect(await exists('abandoned')).toBe(true);
  });
});

describe('plain HTTP requests held for approval (curl)', () => {
  let http: HttpGateway;
  let echo: EchoUpstream;
  const startPayments = async (approvalWaitMs: number): Promise<HttpGateway> =>
    await HttpGateway.start({
      connection: `${ns}/payments`,
      flavour: 'http',
      listen: { host: '127.0.0.1', port: 0 },
      upstream: { url: echo.url },
      verifier: new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience }),
      policy: engineOf({
        name: 'payments',
        spec: {
          subjects: [{ kind: 'Group', name: 'finance' }],
          approvers: [{ kind: 'User', name: BOSS }],
          rules: [
            { name: 'transfers', effect: 'RequireApproval', http: { methods: ['POST'], paths: ['/transfer'] } },
            { name: 'rest', effect: 'Allow' },
          ],
        },
      }),
      approvals: ap.approvals,
      approvalWaitMs,
    });
  beforeAll(async () => {
    echo = await startEchoUpstream();
    http = await startPayments(1_000);
  });
  afterAll(async () => {
    await http?.close();
    await echo?.close();
  });

  it('answers a JSON 403 naming the request, with the reason header stored; the retry after approval reaches the target once', async () => {
    const token = await mintToken(plane.oidc, { user: 'fay', groups: ['finance'] });
    const post = async (): Promise<{ code: number; stdout: string }> =>
      await capture('curl', ['-s', '-w', '\n%{http_code}', '-X', 'POST', '-H', `Authorization: Bearer ${token}`, '-H', 'X-Warden-Reason: refund for order 7', '--data', 'amount=10', `${http.url}/transfer`]);
    const first = await post();
    const lines = first.stdout.trim().split('\n');
    const [body, status] = [lines[0], lines.at(-1)];
    expect(status).toBe('403');
    const error = (JSON.parse(body ?? '{}') as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('WARDEN_HTTP_APPROVAL_PENDING');
    const request = await ap.waitFor('the AccessRequest', pendingFor('POST /transfer'));
    expect(error.message).toContain(`waiting for approval: request ${request.metadata.name} (payments/transfers)`);
    const digest = createHash('sha256').update('amount=10').digest('hex');
    expect(request.spec).toMatchObject({ connection: 'payments', reason: 'refund for order 7', command: { protocol: 'http', text: `POST /transfer (body 9 bytes, sha256:${digest})` } });
    expect(echo.requests.filter((r) => r.url === '/transfer')).toHaveLength(0);

    await ap.decide(request.metadata.name ?? '', 'Approved', BOSS);
    const retry = await post();
    expect(retry.stdout.trim().split('\n').at(-1)).toBe('200');
    expect(echo.requests.filter((r) => r.url === '/transfer')).toEqual([expect.objectContaining({ method: 'POST', bodyBytes: 9 })]);

    // The approval is used up: the same request again, within the command window, is held again
    // under a new AccessRequest and does not reach the target.
    const again = await post();
    const [againBody, againStatus] = [again.stdout.trim().split('\n')[0], again.stdout.trim().split('\n').at(-1)];
    expect(againStatus).toBe('403');
    const againError = (JSON.parse(againBody ?? '{}') as { error: { code: string; message: string } }).error;
    expect(againError.code).toBe('WARDEN_HTTP_APPROVAL_PENDING');
    expect(againError.message).not.toContain(`request ${request.metadata.name} `);
    expect((await ap.list()).filter((r) => r.spec.command?.text === request.spec.command?.text)).toHaveLength(2);
    expect(echo.requests.filter((r) => r.url === '/transfer')).toHaveLength(1);
  });
  it('lets one of two identical requests waiting on the same AccessRequest through, not both', async () => {
    const patient = await startPayments(15_000);
    try {
      const token = await mintToken(plane.oidc, { user: 'fay', groups: ['finance'] });
      const before = echo.requests.filter((r) => r.url === '/transfer').length;
      const post = async (): Promise<string> =>
        (await capture('curl', ['-s', '-w', '\n%{http_code}', '-X', 'POST', '-H', `Authorization: Bearer ${token}`, '--data', 'amount=77', `${patient.url}/transfer`])).stdout;
      const first = post();
      const line = `POST /transfer (body 9 bytes, sha256:${createHash('sha256').update('amount=77').digest('hex')})`;
      const request = await ap.waitFor('the AccessRequest', (r) => r.spec.command?.text === line && r.status?.decision === undefined, 10_000);
      const second = post();
      await sleep(300); // the second one is waiting on the same request by now
      await ap.decide(request.metadata.name ?? '', 'Approved', BOSS);
      const outcomes = await Promise.all([first, second]);
      expect(outcomes.map((o) => o.trim().split('\n').at(-1)).sort()).toEqual(['200', '403']);
      expect(outcomes.find((o) => o.endsWith('403'))).toMatch(/already used it|waiting for approval/);
      expect(echo.requests.filter((r) => r.url === '/transfer').length - before).toBe(1);
    } finally {
      await patient.close();
    }
  });

  it('binds the approval to the body: a retry with another body is a new request, the approved body goes through', async () => {
    const token = await mintToken(plane.oidc, { user: 'gus', groups: ['finance'] });
    const post = async (body: string): Promise<string> =>
      (await capture('curl', ['-s', '-w', '\n%{http_code}', '-X', 'POST', '-H', `Authorization: Bearer ${token}`, '-H', 'Expect: 100-continue', '--data', body, `${http.url}/transfer?to=acme`])).stdout.trim().split('\n').at(-1) ?? '';
    expect(await post('amount=5')).toBe('403');
    const approved = await ap.waitFor('the AccessRequest for 5', (r) => r.spec.requester.user === 'gus@example.com' && (r.spec.command?.text ?? '').startsWith('POST /transfer?to=acme (body 8 bytes'));
    await ap.decide(approved.metadata.name ?? '', 'Approved', BOSS);
    // Same line, different body: not covered.
    expect(await post('amount=9000')).toBe('403');
    const other = await ap.waitFor('the AccessRequest for 9000', (r) => r.spec.requester.user === 'gus@example.com' && (r.spec.command?.text ?? '').startsWith('POST /transfer?to=acme (body 11 bytes'));
    expect(other.metadata.name).not.toBe(approved.metadata.name);
    expect(echo.requests.filter((r) => r.url === '/transfer?to=acme')).toHaveLength(0);
    // The approved body: forwarded, exactly once, with its bytes.
    expect(await post('amount=5')).toBe('200');
    expect(echo.requests.filter((r) => r.url === '/transfer?to=acme')).toEqual([expect.objectContaining({ method: 'POST', bodyBytes: 8 })]);
  });

  it('refuses a body over the bound of what can be held for approval (413)', async () => {
    const token = await mintToken(plane.oidc, { user: 'gus', groups: ['finance'] });
    const big = 'x'.repeat(MAX_HELD_BODY_BYTES + 1);
    const result = await capture('curl', ['-s', '-w', '\n%{http_code}', '-X', 'POST', '-H', `Authorization: Bearer ${token}`, '--data-binary', '@-', `${http.url}/transfer`], { input: big });
    expect(result.stdout.trim().split('\n').at(-1)).toBe('413');
    expect(result.stdout).toContain('a request that needs approval may carry at most');
  });
});

describe('Kubernetes session-level JIT', () => {
  it('refuses with the request name until approved, then admits until the access expires', async () => {
    const refused = await kubectlAs('olga', ['oncall'], ['get', 'configmaps', '-o', 'name']);
    expect(refused.code).not.toBe(0);
    const request = await ap.waitFor('the Session request', (r) => r.spec.kind === 'Session' && r.spec.requester.user === 'olga@example.com');
    const name = request.metadata.name ?? '';
    expect(refused.stderr).toContain(`access to cluster-jit needs approval: request ${name} created; connect again once it is approved`);
    expect(request.spec).toMatchObject({ kind: 'Session', duration: '6s', connection: 'cluster-jit' });

    await ap.decide(name, 'Approved', BOSS, 'incident 42');
    const approvedAt = Date.now();
    const ok = await kubectlAs('olga', ['oncall'], ['get', 'configmaps', '-o', 'name']);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toContain('configmap/kept');

    // A watch stream is cut when the access expires.
    const watch = await kubectlAs('olga', ['oncall'], ['get', 'configmaps', '--watch', '-o', 'name', '--request-timeout=0']);
    const endedAfter = Date.now() - approvedAt;
    expect(endedAfter).toBeGreaterThanOrEqual(5_000);
    expect(endedAfter).toBeLessThan(15_000);
    expect(watch.stdout).toContain('configmap/kept');
    console.log(`kubernetes session JIT: watch cut ${endedAfter} ms after approval (access 6 s); kubectl said: ${watch.stderr.trim().slice(0, 200)}`);

    const after = await kubectlAs('olga', ['oncall'], ['get', 'configmaps']);
    expect(after.code).not.toBe(0);
    // kubectl's watch reconnected once and was refused: a new request was created then.
    expect(watch.stderr).toMatch(/needs approval: request \S+ created/);
    expect(after.stderr).toMatch(/needs approval: request \S+ (created|is waiting for a decision)/);
  });
});
