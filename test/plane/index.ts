import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKube } from './kube.ts';
import { startMinio } from './minio.ts';
import { startNginx } from './nginx.ts';
import { startOidcIssuer } from './oidc.ts';
import { startPgbouncer } from './pgbouncer.ts';
import { startPostgres } from './postgres.ts';
import type { Log, Started } from './proc.ts';
import { startSshd } from './sshd.ts';
import type { PlaneInfo } from './types.ts';

export interface Plane {
  info: PlaneInfo;
  /** Stops every server in reverse start order and removes the scratch directory. */
  stop(): Promise<void>;
}

/**
 * Starts the whole test plane: kube-apiserver + etcd, MinIO, PostgreSQL (+ pgbouncer), sshd,
 * nginx and an OIDC issuer, each on free loopback ports under one scratch directory. If any piece
 * fails to start, the pieces already running are stopped before the error propagates.
 */
export async function startPlane(log: Log, options: { keepDir?: boolean } = {}): Promise<Plane> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-plane-'));
  const started: Array<Started<unknown>> = [];
  const track = async <T>(name: string, start: Promise<Started<T>>): Promise<T> => {
    const begin = Date.now();
    const piece = await start;
    started.push(piece);
    log(`${name} ready in ${((Date.now() - begin) / 1000).toFixed(1)} s`);
    return piece.info;
  };
  const stop = async (): Promise<void> => {
    for (const piece of started.reverse()) {
      await piece.stop().catch((error: unknown) => log(`stop failed: ${String(error)}`));
    }
    started.length = 0;
    if (!options.keepDir) await rm(dir, { recursive: true, force: true });
  };
  // The API server is the slowest piece; everything else starts while it comes up. Every start
  // is awaited (settled) before deciding, so a failure never leaves a half-started server behind.
  const postgresStart = track('postgres', startPostgres(join(dir, 'postgres'), log));
  const results = await Promise.allSettled([
    track('kube-apiserver', startKube(join(dir, 'kube'), log)),
    track('minio', startMinio(join(dir, 'minio'), log)),
    postgresStart,
    postgresStart.then((pg) => track('pgbouncer', startPgbouncer(join(dir, 'pgbouncer'), log, pg))),
    track('sshd', startSshd(join(dir, 'sshd'), log)),
    track('nginx', startNginx(join(dir, 'nginx'), log)),
    track('oidc issuer', startOidcIssuer(join(dir, 'oidc'), log)),
  ] as const);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (failures.length > 0) {
    await stop();
    const messages = [...new Set(failures.map((f) => (f instanceof Error ? f.message : String(f))))];
    throw new Error(`the test plane did not start:\n  ${messages.join('\n  ')}`);
  }
  const value = <T>(r: PromiseSettledResult<T>): T => (r as PromiseFulfilledResult<T>).value;
  const [kube, minio, postgres, pgbouncer, ssh, nginx, oidc] = results;
  return {
    info: {
      dir,
      kube: value(kube),
      minio: value(minio),
      postgres: value(postgres),
      pgbouncer: value(pgbouncer),
      ssh: value(ssh),
      nginx: value(nginx),
      oidc: value(oidc),
    },
    stop,
  };
}
