import { mkdtemp, rm } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { run } from '../../../test/plane/proc.ts';
import { mintToken, REJECTED_TOKEN_VARIANTS } from '../../../test/plane/tokens.ts';
import { generateSigningKey } from '../../recorder/crypto.ts';
import type { RecordingEvent, SqlQueryEvent, SqlResultEvent } from '../../recorder/events.ts';
import { readSessionEvents, verifySessionFolder } from '../../recorder/reader.ts';
import { Recorder, type SessionRecorder as CoreSessionRecorder } from '../../recorder/recorder.ts';
import { DirectoryStore } from '../../recorder/store-dir.ts';
import { bundlePolicies } from '../../policy/compile.ts';
import { compilePolicies } from '../../policy/engine.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import { fromPolicyEngine } from './engine.ts';
import { HOSTILE_STATEMENTS, READ_STATEMENTS } from './corpus.ts';
import type { PostgresGatewayConfig } from './config.ts';
import { PostgresGateway } from './server.ts';
import { classPolicy, createTestDatabase, MemoryRecorder, RawClient, selfSignedCert, type TestDatabase, testMasker } from './testing.ts';

const plane = inject('plane');
const psql = join(plane.postgres.binDir, 'psql');

let db: TestDatabase;
let tls: { cert: string; key: string };
let verifier: TokenVerifier;
const recorders: MemoryRecorder[] = [];
const gateways: PostgresGateway[] = [];

async function startGateway(overrides: Partial<PostgresGatewayConfig> = {}): Promise<PostgresGateway> {
  const gateway = await PostgresGateway.start({
    connection: 'test/orders-db',
    listen: { host: '127.0.0.1', port: 0 },
    tls,
    upstream: {
      host: plane.postgres.host,
      port: plane.postgres.port,
      database: db.database,
      user: db.user,
      password: db.password,
      tls: { mode: 'disable' },
    },
    verifier,
    policy: classPolicy(),
    recorder: MemoryRecorder.factory(recorders),
    ...overrides,
  });
  gateways.push(gateway);
  return gateway;
}

const token = (user = 'alice', groups = ['dba']): Promise<string> => mintToken(plane.oidc, { user, groups });

function client(gateway: PostgresGateway, password: string, options: Partial<pg.ClientConfig> = {}): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port: gateway.address.port,
    user: 'alice',
    database: 'whatever',
    password,
    ssl: { rejectUnauthorized: false },
    ...options,
  });
}

beforeAll(async () => {
  db = await createTestDatabase(plane.postgres, 'warden_gw');
  tls = await selfSignedCert();
  verifier = new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience });
  await db.admin(`
    SET ROLE ${db.user};
    CREATE TABLE accounts (id int PRIMARY KEY, owner text, email text, balance numeric, card text, secret_note text);
    INSERT INTO accounts VALUES
      (1, 'alice', 'alice@example.com', 100, '4111-1111-1111-1111', 'a'),
      (2, 'bob', 'bob@example.com', 250, 'none', 'b');
    CREATE SEQUENCE seq;
    RESET ROLE;
  `);
});

afterAll(async () => {
  for (const g of gateways) await g.close();
  await db?.drop();
});

