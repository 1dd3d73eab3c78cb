import { constants } from 'node:fs';
import { access, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { grantAccess, serviceAccount } from './postgres.ts';
import { canConnect, freePort, type Log, ManagedProcess, type Started, waitUntil } from './proc.ts';
import type { PlaneInfo, PostgresInfo } from './types.ts';

export type PgbouncerInfo = PlaneInfo['pgbouncer'];

/** Where Debian's pgbouncer package installs the binary. */
const PGBOUNCER = '/usr/sbin/pgbouncer';

/** userlist.txt quotes names and secrets with `"`, doubling an embedded one. */
const quote = (value: string): string => `"${value.replaceAll('"', '""')}"`;

/**
 * Starts pgbouncer in session pool mode in front of the test PostgreSQL, in `dir` (created). Any
 * database name is forwarded to the same name on the server. Clients authenticate with SCRAM: the
 * superuser from userlist.txt, any other role through auth_query (pgbouncer reads its SCRAM secret
 * from pg_shadow as the superuser, then logs in to the server with the client's SCRAM keys).
 */
export async function startPgbouncer(
  dir: string,
  log: Log,
  pg: PostgresInfo,
): Promise<Started<PgbouncerInfo>> {
  const began = Date.now();
  await access(PGBOUNCER, constants.X_OK).catch(() => {
    throw new Error(`test plane: ${PGBOUNCER} not found; install the Debian package pgbouncer`);
  });
  const account = await serviceAccount();
  const port = await freePort();
  const userlist = join(dir, 'userlist.txt');
  const ini = join(dir, 'pgbouncer.ini');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // https://www.pgbouncer.org/config.html
  const config = [
    '[databases]',
    `* = host=${pg.host} port=${pg.port}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    // No Unix socket: the default (/tmp) would be shared with anything else on the machine.
    'unix_socket_dir =',
    'pool_mode = session',
    'auth_type = scram-sha-256',
    `auth_file = ${userlist}`,
    `auth_user = ${pg.user}`,
    `admin_users = ${pg.user}`,
    `stats_users = ${pg.user}`,
    'max_client_conn = 500',
    'default_pool_size = 20',
    // JDBC and some drivers send these at startup; pgbouncer rejects unknown parameters otherwise.
    'ignore_startup_parameters = extra_float_digits,options',
    'server_login_retry = 1',
    '',
  ].join('\n');
  await writeFile(ini, config, { mode: 0o600 });
  await writeFile(userlist, `${quote(pg.user)} ${quote(pg.password)}\n`, { mode: 0o600 });
  for (const path of [dir, ini, userlist]) await chown(path, account.uid, account.gid);
  await grantAccess(account, dir);

  // pgbouncer refuses to run as root; in the foreground (no -d) it logs to stderr.
  const command = account.wrap(PGBOUNCER, [ini]);
  const proc = new ManagedProcess({
    name: 'pgbouncer',
    command: command.command,
    args: command.args,
    env: { PATH: process.env.PATH, LANG: 'C' },
    cwd: dir,
    logFile: join(dir, 'pgbouncer.log'),
  });
  try {
    await waitUntil('pgbouncer', () => canConnect('127.0.0.1', port), { process: proc, timeoutMs: 30_000 });
  } catch (error) {
    await proc.stop();
    throw error;
  }
  log(`pgbouncer: ready on 127.0.0.1:${port} in ${Date.now() - began} ms`);
  return { info: { host: '127.0.0.1', port }, stop: () => proc.stop() };
}
