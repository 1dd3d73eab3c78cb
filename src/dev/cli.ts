// `warden dev` and `warden dev token`: registered in src/cli/main.ts.

import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { collect } from '../cli/command-kit.ts';
import { createLogger, type LogLevel, type Logger } from '../controller/log.ts';
import { parseGoDuration } from '../policy/duration.ts';
import type { RenderedPolicy, SidecarConfig } from '../sidecar/config.ts';
import { DevError, DevErrorCode } from './errors.ts';
import { mintIssuerToken } from './oidc.ts';
import type { RunningDev, StartedConnection } from './run.ts';
import { DEFAULT_ISSUER_PORT, DEV_AUDIENCE, defaultStateDir, DevState } from './state.ts';

/** The sample local configuration shipped with Warden: what `warden dev` runs without -f. */
export const DEFAULT_MANIFESTS = fileURLToPath(new URL('../../config/samples/local/', import.meta.url));

/** How the user ran us, so the commands we print can be pasted as they are. */
export function cliPrefix(env: NodeJS.ProcessEnv = process.env): string {
  return env.npm_lifecycle_event === 'warden' ? 'npm run -s warden --' : 'warden';
}

/** Log lines for people: `12:00:01 WARN [default/pg] message key=value`. */
export function humanLogLine(json: string): string {
  try {
    const record = JSON.parse(json) as Record<string, unknown>;
    const { time, level, msg, component: _c, connection, ...rest } = record;
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`)
      .join(' ');
    const clock = typeof time === 'string' ? time.slice(11, 19) : '';
    return `${clock} ${String(level).toUpperCase()} ${connection ? `[${String(connection)}] ` : ''}${String(msg)}${fields ? ` ${fields}` : ''}\n`;
  } catch {
    return json;
  }
}

function subjectArgs(policies: readonly RenderedPolicy[]): { user: string; groups: string[] } {
  for (const policy of policies) {
    for (const subject of policy.spec.subjects ?? []) {
      if (subject.kind === 'User') return { user: subject.name, groups: [] };
      if (subject.kind === 'Group') return { user: 'alice', groups: [subject.name] };
    }
  }
  return { user: 'alice', groups: [] };
}

/** The command that connects to a started Connection, as printed on start. */
export function connectCommand(config: SidecarConfig, port: number, prefix: string, stateArg: string, sshAccount?: string): string[] {
  const { user, groups } = subjectArgs(config.policies);
  const token = `${prefix} dev token${stateArg} --user ${user}${groups.length > 0 ? ` --groups ${groups.join(',')}` : ''}`;
  switch (config.protocol) {
    case 'postgres':
      return [`PGPASSWORD=$(${token}) psql "host=127.0.0.1 port=${port} user=${user} dbname=${config.target.database ?? 'postgres'} sslmode=require"`];
    case 'ssh':
      // The SSH user name is the target account (the gateway logs in as that account only); who
      // you are comes from the token.
      return [`ssh -p ${port} ${sshAccount ?? user}@127.0.0.1`, `(password: a token from \`${token}\`)`];
    case 'kubernetes':
      return [`kubectl --server https://127.0.0.1:${port} --insecure-skip-tls-verify --token "$(${token})" get pods`];
    default:
      return [`curl -H "Authorization: Bearer $(${token})" http://127.0.0.1:${port}/`];
  }
}

function describeTarget(config: SidecarConfig): string {
  if (config.target.url) return config.target.url;
  return `${config.target.host}:${config.target.port}${config.target.database ? `/${config.target.database}` : ''}`;
}

function printBanner(dev: RunningDev, prefix: string, stateArg: string, out: (line: string) => void): void {
  out(`warden dev: development OIDC issuer ${dev.issuer.issuer} (audience ${dev.audience}); state in ${dev.state.dir}`);
  for (const s of dev.started) printConnection(s, prefix, stateArg, out);
  if (dev.metricsUrl) out(`warden dev: Prometheus metrics of every gateway at ${dev.metricsUrl}`);
  out(`warden dev: list recordings with: ${prefix} sessions --dev${stateArg}; then ${prefix} replay --dev${stateArg} <id> and ${prefix} verify --dev${stateArg} <id>`);
  out(`warden dev: ready in ${dev.startupMs} ms (${dev.started.length} of ${dev.started.length + dev.failed.length} Connections); Ctrl-C to stop`);
}

