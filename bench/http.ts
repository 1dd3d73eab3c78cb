// HTTP gateway benchmark (issue #7): wrk against nginx directly, through a second nginx as a
// reverse proxy, and through the Warden HTTP gateway with policy and recording on; small and 1 MiB
// responses, 1 and 64 connections: requests/s and p99 latency. Then `kubectl get pods -A` latency
// against a kube-apiserver directly vs. through a Kubernetes-flavour gateway.
//
//   node_modules/.bin/node bench/http.ts
//   BENCH_SECONDS=20 BENCH_KUBECTL=50 node_modules/.bin/node bench/http.ts
//   BENCH_SIZES=small BENCH_CONNECTIONS=1,64 BENCH_KUBECTL=0 node_modules/.bin/node bench/http.ts   # quick iteration
//   BENCH_ROUNDS=3 …   repeat the whole target cycle, report medians (a busy machine)
//   BENCH_GATEWAY_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof' …   extra node flags for the Warden gateway child
//   BENCH_NODE_PROXY_NODE_OPTIONS=…   the same for the node-proxy reference child
//   BENCH_GATEWAY_MEMORY=1 BENCH_GATEWAY_NODE_OPTIONS=--expose-gc BENCH_NODE_PROXY_NODE_OPTIONS=--expose-gc …
//     memory details: the gateway's VmRSS after each round; in the gateway child's stop report
//     process.memoryUsage(), V8 space sizes, anonymous/file RSS (smaps_rollup) and open TCP handles and
//     recorder sessions, at SIGTERM, 3 s later, after a forced gc, after close (+gc), and where the
//     anonymous RSS sits (brk heap vs. other mappings); the same for the node-proxy child. Add
//     `--max-old-space-size=256 --max-semi-space-size=2` to size V8 about as Node does in the 512Mi
//     gateway container (Node sizes the heap from the cgroup limit; here from the machine's RAM).
//
// Starts its own nginx, OIDC issuer and kube-apiserver (the test plane's modules) and each gateway
// in a child process (this same file, `node bench/http.ts gateway`, config JSON on stdin), so the
// gateway's RSS and CPU are its own. Each configuration runs the three targets back to back, so
// drifting load from other processes hits them alike. Progress on stderr, the report on stdout.
// Needs wrk (Debian package `wrk`).

import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { getHeapSpaceStatistics } from 'node:v8';
import { bundlePolicies, type PolicySource } from '../src/policy/compile.ts';
import { compilePolicies } from '../src/policy/engine.ts';
import { generateSigningKey } from '../src/recorder/crypto.ts';
import { Recorder, type SessionRecorder } from '../src/recorder/recorder.ts';
import { DirectoryStore } from '../src/recorder/store-dir.ts';
import { TokenVerifier } from '../src/sidecar/auth/oidc.ts';
import type { HttpUpstream } from '../src/sidecar/http/config.ts';
import { HttpGateway } from '../src/sidecar/http/gateway.ts';
import { generateSelfSignedCertificate } from '../src/sidecar/self-signed.ts';
import { startKube } from '../test/plane/kube.ts';
import { kubeClient, kubectlOk } from '../test/plane/kubectl.ts';
import { NGINX_FILES, startNginx } from '../test/plane/nginx.ts';
import { startOidcIssuer } from '../test/plane/oidc.ts';
import { capture, freePort, ManagedProcess, type Started, waitUntil } from '../test/plane/proc.ts';
import { mintToken } from '../test/plane/tokens.ts';
import { type ConfinedGatewayChild, startConfinedGatewayChild } from './cgroup.ts';
import { Cleanups, cpuSecondsOf, memoryOf, startGatewayChild } from './support.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const KUBECTL_RUNS = Number(process.env.BENCH_KUBECTL ?? 20);
/** Rounds of the whole target cycle; with more than one, each figure is the median over the rounds. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 1));
const GROUP = 'bench';
const NGINX = '/usr/sbin/nginx';

const ALL_SIZES = ['small', '1MiB'] as const;
type Size = (typeof ALL_SIZES)[number];
/** BENCH_SIZES / BENCH_CONNECTIONS (comma-separated) pick a subset of the cases, for quick iterations. */
const SIZES: readonly Size[] = process.env.BENCH_SIZES ? ALL_SIZES.filter((s) => process.env.BENCH_SIZES!.split(',').includes(s)) : ALL_SIZES;
const CONNECTIONS: readonly number[] = process.env.BENCH_CONNECTIONS ? process.env.BENCH_CONNECTIONS.split(',').map(Number) : [1, 64];
/**
 * node-proxy is a reference, not a contender: a minimal reverse proxy on the gateway's stack (Node's
 * http server, undici's pool upstream; no token, no policy, no recording) on the same Node — the
 * ceiling of what a proxy on that stack can do on this machine.
 */
