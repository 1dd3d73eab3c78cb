// Fixtures for the gateway's integration tests: a database and upstream role of their own on the
// plane's PostgreSQL, a self-signed TLS certificate, simple policies and maskers, an in-memory
// recorder, and a raw protocol client that shows every byte the gateway sends.

import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import pg from 'pg';
import { serialize } from 'pg-protocol';
import { run } from '../../../test/plane/proc.ts';
import type { PostgresInfo } from '../../../test/plane/types.ts';
import type { PolicySubject, SqlCommand } from '../../policy/command.ts';
import type { RecordingEvent } from '../../recorder/events.ts';
import type { CellMasker, GatewayPolicy, SessionInfo, SessionRecorder, StatementDecision } from './config.ts';
import { type BackendFrame, BackendFramer } from './protocol/backend.ts';

export interface TestDatabase {
  database: string;
  user: string;
  password: string;
  /** Runs SQL as the superuser in the test database. */
  admin(sql: string): Promise<pg.QueryResult>;
  drop(): Promise<void>;
}

/** A database and an owner role of its own (SCRAM password), for one test file. */
export async function createTestDatabase(pgInfo: PostgresInfo, prefix: string): Promise<TestDatabase> {
  const suffix = randomBytes(4).toString('hex');
  const database = `${prefix}_${suffix}`;
  const user = `${prefix}_owner_${suffix}`;
  const password = `up-${randomBytes(12).toString('hex')}`;
  const superuser = { host: pgInfo.host, port: pgInfo.port, user: pgInfo.user, password: pgInfo.password };
  const root = new pg.Client({ ...superuser, database: pgInfo.database });
  await root.connect();
  await root.query(`CREATE ROLE ${user} LOGIN PASSWORD '${password}'`);
  await root.query(`CREATE DATABASE ${database} OWNER ${user}`);
  await root.end();
  const admin = new pg.Client({ ...superuser, database });
  await admin.connect();
  return {
    database,
    user,
    password,
    admin: (sql) => admin.query(sql),
    drop: async () => {
      await admin.end();
      const r = new pg.Client({ ...superuser, database: pgInfo.database });
      await r.connect();
      await r.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await r.query(`DROP ROLE IF EXISTS ${user}`);
      await r.end();
    },
  };
}

/** A throwaway self-signed certificate for the gateway's client-facing TLS. */
export async function selfSignedCert(): Promise<{ cert: string; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-pg-cert-'));
  try {
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ]);
    return { cert: await readFile(join(dir, 'cert.pem'), 'utf8'), key: await readFile(join(dir, 'key.pem'), 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const allow = (reason: string): StatementDecision => ({ effect: 'Allow', reason, policy: 'test', rule: 'allow' });

/** Admits everyone; allows the given statement classes (all when omitted) and denies the rest. */
export function classPolicy(allowed?: readonly string[]): GatewayPolicy {
  return {
    admission: (subject: PolicySubject) =>
      subject.groups.includes('blocked')
        ? { admitted: false, reason: `no AccessPolicy admits ${subject.user}` }
        : { admitted: true, reason: 'admitted by policy test' },
    decide: (_subject: PolicySubject, command: SqlCommand) =>
      !allowed || allowed.includes(command.statementClass)
        ? allow(`allowed by policy test rule allow`)
        : {
            effect: 'Deny',
            reason: `denied by policy read-only rule read-only: ${command.statementClass} statements are not allowed`,
            policy: 'read-only',
            rule: 'read-only',
          },
  };
}

/** Masks columns named `email` (redact) and card-like numbers in any text (keeps the last 4). */
export const testMasker: CellMasker = {
  masksColumn: (names) => names.includes('email'),
  mask: (names, value) => {
    if (names.includes('email')) return '****';
    if (names.includes('secret_note')) return null;
    return value.replace(/\b(?:\d{4}[- ]){3}(\d{4})\b/g, '****-****-****-$1');
  },
};

export class MemoryRecorder implements SessionRecorder {
  readonly events: RecordingEvent[] = [];
  closedWith: string | undefined;

  /** Starts with the session.start event, as the recorder core does. */
  static factory(sink: MemoryRecorder[] = []): (info: SessionInfo) => MemoryRecorder {
    return (info) => {
      const r = new MemoryRecorder();
      r.append({ t: 0, k: 'session.start', protocol: 'postgres', connection: info.connection, startedAt: new Date().toISOString() });
      sink.push(r);
      return r;
    };
  }

  append(event: RecordingEvent): void {
    this.events.push(event);
  }
  close(reason: string): void {
    this.closedWith = reason;
    this.events.push({ t: 0, k: 'session.end', reason });
  }
}

/**
 * A protocol client that keeps every byte the gateway sent: TLS via SSLRequest, startup, the
 * token as the password, then whatever the test writes.
 */
export class RawClient {
  readonly received: Buffer[] = [];
  readonly frames: BackendFrame[] = [];
  socket!: TLSSocket;
  closed = false;
  /** Frames seen in total; only those `keep` accepts are stored (large results). */
  count = 0;
  keep: (f: BackendFrame) => boolean = () => true;
  readonly #framer = new BackendFramer();

  static async connect(port: number, token: string, params: Record<string, string> = { user: 'raw' }): Promise<RawClient> {
    const client = new RawClient();
    const tcp = netConnect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      tcp.once('connect', resolve);
      tcp.once('error', reject);
    });
    tcp.write(serialize.requestSsl());
    const answer = await new Promise<Buffer>((resolve) => tcp.once('data', resolve));
    if (answer.toString() !== 'S') throw new Error('gateway declined TLS');
    const socket = tlsConnect({ socket: tcp, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    client.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      const frames = client.#framer.push(chunk);
      client.count += frames.length;
      if (frames.every((f) => client.keep(f))) {
        client.received.push(chunk);
        client.frames.push(...frames);
      } else {
        client.frames.push(...frames.filter((f) => client.keep(f)));
      }
    });
    socket.on('close', () => {
      client.closed = true;
    });
    socket.on('error', () => undefined);
    socket.write(serialize.startup(params));
    await client.waitFor((f) => f.code === 0x52); // AuthenticationCleartextPassword
    socket.write(serialize.password(token));
    await client.waitFor((f) => f.code === 0x5a || f.code === 0x45);
    return client;
  }

  /** Waits until a frame after the ones already seen matches. */
  async waitFor(match: (f: BackendFrame) => boolean, timeoutMs = 10_000): Promise<BackendFrame> {
    const start = this.#seen;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = start; i < this.frames.length; i++) {
        if (match(this.frames[i]!)) {
          this.#seen = i + 1;
          return this.frames[i]!;
        }
      }
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error('timed out waiting for a frame');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  #seen = 0;

  async query(sql: string): Promise<BackendFrame[]> {
    const from = this.frames.length;
    this.socket.write(serialize.query(sql));
    await this.waitFor((f) => f.code === 0x5a);
    return this.frames.slice(from);
  }

  all(): Buffer {
    return Buffer.concat(this.received);
  }

  end(): void {
    this.socket.end(serialize.end());
  }
}