describe('PostgreSQL gateway: connecting', () => {
  it('serves psql over TLS with the token as password, relaying to the upstream as the Connection user', async () => {
    const gateway = await startGateway();
    const { stdout } = await run(psql, ['-X', '-A', '-t', '-c', 'SELECT current_user, count(*) FROM accounts'], {
      env: {
        ...process.env,
        PGHOST: '127.0.0.1',
        PGPORT: String(gateway.address.port),
        PGUSER: 'alice',
        PGDATABASE: 'orders',
        PGSSLMODE: 'require',
        PGPASSWORD: await token(),
      },
    });
    expect(stdout.trim()).toBe(`${db.user}|2`);
  });

  it('does not relay startup options that would change the session behind policy', async () => {
    const gateway = await startGateway();
    const { stdout } = await run(psql, ['-X', '-A', '-t', '-c', 'SHOW search_path', '-c', 'SHOW application_name'], {
      env: {
        ...process.env,
        PGHOST: '127.0.0.1',
        PGPORT: String(gateway.address.port),
        PGUSER: 'alice',
        PGSSLMODE: 'require',
        PGPASSWORD: await token(),
        PGOPTIONS: '-c search_path=evil -c role=postgres',
        PGAPPNAME: 'audit-me',
      },
    });
    expect(stdout.trim().split('\n')).toEqual(['"$user", public', 'audit-me']);
  });

  it('refuses a client without TLS, saying how to connect', async () => {
    const gateway = await startGateway();
    await expect(
      run(psql, ['-X', '-c', 'SELECT 1'], {
        env: { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(gateway.address.port), PGUSER: 'alice', PGSSLMODE: 'disable', PGPASSWORD: await token() },
      }),
    ).rejects.toThrow(/only over TLS: connect with sslmode=require/);
  });

  it.each(REJECTED_TOKEN_VARIANTS)('refuses a %s token with 28P01', async (variant) => {
    const gateway = await startGateway();
    const c = client(gateway, await mintToken(plane.oidc, { user: 'mallory', groups: ['dba'] }, variant));
    await expect(c.connect()).rejects.toMatchObject({ code: '28P01', message: expect.stringMatching(/authentication failed/) });
  });

  it('refuses a subject no policy admits', async () => {
    const gateway = await startGateway();
    const c = client(gateway, await token('eve', ['blocked']));
    await expect(c.connect()).rejects.toMatchObject({ code: '28000', message: /no AccessPolicy admits eve/ });
  });

  it('never shows the upstream password to the client or the recording', async () => {
    const gateway = await startGateway();
    recorders.length = 0;
    const raw = await RawClient.connect(gateway.address.port, await token());
    await raw.query('SELECT current_user, session_user; SHOW ALL; SELECT * FROM pg_stat_activity');
    await raw.query('SELECT rolpassword FROM pg_authid'); // fails: the upstream role is no superuser
    raw.end();
    await sleep(100);
    const everything = raw.all().toString('latin1');
    expect(everything).toContain(db.user);
    expect(everything).not.toContain(db.password);
    expect(JSON.stringify(recorders.flatMap((r) => r.events))).not.toContain(db.password);
  });
});

