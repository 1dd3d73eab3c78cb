import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenVerifier } from '../sidecar/auth/oidc.ts';
import { mintIssuerToken, type RunningIssuer, startIssuer } from './oidc.ts';
import { DevState } from './state.ts';

describe('the development issuer', () => {
  let dir: string;
  let state: DevState;
  let issuer: RunningIssuer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warden-dev-oidc-'));
    state = await DevState.open(join(dir, 'state'));
    const key = await state.issuerKey();
    if (!key) throw new Error('no key');
    issuer = await startIssuer({ key, port: 0 });
  });
  afterAll(async () => {
    await issuer.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps its key private and the same across opens', async () => {
    expect((await stat(state.dir)).mode & 0o777).toBe(0o700);
    expect((await stat(join(state.dir, 'issuer-key.jwk.json'))).mode & 0o777).toBe(0o600);
    const again = await (await DevState.open(state.dir)).issuerKey({ create: false });
    expect(again?.kid).toBe((await state.issuerKey())?.kid);
    expect(await (await DevState.open(join(dir, 'empty'))).issuerKey({ create: false })).toBeUndefined();
  });

  it('serves discovery and a JWKS without private members', async () => {
    const discovery = (await (await fetch(`${issuer.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({ issuer: issuer.issuer, jwks_uri: issuer.jwksUri });
    const jwks = (await (await fetch(issuer.jwksUri)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });

  it('mints tokens the gateways\' verifier accepts, from a key reloaded from the state directory', async () => {
    const key = await (await DevState.open(state.dir)).issuerKey({ create: false });
    if (!key) throw new Error('no key');
    const token = await mintIssuerToken(key, { issuer: issuer.issuer, audience: 'warden' }, { user: 'alice', groups: ['dba'] });
    const verifier = new TokenVerifier({ issuer: issuer.issuer, audience: 'warden', usernameClaim: 'preferred_username' });
    expect(await verifier.verify(token)).toMatchObject({ user: 'alice', groups: ['dba'] });
  });

  it('mints tokens that expire', async () => {
    const key = await state.issuerKey();
    if (!key) throw new Error('no key');
    const token = await mintIssuerToken(key, { issuer: issuer.issuer, audience: 'warden' }, { user: 'bob', ttlSeconds: 60 }, new Date(Date.now() - 3_600_000));
    const verifier = new TokenVerifier({ issuer: issuer.issuer, audience: 'warden', usernameClaim: 'preferred_username' });
    await expect(verifier.verify(token)).rejects.toThrow(/expired/);
  });

  it('a prefetched verifier checks tokens with the keys it fetched, even once the issuer is gone', async () => {
    const key = await state.issuerKey();
    if (!key) throw new Error('no key');
    const own = await startIssuer({ key, port: 0 });
    const token = await mintIssuerToken(key, { issuer: own.issuer, audience: 'warden' }, { user: 'carol' });
    const warm = new TokenVerifier({ issuer: own.issuer, audience: 'warden', usernameClaim: 'preferred_username' });
    const cold = new TokenVerifier({ issuer: own.issuer, audience: 'warden', usernameClaim: 'preferred_username' });
    expect(await warm.prefetch()).toBe(true);
    await own.stop();
    expect(await warm.verify(token)).toMatchObject({ user: 'carol' });
    await expect(cold.verify(token)).rejects.toMatchObject({ code: 'WARDEN_ISSUER_UNREACHABLE' });
    expect(await cold.prefetch()).toBe(false);
  });

  it('says which port is taken', async () => {
    const key = await state.issuerKey();
    if (!key) throw new Error('no key');
    await expect(startIssuer({ key, port: issuer.port })).rejects.toThrow(`development OIDC issuer: port ${issuer.port} on 127.0.0.1 is already in use (another warden dev, or a server?): stop it or choose another port with --issuer-port`);
  });
});
