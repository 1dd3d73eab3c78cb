// PostgreSQL gateway benchmark (issue #5): pgbench select-only (-S) and TPC-B-like, simple and
// prepared protocol, 1 and 8 clients, against (a) PostgreSQL directly, (b) pgbouncer in session
// mode, (c) the same pgbouncer with client TLS (pgbouncer-tls), (d) node-proxy (Node terminating TLS
// and piping bytes), (e) the Warden gateway with policy, masking and recording on. Then the
// gateway's peak RSS with BENCH_SESSIONS (default 200) concurrent sessions.
//
//   node_modules/.bin/node bench/postgres.ts
//   BENCH_SECONDS=30 BENCH_SCALE=20 node_modules/.bin/node bench/postgres.ts
//   BENCH_SCRIPTS=select-only BENCH_MODES=simple,prepared BENCH_CLIENTS=1 BENCH_SESSIONS=0 \
//     BENCH_CPU_PROF=/tmp/prof node_modules/.bin/node bench/postgres.ts   # a short profiling run
//
// Knobs: BENCH_SCRIPTS (select-only,tpcb-like), BENCH_MODES (simple,prepared), BENCH_CLIENTS
// (1,8) pick the configurations (each always runs all five targets); BENCH_SESSIONS=0 skips the
// many-sessions phase; BENCH_CPU_PROF=DIR runs the pgbench gateway child with --cpu-prof into DIR;
// BENCH_GATEWAY_FLAGS adds Node flags to that child (e.g. --trace-gc); BENCH_WARMUP_SECONDS (default 2)
// is an unmeasured pgbench run before every measured one, on every target alike (0: none).
//
// Starts its own PostgreSQL, pgbouncer and OIDC issuer (the test plane's modules) and the gateway
// in a child process (bench/postgres-gateway.ts, with a Postgres gateway's Node flags), so the
// gateway's RSS and CPU are its own. Each configuration runs the five targets back to back, so
// drifting load from other processes hits them alike. Latency percentiles come from pgbench's
// per-transaction log (-l). Progress on stderr, the report on stdout.
//
// The gateway only accepts TLS (the token is a password); PostgreSQL and pgbouncer are reached
// over plain TCP, pgbouncer-tls and node-proxy over TLS. The issue's targets compare with plain
// pgbouncer; W/pgbouncer-tls is the like-for-like ratio, reported beside it.

import { chown, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { startOidcIssuer } from '../test/plane/oidc.ts';
import { startPgbouncer } from '../test/plane/pgbouncer.ts';
import { grantAccess, serviceAccount, startPostgres } from '../test/plane/postgres.ts';
import { canConnect, capture, freePort, ManagedProcess, run, type Started, waitUntil } from '../test/plane/proc.ts';
import { mintToken } from '../test/plane/tokens.ts';
import type { RunnerConfig } from './postgres-gateway.ts';
import { generateSelfSignedCertificate } from '../src/sidecar/self-signed.ts';
import { POSTGRES_GATEWAY_NODE_FLAGS } from '../src/sidecar/postgres/node-flags.ts';
import { type ConfinedGatewayChild, startConfinedGatewayChild } from './cgroup.ts';
import { Cleanups, cpuSecondsOf, type GatewayChild, memoryOf, startGatewayChild } from './support.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
/** An unmeasured pgbench run before each measured one, same target and configuration (JIT warm-up, caches). */
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const SCALE = Number(process.env.BENCH_SCALE ?? 10);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200);
const GROUP = 'bench';

