import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kubeClient, kubectlOk } from '../../../test/plane/kubectl.ts';
import { capture } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import { selfSignedCert } from '../postgres/testing.ts';
import { HttpGateway } from './gateway.ts';
import { engineOf, type MemoryRecorder, recordingInto } from './testing.ts';

const plane = inject('plane');
const NS = 'warden-http-k8s';

const policy = engineOf(
  {
    name: 'readers',
    spec: {
      subjects: [{ kind: 'Group', name: 'readers' }],
      rules: [
        { name: 'no-secrets', effect: 'Deny', message: 'secrets stay secret', kubernetes: { resources: ['secrets'] } },
        { name: 'read', effect: 'Allow', kubernetes: { verbs: ['get', 'list', 'watch'], resources: ['namespaces', 'configmaps', 'pods'] } },
      ],
    },
  },
  {
    name: 'masked-readers',
    spec: {
      subjects: [{ kind: 'Group', name: 'masked' }],
      rules: [{ name: 'read', effect: 'Allow', kubernetes: { verbs: ['get', 'list', 'watch'], resources: ['configmaps'] } }],
      masking: { rules: [{ name: 'owner', jsonPaths: ['$.data.owner'] }, { name: 'pii', detectors: ['email'] }] },
    },
  },
);

let gateway: HttpGateway;
let dir: string;
const recorders: MemoryRecorder[] = [];

async function kubeconfigFor(groups: string[], server = gateway.url): Promise<string> {
  const token = await mintToken(plane.oidc, { user: 'kim', groups });
  const file = join(dir, `kubeconfig-${groups.join('-')}-${new URL(server).port}`);
  await writeFile(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'warden', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'kim', user: { token } }],
      contexts: [{ name: 'warden', context: { cluster: 'warden', user: 'kim' } }],
      'current-context': 'warden',
    }),
  );
  return file;
}

async function kubectlVia(
  groups: string[],
  args: string[],
  server = gateway.url,
): Promise<{ stdout: string; stderr: string; code: number }> {
  const { KUBECONFIG: _, ...env } = process.env;
  const kubeconfig = await kubeconfigFor(groups, server);
  return await capture(plane.kube.kubectl, [`--kubeconfig=${kubeconfig}`, `--cache-dir=${join(dir, 'cache')}`, ...args], { env });
}

/** The upstream TLS settings of the plane's admin (client certificate in system:masters). */
function adminUpstreamTls(): { mode: 'verify-full'; ca: string; cert: string; key: string } {
  const admin = kubeClient(plane.kube);
  const b64 = (value: string | undefined): string => Buffer.from(value ?? '', 'base64').toString('utf8');
  return {
    mode: 'verify-full',
    ca: b64(admin.getCurrentCluster()?.caData),
    cert: b64(admin.getCurrentUser()?.certData),
    key: b64(admin.getCurrentUser()?.keyData),
  };
}

beforeAll(async () => {
  expect(policy.problems).toEqual([]);
  dir = await mkdtemp(join(tmpdir(), 'warden-http-k8s-'));
  gateway = await HttpGateway.start({
    connection: 'test/cluster',
    flavour: 'kubernetes',
    listen: { host: '127.0.0.1', port: 0 },
    tls: await selfSignedCert(),
    upstream: {
      url: plane.kube.server,
      tls: adminUpstreamTls(),
    },
    verifier: new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience }),
    policy,
    masking: (subject) => policy.masker(subject),
    recorder: recordingInto(() => recorders),
  });
  await kubectlOk(plane.kube, ['create', 'namespace', NS]).catch(() => '');
  await kubectlOk(plane.kube, ['-n', NS, 'create', 'configmap', 'contacts', '--from-literal=owner=Olga', '--from-literal=email=olga@example.com', '--from-literal=plain=visible']);
});