const TARGETS = ['direct', 'nginx-proxy', 'node-proxy', 'warden'] as const;
type Target = (typeof TARGETS)[number];
const PATHS: Record<Size, string> = { small: NGINX_FILES.small.path, '1MiB': NGINX_FILES.oneMiB.path };
/** Target of issue #7: Warden ≥ 70 % of nginx-proxy throughput on small responses. */
const TARGET_RATIO_PROXY = 0.7;
/** Extra node flags for the Warden gateway child (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
const GATEWAY_NODE_OPTIONS = (process.env.BENCH_GATEWAY_NODE_OPTIONS ?? '').split(' ').filter((a) => a !== '');
/** The same for the node-proxy reference child. */
const NODE_PROXY_NODE_OPTIONS = (process.env.BENCH_NODE_PROXY_NODE_OPTIONS ?? '').split(' ').filter((a) => a !== '');

const log = (m: string): void => void process.stderr.write(`[bench] ${m}\n`);
/** BENCH_GATEWAY_MEMORY=1: memory details in the gateway child's stop report (with --expose-gc, also after a forced gc). */
const MEMORY_DETAILS = process.env.BENCH_GATEWAY_MEMORY === '1';

/** This process's memory in MiB: V8's view and the kernel's (VmRSS, and RSS split anonymous/file from smaps_rollup). */
async function memorySnapshot(): Promise<Record<string, unknown>> {
  const mib = (bytes: number): number => +(bytes / 2 ** 20).toFixed(1);
  const m = process.memoryUsage();
  const rollup = await readFile('/proc/self/smaps_rollup', 'utf8').catch(() => '');
  const kib = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? NaN);
  const spaces = Object.fromEntries(getHeapSpaceStatistics().filter((space) => space.space_size >= 2 ** 20).map((space) => [space.space_name.replace(/_space$/, ''), mib(space.space_size)]));
  const tcp = process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
  return { tcpHandles: tcp, rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers), anon: mib(kib('Anonymous') * 1024), file: mib((kib('Rss') - kib('Anonymous')) * 1024), spaces };
}

/** Where the anonymous RSS sits: brk heap, and the largest anonymous mappings (size/RSS in MiB). */
async function anonymousMappings(): Promise<Record<string, unknown>> {
  const smaps = await readFile('/proc/self/smaps', 'utf8').catch(() => '');
  const maps: Array<{ name: string; sizeMiB: number; rssMiB: number }> = [];
  for (const block of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const name = /^\S+ \S+ \S+ \S+ \S+[ \t]*([^\n]*)$/m.exec(block)?.[1]?.trim() ?? '';
    if (name !== '' && name !== '[heap]') continue;
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(block)?.[1] ?? 0);
    maps.push({ name: name || 'anon', sizeMiB: +(kib('Size') / 1024).toFixed(1), rssMiB: +(kib('Rss') / 1024).toFixed(1) });
  }
  maps.sort((a, b) => b.rssMiB - a.rssMiB);
  const sum = (list: typeof maps): number => +list.reduce((t, m) => t + m.rssMiB, 0).toFixed(1);
  return { brkHeapRss: sum(maps.filter((m) => m.name === '[heap]')), anonMappings: maps.length, top: maps.slice(0, 8).map((m) => `${m.name}:${m.sizeMiB}/${m.rssMiB}`) };
}

/** A forced full gc when the child runs with --expose-gc, then a turn of the event loop (FinalizationRegistry, ArrayBuffer frees). */
async function forcedGc(): Promise<boolean> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return false;
  gc();
  await new Promise((resolve) => setTimeout(resolve, 100));
  gc();
  return true;
}

// ---------------------------------------------------------------------------------------------
// The gateway child: `node bench/http.ts gateway`, GatewayChildConfig as JSON on stdin (on stdin so
// upstream credentials never show in `ps`). Prints `{"ready":true,"port":N}` once it listens; on
// SIGTERM closes, waits for the recordings to ship, prints `{"stopped":true,…}` and exits 0.

interface GatewayChildConfig {
  flavour: 'http' | 'kubernetes';
  upstream: HttpUpstream;
  /** Client-facing TLS with a self-signed certificate made at start (kubectl wants https). */
  tls: boolean;
  oidc: { issuer: string; audience: string };
  /** Recordings go to `<dir>/store`, the spool to `<dir>/spool`. */
  recordingDir: string;
  group: string;
}

