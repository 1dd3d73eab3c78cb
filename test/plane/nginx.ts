import { constants } from 'node:fs';
import { access, chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { freePort, type Log, ManagedProcess, type Started, waitUntil } from './proc.ts';
import type { PlaneInfo } from './types.ts';

export type NginxInfo = PlaneInfo['nginx'];

/** Where Debian's nginx packages (nginx-light, nginx) install the binary. */
const NGINX = '/usr/sbin/nginx';

/** Files the docroot serves; tests compare against these. */
export const NGINX_FILES = {
  small: { path: '/small.txt', body: 'hello from the warden test plane\n' },
  /** 1 MiB whose byte i is i mod 256, so a test can check content as well as length. */
  oneMiB: { path: '/1m.bin', size: 1024 * 1024 },
} as const;

/** The 1 MiB file's content (see {@link NGINX_FILES}). */
export function oneMiBContent(): Buffer {
  const body = Buffer.alloc(NGINX_FILES.oneMiB.size);
  for (let i = 0; i < body.length; i++) body[i] = i & 0xff;
  return body;
}

/**
 * Starts a throwaway nginx in `dir` (created) with its own configuration, logs, pid and temp paths,
 * serving a small docroot on a free loopback port: /small.txt, /1m.bin and /echo (method and URI).
 */
export async function startNginx(dir: string, log: Log): Promise<Started<NginxInfo>> {
  const began = Date.now();
  await access(NGINX, constants.X_OK).catch(() => {
    throw new Error(`test plane: ${NGINX} not found; install the Debian package nginx-light`);
  });
  const root = process.getuid?.() === 0;
  const docroot = join(dir, 'www');
  const temp = join(dir, 'tmp');
  await mkdir(docroot, { recursive: true, mode: 0o755 });
  await mkdir(temp, { recursive: true, mode: 0o755 });
  // Workers run as nobody (below) and must reach the docroot through the 0700 plane directory.
  await chmod(dir, 0o755);
  const parentMode = (await stat(dirname(dir))).mode & 0o7777;
  if (root && (parentMode & 0o001) === 0) await chmod(dirname(dir), parentMode | 0o001);
  await writeFile(join(docroot, NGINX_FILES.small.path), NGINX_FILES.small.body, { mode: 0o644 });
  await writeFile(join(docroot, NGINX_FILES.oneMiB.path), oneMiBContent(), { mode: 0o644 });

  const port = await freePort();
  const configFile = join(dir, 'nginx.conf');
  // nginx honours `user` only when the master runs as root; nginx creates the temp directories
  // and hands them to that user itself.
  const config = `
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
  types { text/plain txt; application/octet-stream bin; }
  default_type application/octet-stream;
  sendfile on;
  server {
    listen 127.0.0.1:${port};
    server_name localhost;
    root ${docroot};
    location = /echo {
      default_type text/plain;
      return 200 "$request_method $request_uri\\n";
    }
  }
}
`;
  await writeFile(configFile, config);

  // -p: prefix for relative paths; -e: error log before the config is read (Debian's default is
  // stderr, other builds use /var/log); -g: stay in the foreground so stop() reaches it.
  const proc = new ManagedProcess({
    name: 'nginx',
    command: NGINX,
    args: ['-p', dir, '-e', join(dir, 'error.log'), '-c', configFile, '-g', 'daemon off;'],
    env: { PATH: process.env.PATH, LANG: 'C' },
    cwd: dir,
    logFile: join(dir, 'nginx.log'),
  });
  const url = `http://127.0.0.1:${port}${NGINX_FILES.small.path}`;
  try {
    await waitUntil(
      'nginx',
      async () => {
        const response = await fetch(url);
        await response.arrayBuffer();
        return response.ok;
      },
      { process: proc, timeoutMs: 30_000 },
    );
  } catch (error) {
    await proc.stop();
    throw error;
  }
  log(`nginx: ready on 127.0.0.1:${port} in ${Date.now() - began} ms`);
  return { info: { host: '127.0.0.1', port }, stop: () => proc.stop() };
}
