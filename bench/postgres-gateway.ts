// The Warden PostgreSQL gateway as a process of its own, for bench/postgres.ts: its RSS and CPU
// are then the gateway's alone, not pgbench's or the bench driver's. Not a product entry point.
//
// Reads one JSON object (RunnerConfig) on stdin — on stdin so the upstream password never shows
// in `ps` — and starts the gateway the way the sidecar does: the real policy engine compiled from
// an AccessPolicy (reads and writes on the pgbench tables for group `bench`, a column masking rule
// on pgbench_accounts.filler, content detectors on every value), the recorder core writing signed
// chunks into a DirectoryStore, and client TLS with a self-signed certificate made at start.
// Prints `{"ready":true,"port":N}` on stdout once it listens. On SIGTERM/SIGINT it closes the
// listener and sessions, waits for the recordings to ship, prints
// `{"stopped":true,"stats":…,"recordings":…}` and exits 0.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { bundlePolicies, type PolicySource } from '../src/policy/compile.ts';
import { compilePolicies } from '../src/policy/engine.ts';
import { generateSigningKey } from '../src/recorder/crypto.ts';
import { Recorder, type SessionRecorder } from '../src/recorder/recorder.ts';
import { DirectoryStore } from '../src/recorder/store-dir.ts';
import { TokenVerifier } from '../src/sidecar/auth/oidc.ts';
import { SqlClassifier } from '../src/sidecar/postgres/classify.ts';
import { fromPolicyEngine } from '../src/sidecar/postgres/engine.ts';
import { PostgresGateway } from '../src/sidecar/postgres/server.ts';
import { generateSelfSignedCertificate } from '../src/sidecar/self-signed.ts';

export interface RunnerConfig {
  upstream: { host: string; port: number; database: string; user: string; password: string };
  oidc: { issuer: string; audience: string };
  /** Recordings go to `<dir>/store`, the spool to `<dir>/spool`. */
  recordingDir: string;
  /** The group the AccessPolicy lists. */
  group: string;
}

/** The AccessPolicy of the benchmark, as a user would write it. */
export function benchPolicy(group: string): PolicySource {
  return {
    name: 'pgbench',
    spec: {
      connections: ['pgbench'],
      subjects: [{ kind: 'Group', name: group }],
      rules: [
        { name: 'no-ddl', effect: 'Deny', sql: { statementClasses: ['ddl', 'privilege'] } },
        { name: 'pgbench-tables', effect: 'Allow', sql: { statementClasses: ['read', 'write'], tables: ['public.pgbench_*'] } },
        // pgbench looks at the catalog at start (partitioning of pgbench_accounts).
        { name: 'catalog', effect: 'Allow', sql: { statementClasses: ['read'], tables: ['pg_catalog.*'] } },
        { name: 'transactions', effect: 'Allow', sql: { statementClasses: ['transaction'] } },
      ],
      masking: {
        rules: [
          { name: 'filler', columns: ['filler'], strategy: 'redact' },
          // Content detectors look at every value of every row: the costly kind of masking.
          { name: 'pii', detectors: ['email', 'creditCard', 'iban'], strategy: 'partial' },
        ],
      },
    },
  };
}

const out = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);

// BENCH_LITERAL_CACHE=0 turns off the classifier's literal-insensitive cache level, to measure what
// it saves. The gateway makes its own classifier, so this wraps SqlClassifier.create; read only here.
if (process.env.BENCH_LITERAL_CACHE === '0') {
  const create = SqlClassifier.create.bind(SqlClassifier);
  SqlClassifier.create = async (options = {}) => await create({ ...options, literalCacheSize: 0 });
}

const config = JSON.parse(await text(process.stdin)) as RunnerConfig;
const { bundle } = bundlePolicies([benchPolicy(config.group)], { name: 'pgbench', protocol: 'postgres' });
const engine = compilePolicies(bundle);
if (engine.problems.length > 0) {
  process.stderr.write(`policy problems: ${JSON.stringify(engine.problems)}\n`);
  process.exit(2);
}

await mkdir(config.recordingDir, { recursive: true });
const store = new DirectoryStore(join(config.recordingDir, 'store'));
const recorder = await Recorder.open({ store, spoolDir: join(config.recordingDir, 'spool'), signingKey: generateSigningKey() });
const open = new Set<SessionRecorder>();
const recordings = { sessions: 0, shipped: 0, failed: 0 };

const gateway = await PostgresGateway.start({
  connection: 'bench/pgbench',
  listen: { host: '127.0.0.1', port: 0 },
  tls: generateSelfSignedCertificate({ commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], days: 1 }),
  upstream: { ...config.upstream, tls: { mode: 'disable' } },
  verifier: new TokenVerifier({ issuer: config.oidc.issuer, audience: config.oidc.audience }),
  ...fromPolicyEngine(engine),
  recorder: (info) => {
    const session = recorder.startSession(info);
    recordings.sessions += 1;
    open.add(session);
    return session;
  },
  logger: (level, message, fields) => {
    if (level === 'warn' || level === 'error') process.stderr.write(`gateway ${level}: ${message} ${JSON.stringify(fields ?? {})}\n`);
  },
});
out({ ready: true, port: gateway.address.port });

// Where the memory is at the RSS peak (V8 heap vs. buffers vs. the rest: WASM, native), in MiB.
const MIB = 1024 * 1024;
let peakRss = 0;
let atPeak: NodeJS.MemoryUsage | undefined;
const sampler = setInterval(() => {
  const rss = process.memoryUsage.rss();
  if (rss > peakRss) {
    peakRss = rss;
    atPeak = process.memoryUsage();
  }
}, 100);
const memoryAtPeak = (): Record<string, number> | undefined =>
  atPeak && Object.fromEntries(Object.entries(atPeak).map(([k, v]) => [k, +(v / MIB).toFixed(1)]));

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await gateway.close({ graceMs: 2_000 });
  const closing = [...open].flatMap((s) => (s.closed ? [s.closed] : []));
  recordings.failed += open.size - closing.length; // never closed: no manifest
  for (const r of await Promise.all(closing)) {
    if (r.shipped) recordings.shipped += 1;
    else recordings.failed += 1;
  }
  recorder.stop();
  clearInterval(sampler);
  out({ stopped: true, stats: gateway.stats, recordings, memoryAtPeakMiB: memoryAtPeak() });
  process.exit(0);
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop());