const ALL_SCRIPTS = ['select-only', 'tpcb-like'] as const;
const ALL_MODES = ['simple', 'prepared'] as const;
const TARGETS = ['direct', 'pgbouncer', 'pgbouncer-tls', 'node-proxy', 'warden'] as const;
type Script = (typeof ALL_SCRIPTS)[number];
type Mode = (typeof ALL_MODES)[number];
type Target = (typeof TARGETS)[number];
/** A comma-separated subset of `all` from the environment (all when unset). */
function pick<T extends string>(name: string, all: readonly T[]): T[] {
  const wanted = process.env[name]?.split(',').map((s) => s.trim()).filter(Boolean);
  if (!wanted) return [...all];
  const bad = wanted.filter((w) => !(all as readonly string[]).includes(w));
  if (bad.length > 0) throw new Error(`${name}: unknown ${bad.join(', ')} (one of ${all.join(', ')})`);
  return all.filter((a) => wanted.includes(a));
}
const SCRIPTS = pick('BENCH_SCRIPTS', ALL_SCRIPTS);
const MODES = pick('BENCH_MODES', ALL_MODES);
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,8').split(',').map(Number);
if (CLIENTS.some((c) => !Number.isInteger(c) || c < 1)) throw new Error('BENCH_CLIENTS: positive integers, comma-separated');
const CPU_PROF = process.env.BENCH_CPU_PROF;
/** Client/server round trips per transaction: -S is one statement; TPC-B-like is BEGIN, 5 statements, END. */
const ROUND_TRIPS: Record<Script, number> = { 'select-only': 1, 'tpcb-like': 7 };
/** Targets of issue #5. */
const TARGET_RATIO_DIRECT = 0.8;
const TARGET_ADDED_P50_MS = 0.2;

const log = (m: string): void => void process.stderr.write(`[bench] ${m}\n`);
const uptime = async (): Promise<string> => (await capture('uptime', [])).stdout.trim() || `load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}`;

// ---------------------------------------------------------------------------------------------
// Cleanup, also on Ctrl-C

const cleanups = new Cleanups(log);
cleanups.onSignals();

// ---------------------------------------------------------------------------------------------
// pgbouncer with client TLS

/**
 * The TLS-terminating reference: a second pgbouncer with the plane's pgbouncer.ini (same pool
 * mode, auth, limits, upstream over plain TCP) on a port of its own, plus client-side TLS with a
 * self-signed certificate made here and `client_tls_sslmode = require` (a plain client is refused;
 * checkTlsRequired checks it). Warden must terminate TLS (the password is an OIDC token); this is
 * pgbouncer doing that same work. PgBouncer 1.18 options: https://www.pgbouncer.org/config.html
 * (TLS protocols and ciphers left at their defaults).
 */
