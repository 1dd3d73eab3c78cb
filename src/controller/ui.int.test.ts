/**
 * `warden controller` with the web viewer turned on (WARDEN_UI=true, as the Deployment sets it
 * through its settings ConfigMap), as a subprocess against the test plane's real API server and
 * OIDC issuer, with the rights config/default gives the controller's ServiceAccount (its
 * ClusterRole and leader-election Role, bound here to a ServiceAccount of the test namespace): one
 * process reconciles (it takes its Lease and writes Connection status) and serves the viewer,
 * which answers by the RecordingPolicy's viewers; SIGTERM stops both. A UI setting that cannot
 * work stops the start with one line, before the controller does anything.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { API_VERSION } from '../api/types.ts';
import { ensureAssets } from '../ui/assets.ts';
import { kubeClient, kubectlOk } from '../../test/plane/kubectl.ts';
import { canConnect, capture, freePort, ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { mintToken } from '../../test/plane/tokens.ts';
import { KubeClient } from './kube.ts';

const plane = inject('plane');
const kube = plane.kube;
const ns = `ctrl-ui-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const WARDEN = new URL('../cli/main.ts', import.meta.url).pathname;
const home = mkdtempSync(join(tmpdir(), 'warden-ctrl-ui-'));

let assets: string;
let controller: ManagedProcess;
let url: string;
let publicUrl: string;

const clusterRole = `warden-controller-${ns}`;
/** A kubeconfig with the token of the test namespace's `warden-controller` ServiceAccount. */
const saKubeconfig = join(home, 'sa-kubeconfig');

const args = (lease: string, kubeconfig = kube.kubeconfig): string[] => [WARDEN, 'controller', '--kubeconfig', kubeconfig, '-n', ns, '--health-port', '0', '--leader-elect', '--lease-namespace', ns, '--lease-name', lease];
/** What the Deployment's settings ConfigMap gives the controller: gateway OIDC settings, and the viewer on. */
const env = (more: Record<string, string>): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH,
  HOME: home,
  NODE_OPTIONS: '--disable-warning=ExperimentalWarning',
  WARDEN_OIDC_ISSUER: plane.oidc.issuer,
  WARDEN_OIDC_AUDIENCE: plane.oidc.audience,
  WARDEN_OIDC_USERNAME_CLAIM: 'preferred_username',
  WARDEN_UI: 'true',
  WARDEN_UI_ASSETS: assets,
  ...more,
});
const get = async (path: string, token?: string): Promise<Response> =>
  await fetch(`${url}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` }, redirect: 'manual' });
const leaseHolder = async (name: string): Promise<string | undefined> => {
  const lease = await new KubeClient(kubeClient(kube)).find<{ spec?: { holderIdentity?: string } }>('Lease', ns, name);
  return lease === undefined ? undefined : (lease.spec?.holderIdentity ?? '');
};

