import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadManifests } from './manifests.ts';
import { LOCAL_RECORDING_POLICY, removeSecretFiles, type RenderedConnection, renderDevConnections } from './render.ts';
import { DevState } from './state.ts';

const issuer = { issuer: 'http://127.0.0.1:15556', audience: 'warden', jwksUri: 'http://127.0.0.1:15556/jwks' };

describe('renderDevConnections (the sample local configuration)', () => {
  let dir: string;
  let state: DevState;
  let results: RenderedConnection[];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warden-dev-render-'));
    state = await DevState.open(join(dir, 'state'));
    const manifests = await loadManifests(['config/samples/local/'], {
      vars: { PGHOST: 'db.local', PGPORT: '6543', PGUSER: 'app', PGPASSWORD: 'pw', PGDATABASE: 'shop', WARDEN_SSH_HOST_KEY: 'ssh-ed25519 AAAA', WARDEN_SSH_USER: 'ops', WARDEN_SSH_PASSWORD: 'x' },
    });
    results = await renderDevConnections(manifests, state, { issuer, now: new Date('2026-11-22T00:00:00Z') });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('renders a valid sidecar document per Connection with the controller\'s render', () => {
    expect(results.map((r) => `${r.name}:${r.ok}`)).toEqual(['local-postgres:true', 'local-ssh:true']);
    const pg = results[0];
    if (!pg?.ok) throw new Error('not rendered');
    expect(pg.config.target).toEqual({ host: 'db.local', port: 6543, database: 'shop', tls: { mode: 'disable' } });
    expect(pg.config.listener.port).toBe(15432);
    expect(pg.config.oidc).toEqual({ issuer: issuer.issuer, audience: 'warden', usernameClaim: 'preferred_username', groupsClaim: 'groups', jwksUri: issuer.jwksUri });
    expect(pg.config.policies.map((p) => p.name)).toEqual(['dba']);
    expect(pg.localRecording).toBe(true);
    expect(pg.config.recording?.policy).toBe(LOCAL_RECORDING_POLICY);
    expect(pg.config.recording?.s3.prefix).toBe('default/local-postgres/');
    expect(pg.warnings).toEqual([]);
  });

  it('points the credentials at private files in the state directory', async () => {
    const pg = results[0];
    if (!pg?.ok) throw new Error('not rendered');
    const password = pg.config.credentials.password;
    expect(password?.file).toBe(join(state.dir, 'secrets', 'default', 'local-postgres-credentials', 'password'));
    expect(await readFile(password?.file ?? '', 'utf8')).toBe('pw');
    expect((await stat(password?.file ?? '')).mode & 0o777).toBe(0o600);
    expect(pg.config.recording?.signingKey.file).toBe(state.signingKeyFile);
    await removeSecretFiles(state);
    await expect(stat(password?.file ?? '')).rejects.toThrow();
  });

  it('generates listener keys once and keeps them', async () => {
    const ssh = results[1];
    if (!ssh?.ok) throw new Error('not rendered');
    const hostKey = ssh.config.listener.hostKey?.file ?? '';
    expect(hostKey.startsWith(join(state.dir, 'generated'))).toBe(true);
    const first = await readFile(hostKey, 'utf8');
    const again = await renderDevConnections(await loadManifests(['config/samples/local/postgres.yaml', 'config/samples/local/ssh.yaml'], { vars: { PGPASSWORD: 'pw', WARDEN_SSH_HOST_KEY: 'ssh-ed25519 AAAA', WARDEN_SSH_USER: 'ops', WARDEN_SSH_PASSWORD: 'x' } }), state, { issuer });
    const ssh2 = again.find((r) => r.name === 'local-ssh');
    if (!ssh2?.ok) throw new Error('not rendered');
    expect(await readFile(ssh2.config.listener.hostKey?.file ?? '', 'utf8')).toBe(first);
    expect(ssh2.warnings).toEqual(['no AccessPolicy selects it: every session is refused (add one with subjects and rules)']);
  });

  it('reports a Connection whose Secret is missing, and one a RecordingPolicy reference cannot find', async () => {
    const manifests = await loadManifests(['config/samples/local/postgres.yaml'], { vars: { PGPASSWORD: 'pw' } });
    manifests.secrets = [];
    const connection = manifests.connections[0]?.object;
    if (!connection) throw new Error('no connection');
    const [missingSecret] = await renderDevConnections(manifests, state, { issuer });
    expect(missingSecret).toMatchObject({ ok: false, reason: 'Secret default/local-postgres-credentials not found; add it to the manifests given with -f' });
    connection.spec.recordingPolicyRef = { name: 'archive' };
    const [missingPolicy] = await renderDevConnections(manifests, state, { issuer });
    expect(missingPolicy).toMatchObject({ ok: false, reason: expect.stringMatching(/^RecordingPolicy default\/archive named in spec\.recordingPolicyRef not found; /) as unknown });
  });
});