async function startPgbouncerTls(dir: string, planeIni: string): Promise<Started<{ host: string; port: number; pid: number }>> {
  const account = await serviceAccount();
  const port = await freePort();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { cert, key } = generateSelfSignedCertificate({ commonName: 'localhost', ipAddresses: ['127.0.0.1'], days: 1 });
  const files = { ini: join(dir, 'pgbouncer.ini'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
  await writeFile(files.cert, cert, { mode: 0o600 });
  await writeFile(files.key, key, { mode: 0o600 });
  // The plane's file ends in its [pgbouncer] section, so the TLS lines appended below belong to it.
  const plane = await readFile(planeIni, 'utf8');
  if (!/^listen_port = \d+$/m.test(plane) || !/^\[pgbouncer\]$/m.test(plane)) throw new Error(`${planeIni}: no listen_port or [pgbouncer] section to adapt`);
  const tls = ['client_tls_sslmode = require', `client_tls_key_file = ${files.key}`, `client_tls_cert_file = ${files.cert}`, ''];
  await writeFile(files.ini, `${plane.replace(/^listen_port = \d+$/m, `listen_port = ${port}`).trimEnd()}\n${tls.join('\n')}`, { mode: 0o600 });
  for (const path of [dir, ...Object.values(files)]) await chown(path, account.uid, account.gid);
  await grantAccess(account, dir);
  const command = account.wrap('/usr/sbin/pgbouncer', [files.ini]);
  const proc = new ManagedProcess({ name: 'pgbouncer-tls', ...command, env: { PATH: process.env.PATH, LANG: 'C' }, cwd: dir, logFile: join(dir, 'pgbouncer.log') });
  try {
    await waitUntil('pgbouncer-tls', () => canConnect('127.0.0.1', port), { process: proc, timeoutMs: 30_000 });
  } catch (error) {
    await proc.stop();
    throw error;
  }
  // setpriv execs pgbouncer in place: the pid is pgbouncer's own (for its CPU per transaction).
  return { info: { host: '127.0.0.1', port, pid: proc.child.pid! }, stop: () => proc.stop() };
}

/** Throws unless `endpoint` refuses a plain connection and accepts TLS (the point of pgbouncer-tls). */
async function checkTlsRequired(endpoint: Endpoint): Promise<void> {
  const connect = async (ssl: false | { rejectUnauthorized: false }): Promise<void> => {
    const client = new pg.Client({ host: endpoint.host, port: endpoint.port, user: endpoint.user, password: endpoint.password, database: endpoint.database, ssl });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } finally {
      await client.end().catch(() => undefined);
    }
  };
  const plain = await connect(false).then(() => true, () => false);
  if (plain) throw new Error(`pgbouncer-tls on port ${endpoint.port} accepted a plain connection: its TLS settings did not take`);
  await connect({ rejectUnauthorized: false });
}

// ---------------------------------------------------------------------------------------------
// The gateway child process

/**
 * The reference, not a contender: the least a TLS-terminating proxy on Node does — answer the
 * SSLRequest, terminate TLS, pipe bytes to PostgreSQL (no parsing, policy, masking or recording).
 * Same Node and TLS as the gateway, so `node-proxy/direct` is the ceiling any gateway on Node's
 * TLS and socket stack reaches on this machine, and `W/node-proxy` what Warden's own work costs.
 */
const NODE_PROXY = `
import net from 'node:net';
import tls from 'node:tls';
import { text } from 'node:stream/consumers';
const c = JSON.parse(await text(process.stdin));
const secureContext = tls.createSecureContext({ cert: c.cert, key: c.key });
const server = net.createServer((raw) => {
  raw.setNoDelay(true);
  raw.once('data', (first) => {
    raw.pause();
    // SSLRequest: length 8, code 80877103; nothing else is accepted.
    if (first.length !== 8 || first.readInt32BE(4) !== 80877103) return void raw.destroy();
    raw.write('S');
    const client = new tls.TLSSocket(raw, { isServer: true, secureContext });
    const up = net.connect({ host: c.host, port: c.port, noDelay: true });
    const kill = () => { client.destroy(); up.destroy(); };
    for (const s of [client, up]) { s.on('error', kill); s.on('close', kill); }
    client.pipe(up);
    up.pipe(client);
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ ready: true, port: server.address().port }) + '\\n'));
process.on('SIGTERM', () => { process.stdout.write(JSON.stringify({ stopped: true }) + '\\n'); process.exit(0); });
`;

async function startNodeProxy(upstream: { host: string; port: number }): Promise<GatewayChild> {
  const { cert, key } = generateSelfSignedCertificate({ commonName: 'localhost', ipAddresses: ['127.0.0.1'], days: 1 });
  return await startGatewayChild(['--input-type=module', '-e', NODE_PROXY], { ...upstream, cert, key }, cleanups);
}

/**
 * The Node flags a Postgres gateway runs with (src/sidecar/postgres/node-flags.ts; --liftoff-only:
 * libpg-query's TurboFan tier-up would otherwise peak at ≈ 540 MiB), so the gateway child
 * measures what the sidecar runs.
 */
const WARDEN_NODE_FLAGS = [...POSTGRES_GATEWAY_NODE_FLAGS];

async function startGateway(config: RunnerConfig, name: string, profile = false): Promise<ConfinedGatewayChild> {
  const prof = profile && CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : [];
  if (profile && process.env.BENCH_GATEWAY_FLAGS) prof.push(...process.env.BENCH_GATEWAY_FLAGS.split(' ').filter(Boolean));
  return await startConfinedGatewayChild(name, [...WARDEN_NODE_FLAGS, ...prof, join(import.meta.dirname, 'postgres-gateway.ts')], config, cleanups, log);
}

// ---------------------------------------------------------------------------------------------
// pgbench

interface Endpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  sslmode: 'disable' | 'require';
}

