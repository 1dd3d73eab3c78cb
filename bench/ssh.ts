// SSH gateway benchmark (issue #6): throughput of streaming BENCH_BYTES (default 1 GiB) with
// `ssh host 'cat file' > /dev/null`, `scp host:file /dev/null` (SFTP protocol, the OpenSSH 9
// default) and `scp -O` (legacy scp over exec), back to back in the same run to four targets:
// `direct` (sshd), `warden` (the gateway with recording on), and two references — `bastion`, the
// classic SSH jump host (OpenSSH ProxyJump, `ssh -J`/`scp -J`, through a second sshd from the test
// plane, which permits TCP forwarding: the session is end to end, the jump host forwards a
// direct-tcpip channel; ssh refuses the same sshd as jump host and destination) and
// `ssh2-relay`, a bare ssh2 man-in-the-middle relay (bench/ssh-relay.ts: no policy, no recording,
// no SFTP parsing; the gateway's algorithms and transport patches), the ceiling of the library
// Warden is built on. Ratios W/direct (the issue's target), W/bastion, relay/direct,
// bastion/direct. Then session setup time (`ssh host true` wall time, and `ssh -tt host` until the first
// byte of the shell prompt) direct vs. through Warden; the gateway's memory with BENCH_SESSIONS
// (default 50) concurrent interactive sessions.
//
//   node_modules/.bin/node bench/ssh.ts
//   BENCH_BYTES=268435456 BENCH_SETUP_RUNS=10 node_modules/.bin/node bench/ssh.ts
//
// Knobs for iterating: BENCH_KINDS (comma list of `cat`, `scp`, `scp-O`; default all three),
// BENCH_TARGETS (comma list of `direct`, `warden`, `bastion`, `ssh2-relay` for the transfers;
// default all four; ratios needing a missing target read n/a), BENCH_CIPHER (passed to every client
// as `-c`, and to the jump hop of `bastion`, e.g. chacha20-poly1305@openssh.com to force what older
// gateways negotiated), BENCH_GATEWAY_NODE_ARGS (extra Node flags for the gateway and relay
// children, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`; the profile is written when a child exits).
//
// Starts its own sshd and OIDC issuer (the test plane's modules), the gateway in a child process
// (this same file with `--gateway`, config JSON on stdin) and the ssh2 relay in another
// (bench/ssh-relay.ts), so that their RSS and CPU are their own (CPU per MiB from /proc); sshd's
// CPU per MiB (all its per-connection processes, both sshds for `bastion`) is sampled from /proc
// during each transfer (ProcessTreeCpu in support.ts). The clients are the real OpenSSH
// ssh and scp; the token reaches the gateway's keyboard-interactive prompt through SSH_ASKPASS
// (SSH_ASKPASS_REQUIRE=force). Direct and bastion runs log in with the plane's client keys (each
// sshd has its own; for bastion both in a generated ssh_config passed with -F, which ssh hands on
// to the jump hop, with the same cipher on both hops); the
// relay accepts any login (the client's first `none` request). Progress on stderr, the report on
// stdout.
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
import type { RelayConfig } from './ssh-relay.ts';
import { startConfinedGatewayChild } from './cgroup.ts';
import { Cleanups, cpuSecondsOf, type GatewayChild, memoryOf, ProcessTreeCpu, startGatewayChild } from './support.ts';

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
  /** Its memory cgroup's limit, peak charge and OOM kills (bench/cgroup.ts), for the report. */
  confinement(): Promise<string>;
}

/** The throughput targets: sshd, the gateway, and the two references (see the header). */
const ALL_TARGETS = ['direct', 'warden', 'bastion', 'ssh2-relay'] as const;
type Target = (typeof ALL_TARGETS)[number];