beforeAll(async () => {
  await kubectlOk(kube, ['apply', '--server-side', '--force-conflicts', '-f', 'crds/']);
  await kubectlOk(kube, ['create', 'namespace', ns]);
  const objects: unknown[] = [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'minio', namespace: ns }, stringData: { accessKeyId: plane.minio.accessKey, secretAccessKey: plane.minio.secretKey } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db-credentials', namespace: ns }, stringData: { username: 'u', password: 'p' } },
    {
      apiVersion: API_VERSION,
      kind: 'RecordingPolicy',
      metadata: { name: 'ops', namespace: ns },
      spec: { connectionSelector: { matchLabels: { team: 'ops' } }, storage: { s3: { endpoint: plane.minio.endpoint, bucket: ns, credentialsSecretRef: { name: 'minio' } } }, viewers: [{ kind: 'User', name: 'vera' }] },
    },
    {
      apiVersion: API_VERSION,
      kind: 'Connection',
      metadata: { name: 'db', namespace: ns, labels: { team: 'ops' } },
      spec: { protocol: 'postgres', target: { host: '127.0.0.1', port: 5432, tls: { mode: 'disable' } }, credentialsRef: { name: 'db-credentials' } },
    },
    {
      apiVersion: API_VERSION,
      kind: 'Session',
      metadata: { name: 'sess-1', namespace: ns, labels: { 'warden.dev/connection': 'db' } },
      spec: { connection: 'db', protocol: 'postgres', user: 'lena', startedAt: new Date().toISOString() },
    },
  ];
  // config/default's rights, as they are: its ClusterRole (renamed, so as not to touch the
  // installed one) and its leader-election Role, bound to a ServiceAccount here.
  const rbac = parseAllDocuments(readFileSync(new URL('../../config/default/rbac.yaml', import.meta.url), 'utf8')).map((d) => d.toJS() as { kind: string; rules: unknown[] });
  const rulesOf = (kind: string): unknown[] => (rbac.find((d) => d.kind === kind) as { rules: unknown[] }).rules;
  const subjects = [{ kind: 'ServiceAccount', name: 'warden-controller', namespace: ns }];
  objects.push(
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'warden-controller', namespace: ns } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: clusterRole }, rules: rulesOf('ClusterRole') },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: clusterRole }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRole }, subjects },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'leader-election', namespace: ns }, rules: rulesOf('Role') },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'leader-election', namespace: ns }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'leader-election' }, subjects },
  );
  await kubectlOk(kube, ['apply', '--server-side', '--field-manager=test', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
  const token = (await kubectlOk(kube, ['create', 'token', 'warden-controller', '-n', ns, '--duration=1h'])).trim();
  writeFileSync(
    saKubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'plane', cluster: { server: kube.server, 'certificate-authority': kube.caFile } }],
      users: [{ name: 'warden-controller', user: { token } }],
      contexts: [{ name: 'plane', context: { cluster: 'plane', user: 'warden-controller' } }],
      'current-context': 'plane',
    }),
    { mode: 0o600 },
  );
  // Prebuilt assets, as the image has them in /app/ui.
  assets = await ensureAssets();
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  publicUrl = `http://viewer.test:${port}`;
  controller = new ManagedProcess({
    name: 'warden-controller-ui',
    command: NODE,
    // The Lease name config/default's leader-election Role allows.
    args: args('warden-controller', saKubeconfig),
    env: env({ WARDEN_UI_LISTEN: `127.0.0.1:${port}`, WARDEN_UI_PUBLIC_URL: publicUrl }),
    logFile: join(process.env.WARDEN_TEST_LOG_DIR ?? plane.dir, `${ns}-controller.log`),
  });
  await waitUntil('the viewer in warden controller answers /healthz', async () => (await fetch(`${url}/healthz`)).ok, { timeoutMs: 60_000, process: controller });
}, 120_000);

afterAll(async () => {
  await controller?.stop();
  await kubectlOk(kube, ['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
  await kubectlOk(kube, ['delete', 'clusterrolebinding,clusterrole', clusterRole, '--ignore-not-found']).catch(() => undefined);
  rmSync(home, { recursive: true, force: true });
});

describe('warden controller with WARDEN_UI=true, as config/default\'s ServiceAccount', () => {
  it('reconciles as usual: takes its Lease and writes Connection status', async () => {
    await waitUntil('the controller holds its Lease', async () => Boolean(await leaseHolder('warden-controller')), { timeoutMs: 30_000, process: controller });
    await waitUntil(
      'Connection db has status conditions',
      async () => {
        const c = await new KubeClient(kubeClient(kube)).find<{ status?: { conditions?: unknown[] } }>('Connection', ns, 'db');
        return (c?.status?.conditions?.length ?? 0) > 0;
      },
      { timeoutMs: 30_000, process: controller },
    );
  });

  it('refuses the API without a login, pointing at the login', async () => {
    const response = await get('/api/sessions');
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: 'UNAUTHENTICATED' }, login: '/auth/login' });
  });

  it("sends a browser to the gateways' issuer, with the public URL's callback and the audience as client id", async () => {
    const response = await get('/auth/login');
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get('location') ?? '');
    expect(`${location.origin}${location.pathname}`).toBe(`${plane.oidc.issuer}/authorize`);
    expect(location.searchParams.get('redirect_uri')).toBe(`${publicUrl}/auth/callback`);
    expect(location.searchParams.get('client_id')).toBe(plane.oidc.audience);
  });

  it("lists the session to a RecordingPolicy viewer with a bearer token, by the gateways' username claim", async () => {
    const vera = await mintToken(plane.oidc, { user: 'vera', email: 'someone-else@example.com' });
    const me = await get('/api/me', vera);
    expect(me.status).toBe(200);
    expect(await me.json()).toMatchObject({ user: 'vera', connections: [`${ns}/db`] });
    const list = await get('/api/sessions', vera);
    expect(list.status).toBe(200);
    expect(((await list.json()) as { items: Array<{ name: string }> }).items.map((i) => i.name)).toEqual(['sess-1']);
  });

  it('shows nothing to someone outside the viewers, and refuses a token for another audience', async () => {
    const mallory = await mintToken(plane.oidc, { user: 'mallory' });
    const list = await get('/api/sessions', mallory);
    expect(list.status).toBe(200);
    expect(((await list.json()) as { items: unknown[] }).items).toEqual([]);
    expect((await get(`/api/sessions/${ns}/sess-1`, mallory)).status).toBe(403);
    expect((await get('/api/sessions', await mintToken(plane.oidc, { user: 'vera' }, 'wrong-audience'))).status).toBe(401);
  });

  it('stops with the controller on SIGTERM: exit 0, the viewer port closed, the Lease released', async () => {
    await controller.stop(10_000);
    expect(controller.child.exitCode).toBe(0);
    expect(await canConnect('127.0.0.1', Number(new URL(url).port))).toBe(false);
    expect(await leaseHolder('warden-controller')).toBe('');
  });
});