interface RunResult {
  script: Script;
  mode: Mode;
  clients: number;
  target: Target;
  transactions: number;
  failed: number;
  tps: number;
  avgMs: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU of the target's process per transaction (Warden, node-proxy, pgbouncer-tls). */
  gatewayCpuUs?: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function pgbench(
  bin: string,
  logDir: string,
  endpoint: Endpoint,
  run: { script: Script; mode: Mode; clients: number; target: Target },
  gatewayPid?: number,
  seconds = SECONDS,
): Promise<RunResult> {
  const id = `${run.target}-${run.script}-${run.mode}-${run.clients}-${seconds}s`;
  const dir = join(logDir, id);
  await mkdir(dir);
  const args = [
    '-n', // no VACUUM before the run (the gateway's policy does not allow it; -i vacuumed)
    '-T', String(seconds),
    '-c', String(run.clients),
    '-j', String(Math.min(2, run.clients)),
    '-M', run.mode,
    ...(run.script === 'select-only' ? ['-S'] : []),
    '-l', '--log-prefix', join(dir, 'tx'),
    '-h', endpoint.host,
    '-p', String(endpoint.port),
    '-U', endpoint.user,
    endpoint.database,
  ];
  const env = { PATH: process.env.PATH, LANG: 'C', PGPASSWORD: endpoint.password, PGSSLMODE: endpoint.sslmode, PGGSSENCMODE: 'disable', PGAPPNAME: 'pgbench' };
  const cpuBefore = gatewayPid === undefined ? 0 : await cpuSecondsOf(gatewayPid);
  const result = await capture(bin, args, { env, cwd: dir });
  const cpu = gatewayPid === undefined ? 0 : (await cpuSecondsOf(gatewayPid)) - cpuBefore;
  if (result.code !== 0) throw new Error(`pgbench ${id} exited ${result.code}: ${result.stderr.trim().split('\n').slice(-5).join(' | ')}`);
  const number = (re: RegExp): number => Number(re.exec(result.stdout)?.[1] ?? NaN);
  const transactions = number(/number of transactions actually processed: (\d+)/);
  const failed = number(/number of failed transactions: (\d+)/) || 0;
  const tps = number(/tps = ([\d.]+) \(without initial connection time\)/);
  const avgMs = number(/latency average = ([\d.]+) ms/);

  // Per-transaction log: "client_id transaction_no time_us script_no time_epoch time_us_frac".
  const latencies: number[] = [];
  for (const file of await readdir(dir)) {
    if (!file.startsWith('tx')) continue;
    for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
      const us = Number(line.split(' ')[2]);
      if (line.length > 0 && Number.isFinite(us)) latencies.push(us);
    }
  }
  await rm(dir, { recursive: true, force: true });
  const sorted = Float64Array.from(latencies).sort();
  return {
    ...run,
    transactions,
    failed,
    tps,
    avgMs,
    p50Ms: percentile(sorted, 50) / 1000,
    p99Ms: percentile(sorted, 99) / 1000,
    ...(gatewayPid === undefined ? {} : { gatewayCpuUs: (cpu * 1e6) / transactions }),
  };
}

// ---------------------------------------------------------------------------------------------
// Many sessions at once

interface ManySessions {
  requested: number;
  opened: number;
  errors: string[];
  idleRssMiB: number;
  /** After every session is open, before any query; and the peak sampled while connecting. */
  connectedRssMiB: number;
  connectPeakMiB: number;
  openRssMiB: number;
  peakSampledMiB: number;
  hwmMiB: number;
  connectSeconds: number;
}

