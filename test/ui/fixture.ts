// The world the web viewer tests look at, built from real parts on the test plane:
// - a namespace with Connections, a bucket credentials Secret and two RecordingPolicies
//   (`ops`: viewers Group auditors + User vera; `vault`: viewers User root-auditor only), each
//   publishing its signing key in status.signing.publicKey as the controller would;
// - an SSH session recorded by the real `warden sidecar` (SSH gateway, pty shell) into MinIO,
//   with its Session object in the plane's API server;
// - a SQL session through the real `warden sidecar` Postgres gateway on `orders-db` (ops): a
//   column masked by the AccessPolicy's masking rule, and a denied DDL statement;
// - sessions written by the real Recorder (S3 store + Session objects) on `vault-db` (vault) and
//   on the HTTP Connection `orders-api` (ops);
// - `warden ui` itself as a subprocess, reading all of it with the plane's kubeconfig.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Client } from 'ssh2';
import { stringify } from 'yaml';
import { freePort, ManagedProcess, waitUntil } from '../plane/proc.ts';
import { kubeClient, kubectlOk } from '../plane/kubectl.ts';
import { mintToken } from '../plane/tokens.ts';
import type { PlaneInfo } from '../plane/types.ts';
import { API_VERSION, type Session } from '../../src/api/types.ts';
import { loadSigningKey } from '../../src/recorder/crypto.ts';
import { capPayload, Decision, EventKind } from '../../src/recorder/events.ts';
import { Recorder, type SessionRecorder } from '../../src/recorder/recorder.ts';
import { KubeSessionObjects } from '../../src/recorder/session-objects.ts';
import { S3Store } from '../../src/recorder/store-s3.ts';
import { Client as MinioClient } from 'minio';
import { redacted } from '../../src/masking/strategies.ts';
import { SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KEY, SIDECAR_CONFIG_KIND, sealSidecarConfig, serializeSidecarConfig, type SidecarConfig } from '../../src/sidecar/config.ts';
import { createTestDatabase } from '../../src/sidecar/postgres/testing.ts';
import { createPlaneBucket, planeOidc, planePostgresTarget, planeRecording, renderedPolicy, startSidecarProcess, writeSecretFile, writeSidecarConfigFile } from '../../src/sidecar/test-support.ts';
import { ensureAssets } from '../../src/ui/assets.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const WARDEN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

export interface ViewerWorld {
  readonly namespace: string;
  /** http://127.0.0.1:PORT of `warden ui`. */
  readonly url: string;
  readonly logFile: string;
  readonly ssh: Session;
  readonly sql: Session;
  readonly vault: Session;
  readonly http: Session;
  readonly token: (user: string, groups?: string[]) => Promise<string>;
  /** Opens a SQL session on `orders-db` (policy ops) that stays Active until the caller closes it. */
  readonly openSqlSession: () => Promise<{ rec: SessionRecorder; recorder: Recorder }>;
  /** Deletes one object of a session's recording from the bucket (as an operator could), by its name, e.g. `chunk-00000000`. */
  readonly removeRecordingObject: (sessionId: string, name: string) => Promise<void>;
  readonly stop: () => Promise<void>;
}

const pem = (): { privatePem: string; publicPem: string } => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
};

