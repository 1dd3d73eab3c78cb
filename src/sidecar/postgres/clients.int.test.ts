// Real clients through the gateway: pgbench in its three query modes, psql meta-commands under a
// read-only policy, COPY both ways, LISTEN/NOTIFY, PostgreSQL 17 direct TLS, and a 1M-row result
// streamed with bounded buffering.

import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { run } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import type { SqlResultEvent } from '../../recorder/events.ts';
import { TokenVerifier } from '../auth/oidc.ts';
import type { PostgresGatewayConfig } from './config.ts';
import { BackendFramer } from './protocol/backend.ts';
import { PostgresGateway } from './server.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { classPolicy, createTestDatabase, MemoryRecorder, RawClient, selfSignedCert, type TestDatabase } from './testing.ts';

const plane = inject('plane');
const bin = (name: string): string => join(plane.postgres.binDir, name);

let db: TestDatabase;
let tls: { cert: string; key: string };
let verifier: TokenVerifier;
const gateways: PostgresGateway[] = [];

async function startGateway(overrides: Partial<PostgresGatewayConfig> = {}): Promise<PostgresGateway> {
  const gateway = await PostgresGateway.start({
    connection: 'test/bench-db',
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
    ...overrides,
  });
  gateways.push(gateway);
  return gateway;
}

async function env(gateway: PostgresGateway): Promise<NodeJS.ProcessEnv> {
  return {
    ...process.env,
    PGHOST: '127.0.0.1',
    PGPORT: String(gateway.address.port),
    PGUSER: 'alice',
    PGDATABASE: 'bench',
    PGSSLMODE: 'require',
    PGPASSWORD: await mintToken(plane.oidc, { user: 'alice', groups: ['dba'] }),
  };
}

beforeAll(async () => {
  db = await createTestDatabase(plane.postgres, 'warden_cl');
  tls = await selfSignedCert();
  verifier = new TokenVerifier({ issuer: plane.oidc.issuer, audience: plane.oidc.audience });
});

afterAll(async () => {
  for (const g of gateways) await g.close({ graceMs: 1000 });
  await db?.drop();
});

describe('pgbench through the gateway', () => {
  let gateway: PostgresGateway;
  beforeAll(async () => {
    gateway = await startGateway({ recorder: MemoryRecorder.factory(), maxRecordedRows: 10 });
    // Initialisation itself goes through the gateway: DDL, COPY FROM STDIN, VACUUM.
    await run(bin('pgbench'), ['-i', '-s', '1', '-q'], { env: await env(gateway) });
  }, 120_000);

  it.each(['simple', 'extended', 'prepared'])('runs the TPC-B-like script with -M %s', async (mode) => {
    const { stdout } = await run(bin('pgbench'), ['-M', mode, '-c', '2', '-t', '200', '-n'], { env: await env(gateway) });
    expect(stdout).toMatch(/number of transactions actually processed: 400\/400/);
    expect(stdout).toMatch(/number of failed transactions: 0/);
  });
});