/** The AccessPolicies of the benchmark, as a user would write them. */
function benchPolicy(flavour: GatewayChildConfig['flavour'], group: string): PolicySource {
  const subjects = [{ kind: 'Group' as const, name: group }];
  return flavour === 'http'
    ? {
        name: 'web',
        spec: {
          connections: ['web'],
          subjects,
          rules: [
            { name: 'no-admin', effect: 'Deny', http: { paths: ['/admin/*'] } },
            { name: 'read', effect: 'Allow', http: { methods: ['GET', 'HEAD'] } },
          ],
        },
      }
    : {
        name: 'cluster',
        spec: {
          connections: ['cluster'],
          subjects,
          rules: [
            { name: 'no-secrets', effect: 'Deny', kubernetes: { resources: ['secrets'] } },
            { name: 'read', effect: 'Allow', kubernetes: { verbs: ['get', 'list', 'watch'], resources: ['pods', 'namespaces'] } },
          ],
        },
      };
}

async function gatewayChild(): Promise<void> {
  const out = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
  const config = JSON.parse(await text(process.stdin)) as GatewayChildConfig;
  const connectionName = config.flavour === 'http' ? 'web' : 'cluster';
  const { bundle } = bundlePolicies([benchPolicy(config.flavour, config.group)], { name: connectionName, protocol: config.flavour });
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
  let denied = 0;
  const gateway = await HttpGateway.start({
    connection: `bench/${connectionName}`,
    flavour: config.flavour,
    listen: { host: '127.0.0.1', port: 0 },
    ...(config.tls ? { tls: generateSelfSignedCertificate({ commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], days: 1 }) } : {}),
    upstream: config.upstream,
    verifier: new TokenVerifier({ issuer: config.oidc.issuer, audience: config.oidc.audience }),
    policy: {
      admission: (subject) => engine.admission(subject),
      decide: (subject, command) => {
        const decision = engine.decide(subject, command);
        if (decision.effect !== 'Allow') denied += 1;
        return decision;
      },
    },
    masking: (subject) => engine.masker(subject),
    recorder: (info) => {
      const session = recorder.startSession({ sessionId: info.sessionId, protocol: config.flavour, connection: info.connection, clientAddress: info.client.addr });
      recordings.sessions += 1;
      open.add(session);
      return session;
    },
    recorderWritesLifecycle: true,
    logger: (level, message, fields) => {
      if (level === 'warn' || level === 'error') process.stderr.write(`gateway ${level}: ${message} ${JSON.stringify(fields ?? {})}\n`);
    },
  });
  out({ ready: true, port: gateway.address.port });

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const memory: Record<string, unknown> = {};
    if (MEMORY_DETAILS) {
      memory.beforeClose = { ...(await memorySnapshot()), recorderSessions: recorder.sessions.size, gatewaySessions: open.size };
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      memory.beforeClose3s = { ...(await memorySnapshot()), recorderSessions: recorder.sessions.size };
      if (await forcedGc()) memory.beforeCloseAfterGc = await memorySnapshot();
    }
    await gateway.close();
    const closing = [...open].flatMap((s) => (s.closed ? [s.closed] : []));
    recordings.failed += open.size - closing.length; // never closed: no manifest
    for (const r of await Promise.all(closing)) {
      if (r.shipped) recordings.shipped += 1;
      else recordings.failed += 1;
    }
    recorder.stop();
    if (MEMORY_DETAILS) {
      memory.afterClose = { ...(await memorySnapshot()), recorderSessions: recorder.sessions.size };
      if (await forcedGc()) memory.afterCloseAfterGc = await memorySnapshot();
      memory.mappings = await anonymousMappings();
    }
    out({ stopped: true, denied, recordings, heapMiB: +(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1), ...(MEMORY_DETAILS ? { memory } : {}) });
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop());
}

// ---------------------------------------------------------------------------------------------
// The reference child: `node bench/http.ts node-proxy`, `{"upstream": "http://host:port"}` on stdin.
// The smallest reverse proxy worth the name on the gateway's own stack: Node's http server, undici's
// pool towards the target (as src/sidecar/http/upstream.ts), the client's headers passed through as
// they are (hop-by-hop ones aside), the response written back with back-pressure. No token, policy,
// header hygiene, masking or recording — what the stack itself costs per request. (Until the
// 2026-12-03 evening figures it used node:http's ClientRequest with a keep-alive agent, as the
// gateway did then.)