describe('PostgreSQL gateway: a read-only policy', () => {
  let gateway: PostgresGateway;
  let c: pg.Client;
  beforeAll(async () => {
    gateway = await startGateway({ policy: classPolicy(['read', 'transaction']) });
    c = client(gateway, await token());
    await c.connect();
  });
  afterAll(async () => {
    await c.end();
  });

  it.each(HOSTILE_STATEMENTS)('refuses %j with 42501 and the session goes on (simple protocol)', async (sql) => {
    await expect(c.query(sql)).rejects.toMatchObject({ code: '42501', message: /denied by policy read-only rule read-only/ });
    expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
  });

  it.each(HOSTILE_STATEMENTS.filter((s) => !s.includes(';')))('refuses %j at Parse (extended protocol)', async (sql) => {
    await expect(c.query({ text: sql, values: [] })).rejects.toMatchObject({ code: '42501' });
    expect((await c.query({ text: 'SELECT $1::int AS ok', values: [1] })).rows).toEqual([{ ok: 1 }]);
  });

  it.each(READ_STATEMENTS.filter((s) => !s.startsWith('COPY')))('allows the read %j', async (sql) => {
    await c.query(sql);
  });

  it('left the data alone', async () => {
    const { rows } = await db.admin('SELECT count(*)::int AS n, sum(balance)::int AS total FROM accounts');
    expect(rows).toEqual([{ n: 2, total: 350 }]);
  });

  it('refuses the whole multi-statement string when one statement is denied', async () => {
    await expect(c.query('SELECT 1; DELETE FROM accounts; SELECT 2')).rejects.toMatchObject({ code: '42501' });
  });

  it('keeps the transaction state right: a denied statement fails the block like any error', async () => {
    await c.query('BEGIN');
    await c.query('SELECT 1');
    await expect(c.query('DELETE FROM accounts')).rejects.toMatchObject({ code: '42501' });
    await expect(c.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await c.query('ROLLBACK');
    expect((await c.query('SELECT 2 AS two')).rows).toEqual([{ two: 2 }]);
  });

  it('handles a pipelined batch with a denied Parse in the middle, as PostgreSQL would', async () => {
    const raw = await RawClient.connect(gateway.address.port, await token());
    const from = raw.frames.length;
    raw.socket.write(
      Buffer.concat([
        serialize.parse({ text: 'SELECT 1' }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.parse({ name: 'bad', text: 'DELETE FROM accounts' }),
        serialize.bind({ statement: 'bad' }),
        serialize.execute({}),
        serialize.sync(),
        serialize.query('SELECT 42'),
      ]),
    );
    await raw.waitFor((f) => f.code === 0x5a);
    await raw.waitFor((f) => f.code === 0x5a);
    const codes = raw.frames.slice(from).map((f) => String.fromCharCode(f.code)).join('');
    // ParseComplete, BindComplete, (RowDescription via our Describe is hidden) DataRow,
    // CommandComplete, Error, ReadyForQuery; then the simple query's answer.
    expect(codes).toBe('12DCEZTDCZ');
    raw.end();
  });
});

describe('PostgreSQL gateway: settings that change how SQL is read', () => {
  // With standard_conforming_strings off the server reads `\'` inside a plain string as a quote;
  // Warden's parser does not. This text is one harmless SELECT to the parser, but a SELECT and a
  // DELETE to a server with the setting off.
  const smuggled = "SELECT 'a\\' , ' ; DELETE FROM accounts; --'";

  it('refuses changing standard_conforming_strings or client_encoding even where SET is allowed', async () => {
    const gateway = await startGateway({ policy: classPolicy(['read', 'transaction', 'session']) });
    const c = client(gateway, await token());
    await c.connect();
    try {
      for (const sql of [
        'SET standard_conforming_strings = off',
        'SET LOCAL standard_conforming_strings TO false',
        'RESET standard_conforming_strings',
        "SET client_encoding = 'SJIS'",
        "SET NAMES 'GBK'",
        "SELECT set_config('standard_conforming_strings', 'off', false)",
        "SELECT set_config('CLIENT_ENCODING', 'BIG5', false)",
        "SELECT set_config(lower('STANDARD_CONFORMING_STRINGS'), 'off', false)",
      ]) {
        await expect(c.query(sql), sql).rejects.toMatchObject({ code: '42501', message: /privilege statements are not allowed/ });
      }
      // Setting the values Warden reads SQL with, and other settings, stays allowed.
      await c.query('SET standard_conforming_strings = on');
      await c.query("SET client_encoding = 'UTF8'");
      await c.query("SELECT set_config('application_name', 'warden-test', false)");
      expect((await c.query('SHOW standard_conforming_strings')).rows).toEqual([{ standard_conforming_strings: 'on' }]);
    } finally {
      await c.end();
    }
  });

  it('refuses statements with a backslash while the server reports standard_conforming_strings off', async () => {
    // A policy that allows privilege statements lets the setting through: the gateway then sees
    // the server's ParameterStatus and refuses what it could misread.
    const gateway = await startGateway({ policy: classPolicy(['read', 'transaction', 'session', 'privilege']) });
    const c = client(gateway, await token());
    await c.connect();
    try {
      await c.query('SET standard_conforming_strings = off');
      await expect(c.query(smuggled)).rejects.toMatchObject({ code: '42501', message: /standard_conforming_strings is off/ });
      await expect(c.query({ text: "SELECT 'x\\' AS v", values: [] })).rejects.toMatchObject({ code: '42501' });
      expect((await c.query("SELECT 'no backslash' AS v")).rows).toEqual([{ v: 'no backslash' }]);
      await c.query('SET standard_conforming_strings = on');
      // Read as PostgreSQL reads it with the setting on: two strings, no DELETE.
      expect((await c.query(smuggled)).rows).toHaveLength(1);
    } finally {
      await c.end();
    }
    const { rows } = await db.admin('SELECT count(*)::int AS n FROM accounts');
    expect(rows).toEqual([{ n: 2 }]);
  });

  it('pins standard_conforming_strings on at connect, over a database default of off', async () => {
    await db.admin(`ALTER DATABASE ${db.database} SET standard_conforming_strings = off`);
    try {
      const gateway = await startGateway({ policy: classPolicy(['read', 'transaction', 'session', 'privilege']) });
      const c = client(gateway, await token());
      await c.connect();
      try {
        expect((await c.query('SHOW standard_conforming_strings')).rows).toEqual([{ standard_conforming_strings: 'on' }]);
        // RESET goes back to the connection's value, not the database's.
        await c.query('SET standard_conforming_strings = off');
        await c.query('RESET standard_conforming_strings');
        expect((await c.query('SHOW standard_conforming_strings')).rows).toEqual([{ standard_conforming_strings: 'on' }]);
        expect((await c.query(smuggled)).rows).toHaveLength(1);
      } finally {
        await c.end();
      }
    } finally {
      await db.admin(`ALTER DATABASE ${db.database} RESET standard_conforming_strings`);
    }
  });

  it('refuses a text with a backslash or non-ASCII pipelined behind a running statement', async () => {
    const gateway = await startGateway({ policy: classPolicy(['read', 'transaction', 'session', 'write']) });
    const raw = await RawClient.connect(gateway.address.port, await token());
    const from = raw.frames.length;
    // One write: the second and third texts reach the gateway while the first still runs (it
    // could be a function that changes how the server reads them).
    raw.socket.write(Buffer.concat([serialize.query('SELECT pg_sleep(0.2)'), serialize.query("SELECT 'a\\' AS x"), serialize.query("SELECT 'café' AS y"), serialize.query('SELECT 42')]));
    for (let i = 0; i < 4; i++) await raw.waitFor((f) => f.code === 0x5a);
    const frames = raw.frames.slice(from);
    const errors = frames.filter((f) => f.code === 0x45).map((f) => f.raw.toString('utf8'));
    expect(errors).toHaveLength(2);
    for (const e of errors) expect(e).toMatch(/pipelined behind one still running/);
    expect(frames.map((f) => String.fromCharCode(f.code)).join('')).toBe('TDCZEZEZTDCZ');
    // Sent on its own, the same text runs.
    expect((await raw.query("SELECT 'a\\' AS x")).some((f) => f.code === 0x44)).toBe(true);
    raw.end();
  });

  it('judges SQL EXECUTE of a protocol-prepared statement as that statement', async () => {
    const gateway = await startGateway({ policy: classPolicy(['read', 'transaction', 'session']) });
    const raw = await RawClient.connect(gateway.address.port, await token());
    // A write prepared through the protocol is refused at Parse; a read prepared that way runs
    // through SQL EXECUTE as the read it is (it was refused as an unknown statement before).
    raw.socket.write(Buffer.concat([serialize.parse({ name: 'r', text: 'SELECT 7 AS seven' }), serialize.sync()]));
    await raw.waitFor((f) => f.code === 0x5a);
    const frames = await raw.query('EXECUTE r');
    expect(frames.some((f) => f.code === 0x44)).toBe(true);
    expect(frames.some((f) => f.code === 0x45)).toBe(false);
    raw.end();
  });
});

describe('PostgreSQL gateway: statements across policy changes', () => {
  it('judges Execute by the statement the server really holds, and re-checks it when policy changes', async () => {
    let current = classPolicy();
    const gateway = await startGateway({
      policy: { admission: (s) => current.admission(s), decide: (s, c) => current.decide(s, c) },
    });
    const raw = await RawClient.connect(gateway.address.port, await token());
    raw.socket.write(Buffer.concat([serialize.parse({ name: 's1', text: 'DELETE FROM accounts WHERE id = 999' }), serialize.sync()]));
    await raw.waitFor((f) => f.code === 0x5a);
    current = classPolicy(['read']);
    // Same name, harmless text: the server refuses (42P05) and keeps the DELETE.
    raw.socket.write(Buffer.concat([serialize.parse({ name: 's1', text: 'SELECT 1' }), serialize.sync()]));
    expect((await raw.waitFor((f) => f.code === 0x45)).body.toString()).toContain('42P05');
    await raw.waitFor((f) => f.code === 0x5a);
    raw.socket.write(Buffer.concat([serialize.bind({ statement: 's1' }), serialize.execute({}), serialize.sync()]));
    const denied = await raw.waitFor((f) => f.code === 0x45);
    expect(denied.body.toString()).toContain('42501');
    await raw.waitFor((f) => f.code === 0x5a);
    // A statement made with SQL PREPARE can be bound too; it keeps its class.
    await raw.query('PREPARE q AS SELECT 7 AS seven');
    const from = raw.frames.length;
    raw.socket.write(Buffer.concat([serialize.bind({ statement: 'q' }), serialize.execute({}), serialize.sync()]));
    await raw.waitFor((f) => f.code === 0x5a);
    expect(raw.frames.slice(from).map((f) => String.fromCharCode(f.code)).join('')).toBe('2DCZ');
    raw.end();
  });
  it('forgets a Parse-d statement that SQL DEALLOCATE / PREPARE replaced (one namespace upstream)', async () => {
    let current = classPolicy();
    const gateway = await startGateway({
      policy: { admission: (s) => current.admission(s), decide: (s, c) => current.decide(s, c) },
    });
    const raw = await RawClient.connect(gateway.address.port, await token());
    raw.socket.write(Buffer.concat([serialize.parse({ name: 's2', text: 'SELECT 1' }), serialize.sync()]));
    await raw.waitFor((f) => f.code === 0x5a);
    // Same name, now a DELETE — made at the SQL level, where the server keeps protocol-level
    // statements too.
    await raw.query('DEALLOCATE s2; PREPARE s2 AS DELETE FROM accounts WHERE id = 999');
    current = classPolicy(['read']);
    const from = raw.frames.length;
    raw.socket.write(Buffer.concat([serialize.bind({ statement: 's2' }), serialize.execute({}), serialize.sync()]));
    await raw.waitFor((f) => f.code === 0x5a && raw.frames.indexOf(f) >= from);
    const errors = raw.frames.slice(from).filter((f) => f.code === 0x45).map((f) => f.body.toString());
    expect(errors.join('')).toContain('42501');
    expect(raw.frames.slice(from).some((f) => f.code === 0x43 && f.body.toString().startsWith('DELETE'))).toBe(false);
    raw.end();
  });
});

describe('PostgreSQL gateway: masking', () => {
  let gateway: PostgresGateway;
  beforeAll(async () => {
    gateway = await startGateway({ masking: () => testMasker });
  });

  it('masks text results by column name (also behind an alias) and by content', async () => {
    const c = client(gateway, await token());
    await c.connect();
    const { rows } = await c.query('SELECT id, email, email AS contact, card, secret_note FROM accounts ORDER BY id');
    expect(rows).toEqual([
      { id: 1, email: '****', contact: '****', card: '****-****-****-1111', secret_note: null },
      { id: 2, email: '****', contact: '****', card: 'none', secret_note: null },
    ]);
    const viaSubquery = await c.query('SELECT e FROM (SELECT email AS e FROM accounts) s ORDER BY 1');
    expect(viaSubquery.rows).toEqual([{ e: '****' }, { e: '****' }]);
    await c.end();
  });

  it('masks binary-format results without corrupting the other values', async () => {
    const c = client(gateway, await token(), { binary: true } as Partial<pg.ClientConfig>);
    await c.connect();
    const { rows } = await c.query({ text: 'SELECT id, email, balance, card FROM accounts WHERE id = $1', values: [1] });
    expect(rows[0].email).toBe('****');
    expect(rows[0].card).toBe('****-****-****-1111');
    // int4 and numeric stay intact in binary form (pg parses them; a corrupted value would not).
    expect(rows[0].id).toBe(1);
    await c.end();
  });

  it('masks extended-protocol results of prepared statements the client never described', async () => {
    const c = client(gateway, await token());
    await c.connect();
    const q = { name: 'by-id', text: 'SELECT email FROM accounts WHERE id = $1', values: [2] };
    expect((await c.query(q)).rows).toEqual([{ email: '****' }]);
    expect((await c.query(q)).rows).toEqual([{ email: '****' }]);
    await c.end();
  });
});

describe('PostgreSQL gateway with the policy engine and AccessPolicy resources', () => {
  it('admits by group, denies by rule name, and masks with the masking engine', async () => {
    const { bundle } = bundlePolicies(
      [
        {
          name: 'analysts',
          spec: {
            connections: ['orders-db'],
            subjects: [{ kind: 'Group', name: 'dba' }],
            rules: [
              { name: 'no-writes', effect: 'Deny', sql: { statementClasses: ['write', 'ddl', 'privilege'] } },
              { name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } },
            ],
            masking: {
              rules: [
                { name: 'emails', columns: ['email'], strategy: 'redact' },
                { name: 'cards', detectors: ['creditCard'], strategy: 'partial' },
              ],
            },
          },
        },
      ],
      { name: 'orders-db', protocol: 'postgres' },
    );
    const engine = compilePolicies(bundle, { hashKey: new Uint8Array(32).fill(7) });
    const gateway = await startGateway(fromPolicyEngine(engine));
    const c = client(gateway, await token());
    await c.connect();
    const { rows } = await c.query('SELECT id, email AS contact, card FROM accounts ORDER BY id');
    expect(rows[0].contact).not.toContain('alice@example.com');
    expect(rows[0].card).not.toBe('4111-1111-1111-1111');
    expect(rows[0].card).toMatch(/1111$/);
    expect(rows[1].card).toBe('none');
    await expect(c.query('DELETE FROM accounts')).rejects.toMatchObject({ code: '42501', message: /no-writes/ });
    await c.end();
    const outsider = client(gateway, await token('eve', ['guests']));
    await expect(outsider.connect()).rejects.toMatchObject({ code: '28000' });
  });
});

describe('PostgreSQL gateway: recording', () => {
  it('records each statement with its parameters, class, decision, rows and duration', async () => {
    const gateway = await startGateway({ policy: classPolicy(['read']), maxRecordedRows: 1 });
    recorders.length = 0;
    const c = client(gateway, await token());
    await c.connect();
    const selected = await c.query<{ id: number; owner: string }>({ text: 'SELECT id, owner FROM accounts WHERE id >= $1 ORDER BY id', values: [1] });
    await expect(c.query('DELETE FROM accounts')).rejects.toThrow();
    await c.end();
    await sleep(100);
    const events = recorders[0]!.events;
    const queries = events.filter((e): e is SqlQueryEvent => e.k === 'sql.query');
    expect(queries.map((q) => [q.text.text, q.class, q.decision])).toEqual([
      ['SELECT id, owner FROM accounts WHERE id >= $1 ORDER BY id', 'read', 'allow'],
      ['DELETE FROM accounts', 'write', 'deny'],
    ]);
    expect(queries[0]!.params).toEqual([{ text: '1' }]);
    const result = events.find((e): e is SqlResultEvent => e.k === 'sql.result')!;
    expect(result).toMatchObject({ columns: ['id', 'owner'], rows: [['1', 'alice']], rowCount: 2, truncated: true, tag: 'SELECT 2' });
    expect(typeof result.durationMs).toBe('number');
    // Every row's DataRow bytes (type 1, length 4, column count 2, per value length 4 + text), stored rows or not.
    const rowBytes = selected.rows.reduce((sum, row) => sum + 7 + [String(row.id), row.owner].reduce((n, v) => n + 4 + Buffer.byteLength(v), 0), 0);
    expect(result.bytes).toBe(rowBytes);
    expect(events.map((e) => e.k)).toEqual(expect.arrayContaining(['session.start', 'auth', 'deny', 'session.end']));
  });
});

describe('PostgreSQL gateway with the recorder core', () => {
  it('writes a signed, verifiable recording of the session, without the upstream password', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-pg-rec-'));
    try {
      const store = new DirectoryStore(join(dir, 'store'));
      const signingKey = generateSigningKey();
      const core = await Recorder.open({ store, spoolDir: join(dir, 'spool'), signingKey });
      const sessions: CoreSessionRecorder[] = [];
      const gateway = await startGateway({
        policy: classPolicy(['read']),
        recorder: (info) => {
          const s = core.startSession(info);
          sessions.push(s);
          return s;
        },
      });
      const c = client(gateway, await token(), { application_name: 'audit-test' } as Partial<pg.ClientConfig>);
      await c.connect();
      await c.query({ text: 'SELECT owner FROM accounts WHERE id = $1', values: [2] });
      await expect(c.query('DROP TABLE accounts')).rejects.toMatchObject({ code: '42501' });
      await c.end();
      for (let i = 0; i < 100 && !sessions[0]?.closed; i++) await sleep(20);
      const result = await sessions[0]!.closed!;
      expect(result.shipped).toBe(true);
      const events: RecordingEvent[] = [];
      for await (const e of readSessionEvents(store, sessions[0]!.folder, { trustedKeys: signingKey })) events.push(e);
      expect(events.map((e) => e.k)).toEqual(['session.start', 'auth', 'sql.query', 'sql.result', 'sql.query', 'deny', 'session.end']);
      expect(events[0]).toMatchObject({ client: { app: 'audit-test' }, target: expect.stringContaining(db.database) });
      expect(events[3]).toMatchObject({ rows: [['bob']], rowCount: 1 });
      expect(JSON.stringify(events)).not.toContain(db.password);
      const report = await verifySessionFolder(store, sessions[0]!.folder, { trustedKeys: signingKey });
      expect(report).toMatchObject({ ok: true, closed: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PostgreSQL gateway pausing for the recorder', () => {
  it('stops reading while the recorder asks for a pause and goes on after its drain', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'warden-pg-rec-'));
    try {
      const store = new DirectoryStore(join(dir, 'store'));
      const signingKey = generateSigningKey();
      // Every append is over the high-water mark: the gateway pauses after each event.
      const core = await Recorder.open({ store, spoolDir: join(dir, 'spool'), signingKey, memoryHighWaterBytes: 1, maxChunkAgeMs: 20 });
      const sessions: CoreSessionRecorder[] = [];
      let pauses = 0;
      const gateway = await startGateway({
        recorder: (info) => {
          const s = core.startSession(info);
          sessions.push(s);
          const append = s.append.bind(s);
          s.append = (e) => {
            const ok = append(e);
            if (!ok) pauses++;
            return ok;
          };
          return s;
        },
      });
      const c = client(gateway, await token());
      await c.connect();
      for (let i = 0; i < 20; i++) expect((await c.query({ text: 'SELECT $1::int AS i', values: [i] })).rows).toEqual([{ i }]);
      await c.end();
      expect(pauses).toBeGreaterThan(10);
      for (let i = 0; i < 100 && !sessions[0]?.closed; i++) await sleep(20);
      await sessions[0]!.closed;
      let queries = 0;
      for await (const e of readSessionEvents(store, sessions[0]!.folder, { trustedKeys: signingKey })) if (e.k === 'sql.query') queries++;
      expect(queries).toBe(20);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PostgreSQL gateway: robustness', () => {
  it.each([
    ['random bytes', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['a truncated startup packet', Buffer.from([0, 0, 0, 40, 0, 3])],
    ['a huge startup length', Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0])],
    ['a negative length', Buffer.from([0xff, 0xff, 0xff, 0xff])],
  ])('closes a connection that sends %s, and keeps serving', async (_what, bytes) => {
    const gateway = await startGateway();
    const socket = netConnect({ host: '127.0.0.1', port: gateway.address.port });
    socket.on('error', () => undefined);
    socket.resume();
    socket.write(bytes);
    if (_what === 'a truncated startup packet') socket.end();
    await new Promise((resolve) => socket.once('close', resolve));
    const c = client(gateway, await token());
    await c.connect();
    expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await c.end();
  });

  it.each([
    ['an unknown message type', Buffer.from([0x7a, 0, 0, 0, 4])],
    ['a huge message length', Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff])],
    ['a malformed Bind', Buffer.from([0x42, 0, 0, 0, 7, 0, 0, 0xff])],
  ])('ends an authenticated session that sends %s with a protocol error', async (_what, bytes) => {
    const gateway = await startGateway();
    const raw = await RawClient.connect(gateway.address.port, await token());
    raw.socket.write(bytes);
    const error = await raw.waitFor((f) => f.code === 0x45);
    expect(error.body.toString()).toContain('08P01');
    await new Promise((resolve) => (raw.closed ? resolve(undefined) : raw.socket.once('close', resolve)));
  });

  it('cancels a running statement through the gateway', async () => {
    const gateway = await startGateway();
    const c = client(gateway, await token());
    await c.connect();
    const running = c.query('SELECT pg_sleep(10)');
    await sleep(300);
    const key = c as unknown as { processID: number; secretKey: number };
    const cancel = netConnect({ host: '127.0.0.1', port: gateway.address.port });
    cancel.end(serialize.cancel(key.processID, key.secretKey));
    const began = Date.now();
    await expect(running).rejects.toMatchObject({ code: '57014' });
    expect(Date.now() - began).toBeLessThan(5000);
    expect((await c.query('SELECT 1 AS ok')).rows).toEqual([{ ok: 1 }]);
    await c.end();
  });

  it('ends an idle session with a clear error', async () => {
    const gateway = await startGateway({ limits: { idleTimeoutMs: 300 } });
    const c = client(gateway, await token());
    const errors: Error[] = [];
    c.on('error', (e) => errors.push(e));
    await c.connect();
    await sleep(800);
    expect(errors[0]).toMatchObject({ code: '57P05', message: /idle/ });
  });

  it('ends a session at its maximum duration', async () => {
    const gateway = await startGateway({ limits: { maxDurationMs: 500 } });
    const c = client(gateway, await token());
    c.on('error', () => undefined);
    await c.connect();
    await expect(c.query('SELECT pg_sleep(2)')).rejects.toMatchObject({ message: /maximum duration/ });
  });
});