describe('psql through a read-only gateway', () => {
  it('runs meta-commands (their catalog queries are reads) and refuses writes', async () => {
    const gateway = await startGateway({ policy: classPolicy(['read']) });
    await db.admin(`SET ROLE ${db.user}; CREATE TABLE IF NOT EXISTS notes (id int, body text); RESET ROLE;`);
    const e = await env(gateway);
    const { stdout } = await run(bin('psql'), ['-X', '-c', '\\dt', '-c', '\\d notes', '-c', '\\l', '-c', '\\du'], { env: e });
    expect(stdout).toContain('notes');
    await expect(run(bin('psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'DROP TABLE notes'], { env: e })).rejects.toThrow(
      /denied by policy read-only/,
    );
  });
});

describe('protocol features', () => {
  let gateway: PostgresGateway;
  beforeAll(async () => {
    gateway = await startGateway();
  });

  it('relays COPY in and out', async () => {
    const e = await env(gateway);
    await run(bin('psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-c', 'CREATE TABLE copied (a int, b text)'], { env: e });
    await run(bin('psql'), ['-X', '-v', 'ON_ERROR_STOP=1', '-c', '\\copy copied FROM STDIN'], { env: e, input: '1\tone\n2\ttwo\n\\.\n' });
    const { stdout } = await run(bin('psql'), ['-X', '-c', 'COPY copied TO STDOUT'], { env: e });
    expect(stdout).toBe('1\tone\n2\ttwo\n');
  });

  it('relays LISTEN/NOTIFY between sessions', async () => {
    const password = (await env(gateway)).PGPASSWORD!;
    const options = { host: '127.0.0.1', port: gateway.address.port, user: 'alice', password, ssl: { rejectUnauthorized: false } };
    const listener = new pg.Client(options);
    const notifier = new pg.Client(options);
    await listener.connect();
    await notifier.connect();
    const received = new Promise<pg.Notification>((resolve) => listener.on('notification', resolve));
    await listener.query('LISTEN warden_chan');
    await notifier.query("NOTIFY warden_chan, 'hello'");
    expect(await received).toMatchObject({ channel: 'warden_chan', payload: 'hello' });
    await listener.end();
    await notifier.end();
  });

  it('accepts PostgreSQL 17 direct TLS (ALPN postgresql)', async () => {
    const token = (await env(gateway)).PGPASSWORD!;
    const socket = tlsConnect({ host: '127.0.0.1', port: gateway.address.port, ALPNProtocols: ['postgresql'], rejectUnauthorized: false });
    const framer = new BackendFramer();
    const codes: string[] = [];
    const ready = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        for (const f of framer.push(chunk)) {
          codes.push(String.fromCharCode(f.code));
          if (f.code === 0x52 && f.body.readInt32BE(0) === 3) socket.write(serialize.password(token));
          if (f.code === 0x5a) resolve();
        }
      });
      socket.on('error', reject);
    });
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve));
    socket.write(serialize.startup({ user: 'alice' }));
    await ready;
    expect(codes).toContain('K');
    socket.end(serialize.end());
  });
});

describe('a large result', () => {
  it('streams 1M rows with bounded buffering in the gateway and records the count', async () => {
    const recorders: MemoryRecorder[] = [];
    const gateway = await startGateway({ recorder: MemoryRecorder.factory(recorders), maxRecordedRows: 5 });
    await run(bin('psql'), ['-X', '-A', '-t', '-o', '/dev/null', '-c', 'SELECT g, md5(g::text) FROM generate_series(1, 1000000) g'], {
      env: await env(gateway),
    });
    const result = recorders[0]!.events.find((e): e is SqlResultEvent => e.k === 'sql.result' && e.rowCount > 1)!;
    expect(result).toMatchObject({ rowCount: 1_000_000, truncated: true, tag: 'SELECT 1000000' });
    expect(result.rows).toHaveLength(5);
    // About 45 MB cross the gateway; what it holds at any moment stays far below that.
    expect(gateway.stats.peakBufferedBytes).toBeLessThan(4 * 1024 * 1024);
  }, 120_000);

  it('stops reading from the database while a slow client catches up (backpressure)', async () => {
    const gateway = await startGateway();
    const raw = await RawClient.connect(gateway.address.port, (await env(gateway)).PGPASSWORD!);
    raw.keep = (f) => f.code !== 0x44; // count DataRows, keep the rest
    raw.socket.pause();
    raw.socket.write(serialize.query('SELECT g, md5(g::text) FROM generate_series(1, 1000000) g'));
    await sleep(1500);
    // Without backpressure the gateway would hold the whole ~45 MB result for this client now.
    expect(gateway.stats.peakBufferedBytes).toBeLessThan(4 * 1024 * 1024);
    raw.socket.resume();
    await raw.waitFor((f) => f.code === 0x5a, 60_000);
    expect(raw.count).toBeGreaterThan(1_000_000);
    expect(gateway.stats.peakBufferedBytes).toBeLessThan(4 * 1024 * 1024);
    raw.end();
  }, 120_000);
});
