/**
 * A real Kubernetes control plane for the tests: etcd plus kube-apiserver, no controller-manager,
 * scheduler or kubelet, started the way controller-runtime's envtest starts it
 * (sigs.k8s.io/controller-runtime/pkg/internal/testing/controlplane). Objects are stored and
 * validated, RBAC is enforced, watches and server-side apply work; nothing ever runs a pod.
 */
import { generateKeyPairSync } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';
import { kubectl } from './kubectl.ts';
import { freePort, type Log, ManagedProcess, run, type Started, waitUntil } from './proc.ts';
import type { KubeInfo } from './types.ts';

/** The admin identity of the kubeconfig; the group is bound to cluster-admin by RBAC bootstrap. */
export const ADMIN_USER = 'warden-test-admin';
export const ADMIN_GROUP = 'system:masters';

interface KubeBinaries {
  etcd: string;
  apiserver: string;
  kubectl: string;
}

/** The directory hack/testbin.sh builds into (it honours WARDEN_CACHE the same way). */
export function testbinDir(): string {
  return join(process.env.WARDEN_CACHE ?? join(homedir(), '.cache', 'warden'), 'bin');
}

async function findBinaries(): Promise<KubeBinaries> {
  const dir = testbinDir();
  const binaries = {
    etcd: join(dir, 'etcd'),
    apiserver: join(dir, 'kube-apiserver'),
    kubectl: join(dir, 'kubectl'),
  };
  const missing: string[] = [];
  for (const path of Object.values(binaries)) {
    try {
      await access(path, constants.X_OK);
    } catch {
      missing.push(basename(path));
    }
  }
  if (missing.length > 0) {
    throw new Error(
      `test plane: ${missing.join(', ')} not found in ${dir}; build them with \`npm run testbin\` ` +
        '(hack/testbin.sh, several minutes on the first run)',
    );
  }
  return binaries;
}

/** v1.36.3, from the versioned file testbin.sh points the symlink at, else from the binary. */
async function kubeVersion(apiserver: string): Promise<string> {
  try {
    const match = /^kube-apiserver-(v\d+\.\d+\.\d+\S*)$/.exec(basename(await readlink(apiserver)));
    if (match?.[1]) return match[1];
  } catch {
    // Not a symlink: ask the binary.
  }
  const { stdout } = await run(apiserver, ['--version']);
  const match = /(v\d+\.\d+\.\d+\S*)/.exec(stdout);
  if (!match?.[1])
    throw new Error(`test plane: cannot read a version from \`${apiserver} --version\`: ${stdout}`);
  return match[1];
}

interface Pki {
  caFile: string;
  caPem: string;
  serverCert: string;
  serverKey: string;
  clientCertPem: string;
  clientKeyPem: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

// OpenSSL sections for the three certificates; every extension is set here rather than taken from
// the system openssl.cnf, so the result does not depend on the distribution.
const OPENSSL_CONFIG = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

/**
 * Keys come from Node (P-256, instant); certificates from `openssl req -x509 -CA` (OpenSSL 3.0+),
 * one process each, because Node can parse X.509 but not issue it.
 */
async function makePki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  const path = (name: string): string => join(dir, name);
  const writeKey = async (name: string): Promise<string> => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await writeFile(path(`${name}.key`), privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    await writeFile(path(`${name}.pub`), publicKey.export({ type: 'spki', format: 'pem' }));
    return path(`${name}.key`);
  };
  await writeFile(path('openssl.cnf'), OPENSSL_CONFIG);
  const [caKey, serverKey, clientKey, serviceAccountKey] = await Promise.all([
    writeKey('ca'),
    writeKey('apiserver'),
    writeKey('admin'),
    writeKey('service-account'),
  ]);
  const issue = async (key: string, out: string, subject: string, section: string, signed: boolean) => {
    const ca = signed ? ['-CA', path('ca.crt'), '-CAkey', caKey] : [];
    await run('openssl', [
      'req',
      '-x509',
      '-new',
      '-key',
      key,
      '-out',
      path(out),
      '-subj',
      subject,
      '-days',
      '7',
      '-sha256',
      '-config',
      path('openssl.cnf'),
      '-extensions',
      section,
      ...ca,
    ]);
  };
  await issue(caKey, 'ca.crt', '/CN=warden-test-ca', 'ca', false);
  await Promise.all([
    issue(serverKey, 'apiserver.crt', '/CN=kube-apiserver', 'server', true),
    issue(clientKey, 'admin.crt', `/O=${ADMIN_GROUP}/CN=${ADMIN_USER}`, 'client', true),
  ]);
  return {
    caFile: path('ca.crt'),
    caPem: await readFile(path('ca.crt'), 'utf8'),
    serverCert: path('apiserver.crt'),
    serverKey: serverKey,
    clientCertPem: await readFile(path('admin.crt'), 'utf8'),
    clientKeyPem: await readFile(clientKey, 'utf8'),
    serviceAccountKey: serviceAccountKey,
    serviceAccountPub: path('service-account.pub'),
  };
}

function kubeconfig(server: string, pki: Pki): string {
  const b64 = (pem: string): string => Buffer.from(pem).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'warden-test', cluster: { server, 'certificate-authority-data': b64(pki.caPem) } }],
    users: [
      {
        name: ADMIN_USER,
        user: { 'client-certificate-data': b64(pki.clientCertPem), 'client-key-data': b64(pki.clientKeyPem) },
      },
    ],
    contexts: [{ name: 'warden-test', context: { cluster: 'warden-test', user: ADMIN_USER } }],
    'current-context': 'warden-test',
  });
}

