/**
 * Just-in-time approvals in the PostgreSQL gateway, end to end with real parts: psql through the
 * gateway, the real policy engine (a RequireApproval rule), KubeApprovals against the test plane's
 * API server, the approver deciding with `warden approve|deny` as an impersonated user (checked by
 * the admission policy of config/default), and the recorder core writing a signed recording that
 * verifies.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { capture, waitUntil } from '../../../test/plane/proc.ts';
import { kubectlOk } from '../../../test/plane/kubectl.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import { bundlePolicies } from '../../policy/compile.ts';
import { compilePolicies } from '../../policy/engine.ts';
import { generateSigningKey } from '../../recorder/crypto.ts';
import type { ApprovalEvent, RecordingEvent } from '../../recorder/events.ts';
import { readSessionEvents, verifySessionFolder } from '../../recorder/reader.ts';
import { Recorder, type SessionRecorder as CoreSessionRecorder } from '../../recorder/recorder.ts';
import { DirectoryStore } from '../../recorder/store-dir.ts';
import { type ApprovalsPlane, approvalsPlane } from '../approval-test-support.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import { fromPolicyEngine } from './engine.ts';
import type { PostgresGatewayConfig } from './config.ts';
import { PostgresGateway } from './server.ts';
import * as backend from './protocol/backend.ts';
import { createTestDatabase, RawClient, selfSignedCert, type TestDatabase } from './testing.ts';

const plane = inject('plane');
const psqlBin = join(plane.postgres.binDir, 'psql');
const REPO = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const APPROVER = 'alice@example.com';

let db: TestDatabase;
let tls: { cert: string; key: string };
let verifier: TokenVerifier;
let ap: ApprovalsPlane;
let dir: string;
let core: Recorder;
let store: DirectoryStore;
const signingKey = generateSigningKey();
const sessions: CoreSessionRecorder[] = [];
const gateways: PostgresGateway[] = [];

function engine(approvalTimeout: string): Pick<PostgresGatewayConfig, 'policy' | 'masking'> {
  const { bundle } = bundlePolicies(
    [
      {
        // Session-level JIT for the on-call group: access only while an approved Session request exists.
        name: 'oncall',
        spec: {
          connections: ['orders-db'],
          subjects: [{ kind: 'Group', name: 'oncall' }],
          approvers: [{ kind: 'User', name: APPROVER }],
          sessionApproval: { required: true, maxDuration: '8s' },
          rules: [{ name: 'reads', effect: 'Allow', sql: { statementClasses: ['read', 'transaction', 'session', 'utility'] } }],
        },
      },
      {
        name: 'orders',
        spec: {
          connections: ['orders-db'],
          subjects: [{ kind: 'Group', name: 'dba' }],
          approvers: [{ kind: 'User', name: APPROVER }],
          approvalTimeout,
          rules: [
            { name: 'writes-need-approval', effect: 'RequireApproval', sql: { statementClasses: ['write'] } },
            { name: 'no-ddl', effect: 'Deny', sql: { statementClasses: ['ddl'] } },
            { name: 'everything-else', effect: 'Allow', sql: { statementClasses: ['read', 'transaction', 'session', 'utility'] } },
          ],
        },
      },
    ],
    { name: 'orders-db', protocol: 'postgres' },
  );
  return fromPolicyEngine(compilePolicies(bundle, { hashKey: new Uint8Array(32).fill(3) }));
}

async function startGateway(approvalTimeout = '600s', withApprovals = true): Promise<PostgresGateway> {
  const gateway = await PostgresGateway.start({
    connection: `${ap.namespace}/orders-db`,
    listen: { host: '127.0.0.1', port: 0 },
    tls,
    upstream: { host: plane.postgres.host, port: plane.postgres.port, database: db.database, user: db.user, password: db.password, tls: { mode: 'disable' } },
    verifier,
    ...engine(approvalTimeout),
    ...(withApprovals ? { approvals: ap.approvals } : {}),
    recorder: (info) => {
      const s = core.startSession(info);
      sessions.push(s);
      return s;
    },
  });
  gateways.push(gateway);
  return gateway;
}

interface Running {
  stdout: string;
  stderr: string;
  exited: Promise<number>;
  pid: number;
}

/** psql as a child process, output collected as it comes (to see the NOTICE while it waits). */
async function psql(gateway: PostgresGateway, args: string[], user = 'bob', groups = ['dba']): Promise<Running> {
  const child = spawn(psqlBin, ['-X', '-A', '-t', ...args], {
    env: {
      ...process.env,
      PGHOST: '127.0.0.1',
      PGPORT: String(gateway.address.port),
      PGUSER: user,
      PGDATABASE: 'orders',
      PGSSLMODE: 'require',
      PGPASSWORD: await mintToken(plane.oidc, { user, groups }),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const running: Running = {
    stdout: '',
    stderr: '',
    pid: child.pid ?? 0,
    exited: new Promise((resolveExit) => child.on('exit', (code) => resolveExit(code ?? -1))),
  };
  child.stdout.on('data', (b: Buffer) => (running.stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (running.stderr += b.toString()));
  return running;
}

/** Waits for psql to show the NOTICE and returns the request name from it. */
async function waitingFor(running: Running): Promise<string> {
  await waitUntil('psql shows "waiting for approval"', async () => /waiting for approval: (\S+)/.test(running.stderr), { timeoutMs: 60_000 });
  return /waiting for approval: (\S+)/.exec(running.stderr)![1]!;
}

const warden = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  const { KUBECONFIG: _, ...env } = process.env;
  return await capture(process.execPath, [join(REPO, 'bin/warden.js'), ...args, `--kubeconfig=${plane.kube.kubeconfig}`, '-n', ap.namespace], { env });
};

async function recording(index: number): Promise<RecordingEvent[]> {
  const session = sessions[index]!;
  for (let i = 0; i < 200 && !session.closed; i++) await sleep(20);
  const result = await session.closed!;
  expect(result.shipped).toBe(true);
  const report = await verifySessionFolder(store, session.folder, { trustedKeys: signingKey });
  expect(report).toMatchObject({ ok: true, closed: true });
  const events: RecordingEvent[] = [];
  for await (const e of readSessionEvents(store, session.folder, { trustedKeys: signingKey })) events.push(e);
  return events;
}

beforeAll(async () => {
  db = await createTestDatabase(plane.postgres, 'warden_appr');
  tls = await selfSignedCert();
  verifier = new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience });
  await db.admin(`
    SET ROLE ${db.user};
    CREATE TABLE accounts (id int PRIMARY KEY, owner text);
    INSERT INTO accounts VALUES (1, 'alice'), (2, 'bob'), (3, 'carol'), (4, 'dave');
    RESET ROLE;
  `);
  ap = await approvalsPlane(plane, 'pg-approvals');
  // The admission policy and the approver role, as config/default ships them; the approver is bound in this namespace.
  await kubectlOk(plane.kube, ['apply', '--server-side', '--force-conflicts', '--field-manager=pg-approvals-test', `--filename=${join(REPO, 'config/default/approvals.yaml')}`]);
  await kubectlOk(plane.kube, ['create', 'rolebinding', 'approvers', '--clusterrole=warden-approver', `--user=${APPROVER}`, '--user=bob@example.com'], { namespace: ap.namespace });
  dir = await mkdtemp(join(tmpdir(), 'warden-pg-appr-'));
  store = new DirectoryStore(join(dir, 'store'));
  core = await Recorder.open({ store, spoolDir: join(dir, 'spool'), signingKey });
});

afterAll(async () => {
  for (const g of gateways) await g.close();
  await ap?.close();
  await db?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// psql and the CLI are separate processes: give them room on a busy two-core machine.
describe('PostgreSQL gateway: just-in-time approval', { timeout: 180_000 }, () => {
  it('psql waits with a NOTICE; the requester cannot approve; the approver approves and psql gets the rows; recorded and verifiable', async () => {
    const gateway = await startGateway();
    const first = sessions.length;
    const running = await psql(gateway, ['-c', 'SELECT 1 AS before', '-c', "UPDATE accounts SET owner = 'robert' WHERE id = 2 RETURNING id, owner", '-c', 'SELECT 2 AS after']);
    const name = await waitingFor(running);
    expect(running.stdout.trim()).toBe('1'); // the first statement ran; the UPDATE waits
    const request = await ap.get(name);
    expect(request.spec).toMatchObject({
      requester: { user: 'bob@example.com', groups: ['dba'] },
      connection: 'orders-db',
      kind: 'Command',
      command: { protocol: 'postgres', text: "UPDATE accounts SET owner = 'robert' WHERE id = 2 RETURNING id, owner" },
      policy: 'orders',
      rule: 'writes-need-approval',
      approvers: [{ kind: 'User', name: APPROVER }],
    });
    expect(request.spec.session).toBeTruthy();
    expect((await db.admin('SELECT owner FROM accounts WHERE id = 2')).rows[0].owner).toBe('bob'); // nothing ran yet

    // The requester tries to approve their own statement: refused, and it keeps waiting.
    const self = await warden(['approve', name, '--as=bob@example.com']);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('the requester cannot decide their own AccessRequest');

    const approved = await warden(['approve', name, `--as=${APPROVER}`, '--comment', 'ticket 42']);
    expect(approved.stderr).toBe('');
    expect(approved.code).toBe(0);
    expect(await running.exited).toBe(0);
    expect(running.stdout.trim().split('\n')).toEqual(['1', '2|robert', 'UPDATE 1', '2']);
    expect(running.stderr).toContain(`NOTICE:  waiting for approval: ${name}`);

    const events = await recording(first);
    const approvals = events.filter((e): e is ApprovalEvent => e.k === 'approval');
    expect(approvals.map((e) => [e.state, e.by, e.reason])).toEqual([
      ['pending', undefined, expect.stringContaining('writes-need-approval')],
      ['approved', APPROVER, 'ticket 42'],
    ]);
    expect(approvals[0]!.request).toBe(`${ap.namespace}/${name}`);
    const kinds = events.map((e) => (e.k === 'sql.query' ? `${e.k}:${e.decision}` : e.k));
    expect(kinds).toEqual(['session.start', 'auth', 'sql.query:allow', 'sql.result', 'sql.query:approval', 'approval', 'approval', 'sql.result', 'sql.query:allow', 'sql.result', 'session.end']);
  });

  it('deny: psql prints an error with SQLSTATE 42501 naming the approver and the comment; the transaction state stays right', async () => {
    const gateway = await startGateway();
    const first = sessions.length;
    const running = await psql(gateway, ['-v', 'ON_ERROR_STOP=0', '-v', 'VERBOSITY=verbose', '-c', 'DELETE FROM accounts WHERE id = 3', '-c', 'SELECT count(*) FROM accounts']);
    const name = await waitingFor(running);
    const denied = await warden(['deny', name, `--as=${APPROVER}`, '-m', 'use the archive job']);
    expect(denied.code).toBe(0);
    expect(await running.exited).toBe(0); // psql's status is the last command's, and the SELECT ran
    expect(running.stderr).toContain(`ERROR:  42501: Warden: the statement was denied by ${APPROVER} (request ${name}: use the archive job)`);
    expect(running.stdout.trim()).toBe('4'); // the DELETE did not run; the next statement did
    const events = await recording(first);
    expect(events.filter((e): e is ApprovalEvent => e.k === 'approval').map((e) => e.state)).toEqual(['pending', 'denied']);
    expect(events.some((e) => e.k === 'deny')).toBe(true);
  });

  it('expiry: no decision in time gives an error saying the request expired', async () => {
    const gateway = await startGateway('2s');
    const running = await psql(gateway, ['-c', 'DELETE FROM accounts WHERE id = 4']);
    const name = await waitingFor(running);
    expect(await running.exited).toBe(1);
    expect(running.stderr).toContain(`Warden: the statement was not approved in time: request ${name} expired`);
    expect((await ap.get(name)).status?.decision).toBe('Expired');
    expect((await db.admin('SELECT count(*)::int AS n FROM accounts')).rows[0].n).toBe(4);
  });

  it('node-postgres: a prepared statement is held at Execute with its parameters; the transaction goes on after approval', async () => {
    const gateway = await startGateway();
    const c = new pg.Client({ host: '127.0.0.1', port: gateway.address.port, user: 'bob', database: 'orders', password: await mintToken(plane.oidc, { user: 'bob', groups: ['dba'] }), ssl: { rejectUnauthorized: false } });
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    await c.connect();
    await c.query('BEGIN');
    const update = c.query({ text: 'UPDATE accounts SET owner = $1 WHERE id = $2 RETURNING owner', values: ['zed', 1] });
    const after = c.query({ text: 'SELECT owner FROM accounts WHERE id = $1', values: [1] });
    await waitUntil('a notice', async () => notices.length > 0, { timeoutMs: 60_000 });
    const name = /waiting for approval: (\S+)/.exec(notices[0]!)![1]!;
    const request = await ap.get(name);
    expect(request.spec.command).toEqual({ protocol: 'postgres', text: 'UPDATE accounts SET owner = $1 WHERE id = $2 RETURNING owner', parameters: ['zed', '1'] });
    await ap.decide(name, 'Approved', APPROVER);
    expect((await update).rows).toEqual([{ owner: 'zed' }]);
    expect((await after).rows).toEqual([{ owner: 'zed' }]); // ran after the approved UPDATE, in the same transaction
    await c.query('ROLLBACK');
    expect((await c.query('SELECT owner FROM accounts WHERE id = 1')).rows).toEqual([{ owner: 'alice' }]);
    await c.end();
  });

  it('pipelining: everything sent after the held Execute waits in order, and the transaction state is right', async () => {
    const gateway = await startGateway();
    const raw = await RawClient.connect(gateway.address.port, await mintToken(plane.oidc, { user: 'bob', groups: ['dba'] }), { user: 'bob', database: 'orders' });
    // One write: BEGIN; an extended-protocol UPDATE (held); a simple SELECT; ROLLBACK.
    raw.socket.write(
      Buffer.concat([
        serialize.query('BEGIN'),
        serialize.parse({ name: '', text: 'UPDATE accounts SET owner = $1 WHERE id = $2 RETURNING owner' }),
        serialize.bind({ portal: '', statement: '', values: ['yves', '3'] }),
        serialize.execute({ portal: '' }),
        serialize.sync(),
        serialize.query('SELECT owner FROM accounts WHERE id = 3'),
        serialize.query('ROLLBACK'),
      ]),
    );
    const notice = await raw.waitFor((f) => f.code === 0x4e, 60_000);
    const name = backend.decodeNoticeFields(notice.body).get(0x4d)!.replace('waiting for approval: ', '');
    const heldAt = raw.frames.length;
    await sleep(300);
    expect(raw.frames.slice(heldAt)).toEqual([]); // nothing after the held statement ran meanwhile
    await ap.decide(name, 'Approved', APPROVER);
    await raw.waitFor((f) => f.code === 0x5a && f.body[0] === 0x49, 60_000); // ReadyForQuery 'I' after ROLLBACK
    const after = raw.frames.slice(heldAt);
    const shown = after.map((f) => {
      if (f.code === 0x44) return `row:${backend.decodeDataRow(f.body).map((v) => v?.toString()).join(',')}`;
      if (f.code === 0x43) return `cc:${backend.decodeCommandComplete(f.body)}`;
      if (f.code === 0x5a) return `rfq:${String.fromCharCode(f.body[0]!)}`;
      return String.fromCharCode(f.code);
    });
    // ParseComplete and BindComplete first: the server sends them at the Sync, which followed the held Execute.
    expect(shown).toEqual(['1', '2', 'row:yves', 'cc:UPDATE 1', 'rfq:T', 'T', 'row:yves', 'cc:SELECT 1', 'rfq:T', 'cc:ROLLBACK', 'rfq:I']);
    raw.end();
    expect((await db.admin('SELECT owner FROM accounts WHERE id = 3')).rows[0].owner).toBe('carol');
  });

  it('a client that disconnects while waiting withdraws its request', async () => {
    const gateway = await startGateway();
    const first = sessions.length;
    const running = await psql(gateway, ['-c', 'DELETE FROM accounts WHERE id = 1']);
    const name = await waitingFor(running);
    process.kill(running.pid, 'SIGKILL');
    await running.exited;
    await waitUntil('the request is Withdrawn', async () => (await ap.get(name)).status?.decision === 'Withdrawn', { timeoutMs: 30_000 });
    const events = await recording(first);
    expect(events.filter((e): e is ApprovalEvent => e.k === 'approval').map((e) => e.state)).toEqual(['pending', 'withdrawn']);
  });

  it('a CancelRequest (psql Ctrl-C) withdraws the request; the session goes on', async () => {
    const gateway = await startGateway();
    const c = new pg.Client({ host: '127.0.0.1', port: gateway.address.port, user: 'bob', database: 'orders', password: await mintToken(plane.oidc, { user: 'bob', groups: ['dba'] }), ssl: { rejectUnauthorized: false } });
    const notices: string[] = [];
    c.on('notice', (n) => notices.push(n.message ?? ''));
    await c.connect();
    const held = c.query('DELETE FROM accounts WHERE id = 1');
    held.catch(() => undefined);
    await waitUntil('a notice', async () => notices.length > 0, { timeoutMs: 60_000 });
    const name = /waiting for approval: (\S+)/.exec(notices[0]!)![1]!;
    // What psql does on Ctrl-C: a CancelRequest on a new connection with the BackendKeyData.
    const cancel = new pg.Client({ host: '127.0.0.1', port: gateway.address.port, ssl: false as unknown as undefined });
    const cancelConn = (cancel as unknown as { connection: { connect(port: number, host: string): void; on(e: string, f: () => void): void; cancel(pid: number, key: number): void; end(): void } }).connection;
    const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
    await new Promise<void>((resolveConnect) => {
      cancelConn.on('connect', () => {
        cancelConn.cancel(processID, secretKey);
        resolveConnect();
      });
      cancelConn.connect(gateway.address.port, '127.0.0.1');
    });
    await expect(held).rejects.toMatchObject({ code: '57014' });
    expect((await ap.get(name)).status?.decision).toBe('Withdrawn');
    expect((await c.query('SELECT count(*)::int AS n FROM accounts')).rows).toEqual([{ n: 4 }]);
    await c.end();
  });

  it('without approvals configured, RequireApproval is refused as before', async () => {
    const gateway = await startGateway('600s', false);
    const running = await psql(gateway, ['-c', 'DELETE FROM accounts WHERE id = 1']);
    expect(await running.exited).toBe(1);
    expect(running.stderr).toContain('approvals are not available on this gateway');
    expect(running.stderr).not.toContain('waiting for approval');
  });

  it('session-level JIT: refused naming the request until approved, then admitted; the session ends when the access expires', async () => {
    const gateway = await startGateway();
    const refused = await psql(gateway, ['-c', 'SELECT 1'], 'dora', ['oncall']);
    expect(await refused.exited).toBe(2);
    const request = await ap.waitFor('the Session request', (r) => r.spec.kind === 'Session' && r.spec.requester.user === 'dora@example.com');
    const name = request.metadata.name ?? '';
    expect(refused.stderr).toContain(`Warden: access to orders-db needs approval: request ${name} created; connect again once it is approved`);
    expect(request.spec).toMatchObject({ connection: 'orders-db', kind: 'Session', duration: '8s', policy: 'oncall' });

    const again = await psql(gateway, ['-c', 'SELECT 1'], 'dora', ['oncall']);
    expect(await again.exited).toBe(2);
    expect(again.stderr).toContain(`request ${name} is waiting for a decision`);

    await ap.decide(name, 'Approved', APPROVER, 'incident 7');
    const approvedAt = Date.now();
    const first = sessions.length;
    const ok = await psql(gateway, ['-c', 'SELECT count(*) FROM accounts'], 'dora', ['oncall']);
    expect(await ok.exited).toBe(0);
    expect(ok.stdout.trim()).toBe('4');

    // A live session ends when the access does (8 s after the decision), even mid-statement.
    const long = await psql(gateway, ['-c', 'SELECT pg_sleep(60)'], 'dora', ['oncall']);
    expect(await long.exited).not.toBe(0);
    const endedAfter = Date.now() - approvedAt;
    expect(long.stderr).toContain(`the approved access (request ${name}) expired`);
    expect(endedAfter).toBeGreaterThanOrEqual(7_000);
    expect(endedAfter).toBeLessThan(20_000);
    console.log(`postgres session JIT: session ended ${endedAfter} ms after approval (access 8 s)`);

    const events = await recording(first);
    expect(events.find((e) => e.k === 'approval')).toMatchObject({ state: 'approved', by: APPROVER });
    const ended = await recording(first + 1);
    expect(ended.at(-1)).toMatchObject({ k: 'session.end', reason: 'approval-expired' });
    expect(sessions[first]!.info.user).toBe('dora@example.com');

    const after = await psql(gateway, ['-c', 'SELECT 1'], 'dora', ['oncall']);
    expect(await after.exited).toBe(2);
    expect(after.stderr).toMatch(/needs approval: request \S+ created/);
  });
});
