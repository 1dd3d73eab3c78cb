// Fixtures for the tests that run `warden sidecar` as a real subprocess: the mounted files a
// kubelet would write (Secrets, the configuration) under a scratch root, the configuration sections
// that point at the test plane's servers (MinIO bucket, OIDC issuer), the process itself, and psql
// through it.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as Minio from 'minio';
import { capture, type Captured, ManagedProcess, waitUntil } from '../../test/plane/proc.ts';
import type { MinioInfo, OidcInfo, PostgresInfo } from '../../test/plane/types.ts';
import { type RecordingConfig, type RenderedPolicy, SIDECAR_CONFIG_KEY, SIDECAR_PATHS, type SidecarConfig, serializeSidecarConfig } from './config.ts';

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

/** A fresh Ed25519 signing key as PKCS#8 PEM: what the signing Secret holds. */
export function newSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** Makes a bucket of its own on the plane's MinIO; returns the client, for reading recordings back. */
export async function createPlaneBucket(minio: MinioInfo, bucket: string): Promise<Minio.Client> {
  const client = new Minio.Client({ endPoint: minio.host, port: minio.port, useSSL: false, accessKey: minio.accessKey, secretKey: minio.secretKey, region: minio.region });
  await client.makeBucket(bucket, minio.region);
  return client;
}

/**
 * The `recording` section for recording into `bucket` on the plane's MinIO: the bucket credentials
 * (Secret `minio`) and the signing key (Secret `signing`; a fresh key unless given) are written as
 * mounted files under `root`, so the document's secretVersions name `minio` and `signing`. Input
 * and output recorded, masked values stored, fail closed.
 */
export function planeRecording(
  root: string,
  minio: MinioInfo,
  options: { bucket: string; prefix: string; policy?: string; signingKey?: string },
): RecordingConfig {
  return {
    policy: options.policy ?? 'minio',
    s3: {
      endpoint: minio.endpoint,
      bucket: options.bucket,
      region: minio.region,
      pathStyle: true,
      prefix: options.prefix,
      accessKeyId: writeSecretFile(root, 'minio', 'accessKeyId', minio.accessKey),
      secretAccessKey: writeSecretFile(root, 'minio', 'secretAccessKey', minio.secretKey),
      sse: 'none',
    },
    record: { input: true, output: true, maxEventBytes: 65536, maxResultRows: 100 },
    signingKey: writeSecretFile(root, 'signing', 'key.pem', options.signingKey ?? newSigningKeyPem()),
    storeMasked: true,
    onStorageFailure: 'FailClosed',
  };
}

/**
 * The `oidc` section trusting the plane's issuer (tokens from test/plane/tokens.ts), groups from
 * `groups`. With `jwks`, the JWKS URL is given instead of found through discovery.
 */
export function planeOidc(oidc: OidcInfo, options: { usernameClaim?: string; jwks?: boolean } = {}): SidecarConfig['oidc'] {
  return {
    issuer: oidc.issuer,
    audience: oidc.audience,
    usernameClaim: options.usernameClaim ?? 'preferred_username',
    groupsClaim: 'groups',
    ...(options.jwks ? { jwksUri: oidc.jwksUri } : {}),
  };
}

/**
 * `target` and `credentials` of a Postgres gateway in front of `db` on the plane's server (no TLS
 * to it): the owner's login written as Secret `secret` under `root`; `username` overrides what
 * the username file holds (e.g. with a trailing newline, as Secrets often have).
 */
export function planePostgresTarget(
  root: string,
  postgres: PostgresInfo,
  db: { database: string; user: string; password: string },
  options: { secret: string; username?: string },
): Pick<SidecarConfig, 'target' | 'credentials'> {
  return {
    target: { host: postgres.host, port: postgres.port, database: db.database, tls: { mode: 'disable' } },
    credentials: {
      username: writeSecretFile(root, options.secret, 'username', options.username ?? db.user),
      password: writeSecretFile(root, options.secret, 'password', db.password),
    },
  };
}

/** One AccessPolicy as the controller renders it into the document (uid `uid-<name>`, no problems). */
export function renderedPolicy(name: string, spec: RenderedPolicy['spec']): RenderedPolicy {
  return { name, uid: `uid-${name}`, generation: 1, spec, problems: [] };
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

/** Runs one statement with the real psql through a Postgres gateway: TLS required, the token as password. */
export async function psqlThroughGateway(
  binDir: string,
  connect: { port: number; user: string; password: string; database: string; applicationName: string },
  sql: string,
): Promise<Captured> {
  return await capture(join(binDir, 'psql'), ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: {
      PATH: process.env.PATH,
      PGHOST: '127.0.0.1',
      PGPORT: String(connect.port),
      PGUSER: connect.user,
      PGDATABASE: connect.database,
      PGSSLMODE: 'require',
      PGPASSWORD: connect.password,
      PGAPPNAME: connect.applicationName,
      PGCONNECT_TIMEOUT: '5',
    },
  });
}
