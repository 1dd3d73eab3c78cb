import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { Client, RETENTION_MODES, RETENTION_VALIDITY_UNITS } from 'minio';
import { describe, expect, inject, it } from 'vitest';
import { NGINX_FILES, type NginxInfo, oneMiBContent } from './nginx.ts';
import type { PgbouncerInfo } from './pgbouncer.ts';
import { run } from './proc.ts';
import { mintToken, REJECTED_TOKEN_VARIANTS } from './tokens.ts';
import type { MinioInfo, OidcInfo, PostgresInfo, SshInfo } from './types.ts';

// The servers are the shared plane the global setup started (test/plane/global-setup.ts).
const plane = inject('plane');
// Buckets are per run: the MinIO server is shared with every other test file.
const suffix = Math.random().toString(36).slice(2, 8);
const plainBucket = `plain-${suffix}`;
const lockedBucket = `locked-${suffix}`;

describe('the MinIO test server', () => {
  const minio: MinioInfo = plane.minio;

  const client = (): Client =>
    new Client({
      endPoint: minio.host,
      port: minio.port,
      useSSL: false,
      accessKey: minio.accessKey,
      secretKey: minio.secretKey,
      region: minio.region,
    });

  it('stores an object and reads it back', async () => {
    const s3 = client();
    await s3.makeBucket(plainBucket, minio.region);
    await s3.putObject(plainBucket, 'greeting.txt', Buffer.from('hello, bucket'), undefined, {
      'content-type': 'text/plain',
    });

    const body = await buffer(await s3.getObject(plainBucket, 'greeting.txt'));
    expect(body.toString()).toBe('hello, bucket');
  });

  it('encrypts with SSE-S3 and holds objects under object lock', async () => {
    const s3 = client();
    await s3.makeBucket(lockedBucket, minio.region, { ObjectLocking: true });
    // minio's typings list a void overload first; the call returns a promise.
    await (s3.setObjectLockConfig(lockedBucket, {
      mode: RETENTION_MODES.GOVERNANCE,
      unit: RETENTION_VALIDITY_UNITS.DAYS,
      validity: 1,
    }) as unknown as Promise<void>);
    const body = Buffer.from('a recording that must not be deleted');
    await s3.putObject(lockedBucket, 'session.cast', body, body.length, {
      'x-amz-server-side-encryption': 'AES256',
    });

    const stat = await s3.statObject(lockedBucket, 'session.cast');
    expect(stat.metaData['x-amz-server-side-encryption']).toBe('AES256');
    const lock = await (s3.getObjectLockConfig(lockedBucket) as unknown as Promise<unknown>);
    expect(lock).toMatchObject({ objectLockEnabled: 'Enabled' });
    expect(stat.versionId).toBeTruthy();
    const versionId = String(stat.versionId);
    expect(await s3.getObjectRetention(lockedBucket, 'session.cast', { versionId })).toMatchObject({
      mode: RETENTION_MODES.GOVERNANCE,
    });
    await expect(s3.removeObject(lockedBucket, 'session.cast', { versionId })).rejects.toThrow();
    expect((await buffer(await s3.getObject(lockedBucket, 'session.cast'))).equals(body)).toBe(true);
  });
});

describe('the PostgreSQL test server', () => {
  const postgres: PostgresInfo = plane.postgres;

  const psql = async (
    port: number,
    sql: string,
    as: { user: string; password: string } = postgres,
  ): Promise<string> => {
    const args = ['-h', '127.0.0.1', '-p', String(port), '-U', as.user, '-d', postgres.database];
    const { stdout } = await run(join(postgres.binDir, 'psql'), [...args, '-w', '-At', '-c', sql], {
      env: { ...process.env, PGPASSWORD: as.password, PGCONNECT_TIMEOUT: '10' },
    });
    return stdout.trim();
  };

  it('accepts psql over TCP with the superuser password', async () => {
    expect(await psql(postgres.port, 'select 1')).toBe('1');
    expect(await psql(postgres.port, 'select rolsuper from pg_roles where rolname = current_user')).toBe('t');
  });

  it('refuses a wrong password (SCRAM, not trust)', async () => {
    await expect(psql(postgres.port, 'select 1', { user: postgres.user, password: 'wrong' })).rejects.toThrow(
      /password authentication failed/,
    );
  });

  describe('behind pgbouncer', () => {
    const pgbouncer: PgbouncerInfo = plane.pgbouncer;

    it('accepts psql through the pooler', async () => {
      expect(await psql(pgbouncer.port, 'select 1')).toBe('1');
    });

    it('logs in any role through auth_query', async () => {
      await psql(postgres.port, "create role bouncer_user login password 'bouncer-secret'");
      const as = { user: 'bouncer_user', password: 'bouncer-secret' };
      expect(await psql(pgbouncer.port, 'select current_user', as)).toBe('bouncer_user');
    });
  });
});

