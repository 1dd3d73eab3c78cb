// Fixtures for the tests that run `warden sidecar` as a real subprocess: the mounted files a
// kubelet would write (Secrets, the configuration) under a scratch root, and the process itself.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import { SIDECAR_CONFIG_KEY, SIDECAR_PATHS, type SidecarConfig, serializeSidecarConfig } from './config.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const WARDEN = new URL('../cli/main.ts', import.meta.url).pathname;

/** Where the sidecar finds its configuration, relative to WARDEN_FS_ROOT. */
export const SIDECAR_CONFIG_PATH = `${SIDECAR_PATHS.configDir}/${SIDECAR_CONFIG_KEY}`;

/** Writes one Secret key as a mounted file under `root`; returns the reference the config carries. */
export function writeSecretFile(root: string, secret: string, key: string, value: string): { secret: string; key: string; file: string } {
  const file = `${SIDECAR_PATHS.secretsDir}/${secret}/${key}`;
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), value, { mode: 0o400 });
  return { secret, key, file };
}

/** Writes the configuration file write-then-rename, as kubelet swaps its ..data link: never half a file. */
export function writeSidecarConfigFile(root: string, config: SidecarConfig): void {
  const file = join(root, SIDECAR_CONFIG_PATH);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, serializeSidecarConfig(config));
  renameSync(`${file}.tmp`, file);
}

/** Starts `warden sidecar` on the configuration under `root` and waits until /readyz answers 200. */
export async function startSidecarProcess(options: {
  name: string;
  root: string;
  healthPort: number;
  logFile: string;
  gracePeriod: string;
  env?: NodeJS.ProcessEnv;
}): Promise<ManagedProcess> {
  const { root, healthPort } = options;
  const gateway = new ManagedProcess({
    name: options.name,
    command: NODE,
    args: [WARDEN, 'sidecar', '--config', SIDECAR_CONFIG_PATH, '--poll-interval', '500ms', '--grace-period', options.gracePeriod],
    env: { PATH: process.env.PATH, HOME: root, WARDEN_FS_ROOT: root, ...options.env },
    cwd: root,
    logFile: options.logFile,
  });
  await waitUntil('warden sidecar /readyz', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).status === 200, {
    timeoutMs: 30_000,
    process: gateway,
  });
  return gateway;
}
