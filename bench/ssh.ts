// SSH gateway benchmark (issue #6): throughput of streaming BENCH_BYTES (default 1 GiB) with
// `ssh host 'cat file' > /dev/null`, `scp host:file /dev/null` (SFTP protocol, the OpenSSH 9
// default) and `scp -O` (legacy scp over exec), directly to sshd vs. through Warden with
// recording on; session setup time (`ssh host true` wall time, and `ssh -tt host` until the first
// byte of the shell prompt) direct vs. through Warden; the gateway's memory with BENCH_SESSIONS
// (default 50) concurrent interactive sessions.
//
//   node_modules/.bin/node bench/ssh.ts
//   BENCH_BYTES=268435456 BENCH_SETUP_RUNS=10 node_modules/.bin/node bench/ssh.ts
//
// Knobs for iterating: BENCH_KINDS (comma list of `cat`, `scp`, `scp-O`; default all three),
// BENCH_CIPHER (passed to every client as `-c`, direct and Warden alike, e.g.
// chacha20-poly1305@openssh.com to force what older gateways negotiated), BENCH_GATEWAY_NODE_ARGS
// (extra Node flags for the gateway child, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`; the profile
// is written when the child exits).
//
// Starts its own sshd and OIDC issuer (the test plane's modules) and the gateway in a child
// process (this same file with `--gateway`, config JSON on stdin), so the gateway's RSS and CPU
// are its own. The clients are the real OpenSSH ssh and scp; the token reaches the gateway's
// keyboard-interactive prompt through SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force). Direct runs log in
// with the plane's client key. Progress on stderr, the report on stdout.
//
// Data: a file of BENCH_BYTES made of one 64 MiB block of random bytes repeated (incompressible
// for the recorder's zstd, whose window is far smaller than 64 MiB), readable by the login account.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import ssh2 from 'ssh2';
import { createLogger } from '../src/controller/log.ts';
import { bundlePolicies } from '../src/policy/compile.ts';
import { compilePolicies } from '../src/policy/engine.ts';
import { generateSigningKey } from '../src/recorder/crypto.ts';
import { Recorder } from '../src/recorder/recorder.ts';
import { DirectoryStore } from '../src/recorder/store-dir.ts';
import { TokenVerifier } from '../src/sidecar/auth/oidc.ts';
import type { SidecarConfig } from '../src/sidecar/config.ts';
import { sshRecorderFactory } from '../src/sidecar/gateways.ts';
import { generateHostKey, SshGateway } from '../src/sidecar/ssh/gateway.ts';
import { startOidcIssuer } from '../test/plane/oidc.ts';
import { capture } from '../test/plane/proc.ts';
import { startSshd } from '../test/plane/sshd.ts';
import { mintToken } from '../test/plane/tokens.ts';
import { Cleanups, cpuSecondsOf, type GatewayChild, memoryOf, startGatewayChild } from './support.ts';

const MIB = 1024 * 1024;
const GROUP = 'bench';

const log = (m: string): void => void process.stderr.write(`[bench] ${m}\n`);
const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

/** What the driver hands the gateway child on stdin. */
interface ChildConfig {
  upstream: { host: string; port: number; user: string; privateKeyFile: string; hostKeys: string[] };
  oidc: { issuer: string; audience: string; jwksUri: string };
  /** Recordings go to `<dir>/store`, the spool to `<dir>/spool`. */
  recordingDir: string;
  group: string;
}

// =============================================================================================
// The gateway child: the SSH gateway as the sidecar runs it (real policy engine, the recorder core
// behind the sidecar's own SSH recording adapter, a DirectoryStore on local disk). Prints
// `{"ready":true,"port":N,"publicKey":"ssh-ed25519 …"}`, one `{"closed":…}` line per recording
// once it is in the store, and `{"stopped":true,…}` after SIGTERM.