/** Extra Node flags for the gateway and relay children. */
const gatewayNodeArgs = (): string[] => (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');

/** In a memory cgroup limited as its container is (BENCH_GATEWAY_MEMORY_LIMIT, bench/cgroup.ts). */
async function startGateway(config: ChildConfig, name: string): Promise<SshGatewayChild> {
  const { child, confinement } = await startConfinedGatewayChild(name, [...gatewayNodeArgs(), import.meta.filename, '--gateway'], config, cleanups, log, { stopGraceMs: 30_000 });
  let closedRead = 0;
  return {
    ...child,
    confinement,
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
    let gateway = await startGateway(childConfig('recordings'), 'ssh-transfers');
    const TARGETS = (process.env.BENCH_TARGETS ?? 'direct,warden,bastion,ssh2-relay').split(',').map((t) => t.trim()).filter((t): t is Target => (ALL_TARGETS as readonly string[]).includes(t));
    let relay: GatewayChild | undefined;
    if (TARGETS.includes('ssh2-relay')) {
      log('starting the ssh2 relay child (bench/ssh-relay.ts)');
      const relayConfig: RelayConfig = { upstream: childConfig('').upstream };
      relay = await startGatewayChild([...gatewayNodeArgs(), join(import.meta.dirname, 'ssh-relay.ts')], relayConfig, cleanups);
    }
    // The jump host of `bastion`: a second sshd (ssh refuses a jump host equal to the destination,
    // "jumphost loop"), its own host key and client key, TCP forwarding allowed (test/plane/sshd.ts).
    const jump = TARGETS.includes('bastion') ? await startSshd(join(dir, 'jump'), log) : undefined;
    if (jump) cleanups.add('jump sshd', () => jump.stop());
    /** The sshd listeners: their descendants' CPU is sampled during each transfer (ProcessTreeCpu). */
    const sshdPids = await Promise.all(['sshd', ...(jump ? ['jump'] : [])].map(async (d) => Number((await readFile(join(dir, d, 'sshd.pid'), 'utf8')).trim())));

    // ---- client options
    const askpass = join(dir, 'askpass.sh');
    await writeFile(askpass, '#!/bin/sh\ncat "$WARDEN_TOKEN_FILE"\n', { mode: 0o755 });
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, await mintToken(oidc.info, { user: 'bench', groups: [GROUP] }), { mode: 0o600 });
    const wardenKnownHosts = join(dir, 'warden_known_hosts');
    const writeKnownHosts = (g: SshGatewayChild): Promise<void> => writeFile(wardenKnownHosts, `[127.0.0.1]:${g.port} ${g.publicKey}\n`);
    await writeKnownHosts(gateway);
    const relayKnownHosts = join(dir, 'relay_known_hosts');
    if (relay) await writeFile(relayKnownHosts, `[127.0.0.1]:${relay.port} ${String(relay.ready.publicKey)}\n`);
    const cipher = process.env.BENCH_CIPHER;
    const common = [...(cipher ? ['-c', cipher] : []), '-o', 'StrictHostKeyChecking=yes', '-o', 'LogLevel=ERROR', '-o', 'ControlMaster=no', '-o', 'ConnectTimeout=20'];
    const keyLogin = ['-o', `UserKnownHostsFile=${ssh.knownHostsFile}`, '-o', 'IdentitiesOnly=yes', '-i', ssh.privateKeyFile, '-o', 'PreferredAuthentications=publickey'];
    // ssh runs the jump hop as `ssh -W … -F <this file> <jump>`: command-line options do not reach
    // it (ssh(1), -J), a config file does. Both hops get the same cipher; each its key and host key.
    const bastionConfig = join(dir, 'bastion_ssh_config');
    if (jump) {
      await writeFile(
        bastionConfig,
        [
          ...(cipher ? [`Ciphers ${cipher}`] : []),
          'StrictHostKeyChecking yes', 'LogLevel ERROR', 'ControlMaster no', 'ConnectTimeout 20', 'IdentitiesOnly yes', 'PreferredAuthentications publickey',
          `UserKnownHostsFile ${ssh.knownHostsFile} ${jump.info.knownHostsFile}`,
          `IdentityFile ${ssh.privateKeyFile}`,
          `IdentityFile ${jump.info.privateKeyFile}`,
          '',
        ].join('\n'),
      );
    }
    const plainEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C' };
    const clientEnv: Record<Target, NodeJS.ProcessEnv> = {
      direct: plainEnv,
      warden: { ...plainEnv, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', WARDEN_TOKEN_FILE: tokenFile, DISPLAY: ':0' },
      bastion: plainEnv,
      'ssh2-relay': plainEnv,
    };
    const options: Record<Target, string[]> = {
      direct: ['-F', '/dev/null', ...common, ...keyLogin],
      warden: ['-F', '/dev/null', ...common, '-o', `UserKnownHostsFile=${wardenKnownHosts}`, '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=keyboard-interactive,password', '-o', 'NumberOfPasswordPrompts=1'],
      bastion: ['-F', bastionConfig, ...common, ...keyLogin, '-J', `${ssh.user}@127.0.0.1:${jump?.info.port ?? 0}`],
      // The relay accepts the client's first request (`none`): no key, no prompt.
      'ssh2-relay': ['-F', '/dev/null', ...common, '-o', `UserKnownHostsFile=${relayKnownHosts}`, '-o', 'PubkeyAuthentication=no'],
    };
    const port = (t: Target): number => (t === 'warden' ? gateway.port : t === 'ssh2-relay' ? relay!.port : ssh.port);
    const sshArgs = (t: Target, ...rest: string[]): string[] => [...options[t], '-p', String(port(t)), `${ssh.user}@127.0.0.1`, ...rest];
    const scpArgs = (t: Target, legacy: boolean): string[] => [...options[t], ...(legacy ? ['-O'] : []), '-P', String(port(t)), `${ssh.user}@127.0.0.1:${dataFile}`, '/dev/null'];

    // ---- which ciphers were negotiated (ssh -v prints them; for bastion, the jump hop's lines come too, same cipher)
    const ciphers: Record<Target, string> = { direct: '?', warden: '?', bastion: '?', 'ssh2-relay': '?' };
    for (const t of TARGETS) {
      const v = await capture('ssh', ['-v', ...sshArgs(t, 'true')], { env: clientEnv[t] });
      ciphers[t] = /kex: server->client cipher: (\S+)/.exec(v.stderr)?.[1] ?? '?';
      if (v.code !== 0) throw new Error(`ssh ${t} true exited ${v.code}: ${v.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      if (t === 'warden') await gateway.nextClosed();
    }
    log(`client ciphers: ${TARGETS.map((t) => `${t} ${ciphers[t]}`).join(', ')}`);

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
      /** Of the Warden gateway child or the relay child. */
      gatewayCpuSeconds?: number;
      /** Of every sshd process of the connection(s), both hops for bastion (sampled, see ProcessTreeCpu). */
      sshdCpuSeconds?: number;
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
        const proxy = target === 'warden' ? gateway : target === 'ssh2-relay' ? relay : undefined;
        const sshdCpu = new ProcessTreeCpu(sshdPids);
        await sshdCpu.start();
        const cpuBefore = proxy ? await cpuSecondsOf(proxy.pid) : 0;
        const r = await client(program, args, clientEnv[target]);
        if (r.code !== 0) throw new Error(`${kind} → ${target} exited ${r.code}: ${r.stderr.split('\n').slice(-3).join(' | ')}`);
        const t: Transfer = { kind, target, seconds: r.seconds, mibPerSecond: BYTES / MIB / r.seconds };
        if (proxy) t.gatewayCpuSeconds = (await cpuSecondsOf(proxy.pid)) - cpuBefore;
        if (target === 'warden') {
          const exited = performance.now();
          t.recording = await gateway.nextClosed(600_000);
          t.shipSeconds = (performance.now() - exited) / 1000;
          if (t.recording.shipped !== true) throw new Error(`the recording of ${kind} was not shipped: ${JSON.stringify(t.recording)}`);
        }
        // The proxies close their target connection right after the client's: let sshd's processes finish.
        await sleep(500);
        t.sshdCpuSeconds = await sshdCpu.stop();
        log(`    ${fmt(t.seconds, 1)} s, ${fmt(t.mibPerSecond, 1)} MiB/s, sshd CPU ${fmt(t.sshdCpuSeconds ?? NaN, 1)} s${t.gatewayCpuSeconds === undefined ? '' : `, ${target} CPU ${fmt(t.gatewayCpuSeconds, 1)} s`}${t.recording === undefined ? '' : `, recording stored ${fmt(Number(t.recording.storedBytes) / MIB, 0)} MiB ${fmt(t.shipSeconds ?? NaN, 1)} s after the client exited`}`);
        transfers.push(t);
      }
    }
    const transferMemory = await memoryOf(gateway.pid);
    const relayMemory = relay && (await memoryOf(relay.pid));
    await relay?.stop();

    // ---- session setup
    log(`session setup: ${SETUP_RUNS} × (ssh true, ssh -tt to the first prompt byte) per target, alternating`);
    const setup: Record<'direct' | 'warden', { trueMs: number[]; promptMs: number[] }> = { direct: { trueMs: [], promptMs: [] }, warden: { trueMs: [], promptMs: [] } };
    for (let i = 0; i < SETUP_RUNS; i++) {
      for (const target of ['direct', 'warden'] as const) {
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
    const transferConfinement = await gateway.confinement();
    log(`${SESSIONS} concurrent interactive sessions through a fresh gateway child`);
    gateway = await startGateway(childConfig('recordings-many'), 'ssh-sessions');
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
    const manyConfinement = await gateway.confinement();
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
      `  ciphers negotiated by the OpenSSH client: ${TARGETS.map((t) => `${t} ${ciphers[t]}`).join('; ')} (Warden/relay→sshd: the gateway's own upstream choice)`,
      '  Warden = gateway child process with the real policy engine (AccessPolicy: shell, exec .*, sftp read-write for group bench),',
      '  the sidecar\'s SSH recording adapter over the recorder core (output and input recorded, 64 KiB events, signed zstd chunks,',
      '  fsynced spool, DirectoryStore on local disk, FailClosed). Data: a 64 MiB random block repeated (incompressible); stdout to /dev/null.',
      '  Direct logs in with a key; Warden with the token through SSH_ASKPASS (a /bin/sh script: one fork+exec per login).',
      '  References: bastion = OpenSSH ProxyJump (-J) through a second sshd as jump host (key on both hops; a second ssh process',
      '  runs the jump hop); ssh2-relay = a bare ssh2 relay child (bench/ssh-relay.ts: exec and sftp as raw channel streams, no',
      '  policy, no recording, no SFTP parsing; the gateway\'s algorithms, KeyObjects and write coalescing).',
      '  proxy CPU = the Warden gateway child or the relay child (/proc); sshd CPU = every sshd process of the transfer (both sshds for',
      '  bastion; sampled every 200 ms, see ProcessTreeCpu). CPU per MiB is the figure to compare under load; MiB/s moves with it.',
      ...(relayMemory ? [`  relay child after the transfers: VmRSS ${mib(relayMemory.rssKiB)} MiB, peak (VmHWM) ${mib(relayMemory.hwmKiB)} MiB`] : []),
      '',
    );
    const verdict = (ok: boolean): string => (ok ? 'MET' : 'MISSED');
    const msPerMiB = (seconds: number | undefined): string => (seconds === undefined ? '' : fmt((seconds * 1000) / (BYTES / MIB), 1));
    const tputRows = transfers.map((t) => [
      t.kind,
      t.target,
      fmt(t.seconds, 1),
      fmt(t.mibPerSecond, 1),
      msPerMiB(t.gatewayCpuSeconds),
      t.sshdCpuSeconds === undefined ? 'n/a' : msPerMiB(t.sshdCpuSeconds),
      t.recording === undefined ? '' : fmt(Number(t.recording.storedBytes) / MIB, 0),
      t.shipSeconds === undefined ? '' : fmt(t.shipSeconds, 1),
    ]);
    outLines.push(table(['transfer', 'target', 'seconds', 'MiB/s', 'proxy CPU ms/MiB', 'sshd CPU ms/MiB', 'recording MiB', 'stored +s'], tputRows), '');
    // Throughput ratios (a/b of MiB/s; n/a when a target was not run), and the proxies' CPU per MiB.
    const ratioRows = KINDS.map((kind) => {
      const of = (target: Target): Transfer | undefined => transfers.find((t) => t.kind === kind && t.target === target);
      const ratio = (a: Target, b: Target): number => (of(a)?.mibPerSecond ?? NaN) / (of(b)?.mibPerSecond ?? NaN);
      const pct = (x: number): string => (Number.isFinite(x) ? `${fmt(x * 100, 0)}%` : 'n/a');
      const wDirect = ratio('warden', 'direct');
      const cpu = (of('warden')?.gatewayCpuSeconds ?? NaN) / (of('ssh2-relay')?.gatewayCpuSeconds ?? NaN);
      return [
        kind,
        pct(wDirect),
        pct(ratio('warden', 'bastion')),
        pct(ratio('ssh2-relay', 'direct')),
        pct(ratio('bastion', 'direct')),
        Number.isFinite(cpu) ? `${fmt(cpu, 1)}×` : 'n/a',
        Number.isFinite(wDirect) ? verdict(wDirect >= TARGET_THROUGHPUT_RATIO) : 'n/a',
      ];
    });
    outLines.push(
      `Throughput ratios. Target (on W/direct): Warden ≥ ${TARGET_THROUGHPUT_RATIO * 100}% of direct throughput. W CPU/relay CPU: the gateway's CPU per MiB over the bare relay's`,
      table(['transfer', 'W/direct', 'W/bastion', 'relay/direct', 'bastion/direct', 'W CPU/relay CPU', 'target'], ratioRows, 1),
      '',
    );
    const setupRows: string[][] = [];
    for (const [what, key] of [['ssh host true', 'trueMs'], ['ssh -tt → first prompt byte', 'promptMs']] as const) {
      const d = setup.direct[key];
      const w = setup.warden[key];
      const added = median(w) - median(d);
      setupRows.push([what, fmt(median(d), 1), fmt(percentile(d, 90), 1), fmt(median(w), 1), fmt(percentile(w, 90), 1), fmt(added, 1), Number.isFinite(added) ? verdict(added < TARGET_SETUP_OVERHEAD_MS) : 'n/a']);
    }
    outLines.push(
      `Session setup (ms, ${SETUP_RUNS} runs each). Target: added median under ${TARGET_SETUP_OVERHEAD_MS} ms`,
      table(['what', 'direct p50', 'direct p90', 'warden p50', 'warden p90', '+p50', 'target'], setupRows, 1),
      '',
    );
    outLines.push(
      `Gateway during the transfers and setup runs: VmRSS ${mib(transferMemory.rssKiB)} MiB after the transfers, peak (VmHWM) ${mib(transferMemory.hwmKiB)} MiB`,
      `  ${JSON.stringify(transferReport ?? {})}`,
      `  ${transferConfinement}`,
      `${opened}/${SESSIONS} concurrent interactive sessions (ssh -tt, all started at once; every prompt in ${fmt(openSeconds, 1)} s), then \`ls -la /usr/bin | head -200\` in each:`,
      `  RSS idle ${mib(idle.rssKiB)} MiB; all prompts shown ${mib(connected.rssKiB)} MiB (peak while connecting ${mib(connectPeak)} MiB); after the command ${mib(afterCommand.rssKiB)} MiB (${fmt((afterCommand.rssKiB - idle.rssKiB) / Math.max(1, opened), 0)} KiB per session over idle); after all closed ${mib(afterClose.rssKiB)} MiB`,
      `  peak RSS: sampled every 20 ms ${mib(Math.max(peak, afterClose.rssKiB))} MiB; VmHWM ${mib(afterClose.hwmKiB)} MiB`,
      `  recordings stored: ${recordedMany.filter((r) => r.status === 'fulfilled' && r.value.shipped === true).length}/${SESSIONS}`,
      ...(openErrors.length > 0 ? [`  errors: ${[...new Set(openErrors)].join('; ')}`] : []),
      `  ${JSON.stringify(manyReport ?? {})}`,
      `  ${manyConfinement}`,
      '',
    );
    process.stdout.write(`${outLines.join('\n')}\n`);
  } finally {
    await cleanups.run();
  }
}

if (process.argv[2] === '--gateway') await gatewayChild();
else await driver();