describe('warden controller with a UI setting that cannot work', () => {
  const taken = createServer();
  let takenPort: number;
  beforeAll(async () => {
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    takenPort = (taken.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => taken.close(resolve));
  });

  it.each([
    ['a public URL that is not http(s)', 'bad-url', { WARDEN_UI_PUBLIC_URL: 'ftp://viewer.test' }, (): string => '--ui-public-url (env WARDEN_UI_PUBLIC_URL) must be an http(s) URL, not "ftp://viewer.test"'],
    ['no prebuilt assets where WARDEN_UI_ASSETS says', 'bad-assets', { WARDEN_UI_ASSETS: join(home, 'nothing') }, (): string => `--ui-assets (env WARDEN_UI_ASSETS): no built web viewer in ${join(home, 'nothing')} (index.html missing)`],
    ['a port that is taken', 'bad-port', {}, (): string => `--ui-listen (env WARDEN_UI_LISTEN): cannot listen on 127.0.0.1:${takenPort}: EADDRINUSE`],
    ['WARDEN_UI that is not a boolean', 'bad-flag', { WARDEN_UI: 'yes' }, (): string => 'WARDEN_UI must be true or false, not "yes"'],
  ])('refuses %s with one line and exit code 2, before the controller starts', async (_, lease, more, message) => {
    const result = await capture(NODE, args(lease), { env: env({ WARDEN_UI_LISTEN: `127.0.0.1:${takenPort}`, ...more }) });
    expect(result.stderr).toBe(`warden controller: ${message()}\n`);
    expect(result.code).toBe(2);
    // The controller never ran: no Lease of that name exists.
    expect(await leaseHolder(lease)).toBeUndefined();
  });

  it('runs no viewer at all when WARDEN_UI is unset, whatever WARDEN_UI_* say', async () => {
    const port = await freePort();
    const plain = new ManagedProcess({
      name: 'warden-controller-no-ui',
      command: NODE,
      args: args('no-ui'),
      env: env({ WARDEN_UI: '', WARDEN_UI_LISTEN: `127.0.0.1:${port}`, WARDEN_UI_PUBLIC_URL: 'ftp://ignored-when-off' }),
      logFile: join(process.env.WARDEN_TEST_LOG_DIR ?? plane.dir, `${ns}-controller-no-ui.log`),
    });
    try {
      await waitUntil('the controller without the viewer holds its Lease', async () => Boolean(await leaseHolder('no-ui')), { timeoutMs: 30_000, process: plain });
      expect(await canConnect('127.0.0.1', port)).toBe(false);
    } finally {
      await plain.stop(10_000);
    }
  });
});
