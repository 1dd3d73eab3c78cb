// `warden sessions`: the Session objects from the API server, filtered by user, connection, phase
// and time range — the audit listing with the recording location next to each session.

import { Command, Option } from 'commander';
import { SESSION_PHASES, type Session } from '../api/types.ts';
import { parseGoDuration } from '../policy/duration.ts';
import { DirectoryStore } from '../recorder/store-dir.ts';
import { collect, ExitCode, runCommand, UsageError, usageExitCode, withDevDefaults } from './command-kit.ts';

export interface SessionFilter {
  readonly user?: string;
  readonly connection?: string;
  readonly phase?: string;
  /** Started at or after (ms since the epoch). */
  readonly since?: number;
  /** Started before (ms since the epoch). */
  readonly until?: number;
}

/** An RFC 3339 time or a duration back from now (`90m`, `24h`, `7d`). */
export function parseTimeBound(flag: string, value: string, now: number = Date.now()): number {
  const absolute = Date.parse(value);
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(absolute)) return absolute;
  const days = /^(\d+)d$/.exec(value);
  if (days) return now - Number(days[1]) * 86_400_000;
  try {
    return now - parseGoDuration(value);
  } catch {
    throw new UsageError(`${flag} wants an RFC 3339 time (2026-11-22T10:00:00Z) or a duration back from now (30m, 24h, 7d); got ${JSON.stringify(value)}`);
  }
}

export function filterSessions(sessions: readonly Session[], filter: SessionFilter): Session[] {
  return sessions
    .filter((session) => {
      const started = Date.parse(session.spec.startedAt);
      if (filter.user !== undefined && session.spec.user !== filter.user) return false;
      if (filter.connection !== undefined && session.spec.connection !== filter.connection) return false;
      if (filter.phase !== undefined && session.status?.phase !== filter.phase) return false;
      if (filter.since !== undefined && !(started >= filter.since)) return false;
      if (filter.until !== undefined && !(started < filter.until)) return false;
      return true;
    })
    .sort((a, b) => Date.parse(b.spec.startedAt) - Date.parse(a.spec.startedAt));
}

export function sessionTable(sessions: readonly Session[], wide: boolean): string[] {
  const header = ['NAMESPACE', 'NAME', 'USER', 'CONNECTION', 'PROTOCOL', 'PHASE', 'COMMANDS', 'DENIED', 'STARTED', 'DURATION'];
  if (wide) header.push('CLIENT', 'LOCATION');
  const rows = sessions.map((session) => {
    const row = [
      session.metadata.namespace ?? '',
      session.metadata.name ?? '',
      session.spec.user,
      session.spec.connection,
      session.spec.protocol,
      session.status?.phase ?? '',
      String(session.status?.commands ?? 0),
      String(session.status?.denied ?? 0),
      session.spec.startedAt,
      session.status?.duration ?? '',
    ];
    if (wide) row.push(session.spec.clientAddress ?? '', session.status?.recording?.location ?? '');
    return row;
  });
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('   ').trimEnd());
}

interface SessionsOptions {
  kubeconfig?: string;
  namespace?: string;
  allNamespaces?: boolean;
  user?: string;
  connection?: string;
  phase?: string;
  since?: string;
  until?: string;
  output?: 'table' | 'wide' | 'json' | 'name';
  dev?: boolean;
  stateDir?: string;
  dir?: string;
  publicKey?: string[];
}

export function sessionsCommand(): Command {
  const command = new Command('sessions')
    .description('List recorded sessions (Session objects) from the API server, or the local recordings of `warden dev` (--dev), newest first.')
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .option('-n, --namespace <ns>', 'namespace (default: the kubeconfig context namespace)')
    .option('-A, --all-namespaces', 'sessions of all namespaces')
    .option('--user <user>', 'only sessions of this user')
    .option('--connection <name>', 'only sessions on this Connection')
    .addOption(new Option('--phase <phase>', 'only sessions in this phase').choices([...SESSION_PHASES]))
    .option('--since <time>', 'started at or after: RFC 3339 time or a duration back from now (30m, 24h, 7d)')
    .option('--until <time>', 'started before: RFC 3339 time or a duration back from now')
    .addOption(new Option('-o, --output <format>', 'table, wide, json, or name (session ids only)').choices(['table', 'wide', 'json', 'name']).default('table'))
    .option('--dev', 'the local recordings of `warden dev` instead of Session objects')
    .option('--state-dir <dir>', 'state directory of `warden dev` (implies --dev; env WARDEN_DEV_HOME)')
    .option('--dir <root>', 'the recordings in a local directory store instead of Session objects')
    .option('--public-key <file>', 'with --dir: Ed25519 public key the recordings are signed with (repeatable)', collect);
  usageExitCode(command);
  command.action(async (options: SessionsOptions) => {
    await runCommand(async () => {
      const local = withDevDefaults(options);
      const filter: SessionFilter = {
        ...(options.user === undefined ? {} : { user: options.user }),
        ...(options.connection === undefined ? {} : { connection: options.connection }),
        ...(options.phase === undefined ? {} : { phase: options.phase }),
        ...(options.since === undefined ? {} : { since: parseTimeBound('--since', options.since) }),
        ...(options.until === undefined ? {} : { until: parseTimeBound('--until', options.until) }),
      };
      let sessions: Session[];
      let namespace: string | undefined;
      // Loaded here, not at the top: these bring the Kubernetes and S3 clients (see command-kit.ts).
      const { kubeConfig, loadPublicKeys } = await import('./recording-access.ts');
      if (local.dir !== undefined) {
        // Local recordings (warden dev): rebuilt from the recordings, each one checked on the way.
        namespace = options.namespace;
        const { listStoredSessions } = await import('../dev/sessions.ts');
        const all = await listStoredSessions(new DirectoryStore(local.dir), loadPublicKeys(local));
        sessions = filterSessions(namespace === undefined ? all : all.filter((s) => s.metadata.namespace === namespace), filter);
      } else {
        const config = kubeConfig(options);
        const { KubeSessionObjects } = await import('../recorder/session-objects.ts');
        namespace = options.allNamespaces ? undefined : (options.namespace ?? (config.getContextObject(config.getCurrentContext())?.namespace || 'default'));
        sessions = filterSessions(await new KubeSessionObjects(config).list(namespace), filter);
      }
      if (options.output === 'name') {
        for (const session of sessions) process.stdout.write(`${session.metadata.name ?? ''}\n`);
      } else if (options.output === 'json') {
        process.stdout.write(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: sessions }, null, 2)}\n`);
      } else if (sessions.length === 0) {
        process.stderr.write(`No sessions found${namespace ? ` in namespace ${namespace}` : ''}${local.dir !== undefined ? ` in ${local.dir}` : ''}.\n`);
      } else {
        for (const line of sessionTable(sessions, options.output === 'wide')) process.stdout.write(`${line}\n`);
      }
      return ExitCode.Ok;
    });
  });
  return command;
}