async function apply(plane: PlaneInfo, objects: unknown[]): Promise<void> {
  await kubectlOk(plane.kube, ['apply', '--server-side', '--field-manager=ui-test', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
}

/** A pty shell through the gateway: types a command, waits for its output, exits. */
async function shellSession(port: number, user: string, token: string, marker: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const client = new Client();
    const timer = setTimeout(() => reject(new Error(`shell session timed out; output so far: ${output}`)), 20_000);
    let output = '';
    client.on('error', reject);
    client.on('ready', () => {
      client.shell({ term: 'xterm-256color', cols: 100, rows: 30 }, (error, stream) => {
        if (error) return reject(error);
        let typed = false;
        stream.on('data', (d: Buffer) => {
          output += d.toString();
          if (!typed && /[$#>] ?$/.test(output.trimEnd() + ' ')) {
            typed = true;
            stream.write(`echo ${marker}-$((6*7))\n`);
          }
          if (output.includes(`${marker}-42`) && !output.includes('__exit_sent__')) {
            output += '__exit_sent__';
            stream.write('exit\n');
          }
        });
        stream.on('close', () => {
          clearTimeout(timer);
          client.end();
          resolve(output);
        });
        // Some shells print no prompt on a non-login pty: type anyway after a moment.
        setTimeout(() => {
          if (!typed) {
            typed = true;
            stream.write(`echo ${marker}-$((6*7))\n`);
          }
        }, 1_500);
      });
    });
    client.connect({ host: '127.0.0.1', port, username: user, password: token, readyTimeout: 10_000 });
  });
}

async function waitForClosed(plane: PlaneInfo, namespace: string, connection: string): Promise<Session> {
  const client = new KubeSessionObjects(kubeClient(plane.kube));
  let found: Session | undefined;
  await waitUntil(
    `a Closed Session of ${connection} with its recording location`,
    async () => {
      found = (await client.list(namespace)).find((s) => s.spec.connection === connection && s.status?.phase !== undefined && s.status.phase !== 'Active' && s.status.recording?.location !== undefined);
      return found !== undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  return found as Session;
}

export async function startViewerWorld(plane: PlaneInfo, label: string): Promise<ViewerWorld> {
  const suffix = `${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
  const namespace = `ui-${label}-${suffix}`;
  const bucket = `ui-${label}-${suffix}`;
  const root = mkdtempSync(join(tmpdir(), `warden-ui-${label}-`));
  const logDir = process.env.WARDEN_TEST_LOG_DIR ?? plane.dir;
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await createPlaneBucket(plane.minio, bucket);
    await kubectlOk(plane.kube, ['apply', '--server-side', '--force-conflicts', '--field-manager=ui-test', '-f', 'crds/']);
    await kubectlOk(plane.kube, ['create', 'namespace', namespace]);
    cleanups.push(async () => void (await kubectlOk(plane.kube, ['delete', 'namespace', namespace, '--wait=false'])));

    const opsKey = pem();
    const vaultKey = pem();
    const s3 = (prefix: string) => ({ s3: { endpoint: plane.minio.endpoint, bucket, region: plane.minio.region, pathStyle: true, prefix, credentialsSecretRef: { name: 'minio' } } });
    const connection = (name: string, protocol: 'ssh' | 'postgres' | 'http', team: string) => ({
      apiVersion: API_VERSION,
      kind: 'Connection',
      metadata: { name, namespace, labels: { team } },
      spec: {
        protocol,
        target:
          protocol === 'ssh'
            ? { host: plane.ssh.host, port: plane.ssh.port, hostKeys: plane.ssh.hostKeys }
            : protocol === 'http'
              ? { url: `http://${plane.nginx.host}:${plane.nginx.port}` }
              : { host: plane.postgres.host, port: plane.postgres.port, database: 'postgres' },
        credentialsRef: { name: `${name}-credentials` },
      },
    });
    await apply(plane, [
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'minio', namespace }, stringData: { accessKeyId: plane.minio.accessKey, secretAccessKey: plane.minio.secretKey } },
      connection('box', 'ssh', 'ops'),
      connection('orders-db', 'postgres', 'ops'),
      connection('vault-db', 'postgres', 'vault'),
      connection('orders-api', 'http', 'ops'),
      {
        apiVersion: API_VERSION,
        kind: 'RecordingPolicy',
        metadata: { name: 'ops', namespace },
        spec: { connectionSelector: { matchLabels: { team: 'ops' } }, storage: s3('ops/'), viewers: [{ kind: 'Group', name: 'auditors' }, { kind: 'User', name: 'vera' }] },
      },
      {
        apiVersion: API_VERSION,
        kind: 'RecordingPolicy',
        metadata: { name: 'vault', namespace },
        spec: { connectionSelector: { matchLabels: { team: 'vault' } }, storage: s3('vault/'), viewers: [{ kind: 'User', name: 'root-auditor' }] },
      },
    ]);
    // What the controller publishes once it has the signing key (no controller runs here).
    for (const [policy, key] of [['ops', opsKey], ['vault', vaultKey]] as const) {
      await kubectlOk(plane.kube, ['-n', namespace, 'patch', 'recordingpolicy', policy, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { signing: { keyId: policy, publicKey: key.publicPem } } })]);
    }

    // 1. SSH through the real gateway, recording to MinIO, Session object in the API server.
    const sshPort = await freePort();
    const healthPort = await freePort();
    const secret = (name: string, key: string, value: string): { secret: string; key: string; file: string } => writeSecretFile(root, name, key, value);
    const config: SidecarConfig = sealSidecarConfig({
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      connection: { namespace, name: 'box', uid: 'uid-box', generation: 1 },
      protocol: 'ssh',
      listener: { port: sshPort, healthPort },
      target: { host: plane.ssh.host, port: plane.ssh.port, hostKeys: plane.ssh.hostKeys },
      credentials: { username: secret('box', 'username', plane.ssh.user), privateKey: secret('box', 'privateKey', readFileSync(plane.ssh.privateKeyFile, 'utf8')) },
      oidc: planeOidc(plane.oidc),
      sessionLimits: {},
      recording: planeRecording(root, plane.minio, { bucket, prefix: 'ops/', policy: 'ops', signingKey: opsKey.privatePem }),
      secretVersions: { box: '1', minio: '1', signing: '1' },
      policies: [{ name: 'ops', uid: 'p', generation: 1, spec: { subjects: [{ kind: 'User', name: 'erin' }], rules: [{ name: 'work', effect: 'Allow', ssh: { shell: true, exec: ['.*'] } }] }, problems: [] }],
    } as Omit<SidecarConfig, 'hash'>);
    writeSidecarConfigFile(root, config);
    await apply(plane, [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'box-gateway', namespace }, data: { [SIDECAR_CONFIG_KEY]: serializeSidecarConfig(config) } }]);
    const gateway = await startSidecarProcess({
      name: `warden-sidecar-ui-${label}`,
      root,
      healthPort,
      logFile: join(logDir, `${namespace}-sidecar.log`),
      gracePeriod: '2s',
      env: { POD_NAMESPACE: namespace, WARDEN_CONFIGMAP: 'box-gateway', KUBECONFIG: plane.kube.kubeconfig },
    });
    cleanups.push(() => gateway.stop());
    const output = await shellSession(sshPort, plane.ssh.user, await mintToken(plane.oidc, { user: 'erin', groups: ['ops'] }), 'hello-from-warden');
    if (!output.includes('hello-from-warden-42')) throw new Error(`the shell did not run the command: ${output}`);
    const ssh = await waitForClosed(plane, namespace, 'box');

    // 2. SQL sessions written by the real Recorder (as the Postgres gateway does), masked as stored.
    const openRecorder = async (prefix: string, signing: string): Promise<Recorder> =>
      await Recorder.open({
        store: new S3Store({ endpoint: plane.minio.endpoint, bucket, region: plane.minio.region, accessKey: plane.minio.accessKey, secretKey: plane.minio.secretKey, pathStyle: true }),
        spoolDir: mkdtempSync(join(root, 'spool-')),
        signingKey: loadSigningKey(signing),
        prefix,
        sessionObjects: { client: new KubeSessionObjects(kubeClient(plane.kube)), namespace, intervalMs: 200 },
      });
    const recordSql = async (connection: string, prefix: string, signing: string, user: string, rows: Array<Array<string | null>>): Promise<Session> => {
      const recorder = await openRecorder(prefix, signing);
      const rec = recorder.startSession({ protocol: 'postgres', connection: `${namespace}/${connection}`, user, groups: ['dev'], clientAddress: '10.0.0.7:51234', clientApplication: 'psql' });
      rec.append({ t: rec.t(), k: EventKind.Auth, ok: true, method: 'oidc', user, groups: ['dev'] });
      rec.append({ t: rec.t(), k: EventKind.SqlQuery, id: 1, text: capPayload('SELECT id, email FROM customers ORDER BY id', 4096), class: 'select', decision: Decision.Allow, rule: 'ops/read' });
      rec.append({ t: rec.t(), k: EventKind.SqlResult, id: 1, columns: ['id', 'email'], rows, rowCount: rows.length, tag: `SELECT ${rows.length}`, masked: true, durationMs: 1.7 });
      rec.append({ t: rec.t(), k: EventKind.SqlQuery, id: 2, text: capPayload('DROP TABLE customers', 4096), class: 'ddl', decision: Decision.Deny, rule: 'ops/no-ddl' });
      rec.append({ t: rec.t(), k: EventKind.Deny, reason: 'DDL is not allowed on orders-db', rule: 'ops/no-ddl', what: capPayload('DROP TABLE customers', 4096) });
      const closed = await rec.close('client-closed');
      if (!closed.shipped) throw new Error(`recording ${connection} not shipped: ${closed.error?.message}`);
      recorder.stop();
      return await waitForClosed(plane, namespace, connection);
    };
    // 2a. SQL through the real Postgres gateway: masking by the AccessPolicy, a denied statement.
    const db = await createTestDatabase(plane.postgres, 'ui');
    cleanups.push(() => db.drop());
    await db.admin('CREATE TABLE customers (id int, email text)');
    await db.admin("INSERT INTO customers VALUES (1, 'ann@example.com'), (2, 'bo@example.com')");
    await db.admin(`ALTER TABLE customers OWNER TO ${db.user}`);
    const pgPort = await freePort();
    const pgHealthPort = await freePort();
    const pgRoot = join(root, 'pg');
    const pgConfig: SidecarConfig = sealSidecarConfig({
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      connection: { namespace, name: 'orders-db', uid: 'uid-orders-db', generation: 1 },
      protocol: 'postgres',
      listener: { port: pgPort, healthPort: pgHealthPort },
      ...planePostgresTarget(pgRoot, plane.postgres, db, { secret: 'orders-db' }),
      oidc: planeOidc(plane.oidc, { jwks: true }),
      sessionLimits: {},
      recording: planeRecording(pgRoot, plane.minio, { bucket, prefix: 'ops/', policy: 'ops', signingKey: opsKey.privatePem }),
      secretVersions: { 'orders-db': '1', minio: '1', signing: '1' },
      policies: [
        renderedPolicy('ops', {
          subjects: [{ kind: 'Group', name: 'dev' }],
          rules: [
            { name: 'no-ddl', effect: 'Deny', sql: { statementClasses: ['ddl'] } },
            { name: 'read', effect: 'Allow', sql: { statementClasses: ['read'] } },
          ],
          masking: { rules: [{ name: 'emails', columns: ['email'], strategy: 'redact' }] },
        }),
      ],
    } as Omit<SidecarConfig, 'hash'>);
    writeSidecarConfigFile(pgRoot, pgConfig);
    await apply(plane, [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'orders-db-gateway', namespace }, data: { [SIDECAR_CONFIG_KEY]: serializeSidecarConfig(pgConfig) } }]);
    const pgGateway = await startSidecarProcess({
      name: `warden-sidecar-pg-ui-${label}`,
      root: pgRoot,
      healthPort: pgHealthPort,
      logFile: join(logDir, `${namespace}-sidecar-pg.log`),
      gracePeriod: '2s',
      env: { POD_NAMESPACE: namespace, WARDEN_CONFIGMAP: 'orders-db-gateway', KUBECONFIG: plane.kube.kubeconfig },
    });
    cleanups.push(() => pgGateway.stop());
    const client = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'alice', database: 'orders', password: await mintToken(plane.oidc, { user: 'alice', groups: ['dev'] }), ssl: { rejectUnauthorized: false }, application_name: 'psql' });
    await client.connect();
    const { rows } = await client.query<{ id: number; email: string }>('SELECT id, email FROM customers ORDER BY id');
    if (rows.length !== 2 || rows.some((r) => r.email.includes('@example.com'))) throw new Error(`the gateway did not mask: ${JSON.stringify(rows)}`);
    const refused = await client.query('DROP TABLE customers').then(
      () => false,
      () => true,
    );
    if (!refused) throw new Error('the gateway let DROP TABLE through');
    await client.end();
    const sql = await waitForClosed(plane, namespace, 'orders-db');
    const vault = await recordSql('vault-db', 'vault/', vaultKey.privatePem, 'bob', [['1', redacted('email')]]);
    {
      const recorder = await openRecorder('ops/', opsKey.privatePem);
      const rec = recorder.startSession({ protocol: 'http', connection: `${namespace}/orders-api`, user: 'carl', groups: ['dev'], clientAddress: '10.0.0.8:40000', clientApplication: 'curl/8.5.0' });
      rec.append({ t: rec.t(), k: EventKind.HttpRequest, id: 1, method: 'GET', url: '/orders?limit=1', headers: { accept: 'application/json' }, decision: Decision.Allow, rule: 'ops/read' });
      rec.append({ t: rec.t(), k: EventKind.HttpResponse, id: 1, status: 200, headers: { 'content-type': 'application/json' }, body: capPayload(`{"orders":[{"id":1,"email":"${redacted('email')}"}]}`, 4096) });
      rec.append({ t: rec.t(), k: EventKind.HttpRequest, id: 2, method: 'DELETE', url: '/orders/1', decision: Decision.Deny, rule: 'ops/no-delete' });
      rec.append({ t: rec.t(), k: EventKind.Deny, reason: 'DELETE is not allowed', rule: 'ops/no-delete', what: capPayload('DELETE /orders/1', 4096) });
      rec.append({ t: rec.t(), k: EventKind.HttpResponse, id: 2, status: 403 });
      const closed = await rec.close('client-closed');
      if (!closed.shipped) throw new Error(`recording orders-api not shipped: ${closed.error?.message}`);
      recorder.stop();
    }
    const http = await waitForClosed(plane, namespace, 'orders-api');

    // 3. `warden ui` as a subprocess (builds its assets first if the test setup has not).
    await ensureAssets();
    const port = await freePort();
    const logFile = join(logDir, `${namespace}-ui.log`);
    const ui = new ManagedProcess({
      name: `warden-ui-${label}`,
      command: NODE,
      args: [WARDEN, 'ui', '--listen', `127.0.0.1:${port}`, '--issuer', plane.oidc.issuer, '--client-id', plane.oidc.audience, '--username-claim', 'preferred_username', '--kubeconfig', plane.kube.kubeconfig],
      env: { PATH: process.env.PATH, HOME: root },
      logFile,
    });
    cleanups.push(() => ui.stop());
    const url = `http://127.0.0.1:${port}`;
    await waitUntil('warden ui /healthz', async () => (await fetch(`${url}/healthz`)).ok, { timeoutMs: 30_000, process: ui });
    return {
      namespace,
      url,
      logFile,
      ssh,
      sql,
      vault,
      http,
      token: (user, groups = []) => mintToken(plane.oidc, { user, groups }),
      openSqlSession: async () => {
        const recorder = await openRecorder('ops/', opsKey.privatePem);
        cleanups.push(async () => recorder.stop());
        const rec = recorder.startSession({ protocol: 'postgres', connection: `${namespace}/orders-db`, user: 'lena', groups: ['dev'] });
        return { rec, recorder };
      },
      removeRecordingObject: async (sessionId, name) => {
        const minio = new MinioClient({ endPoint: plane.minio.host, port: plane.minio.port, useSSL: false, accessKey: plane.minio.accessKey, secretKey: plane.minio.secretKey, region: plane.minio.region });
        const keys: string[] = [];
        for await (const object of minio.listObjectsV2(bucket, '', true) as AsyncIterable<{ name?: string }>) {
          if (object.name?.endsWith(`/${sessionId}/${name}`)) keys.push(object.name);
        }
        if (keys.length !== 1) throw new Error(`expected one ${name} of session ${sessionId} in ${bucket}, found ${keys.length}`);
        await minio.removeObject(bucket, keys[0]!);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
