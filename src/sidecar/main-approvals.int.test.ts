// `warden sidecar` as a real subprocess with API access (POD_NAMESPACE + a kubeconfig): it wires
// KubeApprovals, so a RequireApproval statement from psql waits for an AccessRequest decision, and
// the approval webhook configured through WARDEN_APPROVAL_WEBHOOK_URL/SECRET is called, signed,
// on creation and on the decision.

import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kubectl, kubectlOk } from '../../test/plane/kubectl.ts';
import { freePort, type ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { mintToken } from '../../test/plane/tokens.ts';
import type { AccessRequest } from '../api/types.ts';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhookSignature, type WebhookPayload } from '../approvals/webhook.ts';
import { SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, sealSidecarConfig } from './config.ts';
import { createTestDatabase, type TestDatabase } from './postgres/testing.ts';
import { createPlaneBucket, planeOidc, planePostgresTarget, planeRecording, renderedPolicy, startSidecarProcess, writeSidecarConfigFile } from './test-support.ts';

const plane = inject('plane');
const psqlBin = join(plane.postgres.binDir, 'psql');
const id = `${process.pid.toString(36)}${randomBytes(3).toString('hex')}`;
const ns = `sidecar-appr-${id}`;
const bucket = `sidecar-appr-${id}`;
const secret = randomBytes(24).toString('hex');

let db: TestDatabase;
let root: string;
let port: number;
let gateway: ManagedProcess;
let receiver: Server;
const hooks: Array<{ payload: WebhookPayload; valid: boolean }> = [];

beforeAll(async () => {
  await kubectlOk(plane.kube, ['apply', '--server-side', '--force-conflicts', '--field-manager=sidecar-appr-test', `--filename=${new URL('../../crds/', import.meta.url).pathname}`]);
  await kubectlOk(plane.kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/accessrequests.warden.dev']);
  await kubectlOk(plane.kube, ['create', 'namespace', ns]);
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      hooks.push({
        payload: JSON.parse(body) as WebhookPayload,
        valid: verifyWebhookSignature(secret, { signature: req.headers[SIGNATURE_HEADER] as string, timestamp: req.headers[TIMESTAMP_HEADER] as string }, body),
      });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));

  db = await createTestDatabase(plane.postgres, 'sidecar_appr');
  await db.admin('CREATE TABLE notes (id int, body text)');
  await db.admin("INSERT INTO notes VALUES (1, 'hello'), (2, 'bye')");
  await db.admin(`ALTER TABLE notes OWNER TO ${db.user}`);
  await createPlaneBucket(plane.minio, bucket);
  root = mkdtempSync(join(tmpdir(), 'warden-sidecar-appr-'));
  port = await freePort();
  const healthPort = await freePort();
  writeSidecarConfigFile(
    root,
    sealSidecarConfig({
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      connection: { namespace: ns, name: 'notes-db', uid: 'uid-notes', generation: 1 },
      protocol: 'postgres',
      listener: { port, healthPort },
      ...planePostgresTarget(root, plane.postgres, db, { secret: 'db' }),
      oidc: planeOidc(plane.oidc, { usernameClaim: 'email', jwks: true }),
      sessionLimits: {},
      recording: planeRecording(root, plane.minio, { bucket, prefix: `${ns}/notes-db/` }),
      secretVersions: { db: '1', minio: '1', signing: '1' },
      policies: [
        renderedPolicy('devs', {
          subjects: [{ kind: 'Group', name: 'dev' }],
          approvers: [{ kind: 'User', name: 'alice@example.com' }],
          approvalTimeout: '10m',
          rules: [
            { name: 'deletes-need-approval', effect: 'RequireApproval', sql: { statementClasses: ['write'] } },
            { name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } },
          ],
        }),
      ],
    }),
  );
  gateway = await startSidecarProcess({
    name: 'warden-sidecar-approvals',
    root,
    healthPort,
    logFile: join(plane.dir, `${bucket}-sidecar.log`),
    gracePeriod: '5s',
    env: {
      POD_NAME: 'notes-gateway-test',
      POD_NAMESPACE: ns,
      WARDEN_CONFIGMAP: 'notes-db-gateway',
      KUBECONFIG: plane.kube.kubeconfig,
      WARDEN_APPROVAL_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/warden`,
      WARDEN_APPROVAL_WEBHOOK_SECRET: secret,
    },
  });
});

afterAll(async () => {
  await gateway?.stop();
  receiver?.close();
  await db?.drop();
  await kubectl(plane.kube, ['delete', 'namespace', ns, '--wait=false']);
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('warden sidecar with API access: just-in-time approvals', { timeout: 180_000 }, () => {
  it('holds a DELETE from psql until an approver approves it, and notifies the webhook, signed', async () => {
    const child = spawn(psqlBin, ['-X', '-A', '-t', '-c', 'DELETE FROM notes WHERE id = 2'], {
      env: { PATH: process.env.PATH, PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'bob', PGDATABASE: 'notes', PGSSLMODE: 'require', PGPASSWORD: await mintToken(plane.oidc, { user: 'bob', groups: ['dev'] }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)));
    await waitUntil('psql shows the NOTICE', async () => stderr.includes('waiting for approval: '), { timeoutMs: 60_000 });
    const name = /waiting for approval: (\S+)/.exec(stderr)![1]!;
    const request = JSON.parse(await kubectlOk(plane.kube, ['get', 'accessrequest', name, '-o', 'json'], { namespace: ns })) as AccessRequest;
    expect(request.spec).toMatchObject({ requester: { user: 'bob@example.com' }, connection: 'notes-db', command: { text: 'DELETE FROM notes WHERE id = 2' }, policy: 'devs', rule: 'deletes-need-approval' });
    const status = { decision: 'Approved', decidedBy: 'alice@example.com', decidedAt: new Date().toISOString() };
    await kubectlOk(plane.kube, ['patch', 'accessrequest', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })], { namespace: ns });
    expect(await exited).toBe(0);
    expect(stdout.trim()).toBe('DELETE 1');
    await waitUntil('two webhook deliveries', async () => hooks.length >= 2, { timeoutMs: 30_000 });
    expect(hooks.map((h) => [h.payload.type, h.payload.name, h.valid])).toEqual([
      ['accessrequest.created', name, true],
      ['accessrequest.decided', name, true],
    ]);
  });
});