async function manySessions(gateway: GatewayChild, token: string): Promise<ManySessions> {
  const mib = (kib: number): number => +(kib / 1024).toFixed(1);
  await sleep(500);
  const idle = await memoryOf(gateway.pid);
  let peak = idle.rssKiB;
  const sampler = setInterval(() => {
    memoryOf(gateway.pid).then(
      (m) => void (peak = Math.max(peak, m.rssKiB)),
      () => undefined,
    );
  }, 20);
  const clients: pg.Client[] = [];
  const errors = new Map<string, number>();
  const began = performance.now();
  try {
    // 20 handshakes at a time (TLS, token check, upstream SCRAM), all sessions stay open.
    for (let i = 0; i < SESSIONS; i += 20) {
      const batch = Array.from({ length: Math.min(20, SESSIONS - i) }, () => {
        const c = new pg.Client({ host: '127.0.0.1', port: gateway.port, user: 'bench', database: 'bench', password: token, ssl: { rejectUnauthorized: false } });
        c.on('error', () => undefined);
        return c;
      });
      const settled = await Promise.allSettled(batch.map((c) => c.connect()));
      settled.forEach((s, j) => {
        if (s.status === 'fulfilled') clients.push(batch[j]!);
        else errors.set((s.reason as Error).message, (errors.get((s.reason as Error).message) ?? 0) + 1);
      });
    }
    const connectSeconds = (performance.now() - began) / 1000;
    const connected = await memoryOf(gateway.pid);
    const connectPeak = Math.max(peak, connected.rssKiB);
    log(`${clients.length}/${SESSIONS} sessions open through the gateway in ${connectSeconds.toFixed(1)} s; querying on each`);
    // Every session runs masked, recorded queries at once, three rounds.
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        clients.map((c, i) => c.query({ text: 'SELECT aid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1 + 9', values: [1 + ((i * 997 + round * 13) % (SCALE * 100_000 - 10))] })),
      );
    }
    await sleep(200);
    const open = await memoryOf(gateway.pid);
    return {
      requested: SESSIONS,
      opened: clients.length,
      errors: [...errors].map(([m, n]) => `${n}× ${m}`),
      idleRssMiB: mib(idle.rssKiB),
      connectedRssMiB: mib(connected.rssKiB),
      connectPeakMiB: mib(connectPeak),
      openRssMiB: mib(open.rssKiB),
      peakSampledMiB: mib(Math.max(peak, open.rssKiB)),
      hwmMiB: mib(open.hwmKiB),
      connectSeconds: +connectSeconds.toFixed(1),
    };
  } finally {
    clearInterval(sampler);
    await Promise.allSettled(clients.map((c) => c.end()));
  }
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

