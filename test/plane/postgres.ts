import { randomBytes } from 'node:crypto';
import { access, chmod, chown, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { freePort, type Log, ManagedProcess, run, type Started, waitUntil } from './proc.ts';
import type { PostgresInfo } from './types.ts';

/** Debian installs each PostgreSQL major version side by side under this directory. */
const DEBIAN_POSTGRES_ROOT = '/usr/lib/postgresql';

/**
 * PostgreSQL and pgbouncer refuse to run as root. When the plane runs as root (CI, containers) it
 * runs them as this system account, created on first use; otherwise as the invoking user.
 */
export const SERVICE_ACCOUNT = 'warden-test';

export interface ServiceAccount {
  name: string;
  uid: number;
  gid: number;
  /** Rewrites a command so it runs as the account (unchanged when the plane is not root). */
  wrap(command: string, args: string[]): { command: string; args: string[] };
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

async function lookupIds(name: string): Promise<{ uid: number; gid: number }> {
  const uid = Number((await run('id', ['-u', name])).stdout.trim());
  const gid = Number((await run('id', ['-g', name])).stdout.trim());
  return { uid, gid };
}

/** The unprivileged account the database servers run as; see {@link SERVICE_ACCOUNT}. */
export async function serviceAccount(): Promise<ServiceAccount> {
  if (!isRoot()) {
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    return { name: String(uid), uid, gid, wrap: (command, args) => ({ command, args }) };
  }
  let ids: { uid: number; gid: number };
  try {
    ids = await lookupIds(SERVICE_ACCOUNT);
  } catch {
    try {
      await run('useradd', [
        '--system',
        '--user-group',
        '--no-create-home',
        '--home-dir',
        '/nonexistent',
        '--shell',
        '/usr/sbin/nologin',
        SERVICE_ACCOUNT,
      ]);
    } catch (error) {
      // Two servers starting at once may race to create it; only a still-missing account is an error.
      try {
        await lookupIds(SERVICE_ACCOUNT);
      } catch {
        throw error;
      }
    }
    ids = await lookupIds(SERVICE_ACCOUNT);
  }
  const { uid, gid } = ids;
  return {
    name: SERVICE_ACCOUNT,
    uid,
    gid,
    // setpriv execs in place (no intermediate process like runuser/su), so the managed pid is the
    // server itself and stopping its process group reaches everything it forked.
    wrap: (command, args) => ({
      command: 'setpriv',
      args: [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', command, ...args],
    }),
  };
}

/**
 * Lets `account` reach `path`, a server directory inside the plane directory (mkdtemp makes that
 * 0700): adds search permission for others on the parent, then checks the whole chain, so a plane
 * directory under, say, /root fails with this message rather than a bare "permission denied".
 */
export async function grantAccess(account: ServiceAccount, path: string): Promise<void> {
  if (!isRoot()) return;
  const parent = dirname(path);
  const mode = (await stat(parent)).mode & 0o7777;
  if ((mode & 0o001) === 0) await chmod(parent, mode | 0o001);
  const probe = account.wrap('test', ['-r', path, '-a', '-x', path]);
  try {
    await run(probe.command, probe.args);
  } catch {
    throw new Error(
      `test plane: account ${account.name} cannot reach ${path}: every directory above it must be searchable by others (o+x); put the plane directory under /tmp`,
    );
  }
}

/** Newest PostgreSQL major version Debian has installed, e.g. /usr/lib/postgresql/15/bin. */
export async function postgresBinDir(): Promise<string> {
  let majors: number[] = [];
  try {
    majors = (await readdir(DEBIAN_POSTGRES_ROOT))
      .filter((name) => /^\d+$/.test(name))
      .map(Number)
      .sort((a, b) => b - a);
  } catch {
    // Reported below.
  }
  for (const major of majors) {
    const bin = join(DEBIAN_POSTGRES_ROOT, String(major), 'bin');
    try {
      await access(join(bin, 'postgres'));
      return bin;
    } catch {
      // A leftover directory without the server; try the next version.
    }
  }
  throw new Error(
    `test plane: no PostgreSQL server under ${DEBIAN_POSTGRES_ROOT}/*/bin: install the Debian package postgresql (apt-get install postgresql)`,
  );
}

/**
 * Starts a throwaway PostgreSQL cluster in `dir` (created, handed to the service account): TCP on
 * 127.0.0.1 with SCRAM password authentication, a Unix socket inside the directory (trust; only
 * root and the service account can reach it), durability off because the data is thrown away.
 */
export async function startPostgres(dir: string, log: Log): Promise<Started<PostgresInfo>> {
  const began = Date.now();
  const binDir = await postgresBinDir();
  const account = await serviceAccount();
  const base = dir;
  const data = join(base, 'data');
  const sockets = join(base, 'run');
  const pwfile = join(base, 'pwfile');
  const user = 'postgres';
  const password = randomBytes(18).toString('base64url');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: base, LANG: 'C', LC_ALL: 'C', TZ: 'UTC' };

  await mkdir(sockets, { recursive: true, mode: 0o700 });
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  for (const path of [base, sockets, pwfile]) await chown(path, account.uid, account.gid);
  await grantAccess(account, base);

  const initdb = account.wrap(join(binDir, 'initdb'), [
    '--pgdata',
    data,
    '--username',
    user,
    `--pwfile=${pwfile}`,
    '--auth-host=scram-sha-256',
    '--auth-local=trust',
    '--encoding=UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  log(`postgres: initdb in ${data}`);
  await run(initdb.command, initdb.args, { env, cwd: base });
  await rm(pwfile);

  const port = await freePort();
  const server = account.wrap(join(binDir, 'postgres'), [
    '-D',
    data,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `port=${port}`,
    '-c',
    `unix_socket_directories=${sockets}`,
    // Throwaway data: no fsync, no full-page writes, no waiting for WAL flushes.
    '-c',
    'fsync=off',
    '-c',
    'synchronous_commit=off',
    '-c',
    'full_page_writes=off',
    '-c',
    'max_connections=200',
  ]);
  const proc = new ManagedProcess({
    name: 'postgres',
    command: server.command,
    args: server.args,
    env,
    cwd: base,
    logFile: join(base, 'postgres.log'),
  });
  try {
    await waitUntil(
      'postgres',
      async () => {
        await run(join(binDir, 'pg_isready'), [
          '-q',
          '-h',
          '127.0.0.1',
          '-p',
          String(port),
          '-d',
          'postgres',
        ]);
        return true;
      },
      { process: proc, timeoutMs: 60_000 },
    );
    await run(
      join(binDir, 'psql'),
      ['-h', sockets, '-p', String(port), '-U', user, '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-q'],
      { env, input: 'CREATE DATABASE warden_test;\n' },
    );
  } catch (error) {
    await proc.stop();
    throw error;
  }
  log(`postgres: ready on 127.0.0.1:${port} (${binDir}) in ${Date.now() - began} ms`);
  return {
    info: { host: '127.0.0.1', port, user, password, database: 'warden_test', binDir },
    stop: () => proc.stop(),
  };
}
