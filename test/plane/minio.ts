import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testbinDir } from './kube.ts';
import { freePort, type Log, ManagedProcess, type Started, waitUntil } from './proc.ts';
import type { MinioInfo } from './types.ts';

const REGION = 'us-east-1';

async function minioBinary(): Promise<string> {
  const path = join(testbinDir(), 'minio');
  try {
    await access(path, constants.X_OK);
  } catch {
    throw new Error(
      `test plane: minio not found in ${testbinDir()}; build it with \`npm run testbin\` ` +
        '(hack/testbin.sh, several minutes on the first run)',
    );
  }
  return path;
}

async function healthy(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await response.arrayBuffer();
  return response.ok;
}

/**
 * Starts a throwaway single-drive MinIO in `dir` (created) on free loopback ports, with random root
 * credentials and a static KMS key so SSE-S3 (x-amz-server-side-encryption: AES256) and buckets
 * with object lock work as they do against a production deployment.
 */
export async function startMinio(dir: string, log: Log, reuse?: MinioInfo): Promise<Started<MinioInfo>> {
  const began = Date.now();
  const binary = await minioBinary();
  const data = join(dir, 'data');
  const certs = join(dir, 'certs');
  await mkdir(data, { recursive: true, mode: 0o700 });
  await mkdir(certs, { recursive: true, mode: 0o700 });
  // `reuse`: start again on the same port with the same credentials over the same data (a test that
  // stops its own MinIO for a while and brings it back, as an outage would).
  const [port, consolePort] = [reuse?.port ?? (await freePort()), await freePort()];
  const accessKey = reuse?.accessKey ?? `warden-${randomBytes(6).toString('hex')}`;
  const secretKey = reuse?.secretKey ?? randomBytes(24).toString('base64url');
  // The KMS key encrypts MinIO's own config too, so a restart over the same data needs the same key.
  const kmsKeyFile = join(dir, 'kms.key');
  const kmsKey = reuse
    ? (await readFile(kmsKeyFile, 'utf8')).trim()
    : `warden-test:${randomBytes(32).toString('base64')}`;
  if (!reuse) await writeFile(kmsKeyFile, kmsKey, { mode: 0o600 });

  const proc = new ManagedProcess({
    name: 'minio',
    command: binary,
    args: [
      'server',
      data,
      '--address',
      `127.0.0.1:${port}`,
      '--console-address',
      `127.0.0.1:${consolePort}`,
      // Otherwise ~/.minio/certs: keep the instance from reading or creating anything in $HOME.
      '--certs-dir',
      certs,
    ],
    env: {
      PATH: process.env.PATH,
      HOME: dir,
      MINIO_ROOT_USER: accessKey,
      MINIO_ROOT_PASSWORD: secretKey,
      // A static key ("name:base64 of 32 bytes") is MinIO's built-in KMS: enough for SSE-S3,
      // which object lock and encrypted backups need.
      MINIO_KMS_SECRET_KEY: kmsKey,
      MINIO_SITE_REGION: REGION,
      MINIO_BROWSER: 'off',
      MINIO_UPDATE: 'off',
      // CI mode: a small buffer pool instead of half the machine's memory, no refusal of a drive
      // that sits on the root disk (cmd/erasure-server-pool.go, cmd/xl-storage.go).
      MINIO_CI_CD: '1',
    },
    cwd: dir,
    logFile: join(dir, 'minio.log'),
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    // live: the process serves HTTP; ready: the drive is formatted and the object layer accepts I/O.
    await waitUntil('minio (live)', () => healthy(`${endpoint}/minio/health/live`), {
      process: proc,
      timeoutMs: 60_000,
    });
    await waitUntil('minio (ready)', () => healthy(`${endpoint}/minio/health/ready`), {
      process: proc,
      timeoutMs: 60_000,
    });
  } catch (error) {
    await proc.stop();
    throw error;
  }
  log(`minio: ready at ${endpoint} in ${Date.now() - began} ms`);
  return {
    info: { endpoint, host: '127.0.0.1', port, accessKey, secretKey, region: REGION },
    stop: () => proc.stop(),
  };
}