function printConnection(s: StartedConnection, prefix: string, stateArg: string, out: (line: string) => void): void {
  const port = s.gateway.address.port;
  out('');
  out(`${s.namespace}/${s.name} (${s.config.protocol}): 127.0.0.1:${port} -> ${describeTarget(s.config)}; recordings: ${s.recordings}`);
  for (const line of connectCommand(s.config, port, prefix, stateArg, s.sshAccount)) out(`  ${line}`);
}

interface DevCliOptions {
  file: string[];
  stateDir?: string;
  postgresUrl?: string;
  issuerPort: string;
  host: string;
  localRecordings?: boolean;
  gracePeriod: string;
  metricsPort?: string;
  verbose?: boolean;
}

/**
 * Prints the one line and sets exit code 1; the caller returns. Not process.exit(): exiting while
 * V8 still compiles the SQL parser's WebAssembly (loaded with the gateways) can hang the process.
 */
function fail(error: unknown): void {
  const message = error instanceof DevError ? error.message : `unexpected error: ${(error as Error).message}`;
  process.stderr.write(`warden dev: ${message}\n`);
  process.exitCode = 1;
}

function portOption(flag: string, value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new DevError(DevErrorCode.OptionInvalid, `${flag} must be a port number (0-65535), got ${value}`);
  return port;
}