describe('the OpenSSH test server', () => {
  const ssh: SshInfo = plane.ssh;

  const sshRun = (knownHostsFile: string, command: string): Promise<{ stdout: string }> =>
    run('ssh', [
      '-F',
      '/dev/null',
      '-i',
      ssh.privateKeyFile,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      `UserKnownHostsFile=${knownHostsFile}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
      '-o',
      'StrictHostKeyChecking=yes',
      '-p',
      String(ssh.port),
      `${ssh.user}@${ssh.host}`,
      command,
    ]);

  it('lets the test key log in, with the host key pinned by known_hosts', async () => {
    const { stdout } = await sshRun(ssh.knownHostsFile, 'echo hello');
    expect(stdout).toBe('hello\n');
    expect(ssh.hostKeys).toEqual([expect.stringMatching(/^ssh-ed25519 AAAA\S+$/)]);
  });

  it('is refused by a client that pins another host key', async () => {
    // The client's own public key stands in for a host key the server does not have.
    const otherKey = (await readFile(`${ssh.privateKeyFile}.pub`, 'utf8')).split(' ').slice(0, 2).join(' ');
    const wrongKnownHosts = join(plane.dir, 'wrong_known_hosts');
    await writeFile(wrongKnownHosts, `[${ssh.host}]:${ssh.port} ${otherKey}\n`);
    await expect(sshRun(wrongKnownHosts, 'echo hello')).rejects.toThrow(/Host key verification failed/);
  });
});

describe('the nginx test server', () => {
  const nginx: NginxInfo = plane.nginx;

  it('serves the 1 MiB file whole', async () => {
    const response = await fetch(`http://${nginx.host}:${nginx.port}${NGINX_FILES.oneMiB.path}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(NGINX_FILES.oneMiB.size));
    const body = Buffer.from(await response.arrayBuffer());
    expect(body.equals(oneMiBContent())).toBe(true);
  });

  it('serves the small file and echoes method and URI', async () => {
    const small = await fetch(`http://${nginx.host}:${nginx.port}${NGINX_FILES.small.path}`);
    expect(await small.text()).toBe(NGINX_FILES.small.body);
    const echo = await fetch(`http://${nginx.host}:${nginx.port}/echo?q=1`, { method: 'POST', body: 'x' });
    expect(await echo.text()).toBe('POST /echo?q=1\n');
  });
});

describe('the OIDC test issuer', () => {
  const oidc: OidcInfo = plane.oidc;

  const verify = async (token: string): Promise<Record<string, unknown>> => {
    const jwks = createRemoteJWKSet(new URL(oidc.jwksUri));
    const { payload } = await jwtVerify(token, jwks, { issuer: oidc.issuer, audience: oidc.audience });
    return payload;
  };

  it('publishes discovery that points at its JWKS', async () => {
    const discovery = await (await fetch(`${oidc.issuer}/.well-known/openid-configuration`)).json();
    expect(discovery).toMatchObject({ issuer: oidc.issuer, jwks_uri: oidc.jwksUri });
    const jwks = (await (await fetch(oidc.jwksUri)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toEqual([expect.objectContaining({ kid: oidc.kid, alg: 'RS256', kty: 'RSA' })]);
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });

  it('mints tokens that verify against the JWKS with issuer and audience checked', async () => {
    const token = await mintToken(oidc, { user: 'alice', groups: ['dba', 'sre'] });
    expect(await verify(token)).toMatchObject({
      sub: 'alice',
      preferred_username: 'alice',
      email: 'alice@example.com',
      groups: ['dba', 'sre'],
      iss: oidc.issuer,
      aud: oidc.audience,
    });
  });

  // Each bad variant must fail for its own reason, not for some accident of how it was built.
  const rejections: Record<(typeof REJECTED_TOKEN_VARIANTS)[number], { code: string; claim?: string }> = {
    expired: { code: 'ERR_JWT_EXPIRED', claim: 'exp' },
    'not-yet-valid': { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'nbf' },
    'wrong-audience': { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' },
    'wrong-issuer': { code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'iss' },
    'wrong-key': { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' },
    // No key in the JWKS is usable with "none" or HS256.
    'alg-none': { code: 'ERR_JOSE_NOT_SUPPORTED' },
    'hs256-with-public-key': { code: 'ERR_JOSE_NOT_SUPPORTED' },
  };

  it.each(REJECTED_TOKEN_VARIANTS)('mints a "%s" token that fails verification', async (variant) => {
    const token = await mintToken(oidc, { user: 'mallory' }, variant);
    await expect(verify(token)).rejects.toMatchObject(rejections[variant]);
  });
});
