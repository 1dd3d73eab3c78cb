import { constants } from 'node:fs';
import { access, chmod, copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { canConnect, freePort, type Log, ManagedProcess, run, type Started, waitUntil } from './proc.ts';
import type { SshInfo } from './types.ts';

/** Where Debian's openssh-server installs the daemon; sshd re-executes itself, so the path is absolute. */
const SSHD = '/usr/sbin/sshd';

/** The local account the tests log into when the plane runs as root (created on first use). */
export const SSH_ACCOUNT = 'warden-ssh';

/**
 * Privilege-separation directory sshd (as root) insists on: it must exist, belong to root and not
 * be group- or world-writable. Debian's init scripts create it at boot; a container has none.
 */
const PRIVSEP_DIR = '/run/sshd';

async function ensureLoginAccount(): Promise<string> {
  if (process.getuid?.() !== 0) {
    // An unprivileged sshd can only log its own user in.
    return userInfo().username;
  }
  try {
    await run('id', ['-u', SSH_ACCOUNT]);
  } catch {
    try {
      await run('useradd', ['--create-home', '--shell', '/bin/bash', SSH_ACCOUNT]);
    } catch (error) {
      // A concurrent plane may have just created it.
      await run('id', ['-u', SSH_ACCOUNT]).catch(() => {
        throw error;
      });
    }
  }
  // useradd leaves the password field "!" (locked); with UsePAM no, OpenSSH refuses public-key
  // logins to locked accounts. "*" means "no password" without "locked".
  const shadow = await readFile('/etc/shadow', 'utf8');
  const entry = shadow.split('\n').find((line) => line.startsWith(`${SSH_ACCOUNT}:`));
  if (entry?.split(':')[1] !== '*') await run('usermod', ['-p', '*', SSH_ACCOUNT]);
  return SSH_ACCOUNT;
}

async function ensurePrivsepDir(): Promise<void> {
  if (process.getuid?.() !== 0) return;
  await mkdir(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  const mode = (await stat(PRIVSEP_DIR)).mode & 0o777;
  if ((mode & 0o022) !== 0) await chmod(PRIVSEP_DIR, 0o755);
}

/** "ssh-ed25519 AAAA… comment" → "ssh-ed25519 AAAA…". */
function keyWithoutComment(publicKeyLine: string): string {
  return publicKeyLine.trim().split(/\s+/).slice(0, 2).join(' ');
}

/**
 * Starts a throwaway OpenSSH server in `dir` (created) on a free loopback port: its own ed25519
 * host key, config, pid file and authorized_keys; public-key logins only, for one local account
 * (see {@link SSH_ACCOUNT}), with the internal SFTP server and TCP forwarding enabled.
 */
export async function startSshd(dir: string, log: Log): Promise<Started<SshInfo>> {
  const began = Date.now();
  await access(SSHD, constants.X_OK).catch(() => {
    throw new Error(`test plane: ${SSHD} not found; install the Debian package openssh-server`);
  });
  const [user] = await Promise.all([ensureLoginAccount(), ensurePrivsepDir()]);
  // sshd reads authorized_keys as the login user, so the directory must be world-readable and
  // every directory above it searchable.
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  const parentMode = (await stat(dirname(dir))).mode & 0o7777;
  if ((parentMode & 0o001) === 0) await chmod(dirname(dir), parentMode | 0o001);

  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const clientKey = join(dir, 'client_ed25519');
  const authorizedKeys = join(dir, 'authorized_keys');
  const knownHostsFile = join(dir, 'known_hosts');
  const configFile = join(dir, 'sshd_config');
  await Promise.all([
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'warden-test-host', '-f', hostKey]),
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'warden-test-client', '-f', clientKey]),
  ]);
  await copyFile(`${clientKey}.pub`, authorizedKeys);
  await chmod(authorizedKeys, 0o644);
  const hostKeys = [keyWithoutComment(await readFile(`${hostKey}.pub`, 'utf8'))];

  const port = await freePort();
  await writeFile(knownHostsFile, hostKeys.map((key) => `[127.0.0.1]:${port} ${key}\n`).join(''));
  // sshd_config(5). StrictModes would demand that authorized_keys and its directories belong to the
  // login user; here they belong to the plane.
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    'StrictModes no',
    `AllowUsers ${user}`,
    'PermitRootLogin no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'AllowTcpForwarding yes',
    'AllowAgentForwarding no',
    'X11Forwarding no',
    'PermitUserEnvironment no',
    'PrintMotd no',
    'PrintLastLog no',
    'UseDNS no',
    // Tests open many connections at once; the default 10:30:100 drops some of them.
    'MaxStartups 200',
    'MaxSessions 100',
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
  await writeFile(configFile, config);

  // -D: stay in the foreground; -e: log to stderr (the log file) instead of syslog.
  const proc = new ManagedProcess({
    name: 'sshd',
    command: SSHD,
    args: ['-D', '-e', '-f', configFile],
    env: { PATH: process.env.PATH, LANG: 'C' },
    cwd: dir,
    logFile: join(dir, 'sshd.log'),
  });
  try {
    await waitUntil('sshd', () => canConnect('127.0.0.1', port), { process: proc, timeoutMs: 30_000 });
  } catch (error) {
    await proc.stop();
    throw error;
  }
  log(`sshd: ready on 127.0.0.1:${port} for ${user} in ${Date.now() - began} ms`);
  return {
    info: { host: '127.0.0.1', port, user, privateKeyFile: clientKey, hostKeys, knownHostsFile },
    stop: () => proc.stop(),
  };
}