async function gatewayChild(): Promise<void> {

  const out = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value)}\n`);
  const config = JSON.parse(await text(process.stdin)) as ChildConfig;

  const { bundle } = bundlePolicies(
    [
      {
        name: 'bench',
        spec: {
          connections: ['ssh'],
          subjects: [{ kind: 'Group', name: config.group }],
          rules: [{ name: 'work', effect: 'Allow', ssh: { shell: true, exec: ['.*'], sftp: 'read-write' } }],
        },
      },
    ],
    { name: 'ssh', protocol: 'ssh' },
  );
  const engine = compilePolicies(bundle);
  if (engine.problems.length > 0) {
    process.stderr.write(`policy problems: ${JSON.stringify(engine.problems)}\n`);
    process.exit(2);
  }

  await mkdir(config.recordingDir, { recursive: true });
  const recorder = await Recorder.open({
    store: new DirectoryStore(join(config.recordingDir, 'store')),
    spoolDir: join(config.recordingDir, 'spool'),
    signingKey: generateSigningKey(),
  });
  const recordings = { sessions: 0, shipped: 0, failed: 0 };
  const pending = new Set<Promise<unknown>>();
  // The sidecar's adapter (gateways.ts) only calls startSession: count and report each recording.
  const counting = {
    startSession: (info: Parameters<Recorder['startSession']>[0]) => {
      const session = recorder.startSession(info);
      recordings.sessions += 1;
      const watch = (async () => {
        // `closed` exists once the gateway closes the recording.
        while (session.closed === undefined) await sleep(20);
        const r = await session.closed;
        if (r.shipped) recordings.shipped += 1;
        else recordings.failed += 1;
        out({ closed: true, session: info.sessionId, shipped: r.shipped, error: r.error?.message, storedBytes: r.manifest.totals.bytes, rawBytes: r.manifest.totals.raw, events: r.manifest.totals.events, chunks: r.manifest.totals.chunks });
      })();
      pending.add(watch);
      void watch.finally(() => pending.delete(watch));
      return session;
    },
  } as unknown as Recorder;
  const logger = createLogger({ level: 'warn', write: (line) => void process.stderr.write(`gateway: ${line}`) });
  const sidecarConfig = {
    connection: { namespace: 'bench', name: 'ssh' },
    recording: { onStorageFailure: 'FailClosed', record: { input: true, output: true, maxEventBytes: 65_536, maxResultRows: 0 } },
  } as unknown as SidecarConfig;

  const hostKey = generateHostKey();
  const parsed = ssh2.utils.parseKey(hostKey);
  if (parsed instanceof Error) throw parsed;
  const gateway = new SshGateway({
    connection: 'bench/ssh',
    listen: { host: '127.0.0.1', port: 0 },
    hostKey,
    upstream: {
      host: config.upstream.host,
      port: config.upstream.port,
      user: config.upstream.user,
      privateKey: await readFile(config.upstream.privateKeyFile, 'utf8'),
      hostKeys: config.upstream.hostKeys,
    },
    verifier: new TokenVerifier({ issuer: config.oidc.issuer, audience: config.oidc.audience, jwksUri: config.oidc.jwksUri }),
    policy: engine,
    recorder: sshRecorderFactory({ config: sidecarConfig, recorder: counting, log: logger }),
    limits: { maxEventBytes: 65_536 },
    record: { input: true, output: true },
    log: (line) => void process.stderr.write(`gateway: ${line}\n`),
  });
  const { port } = await gateway.listen();
  out({ ready: true, port, publicKey: `ssh-ed25519 ${parsed.getPublicSSH().toString('base64')}` });

  let peakRss = 0;
  let atPeak: NodeJS.MemoryUsage | undefined;
  const sampler = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > peakRss) {
      peakRss = rss;
      atPeak = process.memoryUsage();
    }
  }, 100);
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await gateway.close();
    await Promise.all(pending);
    recorder.stop();
    clearInterval(sampler);
    const memoryAtPeakMiB = atPeak && Object.fromEntries(Object.entries(atPeak).map(([k, v]) => [k, +(v / MIB).toFixed(1)]));
    out({ stopped: true, recordings, memoryAtPeakMiB });
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop());
}

// =============================================================================================
// The driver

const cleanups = new Cleanups(log);

interface SshGatewayChild extends GatewayChild {
  publicKey: string;
  /** The next recording to reach the store (in order of closing). */
  nextClosed(timeoutMs?: number): Promise<Record<string, unknown>>;
}

async function startGateway(config: ChildConfig): Promise<SshGatewayChild> {
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
  const child = await startGatewayChild([...nodeArgs, import.meta.filename, '--gateway'], config, cleanups, { stopGraceMs: 30_000 });
  let closedRead = 0;
  return {
    ...child,
    publicKey: String(child.ready.publicKey),
    nextClosed: async (timeoutMs = 120_000) => {
      const m = await child.waitFor((ms) => ms.filter((x) => x.closed === true)[closedRead], timeoutMs, 'a recording to reach the store');
      closedRead += 1;
      return m;
    },
  };
}

/** Runs a client to completion; stdout goes to /dev/null (or is watched by `onStdout`). */
async function client(program: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; seconds: number; stderr: string }> {
  const devNull = await open('/dev/null', 'w');
  try {
    const began = performance.now();
    const child = spawn(program, args, { env, stdio: ['ignore', devNull.fd, 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => void (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c) => resolve(c));
    });
    return { code, seconds: (performance.now() - began) / 1000, stderr: stderr.trim() };
  } finally {
    await devNull.close();
  }
}

interface Shell {
  child: ChildProcess;
  /** Seconds from spawn to the first output byte (the prompt). */
  firstByte: Promise<number>;
  output(): string;
  closed: Promise<number | null>;
}

/** `ssh -tt host`: an interactive shell on a PTY, stdin a pipe. */
function shell(program: string, args: string[], env: NodeJS.ProcessEnv): Shell {
  const began = performance.now();
  const child = spawn(program, ['-tt', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let errors = '';
  child.stdin.on('error', () => undefined);
  const firstByte = new Promise<number>((resolve, reject) => {
    child.stdout.once('data', () => resolve((performance.now() - began) / 1000));
    child.once('close', (code) => reject(new Error(`ssh exited ${code} before any output: ${errors.trim()}`)));
  });
  firstByte.catch(() => undefined);
  child.stdout.on('data', (d: Buffer) => void (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => void (errors += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return { child, firstByte, output: () => out, closed };
}

const median = (xs: number[]): number => percentile(xs, 50);
function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function table(header: string[], rows: string[][], leftColumns = 2): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function driver(): Promise<void> {

  const BYTES = Number(process.env.BENCH_BYTES ?? 1024 * MIB);
  const SETUP_RUNS = Number(process.env.BENCH_SETUP_RUNS ?? 20);
  const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 50);
  /** Targets of issue #6. */
  const TARGET_THROUGHPUT_RATIO = 0.5;
  const TARGET_SETUP_OVERHEAD_MS = 100;
  const uptime = async (): Promise<string> => (await capture('uptime', [])).stdout.trim() || `load average ${loadavg().map((l) => l.toFixed(2)).join(', ')}`;

  cleanups.onSignals();
  // A throw in an event listener bypasses the try/finally below: still stop what was started.
  process.on('uncaughtException', (error) => {
    log(`uncaught: ${error.stack ?? error.message}`);
    void cleanups.run().finally(() => process.exit(1));
  });

  const loadStart = await uptime();
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-ssh-'));
  cleanups.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  try {
    // startSshd makes `dir` searchable for the login account (it reads authorized_keys there).
    const sshd = await startSshd(join(dir, 'sshd'), log);
    cleanups.add('sshd', () => sshd.stop());
    const oidc = await startOidcIssuer(join(dir, 'oidc'), log);
    cleanups.add('oidc issuer', () => oidc.stop());
    const ssh = sshd.info;
    const versions = { openssh: (await capture('ssh', ['-V'])).stderr.trim(), node: process.version };

    // ---- the data file
    const dataFile = join(dir, 'data.bin');
    log(`writing ${fmt(BYTES / MIB, 0)} MiB of data (a 64 MiB random block repeated) to ${dataFile}`);
    {
      const block = randomBytes(Math.min(64 * MIB, BYTES));
      const stream = createWriteStream(dataFile, { mode: 0o644 });
      for (let left = BYTES; left > 0; left -= block.length) {
        if (!stream.write(left >= block.length ? block : block.subarray(0, left))) await new Promise<void>((r) => stream.once('drain', () => r()));
      }
      await new Promise<void>((resolve, reject) => stream.end((error?: Error | null) => (error ? reject(error) : resolve())));
      await chmod(dataFile, 0o644);
      // Into the page cache before the first run, so no run pays for the disk.
      await client('cat', [dataFile], process.env);
    }

    // ---- the gateway child
    log('starting the gateway child (policy engine + recorder core into a DirectoryStore)');
    const childConfig = (name: string): ChildConfig => ({
      upstream: { host: ssh.host, port: ssh.port, user: ssh.user, privateKeyFile: ssh.privateKeyFile, hostKeys: ssh.hostKeys },
      oidc: { issuer: oidc.info.issuer, audience: oidc.info.audience, jwksUri: oidc.info.jwksUri },
      recordingDir: join(dir, name),
      group: GROUP,
    });
    let gateway = await startGateway(childConfig('recordings'));

    // ---- client options
    const askpass = join(dir, 'askpass.sh');
    await writeFile(askpass, '#!/bin/sh\ncat "$WARDEN_TOKEN_FILE"\n', { mode: 0o755 });
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, await mintToken(oidc.info, { user: 'bench', groups: [GROUP] }), { mode: 0o600 });
    const wardenKnownHosts = join(dir, 'warden_known_hosts');
    const writeKnownHosts = (g: SshGatewayChild): Promise<void> => writeFile(wardenKnownHosts, `[127.0.0.1]:${g.port} ${g.publicKey}\n`);
    await writeKnownHosts(gateway);
    const cipher = process.env.BENCH_CIPHER;
    const common = [...(cipher ? ['-c', cipher] : []), '-F', '/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'LogLevel=ERROR', '-o', 'ControlMaster=no', '-o', 'ConnectTimeout=20'];
    type Target = 'direct' | 'warden';
    const clientEnv: Record<Target, NodeJS.ProcessEnv> = {
      direct: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C' },
      warden: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C', SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', WARDEN_TOKEN_FILE: tokenFile, DISPLAY: ':0' },
    };
    const options: Record<Target, string[]> = {
      direct: [...common, '-o', `UserKnownHostsFile=${ssh.knownHostsFile}`, '-o', 'IdentitiesOnly=yes', '-i', ssh.privateKeyFile, '-o', 'PreferredAuthentications=publickey'],
      warden: [...common, '-o', `UserKnownHostsFile=${wardenKnownHosts}`, '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=keyboard-interactive,password', '-o', 'NumberOfPasswordPrompts=1'],
    };
    const port = (t: Target): number => (t === 'direct' ? ssh.port : gateway.port);
    const sshArgs = (t: Target, ...rest: string[]): string[] => [...options[t], '-p', String(port(t)), `${ssh.user}@127.0.0.1`, ...rest];
    const scpArgs = (t: Target, legacy: boolean): string[] => [...options[t], ...(legacy ? ['-O'] : []), '-P', String(port(t)), `${ssh.user}@127.0.0.1:${dataFile}`, '/dev/null'];
    const TARGETS: Target[] = ['direct', 'warden'];

    // ---- which ciphers were negotiated (ssh -v prints them)
    const ciphers: Record<Target, string> = { direct: '?', warden: '?' };
    for (const t of TARGETS) {
      const v = await capture('ssh', ['-v', ...sshArgs(t, 'true')], { env: clientEnv[t] });
      ciphers[t] = /kex: server->client cipher: (\S+)/.exec(v.stderr)?.[1] ?? '?';
      if (v.code !== 0) throw new Error(`ssh ${t} true exited ${v.code}: ${v.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      if (t === 'warden') await gateway.nextClosed();
    }
    log(`client ciphers: direct ${ciphers.direct}, warden ${ciphers.warden}`);

    // ---- throughput
    const ALL_KINDS = ['ssh cat', 'scp', 'scp -O'] as const;
    type Kind = (typeof ALL_KINDS)[number];
    const wanted = (process.env.BENCH_KINDS ?? 'cat,scp,scp-O').split(',').map((k) => k.trim());
    const KINDS = ALL_KINDS.filter((k) => wanted.includes(k === 'ssh cat' ? 'cat' : k.replace(' ', '')));
    interface Transfer {
      kind: Kind;
      target: Target;
      seconds: number;
      mibPerSecond: number;
      gatewayCpuSeconds?: number;
      /** Client exit → recording in the store. */
      shipSeconds?: number;
      recording?: Record<string, unknown>;
    }
    const transfers: Transfer[] = [];
    for (const kind of KINDS) {
      for (const target of TARGETS) {
        log(`[${transfers.length + 1}/${KINDS.length * TARGETS.length}] ${kind} ${fmt(BYTES / MIB, 0)} MiB → ${target}`);
        const args = kind === 'ssh cat' ? sshArgs(target, `cat ${dataFile}`) : scpArgs(target, kind === 'scp -O');
        const program = kind === 'ssh cat' ? 'ssh' : 'scp';
        const cpuBefore = target === 'warden' ? await cpuSecondsOf(gateway.pid) : 0;
        const r = await client(program, args, clientEnv[target]);
        if (r.code !== 0) throw new Error(`${kind} → ${target} exited ${r.code}: ${r.stderr.split('\n').slice(-3).join(' | ')}`);
        const t: Transfer = { kind, target, seconds: r.seconds, mibPerSecond: BYTES / MIB / r.seconds };
        if (target === 'warden') {
          t.gatewayCpuSeconds = (await cpuSecondsOf(gateway.pid)) - cpuBefore;
          const exited = performance.now();
          t.recording = await gateway.nextClosed(600_000);
          t.shipSeconds = (performance.now() - exited) / 1000;
          if (t.recording.shipped !== true) throw new Error(`the recording of ${kind} was not shipped: ${JSON.stringify(t.recording)}`);
        }
        log(`    ${fmt(t.seconds, 1)} s, ${fmt(t.mibPerSecond, 1)} MiB/s${t.gatewayCpuSeconds === undefined ? '' : `, gateway CPU ${fmt(t.gatewayCpuSeconds, 1)} s, recording stored ${fmt(Number(t.recording?.storedBytes) / MIB, 0)} MiB ${fmt(t.shipSeconds ?? NaN, 1)} s after the client exited`}`);
        transfers.push(t);
      }
    }
    const transferMemory = await memoryOf(gateway.pid);

    // ---- session setup
    log(`session setup: ${SETUP_RUNS} × (ssh true, ssh -tt to the first prompt byte) per target, alternating`);
    const setup: Record<Target, { trueMs: number[]; promptMs: number[] }> = { direct: { trueMs: [], promptMs: [] }, warden: { trueMs: [], promptMs: [] } };
    for (let i = 0; i < SETUP_RUNS; i++) {
      for (const target of TARGETS) {
        const r = await client('ssh', sshArgs(target, 'true'), clientEnv[target]);
        if (r.code !== 0) throw new Error(`ssh ${target} true exited ${r.code}: ${r.stderr}`);
        setup[target].trueMs.push(r.seconds * 1000);
        const s = shell('ssh', sshArgs(target), clientEnv[target]);
        setup[target].promptMs.push((await s.firstByte) * 1000);
        s.child.stdin!.end('exit\n');
        await s.closed;
        if (target === 'warden') await Promise.all([gateway.nextClosed(), gateway.nextClosed()]);
      }
    }

    // ---- many sessions, on a fresh gateway child
    const transferReport = await gateway.stop();
    log(`${SESSIONS} concurrent interactive sessions through a fresh gateway child`);
    gateway = await startGateway(childConfig('recordings-many'));
    await writeKnownHosts(gateway);
    await sleep(500);
    const idle = await memoryOf(gateway.pid);
    let peak = idle.rssKiB;
    const sampler = setInterval(() => {
      memoryOf(gateway.pid).then(
        (m) => void (peak = Math.max(peak, m.rssKiB)),
        () => undefined,
      );
    }, 20);
    const began = performance.now();
    const shells = Array.from({ length: SESSIONS }, () => shell('ssh', sshArgs('warden'), clientEnv.warden));
    const firstBytes = await Promise.allSettled(shells.map((s) => s.firstByte));
    const opened = firstBytes.filter((r) => r.status === 'fulfilled').length;
    const openSeconds = (performance.now() - began) / 1000;
    const openErrors = firstBytes.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
    await sleep(300);
    const connected = await memoryOf(gateway.pid);
    const connectPeak = Math.max(peak, connected.rssKiB);
    log(`${opened}/${SESSIONS} prompts in ${fmt(openSeconds, 1)} s; a command in each`);
    for (const s of shells) s.child.stdin!.write('ls -la /usr/bin | head -200; echo $((6*7))-done\n');
    await Promise.all(
      shells.map(async (s) => {
        const deadline = Date.now() + 30_000;
        while (!s.output().includes('42-done') && Date.now() < deadline && s.child.exitCode === null) await sleep(50);
      }),
    );
    await sleep(300);
    const afterCommand = await memoryOf(gateway.pid);
    for (const s of shells) s.child.stdin!.end('exit\n');
    await Promise.all(shells.map((s) => s.closed));
    const recordedMany = await Promise.allSettled(shells.map(() => gateway.nextClosed(60_000)));
    clearInterval(sampler);
    const afterClose = await memoryOf(gateway.pid);
    const manyReport = await gateway.stop();
    const loadEnd = await uptime();

    // ---- report
    const mib = (kib: number): string => fmt(kib / 1024, 1);
    const outLines: string[] = [];
    outLines.push(
      '',
      `SSH gateway benchmark (issue #6): ${fmt(BYTES / MIB, 0)} MiB per transfer, ${SETUP_RUNS} setup runs per target, ${SESSIONS} concurrent sessions`,
      `  ${versions.openssh}; gateway on Node ${versions.node} (ssh2); 2 cores shared by the clients, sshd and the gateway`,
      `  load at start: ${loadStart}`,
      `  load at end:   ${loadEnd}`,
      `  ciphers negotiated by the OpenSSH client: direct ${ciphers.direct}; client→Warden ${ciphers.warden} (Warden→sshd: the gateway's own upstream choice)`,
      '  Warden = gateway child process with the real policy engine (AccessPolicy: shell, exec .*, sftp read-write for group bench),',
      '  the sidecar\'s SSH recording adapter over the recorder core (output and input recorded, 64 KiB events, signed zstd chunks,',
      '  fsynced spool, DirectoryStore on local disk, FailClosed). Data: a 64 MiB random block repeated (incompressible); stdout to /dev/null.',
      '  Direct logs in with a key; Warden with the token through SSH_ASKPASS (a /bin/sh script: one fork+exec per login).',
      '',
    );
    const verdict = (ok: boolean): string => (ok ? 'MET' : 'MISSED');
    const tputRows = transfers.map((t) => [
      t.kind,
      t.target,
      fmt(t.seconds, 1),
      fmt(t.mibPerSecond, 1),
      t.gatewayCpuSeconds === undefined ? '' : fmt((t.gatewayCpuSeconds * 1000) / (BYTES / MIB), 1),
      t.recording === undefined ? '' : fmt(Number(t.recording.storedBytes) / MIB, 0),
      t.shipSeconds === undefined ? '' : fmt(t.shipSeconds, 1),
    ]);
    outLines.push(table(['transfer', 'target', 'seconds', 'MiB/s', 'gw CPU ms/MiB', 'recording MiB', 'stored +s'], tputRows), '');
    const ratioRows = KINDS.map((kind) => {
      const d = transfers.find((t) => t.kind === kind && t.target === 'direct')!;
      const w = transfers.find((t) => t.kind === kind && t.target === 'warden')!;
      const ratio = w.mibPerSecond / d.mibPerSecond;
      return [kind, `${fmt(ratio * 100, 0)}%`, verdict(ratio >= TARGET_THROUGHPUT_RATIO)];
    });
    outLines.push(`Target: Warden ≥ ${TARGET_THROUGHPUT_RATIO * 100}% of direct throughput`, table(['transfer', 'W/direct', 'target'], ratioRows, 1), '');
    const setupRows: string[][] = [];
    for (const [what, key] of [['ssh host true', 'trueMs'], ['ssh -tt → first prompt byte', 'promptMs']] as const) {
      const d = setup.direct[key];
      const w = setup.warden[key];
      const added = median(w) - median(d);
      setupRows.push([what, fmt(median(d), 1), fmt(percentile(d, 90), 1), fmt(median(w), 1), fmt(percentile(w, 90), 1), fmt(added, 1), verdict(added < TARGET_SETUP_OVERHEAD_MS)]);
    }
    outLines.push(
      `Session setup (ms, ${SETUP_RUNS} runs each). Target: added median under ${TARGET_SETUP_OVERHEAD_MS} ms`,
      table(['what', 'direct p50', 'direct p90', 'warden p50', 'warden p90', '+p50', 'target'], setupRows, 1),
      '',
    );
    outLines.push(
      `Gateway during the transfers and setup runs: VmRSS ${mib(transferMemory.rssKiB)} MiB after the transfers, peak (VmHWM) ${mib(transferMemory.hwmKiB)} MiB`,
      `  ${JSON.stringify(transferReport ?? {})}`,
      `${opened}/${SESSIONS} concurrent interactive sessions (ssh -tt, all started at once; every prompt in ${fmt(openSeconds, 1)} s), then \`ls -la /usr/bin | head -200\` in each:`,
      `  RSS idle ${mib(idle.rssKiB)} MiB; all prompts shown ${mib(connected.rssKiB)} MiB (peak while connecting ${mib(connectPeak)} MiB); after the command ${mib(afterCommand.rssKiB)} MiB (${fmt((afterCommand.rssKiB - idle.rssKiB) / Math.max(1, opened), 0)} KiB per session over idle); after all closed ${mib(afterClose.rssKiB)} MiB`,
      `  peak RSS: sampled every 20 ms ${mib(Math.max(peak, afterClose.rssKiB))} MiB; VmHWM ${mib(afterClose.hwmKiB)} MiB`,
      `  recordings stored: ${recordedMany.filter((r) => r.status === 'fulfilled' && r.value.shipped === true).length}/${SESSIONS}`,
      ...(openErrors.length > 0 ? [`  errors: ${[...new Set(openErrors)].join('; ')}`] : []),
      `  ${JSON.stringify(manyReport ?? {})}`,
      '',
    );
    process.stdout.write(`${outLines.join('\n')}\n`);
  } finally {
    await cleanups.run();
  }
}

if (process.argv[2] === '--gateway') await gatewayChild();
else await driver();