export function devCommand(): Command {
  const dev = new Command('dev')
    .description(
      'Run the gateways of Connection / AccessPolicy / RecordingPolicy / Secret manifests on this machine, without a cluster,\n' +
        'with a development OIDC issuer (`warden dev token` mints tokens) and recordings in a local directory.',
    )
    .option('-f, --file <path>', 'manifest file or directory (repeatable; default: the sample local configuration, config/samples/local/)', collect)
    .option('--postgres-url <url>', 'your PostgreSQL: postgres://user:password@host:5432/database (sets PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE for the manifests; env WARDEN_POSTGRES_URL)')
    .option('--state-dir <dir>', 'keys, local recordings and spool (env WARDEN_DEV_HOME; default ~/.local/state/warden/dev)')
    .addOption(new Option('--issuer-port <port>', 'port of the development OIDC issuer').default(String(DEFAULT_ISSUER_PORT)))
    .addOption(new Option('--host <address>', 'address the gateways and the issuer listen on').default('127.0.0.1'))
    .option('--local-recordings', 'record into the state directory even where a RecordingPolicy names a bucket')
    .addOption(new Option('--grace-period <duration>', 'how long open sessions may run on after Ctrl-C').default('2s'))
    .option('--metrics-port <port>', 'serve the gateways\' Prometheus metrics at http://<host>:<port>/metrics (off by default; 0 = any free port)')
    .option('-v, --verbose', 'log every session and command (default: warnings and errors only)')
    .action(async (opts: DevCliOptions) => {
      const level: LogLevel = opts.verbose ? 'info' : ((process.env.WARDEN_LOG_LEVEL as LogLevel | undefined) ?? 'warn');
      const log: Logger = createLogger({ level, write: (line) => process.stderr.write(humanLogLine(line)) }, { component: 'dev' });
      let graceMs: number;
      let issuerPort: number;
      let metricsPort: number | undefined;
      try {
        graceMs = parseGoDuration(opts.gracePeriod);
        issuerPort = portOption('--issuer-port', opts.issuerPort);
        if (opts.metricsPort !== undefined) metricsPort = portOption('--metrics-port', opts.metricsPort);
      } catch (error) {
        fail(error instanceof DevError ? error : new DevError(DevErrorCode.OptionInvalid, `--grace-period: ${(error as Error).message}`));
        return;
      }
      const stateDir = opts.stateDir ?? defaultStateDir();
      const stateArg = opts.stateDir ? ` --state-dir ${opts.stateDir}` : '';
      const prefix = cliPrefix();
      const postgresUrl = opts.postgresUrl ?? process.env.WARDEN_POSTGRES_URL;
      let running: RunningDev;
      try {
        // Loaded here: `warden dev token` and the other commands need not load the gateways.
        const { runDev } = await import('./run.ts');
        running = await runDev({
          files: opts.file ?? [DEFAULT_MANIFESTS],
          stateDir,
          host: opts.host,
          issuerPort,
          ...(postgresUrl ? { postgresUrl } : {}),
          ...(opts.localRecordings ? { localRecordings: true } : {}),
          log,
          graceMs,
          ...(metricsPort !== undefined ? { metricsPort } : {}),
          note: (line) => void process.stdout.write(`${line}\n`),
        });
      } catch (error) {
        fail(error);
        return;
      }
      for (const f of running.failed) process.stderr.write(`warden dev: Connection ${f.namespace}/${f.name} not started: ${f.error.message}\n`);
      if (running.started.length === 0) {
        await running.stop();
        process.exitCode = 1;
        return;
      }
      for (const s of running.started) for (const w of s.warnings) process.stderr.write(`warden dev: Connection ${s.namespace}/${s.name}: ${w}\n`);
      const out = (line: string): void => void process.stdout.write(`${line}\n`);
      printBanner(running, prefix, stateArg, out);
      process.on('unhandledRejection', (error) => log.error('unhandled rejection (kept running)', { error: error instanceof Error ? error : String(error) }));
      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (): void => {
          signals += 1;
          if (signals > 1) process.exit(130);
          out('warden dev: stopping (open sessions are ended and their recordings sealed; Ctrl-C again to quit at once)');
          running.stop().then(resolve, (error: unknown) => {
            process.stderr.write(`warden dev: unclean stop: ${(error as Error).message}\n`);
            resolve();
          });
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
      out('warden dev: stopped');
      process.exit(0);
    });

  dev.addCommand(
    new Command('token')
      .description('print an OIDC token from the development issuer of `warden dev` (works while it runs in another shell)')
      .requiredOption('--user <name>', 'user name (claims sub and preferred_username)')
      .option('--groups <list>', 'comma-separated groups (repeatable)', collect)
      .option('--email <address>', 'email claim (default <user>@example.com)')
      .addOption(new Option('--ttl <duration>', 'lifetime').default('1h'))
      .option('--state-dir <dir>', 'state directory of warden dev (env WARDEN_DEV_HOME)')
      .action(async (opts: { user: string; groups?: string[]; email?: string; ttl: string; stateDir?: string }, command: Command) => {
        // `warden dev token --state-dir x`: commander may hand the option to `dev` itself.
        const stateDir = opts.stateDir ?? (command.optsWithGlobals() as { stateDir?: string }).stateDir;
        try {
          let ttlMs: number;
          try {
            ttlMs = parseGoDuration(opts.ttl);
          } catch (error) {
            throw new DevError(DevErrorCode.OptionInvalid, `--ttl: ${(error as Error).message}`);
          }
          if (ttlMs < 1000) throw new DevError(DevErrorCode.OptionInvalid, '--ttl must be at least 1s');
          const state = await DevState.open(stateDir ?? defaultStateDir());
          const key = await state.issuerKey({ create: false });
          if (!key) throw new DevError(DevErrorCode.StateInvalid, `no development issuer key in ${state.dir}: start \`${cliPrefix()} dev\` first (it creates the key)`);
          const info = (await state.readIssuerInfo()) ?? { issuer: `http://127.0.0.1:${DEFAULT_ISSUER_PORT}`, audience: DEV_AUDIENCE };
          const groups = (opts.groups ?? []).flatMap((g) => g.split(',')).map((g) => g.trim()).filter((g) => g !== '');
          const token = await mintIssuerToken(key, info, {
            user: opts.user,
            groups,
            ...(opts.email ? { email: opts.email } : {}),
            ttlSeconds: Math.floor(ttlMs / 1000),
          });
          process.stdout.write(`${token}\n`);
        } catch (error) {
          fail(error);
        }
      }),
  );
  return dev;
}