/** GET over mutual TLS as the admin; the apiserver's health endpoints need an authenticated caller. */
async function adminGet(url: string, pki: Pki): Promise<{ status: number; body: string }> {
  return await new Promise((resolve, reject) => {
    const req = request(
      url,
      { ca: pki.caPem, cert: pki.clientCertPem, key: pki.clientKeyPem, timeout: 5_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`;
}

async function startEtcd(
  binary: string,
  dir: string,
  log: Log,
): Promise<{ process: ManagedProcess; url: string }> {
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  log(`starting etcd on ${url}…`);
  const started = performance.now();
  const etcd = new ManagedProcess({
    name: 'etcd',
    command: binary,
    args: [
      '--name=warden-test',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=warden-test=${peer}`,
      // Test data is thrown away at teardown; fsync would make every apiserver write wait on disk.
      '--unsafe-no-fsync=true',
      // A single member elects itself; the default 1 s election timeout only delays startup (0.8 s → 0.1 s).
      '--heartbeat-interval=10',
      '--election-timeout=100',
      '--log-level=warn',
    ],
    logFile: join(dir, 'etcd.log'),
  });
  try {
    await waitUntil(
      'etcd',
      async () => {
        const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) });
        return response.ok && ((await response.json()) as { health?: string }).health === 'true';
      },
      { process: etcd, timeoutMs: 30_000, intervalMs: 50 },
    );
  } catch (error) {
    await etcd.stop();
    throw error;
  }
  log(`etcd ready in ${seconds(started)}`);
  return { process: etcd, url };
}

/** The flags, next to what envtest passes (controlplane/apiserver.go, configureAPIServerFlags). */
function apiserverArgs(options: { port: number; etcd: string; dir: string; pki: Pki }): string[] {
  const { port, etcd, dir, pki } = options;
  return [
    // envtest's defaults.
    '--advertise-address=127.0.0.1',
    `--etcd-servers=${etcd}`,
    `--cert-dir=${join(dir, 'certs')}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    // No controller-manager creates the default ServiceAccount; the admission plugin would reject
    // every pod without it.
    '--disable-admission-plugins=ServiceAccount',
    '--service-cluster-ip-range=10.0.0.0/16', // room for benchmarks with thousands of Services
    '--allow-privileged=true',
    // envtest's secure serving and authn/authz (controlplane/auth.go): client certs from our CA,
    // RBAC only, service accounts signed with our key.
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    `--client-ca-file=${pki.caFile}`,
    '--authorization-mode=RBAC',
    `--service-account-issuer=https://127.0.0.1:${port}/`,
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
  ];
}

/**
 * Starts etcd and kube-apiserver under `dir` and writes an admin kubeconfig to `dir/kubeconfig`.
 * Resolves once the API server reports ready, RBAC is bootstrapped and the `default` namespace
 * exists, so the first test can write objects straight away.
 */
export async function startKube(dir: string, log: Log): Promise<Started<KubeInfo>> {
  const begun = performance.now();
  const binaries = await findBinaries();
  const version = await kubeVersion(binaries.apiserver);
  await mkdir(dir, { recursive: true });
  const pki = await makePki(join(dir, 'pki'));
  log(`certificates ready in ${seconds(begun)}`);

  const etcd = await startEtcd(binaries.etcd, dir, log);
  const port = await freePort();
  const server = `https://127.0.0.1:${port}`;
  log(`starting kube-apiserver ${version} on ${server}…`);
  const apiserverStarted = performance.now();
  const apiserver = new ManagedProcess({
    name: 'kube-apiserver',
    command: binaries.apiserver,
    args: apiserverArgs({ port, etcd: etcd.url, dir, pki }),
    logFile: join(dir, 'kube-apiserver.log'),
  });
  const stop = async (): Promise<void> => {
    // The apiserver first, so it does not spend its shutdown retrying a vanished etcd.
    await apiserver.stop();
    await etcd.process.stop();
  };

  const info: KubeInfo = {
    server,
    kubeconfig: join(dir, 'kubeconfig'),
    kubectl: binaries.kubectl,
    version,
    caFile: pki.caFile,
  };
  try {
    await writeFile(info.kubeconfig, kubeconfig(server, pki), { mode: 0o600 });
    // /readyz turns 200 only after every post-start hook has run, rbac/bootstrap-roles included.
    await waitUntil(
      'kube-apiserver /readyz',
      async () => {
        const { status, body } = await adminGet(`${server}/readyz`, pki);
        return status === 200 && body.trim() === 'ok';
      },
      { process: apiserver, timeoutMs: 90_000, intervalMs: 100 },
    );
    // The system-namespaces controller creates `default` shortly after readiness, not before.
    await waitUntil(
      'namespace default',
      async () => (await adminGet(`${server}/api/v1/namespaces/default`, pki)).status === 200,
      { process: apiserver, timeoutMs: 30_000, intervalMs: 100 },
    );
    // End to end through kubectl: authentication, the cluster-admin binding and discovery.
    await waitUntil(
      'kubectl auth can-i',
      async () =>
        (await kubectl(info, ['auth', 'can-i', '*', '*', '--all-namespaces'])).stdout.trim() === 'yes',
      { process: apiserver, timeoutMs: 30_000, intervalMs: 200 },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  log(`kube-apiserver ready in ${seconds(apiserverStarted)} (control plane in ${seconds(begun)})`);
  return { info, stop };
}