async function nodeProxyChild(): Promise<void> {
  const { createServer } = await import('node:http');
  const { Pool } = await import('undici');
  const { upstream } = JSON.parse(await text(process.stdin)) as { upstream: string };
  const pool = new Pool(upstream, { pipelining: 1, bodyTimeout: 0 });
  const hopByHop = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);
  const server = createServer((req, res) => {
    const headers: Record<string, string | string[] | undefined> = {};
    for (const [name, value] of Object.entries(req.headers)) if (!hopByHop.has(name)) headers[name] = value;
    let abort: ((reason: Error) => void) | undefined;
    res.on('close', () => {
      if (!res.writableFinished) abort?.(new Error('client gone'));
    });
    pool.dispatch(
      { method: req.method ?? 'GET', path: req.url ?? '/', headers, body: req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined ? null : req },
      {
        onRequestStart: (controller) => {
          abort = (reason) => controller.abort(reason);
        },
        onResponseStart: (_controller, status, upstreamHeaders) => {
          if (status < 200) return;
          const back: Record<string, string | string[] | undefined> = {};
          for (const [name, value] of Object.entries(upstreamHeaders)) if (!hopByHop.has(name)) back[name] = value;
          res.writeHead(status, back);
        },
        onResponseData: (controller, chunk) => {
          if (!res.write(chunk)) {
            controller.pause();
            res.once('drain', () => controller.resume());
          }
        },
        onResponseEnd: () => res.end(),
        onResponseError: () => {
          if (res.headersSent) res.destroy();
          else res.writeHead(502).end();
        },
      },
    );
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`${JSON.stringify({ ready: true, port: (server.address() as { port: number }).port })}\n`);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      void (async () => {
        const memory = MEMORY_DETAILS ? { memory: { beforeGc: await memorySnapshot(), ...((await forcedGc()) ? { afterGc: await memorySnapshot() } : {}), mappings: await anonymousMappings() } } : {};
        process.stdout.write(`${JSON.stringify({ stopped: true, ...memory })}\n`);
        process.exit(0);
      })();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup, also on Ctrl-C

const cleanups = new Cleanups(log);

// ---------------------------------------------------------------------------------------------
// Gateway child handling (parent side)

/** In its own memory cgroup, limited as its container is (bench/cgroup.ts, BENCH_GATEWAY_MEMORY_LIMIT). */
async function startGateway(config: GatewayChildConfig): Promise<ConfinedGatewayChild> {
  return await startConfinedGatewayChild(config.flavour, [...GATEWAY_NODE_OPTIONS, import.meta.filename, 'gateway'], config, cleanups, log);
}

// ---------------------------------------------------------------------------------------------
// nginx as a reverse proxy in front of the plane's nginx (the reference Warden is measured against)

async function startNginxProxy(dir: string, upstreamPort: number): Promise<Started<{ port: number }>> {
  const root = process.getuid?.() === 0;
  const temp = join(dir, 'tmp');
  await mkdir(temp, { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  const port = await freePort();
  const configFile = join(dir, 'nginx.conf');
  // One worker, like the upstream nginx and like the (single-threaded) gateway. Keep-alive
  // connections upstream, as the gateway's agent keeps them. Default proxy buffering.
  await writeFile(
    configFile,
    `
${root ? 'user nobody nogroup;' : ''}
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
lock_file ${join(dir, 'nginx.lock')};
error_log ${join(dir, 'error.log')} notice;
events { worker_connections 1024; }
http {
  access_log ${join(dir, 'access.log')};
  client_body_temp_path ${join(temp, 'body')};
  proxy_temp_path ${join(temp, 'proxy')};
  fastcgi_temp_path ${join(temp, 'fastcgi')};
  uwsgi_temp_path ${join(temp, 'uwsgi')};
  scgi_temp_path ${join(temp, 'scgi')};
  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`,
  );
  const proc = new ManagedProcess({
    name: 'nginx-proxy',
    command: NGINX,
    args: ['-p', dir, '-e', join(dir, 'error.log'), '-c', configFile, '-g', 'daemon off;'],
    env: { PATH: process.env.PATH, LANG: 'C' },
    cwd: dir,
    logFile: join(dir, 'nginx.log'),
  });
  try {
    await waitUntil(
      'nginx-proxy',
      async () => {
        const response = await fetch(`http://127.0.0.1:${port}${NGINX_FILES.small.path}`);
        await response.arrayBuffer();
        return response.ok;
      },
      { process: proc, timeoutMs: 30_000 },
    );
  } catch (error) {
    await proc.stop();
    throw error;
  }
  log(`nginx-proxy: ready on 127.0.0.1:${port}`);
  return { info: { port }, stop: () => proc.stop() };
}

// ---------------------------------------------------------------------------------------------
// wrk

interface WrkResult {
  size: Size;
  connections: number;
  target: Target;
  requests: number;
  rps: number;
  mibPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Connect, read, write errors, timeouts and non-2xx/3xx responses. */
  errors: number;
  /** The proxy process's CPU per request (node-proxy and Warden). */
  gatewayCpuUs?: number;
}

/** A wrk Lua script: the Authorization header (kept out of `ps`) and a JSON summary line. */
function wrkScript(token: string | undefined): string {
  return `${token === undefined ? '' : `wrk.headers["Authorization"] = "Bearer ${token}"\n`}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;
}

async function runWrk(url: string, script: string, run: { size: Size; connections: number; target: Target }, gatewayPid?: number): Promise<WrkResult> {
  const args = ['-t', String(Math.min(2, run.connections)), '-c', String(run.connections), '-d', `${SECONDS}s`, '--timeout', '10s', '-s', script, url];
  const cpuBefore = gatewayPid === undefined ? 0 : await cpuSecondsOf(gatewayPid);
  const result = await capture('wrk', args, { env: { PATH: process.env.PATH, LANG: 'C' } });
  const cpu = gatewayPid === undefined ? 0 : (await cpuSecondsOf(gatewayPid)) - cpuBefore;
  const line = /WRK_JSON (\{.*\})/.exec(result.stdout)?.[1];
  if (result.code !== 0 || line === undefined) throw new Error(`wrk ${run.target} ${run.size} -c ${run.connections} exited ${result.code}: ${(result.stderr || result.stdout).trim().slice(-500)}`);
  const j = JSON.parse(line) as { requests: number; duration_us: number; bytes: number; errors: number; p50_us: number; p99_us: number };
  const seconds = j.duration_us / 1e6;
  return {
    ...run,
    requests: j.requests,
    rps: j.requests / seconds,
    mibPerSecond: j.bytes / seconds / 2 ** 20,
    p50Ms: j.p50_us / 1000,
    p99Ms: j.p99_us / 1000,
    errors: j.errors,
    ...(gatewayPid === undefined ? {} : { gatewayCpuUs: (cpu * 1e6) / Math.max(1, j.requests) }),
  };
}

/** Per size, connections and target: the median of each figure over the rounds (errors summed). */
function medians(runs: readonly WrkResult[]): WrkResult[] {
  const median = (values: number[]): number => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const groups = new Map<string, WrkResult[]>();
  for (const r of runs) {
    const key = `${r.size} ${r.connections} ${r.target}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((group) => {
    const first = group[0]!;
    const cpu = group.flatMap((r) => (r.gatewayCpuUs === undefined ? [] : [r.gatewayCpuUs]));
    return {
      size: first.size,
      connections: first.connections,
      target: first.target,
      requests: group.reduce((sum, r) => sum + r.requests, 0),
      rps: median(group.map((r) => r.rps)),
      mibPerSecond: median(group.map((r) => r.mibPerSecond)),
      p50Ms: median(group.map((r) => r.p50Ms)),
      p99Ms: median(group.map((r) => r.p99Ms)),
      errors: group.reduce((sum, r) => sum + r.errors, 0),
      ...(cpu.length === 0 ? {} : { gatewayCpuUs: median(cpu) }),
    };
  });
}

/** One request per target before measuring: status 200 and the exact body, or the bench stops. */
async function checkTarget(name: string, base: string, token: string | undefined): Promise<void> {
  const headers = token === undefined ? undefined : { authorization: `Bearer ${token}` };
  for (const [size, path] of Object.entries(PATHS)) {
    const response = await fetch(`${base}${path}`, { headers });
    const body = Buffer.from(await response.arrayBuffer());
    const expected = size === 'small' ? Buffer.byteLength(NGINX_FILES.small.body) : NGINX_FILES.oneMiB.size;
    if (response.status !== 200 || body.length !== expected) throw new Error(`${name} ${path}: status ${response.status}, ${body.length} bytes (expected 200, ${expected} bytes)`);
  }
}

// ---------------------------------------------------------------------------------------------
// kubectl

interface KubectlTimes {
  target: 'direct' | 'warden';
  runs: number;
  failures: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  maxMs: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function summarise(target: KubectlTimes['target'], times: number[], failures: number): KubectlTimes {
  const sorted = [...times].sort((a, b) => a - b);
  return {
    target,
    runs: times.length,
    failures,
    meanMs: times.reduce((a, b) => a + b, 0) / Math.max(1, times.length),
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    maxMs: sorted.at(-1) ?? NaN,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
function table(header: string[], rows: string[][], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function versionsOf(wrkVersion: string): Promise<{ nginx: string; wrk: string; kube?: string }> {
  return { nginx: (await capture(NGINX, ['-v'])).stderr.trim(), wrk: wrkVersion.split('\n')[0]?.trim() ?? '?' };
}

/** The wrk part of the report: the runs, then the ratios against the target and the node-proxy ceiling. */
function report(
  results: readonly WrkResult[],
  run: { loadStart: string; loadEnd: string; httpMemory: { rssKiB: number; hwmKiB: number }; httpReport: unknown; httpConfinement: string; versions: { nginx: string; wrk: string; kube?: string } },
): string {
  const { versions } = run;
  const out: string[] = [];
  out.push('', `HTTP gateway benchmark (issue #7): wrk, ${SECONDS} s per run, ${ROUNDS > 1 ? `${ROUNDS} rounds of all targets, medians shown, ` : ''}-t min(2, connections); the machine's cores are shared by wrk, both nginx, node-proxy and the gateway`);
  out.push(`  ${versions.nginx}; ${versions.wrk}; gateway on Node ${process.version}${versions.kube ? `; kube-apiserver/kubectl ${versions.kube}` : ''}`);
  out.push(`  node flags: gateway child ${GATEWAY_NODE_OPTIONS.join(' ') || '(none)'}; node-proxy child ${NODE_PROXY_NODE_OPTIONS.join(' ') || '(none)'}`);
  out.push(`  load at start: ${run.loadStart}`);
  out.push(`  load at end:   ${run.loadEnd}`);
  out.push(
    '  direct = nginx (1 worker, sendfile); nginx-proxy = a second nginx (1 worker, proxy_pass with upstream keep-alive, default buffering);',
    '  node-proxy = REFERENCE ONLY: a minimal reverse proxy on the gateway\'s stack (Node http server, undici pool upstream, headers passed',
    '  through, no token/policy/recording), same Node as the gateway — the ceiling for a proxy on that stack on this machine;',
    '  warden = HTTP gateway child process, plain HTTP on both sides, bearer token checked (OIDC, cached JWKS) on every request, real policy',
    '  engine (AccessPolicy: deny /admin/*, allow GET/HEAD), recorder core (signed chunks, fsynced spool, DirectoryStore on local disk; bodies',
    '  recorded up to 64 KiB). One recording session per client connection. "CPU µs/req" is the proxy process\'s own CPU (node-proxy, warden).',
    '',
  );
  out.push(
    table(
      ['size', 'conns', 'target', 'req/s', 'MiB/s', 'p50 ms', 'p99 ms', 'errors', 'CPU µs/req'],
      results.map((r) => [r.size, String(r.connections), r.target, fmt(r.rps, 0), fmt(r.mibPerSecond, 1), fmt(r.p50Ms, 3), fmt(r.p99Ms, 3), String(r.errors), r.gatewayCpuUs === undefined ? '' : fmt(r.gatewayCpuUs, 0)]),
      3,
    ),
    '',
  );
  const rows: string[][] = [];
  for (const size of SIZES) {
    for (const connections of CONNECTIONS) {
      const pick = (t: Target): WrkResult => results.find((r) => r.size === size && r.connections === connections && r.target === t)!;
      const d = pick('direct');
      const p = pick('nginx-proxy');
      const n = pick('node-proxy');
      const w = pick('warden');
      const ofProxy = w.rps / p.rps;
      rows.push([
        size, String(connections),
        `${fmt((w.rps / d.rps) * 100, 0)}%`, `${fmt(ofProxy * 100, 0)}%`, `${fmt((w.rps / n.rps) * 100, 0)}%`, `${fmt((n.rps / p.rps) * 100, 0)}%`,
        size === 'small' ? (ofProxy >= TARGET_RATIO_PROXY ? 'MET' : 'MISSED') : '(no target)',
        fmt(w.p99Ms - p.p99Ms, 3),
      ]);
    }
  }
  out.push(
    `Target: Warden ≥ ${TARGET_RATIO_PROXY * 100}% of nginx-proxy requests/s on small responses (node-proxy/nginx-proxy: the ceiling the gateway's Node stack allows here)`,
    table(['size', 'conns', 'W/direct', 'W/nginx-proxy', 'W/node-proxy', 'node-proxy/nginx-proxy', 'target', 'W−proxy p99 ms'], rows, 2),
    '',
    `HTTP gateway: VmRSS ${fmt(run.httpMemory.rssKiB / 1024, 1)} MiB after the runs, peak (VmHWM) ${fmt(run.httpMemory.hwmKiB / 1024, 1)} MiB; ${JSON.stringify(run.httpReport ?? {})}`,
    `  ${run.httpConfinement}`,
    '',
  );
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  cleanups.onSignals();
  const wrkVersion = await capture('wrk', ['-v']).catch(() => undefined);
  if (wrkVersion === undefined) {
    process.stderr.write('bench/http.ts needs wrk, the HTTP load generator: apt-get install -y wrk (Debian package `wrk`)\n');
    process.exit(2);
  }
  const uptime = async (): Promise<string> => (await capture('uptime', [])).stdout.trim() || `load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}`;
  const loadStart = await uptime();
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-http-'));
  cleanups.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  try {
    const nginx = await startNginx(join(dir, 'nginx'), log);
    cleanups.add('nginx', () => nginx.stop());
    const proxy = await startNginxProxy(join(dir, 'nginx-proxy'), nginx.info.port);
    cleanups.add('nginx-proxy', () => proxy.stop());
    const oidc = await startOidcIssuer(join(dir, 'oidc'), log);
    cleanups.add('oidc issuer', () => oidc.stop());
    const token = await mintToken(oidc.info, { user: 'bench', groups: [GROUP] });
    const oidcConfig = { issuer: oidc.info.issuer, audience: oidc.info.audience };

    log('starting the HTTP gateway child (policy + recording, plain HTTP)');
    const confined = await startGateway({
      flavour: 'http',
      upstream: { url: `http://${nginx.info.host}:${nginx.info.port}` },
      tls: false,
      oidc: oidcConfig,
      recordingDir: join(dir, 'recordings-http'),
      group: GROUP,
    });
    const gateway = confined.child;
    log('starting the node-proxy reference child (minimal reverse proxy: Node http server, undici upstream)');
    const nodeProxy = await startGatewayChild([...NODE_PROXY_NODE_OPTIONS, import.meta.filename, 'node-proxy'], { upstream: `http://${nginx.info.host}:${nginx.info.port}` }, cleanups);
    const bases: Record<Target, string> = {
      direct: `http://${nginx.info.host}:${nginx.info.port}`,
      'nginx-proxy': `http://127.0.0.1:${proxy.info.port}`,
      'node-proxy': `http://127.0.0.1:${nodeProxy.port}`,
      warden: `http://127.0.0.1:${gateway.port}`,
    };
    const pids: Partial<Record<Target, number>> = { 'node-proxy': nodeProxy.pid, warden: gateway.pid };
    for (const target of TARGETS) await checkTarget(target, bases[target], target === 'warden' ? token : undefined);
    const scripts = { plain: join(dir, 'plain.lua'), token: join(dir, 'token.lua') };
    await writeFile(scripts.plain, wrkScript(undefined), { mode: 0o600 });
    await writeFile(scripts.token, wrkScript(token), { mode: 0o600 });

    const runs: WrkResult[] = [];
    const total = ROUNDS * SIZES.length * CONNECTIONS.length * TARGETS.length;
    for (let round = 1; round <= ROUNDS; round++) {
      for (const size of SIZES) {
        for (const connections of CONNECTIONS) {
          for (const target of TARGETS) {
            log(`[${runs.length + 1}/${total}] ${size} -c ${connections} → ${target} (${SECONDS} s${ROUNDS > 1 ? `, round ${round}` : ''})`);
            const r = await runWrk(`${bases[target]}${PATHS[size]}`, target === 'warden' ? scripts.token : scripts.plain, { size, connections, target }, pids[target]);
            log(`    ${fmt(r.rps, 0)} req/s, ${fmt(r.mibPerSecond, 1)} MiB/s, p50 ${fmt(r.p50Ms, 3)} ms, p99 ${fmt(r.p99Ms, 3)} ms${r.errors ? `, ${r.errors} errors` : ''}${r.gatewayCpuUs === undefined ? '' : `, ${fmt(r.gatewayCpuUs, 0)} µs CPU/req`}`);
            runs.push(r);
          }
        }
      }
      if (MEMORY_DETAILS) {
        const m = await memoryOf(gateway.pid);
        log(`round ${round}: gateway child VmRSS ${fmt(m.rssKiB / 1024, 1)} MiB, VmHWM ${fmt(m.hwmKiB / 1024, 1)} MiB`);
      }
    }
    const results = medians(runs);
    const httpMemory = await memoryOf(gateway.pid);
    if (MEMORY_DETAILS) {
      const proxyMemory = await memoryOf(nodeProxy.pid);
      log(`node-proxy child: VmRSS ${fmt(proxyMemory.rssKiB / 1024, 1)} MiB, VmHWM ${fmt(proxyMemory.hwmKiB / 1024, 1)} MiB`);
    }
    const httpReport = await gateway.stop();
    const httpConfinement = await confined.confinement();
    const nodeProxyReport = await nodeProxy.stop();
    if (MEMORY_DETAILS) log(`node-proxy child: ${JSON.stringify(nodeProxyReport ?? {})}`);
    if (KUBECTL_RUNS <= 0) {
      process.stdout.write(`${report(results, { loadStart, loadEnd: await uptime(), httpMemory, httpReport, httpConfinement, versions: await versionsOf(wrkVersion.stdout) })}\n`);
      return;
    }

    // ---- kubectl get pods -A, direct vs. through a Kubernetes-flavour gateway
    const kube = await startKube(join(dir, 'kube'), log);
    cleanups.add('kube', () => kube.stop());
    const ns = 'bench-http';
    await kubectlOk(kube.info, ['create', 'namespace', ns]);
    // No controller-manager in the plane: the default ServiceAccount the pods need is made by hand.
    await kubectlOk(kube.info, ['-n', ns, 'create', 'serviceaccount', 'default']).catch(() => '');
    const pods = Array.from({ length: 20 }, (_, i) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `pod-${i}`, namespace: ns, labels: { app: 'bench' } }, spec: { containers: [{ name: 'c', image: 'registry.invalid/bench:1' }] } }));
    const podsCreated = await kubectlOk(kube.info, ['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: pods }) })
      .then(() => pods.length)
      .catch((error: unknown) => {
        log(`could not create pods (listing an empty set instead): ${(error as Error).message}`);
        return 0;
      });
    const admin = kubeClient(kube.info);
    const b64 = (value: string | undefined): string => Buffer.from(value ?? '', 'base64').toString('utf8');
    log('starting the Kubernetes gateway child (policy + recording, TLS)');
    const { child: kgw } = await startGateway({
      flavour: 'kubernetes',
      upstream: {
        url: kube.info.server,
        tls: { mode: 'verify-full', ca: b64(admin.getCurrentCluster()?.caData), cert: b64(admin.getCurrentUser()?.certData), key: b64(admin.getCurrentUser()?.keyData) },
      },
      tls: true,
      oidc: oidcConfig,
      recordingDir: join(dir, 'recordings-kube'),
      group: GROUP,
    });
    const viaWarden = join(dir, 'kubeconfig-warden');
    await writeFile(
      viaWarden,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'warden', cluster: { server: `https://127.0.0.1:${kgw.port}`, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'bench', user: { token } }],
        contexts: [{ name: 'warden', context: { cluster: 'warden', user: 'bench' } }],
        'current-context': 'warden',
      }),
      { mode: 0o600 },
    );
    const { KUBECONFIG: _, ...env } = process.env;
    const kubeconfigs = { direct: kube.info.kubeconfig, warden: viaWarden } as const;
    const getPods = async (target: 'direct' | 'warden'): Promise<{ ms: number; ok: boolean; lines: number }> => {
      const began = performance.now();
      const r = await capture(kube.info.kubectl, [`--kubeconfig=${kubeconfigs[target]}`, `--cache-dir=${join(dir, `kubectl-cache-${target}`)}`, 'get', 'pods', '-A'], { env });
      return { ms: performance.now() - began, ok: r.code === 0, lines: r.stdout.trim().split('\n').length - 1 };
    };
    // Warm-up: discovery into each target's cache, and a check that both list the same pods.
    for (const target of ['direct', 'warden'] as const) {
      await getPods(target);
      const check = await getPods(target);
      if (!check.ok || check.lines < podsCreated) throw new Error(`kubectl get pods -A via ${target}: exit ok=${check.ok}, ${check.lines} pods listed (expected ≥ ${podsCreated})`);
    }
    log(`kubectl get pods -A × ${KUBECTL_RUNS} per target, alternating`);
    const times = { direct: [] as number[], warden: [] as number[] };
    const failures = { direct: 0, warden: 0 };
    for (let i = 0; i < KUBECTL_RUNS; i++) {
      for (const target of ['direct', 'warden'] as const) {
        const r = await getPods(target);
        times[target].push(r.ms);
        if (!r.ok) failures[target] += 1;
      }
    }
    const kubectlResults = [summarise('direct', times.direct, failures.direct), summarise('warden', times.warden, failures.warden)];
    const kubeReport = await kgw.stop();
    const loadEnd = await uptime();

    // ---- report
    const out = [
      report(results, { loadStart, loadEnd, httpMemory, httpReport, httpConfinement, versions: { ...(await versionsOf(wrkVersion.stdout)), kube: kube.info.version } }),
      `kubectl get pods -A (${podsCreated} pods; whole kubectl process, warm discovery cache), ${KUBECTL_RUNS} runs per target, alternating:`,
      table(
        ['target', 'runs', 'failed', 'mean ms', 'p50 ms', 'p90 ms', 'max ms'],
        kubectlResults.map((k) => [k.target, String(k.runs), String(k.failures), fmt(k.meanMs, 1), fmt(k.p50Ms, 1), fmt(k.p90Ms, 1), fmt(k.maxMs, 1)]),
        1,
      ),
      `  added by Warden: mean ${fmt(kubectlResults[1]!.meanMs - kubectlResults[0]!.meanMs, 1)} ms, p50 ${fmt(kubectlResults[1]!.p50Ms - kubectlResults[0]!.p50Ms, 1)} ms; Kubernetes gateway ${JSON.stringify(kubeReport ?? {})}`,
      '',
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await cleanups.run();
  }
}

if (process.argv[2] === 'gateway') await gatewayChild();
else if (process.argv[2] === 'node-proxy') await nodeProxyChild();
else await main();