const loadStart = await uptime();
const dir = await mkdtemp(join(tmpdir(), 'warden-bench-pg-'));
cleanups.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
try {
  const postgres = await startPostgres(join(dir, 'postgres'), log);
  cleanups.add('postgres', () => postgres.stop());
  const pgInfo = postgres.info;
  const pgbouncer = await startPgbouncer(join(dir, 'pgbouncer'), log, pgInfo);
  cleanups.add('pgbouncer', () => pgbouncer.stop());
  const pgbouncerTls = await startPgbouncerTls(join(dir, 'pgbouncer-tls'), join(dir, 'pgbouncer', 'pgbouncer.ini'));
  cleanups.add('pgbouncer-tls', () => pgbouncerTls.stop());
  log(`pgbouncer-tls: ready on 127.0.0.1:${pgbouncerTls.info.port} (client_tls_sslmode = require)`);
  const oidc = await startOidcIssuer(join(dir, 'oidc'), log);
  cleanups.add('oidc issuer', () => oidc.stop());
  const bin = (name: string): string => join(pgInfo.binDir, name);
  const versions = {
    postgres: (await run(bin('postgres'), ['--version'])).stdout.trim(),
    pgbench: (await run(bin('pgbench'), ['--version'])).stdout.trim(),
    pgbouncer: (await run('/usr/sbin/pgbouncer', ['--version'])).stdout.split('\n')[0]?.trim() ?? '?',
    node: process.version,
  };

  log(`pgbench -i -s ${SCALE}`);
  const superuserEnv = { PATH: process.env.PATH, LANG: 'C', PGPASSWORD: pgInfo.password, PGSSLMODE: 'disable' };
  await run(bin('pgbench'), ['-i', '-q', '-s', String(SCALE), '-h', pgInfo.host, '-p', String(pgInfo.port), '-U', pgInfo.user, pgInfo.database], { env: superuserEnv });

  // The same database and role everywhere: the superuser, because 200 gateway sessions need 200
  // upstream connections and the plane's PostgreSQL has max_connections=200 (3 reserved for
  // superusers). The gateway still applies its own policy to every statement.
  const upstream = { host: pgInfo.host, port: pgInfo.port, database: pgInfo.database, user: pgInfo.user, password: pgInfo.password };
  const gatewayConfig: RunnerConfig = {
    upstream,
    oidc: { issuer: oidc.info.issuer, audience: oidc.info.audience },
    recordingDir: join(dir, 'recordings'),
    group: GROUP,
  };
  log('starting the gateway child (policy + masking + recording, TLS)');
  const confined = await startGateway(gatewayConfig, 'pgbench', true);
  const gateway = confined.child;
  const token = await mintToken(oidc.info, { user: 'bench', groups: [GROUP] });
  log('starting the node-proxy child (TLS termination and a byte pipe: the reference)');
  const nodeProxy = await startNodeProxy(upstream);
  const endpoints: Record<Target, Endpoint> = {
    'node-proxy': { ...upstream, host: '127.0.0.1', port: nodeProxy.port, sslmode: 'require' },
    direct: { ...upstream, sslmode: 'disable' },
    pgbouncer: { ...upstream, host: pgbouncer.info.host, port: pgbouncer.info.port, sslmode: 'disable' },
    'pgbouncer-tls': { ...upstream, host: pgbouncerTls.info.host, port: pgbouncerTls.info.port, sslmode: 'require' },
    warden: { host: '127.0.0.1', port: gateway.port, user: 'bench', password: token, database: 'bench', sslmode: 'require' },
  };

  await checkTlsRequired(endpoints['pgbouncer-tls']);
  /** Processes whose CPU time per transaction the report shows. */
  const cpuPids: Partial<Record<Target, number>> = { warden: gateway.pid, 'node-proxy': nodeProxy.pid, 'pgbouncer-tls': pgbouncerTls.info.pid };
  const logDir = join(dir, 'pgbench-logs');
  await mkdir(logDir);
  const results: RunResult[] = [];
  const total = SCRIPTS.length * MODES.length * CLIENTS.length * TARGETS.length;
  const runAll = async (): Promise<void> => {
    for (const script of SCRIPTS) {
      for (const mode of MODES) {
        for (const clients of CLIENTS) {
          for (const target of TARGETS) {
            log(`[${results.length + 1}/${total}] ${script} -M ${mode} -c ${clients} → ${target} (${WARMUP_SECONDS > 0 ? `${WARMUP_SECONDS} s warm-up, ` : ''}${SECONDS} s)`);
            if (WARMUP_SECONDS > 0) await pgbench(bin('pgbench'), logDir, endpoints[target], { script, mode, clients, target }, undefined, WARMUP_SECONDS);
            const r = await pgbench(bin('pgbench'), logDir, endpoints[target], { script, mode, clients, target }, cpuPids[target]);
            log(`    ${fmt(r.tps, 0)} tps, avg ${fmt(r.avgMs, 3)} ms, p50 ${fmt(r.p50Ms, 3)} ms, p99 ${fmt(r.p99Ms, 3)} ms${r.failed ? `, ${r.failed} failed` : ''}`);
            results.push(r);
          }
        }
      }
    }
  };
  try {
    await runAll();
  } catch (error) {
    // Most likely the gateway child is gone: say whether its memory cgroup's OOM killer did it.
    throw new Error(`${(error as Error).message}\n  gateway child: ${await confined.confinement()}`, { cause: error });
  }
  const benchMemory = await memoryOf(gateway.pid);
  const benchReport = await gateway.stop();
  const benchConfinement = await confined.confinement();
  await nodeProxy.stop();
  // pgbouncer keeps server connections in its pool; stop both so 200 upstream connections fit.
  await pgbouncer.stop();
  await pgbouncerTls.stop();

  let many: ManySessions | undefined;
  let manyReport: unknown;
  let manyConfinement = '';
  if (SESSIONS > 0) {
    log(`starting a fresh gateway child for ${SESSIONS} concurrent sessions`);
    const confined2 = await startGateway({ ...gatewayConfig, recordingDir: join(dir, 'recordings-many') }, 'sessions');
    many = await manySessions(confined2.child, token);
    manyReport = await confined2.child.stop();
    manyConfinement = await confined2.confinement();
  }
  const loadEnd = await uptime();

  // ---- report
  const out: string[] = [];
  out.push('', `PostgreSQL gateway benchmark (issue #5): pgbench scale ${SCALE}, ${SECONDS} s per run (after an unmeasured ${WARMUP_SECONDS} s warm-up run of the same configuration and target), -j min(2, clients), -n, 2 cores shared by pgbench, PostgreSQL, pgbouncer and the gateway`);
  out.push(`  ${versions.postgres}; ${versions.pgbench}; ${versions.pgbouncer}; gateway on Node ${versions.node} ${WARDEN_NODE_FLAGS.join(' ')} (src/sidecar/postgres/node-flags.ts)${process.env.BENCH_GATEWAY_FLAGS ? `, pgbench gateway also ${process.env.BENCH_GATEWAY_FLAGS}` : ''}`);
  out.push(`  load at start: ${loadStart}`);
  out.push(`  load at end:   ${loadEnd}`);
  out.push(
    '  Warden = gateway child process with the real policy engine (AccessPolicy: allow read/write on public.pgbench_*, deny ddl/privilege),',
    '  masking (redact column filler; email/creditCard/iban detectors on every value) and the recorder core (signed chunks, fsynced',
    '  spool, DirectoryStore on local disk). Clients reach Warden over TLS (sslmode=require, token as password); direct and',
    '  pgbouncer are plain TCP with SCRAM — Warden\'s figures include TLS, theirs do not. pgbouncer: session pool mode.',
    '  pgbouncer-tls (reference): the same pgbouncer configuration plus client TLS (client_tls_sslmode = require, self-signed',
    '  certificate, pgbench sslmode=require): the pooler doing the TLS work Warden must do. The issue\'s target stays plain pgbouncer;',
    '  W/pgbouncer-tls is extra information.',
    '  node-proxy (reference, not a contender): a Node child that answers SSLRequest, terminates TLS and pipes bytes to PostgreSQL —',
    '  the ceiling of any gateway on Node\'s TLS and socket stack here; W/node-proxy is the cost of Warden\'s own work.',
    '',
  );
  out.push(
    table(
      ['script', 'mode', 'clients', 'target', 'tps', 'avg ms', 'p50 ms', 'p99 ms', 'failed', 'proxy CPU µs/tx'],
      results.map((r) => [r.script, r.mode, String(r.clients), r.target, fmt(r.tps, 0), fmt(r.avgMs, 3), fmt(r.p50Ms, 3), fmt(r.p99Ms, 3), String(r.failed), r.gatewayCpuUs === undefined ? '' : fmt(r.gatewayCpuUs, 0)]),
    ),
    '',
  );
  const verdict = (ok: boolean): string => (ok ? 'MET' : 'MISSED');
  const rows: string[][] = [];
  const tally = { direct: 0, pgbouncer: 0, p50: 0, n: 0 };
  for (const script of SCRIPTS) {
    for (const mode of MODES) {
      for (const clients of CLIENTS) {
        const pick = (t: Target): RunResult => results.find((r) => r.script === script && r.mode === mode && r.clients === clients && r.target === t)!;
        const d = pick('direct');
        const b = pick('pgbouncer');
        const bt = pick('pgbouncer-tls');
        const w = pick('warden');
        const n = pick('node-proxy');
        const ofDirect = w.tps / d.tps;
        const ofBouncer = w.tps / b.tps;
        const addedP50 = (w.p50Ms - d.p50Ms) / ROUND_TRIPS[script];
        const ok = { direct: ofDirect >= TARGET_RATIO_DIRECT, pgbouncer: ofBouncer >= 1, p50: addedP50 < TARGET_ADDED_P50_MS };
        tally.direct += ok.direct ? 1 : 0;
        tally.pgbouncer += ok.pgbouncer ? 1 : 0;
        tally.p50 += ok.p50 ? 1 : 0;
        tally.n += 1;
        rows.push([
          script, mode, String(clients), String(ROUND_TRIPS[script]),
          `${fmt(ofDirect * 100, 0)}%`, verdict(ok.direct),
          `${fmt(ofBouncer * 100, 0)}%`, verdict(ok.pgbouncer),
          fmt(w.p50Ms - d.p50Ms, 3), fmt(addedP50, 3), verdict(ok.p50),
          `${fmt((n.tps / d.tps) * 100, 0)}%`, `${fmt((w.tps / n.tps) * 100, 0)}%`,
          `${fmt((w.tps / bt.tps) * 100, 0)}%`,
        ]);
      }
    }
  }
  out.push(
    `Targets: Warden ≥ ${TARGET_RATIO_DIRECT * 100}% of direct TPS; Warden TPS ≥ pgbouncer TPS; added p50 latency (Warden − direct) < ${TARGET_ADDED_P50_MS} ms per round trip`,
    table(['script', 'mode', 'clients', 'rt/tx', 'W/direct', 'target', 'W/pgbouncer', 'target', '+p50 ms/tx', '+p50 ms/rt', 'target', 'node-proxy/direct', 'W/node-proxy', 'W/pgbouncer-tls'], rows),
    `  met: ≥${TARGET_RATIO_DIRECT * 100}% of direct ${tally.direct}/${tally.n}, ≥ pgbouncer ${tally.pgbouncer}/${tally.n}, added p50 ${tally.p50}/${tally.n}`,
    '',
  );
  out.push(
    `Gateway during the pgbench runs: VmRSS ${fmt(benchMemory.rssKiB / 1024, 1)} MiB at the end, peak (VmHWM) ${fmt(benchMemory.hwmKiB / 1024, 1)} MiB; ${JSON.stringify(benchReport ?? {})}`,
    `  ${benchConfinement}`,
  );
  if (many) {
    out.push(
    `${many.opened}/${many.requested} concurrent sessions through a fresh gateway child (opened in ${many.connectSeconds} s, 20 handshakes at a time, then 3 rounds of a masked, recorded 10-row SELECT on every session at once):`,
    `  RSS idle ${many.idleRssMiB} MiB; all sessions connected ${many.connectedRssMiB} MiB (peak while connecting ${many.connectPeakMiB} MiB); after the queries ${many.openRssMiB} MiB (${fmt(((many.openRssMiB - many.idleRssMiB) * 1024) / Math.max(1, many.opened), 0)} KiB per session over idle)`,
    `  peak RSS: sampled every 20 ms ${many.peakSampledMiB} MiB; VmHWM (kernel high-water mark) ${many.hwmMiB} MiB`,
    ...(many.errors.length > 0 ? [`  connection errors: ${many.errors.join('; ')}`] : []),
    `  ${JSON.stringify(manyReport ?? {})}`,
    `  ${manyConfinement}`,
    );
  }
  out.push(
    '',
  );
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await cleanups.run();
}