afterAll(async () => {
  await gateway?.close();
  await kubectlOk(plane.kube, ['delete', 'namespace', NS, '--wait=false']).catch(() => '');
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Kubernetes flavour: kubectl through the gateway', () => {
  it('lets an allowed kubectl get through, with the gateway credentials', async () => {
    const { stdout, code, stderr } = await kubectlVia(['readers'], ['get', 'namespaces', '-o', 'name']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain(`namespace/${NS}`);
    const requests = recorders.flatMap((r) => r.of('http.request'));
    expect(requests.find((r) => r.url.startsWith('/api/v1/namespaces'))).toMatchObject({ decision: 'allow', k8s: { verb: 'list', resource: 'namespaces' } });
  });

  it('denies secrets with a Status kubectl prints as Forbidden', async () => {
    const { stderr, code } = await kubectlVia(['readers'], ['-n', NS, 'get', 'secrets']);
    expect(code).not.toBe(0);
    expect(stderr).toContain('Error from server (Forbidden)');
    expect(stderr).toContain('secrets stay secret');
    const deny = recorders.flatMap((r) => r.of('deny')).at(-1);
    expect(deny?.rule).toBe('readers/no-secrets');
  });

  it('denies verbs no rule allows (delete)', async () => {
    const { stderr, code } = await kubectlVia(['readers'], ['-n', NS, 'delete', 'configmap', 'contacts']);
    expect(code).not.toBe(0);
    expect(stderr).toContain('Forbidden');
    expect(await kubectlOk(plane.kube, ['-n', NS, 'get', 'configmap', 'contacts', '-o', 'name'])).toContain('contacts');
  });

  it('refuses impersonation headers (kubectl --as)', async () => {
    const { stderr, code } = await kubectlVia(['readers'], ['--as=system:admin', 'get', 'namespaces']);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/Impersonate-User is not allowed/i);
  });

  it('masks ConfigMap data by JSON path and detector', async () => {
    const { stdout, code, stderr } = await kubectlVia(['masked'], ['-n', NS, 'get', 'configmap', 'contacts', '-o', 'json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const data = (JSON.parse(stdout) as { data: Record<string, string> }).data;
    expect(data.plain).toBe('visible');
    expect(data.owner).not.toBe('Olga');
    expect(data.email).not.toContain('olga@example.com');
  });

  it('applies object paths to each item of a list', async () => {
    const { stdout, code } = await kubectlVia(['masked'], ['-n', NS, 'get', 'configmaps', '-o', 'json']);
    expect(code).toBe(0);
    const items = (JSON.parse(stdout) as { items: Array<{ metadata: { name: string }; data?: Record<string, string> }> }).items;
    const contacts = items.find((i) => i.metadata.name === 'contacts');
    expect(contacts?.data?.plain).toBe('visible');
    expect(contacts?.data?.owner).not.toBe('Olga');
    expect(stdout).not.toContain('olga@example.com');
  });

  it('masks a watch stream event by event', async () => {
    const token = await mintToken(plane.oidc, { user: 'kim', groups: ['masked'] });
    const { stdout, code } = await capture('curl', [
      '-sS', '-k', '--max-time', '20', '-H', `Authorization: Bearer ${token}`,
      `${gateway.url}/api/v1/namespaces/${NS}/configmaps?watch=1&timeoutSeconds=1`,
    ]);
    expect(code).toBe(0);
    const events = stdout.trim().split('\n').map((line) => JSON.parse(line) as { type: string; object: { metadata: { name: string }; data?: Record<string, string> } });
    const contacts = events.find((e) => e.object.metadata.name === 'contacts');
    expect(contacts?.type).toBe('ADDED');
    expect(contacts?.object.data?.plain).toBe('visible');
    // Masked as JSON line by line (the path rule applies), not as one block of text.
    expect(contacts?.object.data?.owner).not.toBe('Olga');
    expect(stdout).not.toContain('olga@example.com');
  });

  it('refuses an Upgrade header on a request that is not exec, attach, portforward or proxy (the API server would answer it unmasked)', async () => {
    const token = await mintToken(plane.oidc, { user: 'kim', groups: ['masked'] });
    const upgrade = ['-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Version: 13', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];
    const { stdout } = await capture('curl', ['-sS', '-k', '--http1.1', '-w', '\n%{http_code}', '-H', `Authorization: Bearer ${token}`, ...upgrade, `${gateway.url}/api/v1/namespaces/${NS}/configmaps/contacts`]);
    const lines = stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('400');
    expect(stdout).not.toContain('olga@example.com');
    expect(stdout).not.toContain('Olga');
    expect(JSON.parse(lines.slice(0, -1).join('\n'))).toMatchObject({ kind: 'Status', code: 400, message: expect.stringContaining('only exec, attach, portforward and proxy requests can switch protocols') });
  });

  it('answers a bad token with a 401 Status', async () => {
    const response = await fetch(`${gateway.url.replace('https', 'http')}/api`, { headers: { authorization: 'Bearer x' } }).catch(() => undefined);
    // The listener is TLS-only: plain HTTP gets no answer at all.
    expect(response?.ok ?? false).toBe(false);
    const { stdout } = await capture('curl', ['-sS', '-k', '-H', 'Authorization: Bearer not-a-token', `${gateway.url}/api/v1/namespaces`]);
    expect(JSON.parse(stdout)).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 });
  });
});

describe('Kubernetes flavour with impersonation of the caller', () => {
  let impersonating: HttpGateway;
  beforeAll(async () => {
    impersonating = await HttpGateway.start({
      connection: 'test/cluster-impersonating',
      flavour: 'kubernetes',
      listen: { host: '127.0.0.1', port: 0 },
      tls: await selfSignedCert(),
      upstream: { url: plane.kube.server, tls: adminUpstreamTls() },
      verifier: new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience }),
      policy: engineOf({
        name: 'whoami',
        spec: {
          subjects: [{ kind: 'Group', name: 'readers' }],
          rules: [
            {
              name: 'self-review',
              effect: 'Allow',
              kubernetes: { verbs: ['create'], apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'] },
            },
            { name: 'read', effect: 'Allow', kubernetes: { verbs: ['get', 'list'], resources: ['namespaces'] } },
          ],
        },
      }),
      impersonateCaller: true,
    });
  });
  afterAll(async () => {
    await impersonating?.close();
  });

  it('shows the real caller to the API server (kubectl auth whoami)', async () => {
    const { stdout, stderr, code } = await kubectlVia(['readers'], ['auth', 'whoami', '-o', 'json'], impersonating.url);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const status = (JSON.parse(stdout) as { status: { userInfo: { username: string; groups: string[] } } }).status;
    expect(status.userInfo.username).toBe('kim@example.com');
    expect(status.userInfo.groups).toContain('readers');
  });

  it("lets the cluster's RBAC refuse what the caller may not do, even when the policy allows it", async () => {
    // The policy allows listing namespaces, but kim has no RBAC binding in the cluster.
    const { stderr, code } = await kubectlVia(['readers'], ['get', 'namespaces'], impersonating.url);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/"kim@example.com" cannot list resource "namespaces"/);
  });
});
