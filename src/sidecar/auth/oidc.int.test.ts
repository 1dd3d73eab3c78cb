import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintToken, REJECTED_TOKEN_VARIANTS } from '../../../test/plane/tokens.ts';
import { AuthErrorCode } from './errors.ts';
import { TokenVerifier } from './oidc.ts';

const oidc = inject('plane').oidc;

describe('TokenVerifier against the test issuer', () => {
  const verifier = new TokenVerifier({ issuer: oidc.issuer, audience: oidc.audience });

  it('finds the JWKS through discovery and maps user and groups from the claims', async () => {
    const token = await mintToken(oidc, { user: 'alice', email: 'alice@example.com', groups: ['dba', 'oncall'] });
    const identity = await verifier.verify(token);
    expect(identity).toMatchObject({ user: 'alice@example.com', groups: ['dba', 'oncall'], subject: 'alice' });
    expect(identity.expiresAt!.getTime()).toBeGreaterThan(Date.now());
  });

  it('uses the configured claims', async () => {
    const byName = new TokenVerifier({
      issuer: oidc.issuer,
      audience: oidc.audience,
      jwksUri: oidc.jwksUri,
      usernameClaim: 'preferred_username',
      groupsClaim: 'roles',
    });
    const token = await mintToken(oidc, { user: 'bob', extra: { roles: 'admin' } });
    expect(await byName.verify(token)).toMatchObject({ user: 'bob', groups: ['admin'] });
  });

  const expectedCode: Record<(typeof REJECTED_TOKEN_VARIANTS)[number], string> = {
    expired: AuthErrorCode.Expired,
    'not-yet-valid': AuthErrorCode.NotYetValid,
    'wrong-audience': AuthErrorCode.WrongAudience,
    'wrong-issuer': AuthErrorCode.WrongIssuer,
    'wrong-key': AuthErrorCode.BadSignature,
    'alg-none': AuthErrorCode.AlgorithmNotAllowed,
    'hs256-with-public-key': AuthErrorCode.AlgorithmNotAllowed,
  };
  it.each(REJECTED_TOKEN_VARIANTS)('refuses a %s token with its own code', async (variant) => {
    const token = await mintToken(oidc, { user: 'mallory' }, variant);
    await expect(verifier.verify(token)).rejects.toMatchObject({ code: expectedCode[variant] });
  });

  it.each([
    ['no token', undefined, AuthErrorCode.Missing],
    ['garbage', 'not-a-jwt', AuthErrorCode.Malformed],
    ['a truncated token', 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0', AuthErrorCode.Malformed],
  ])('refuses %s', async (_what, token, code) => {
    await expect(verifier.verify(token)).rejects.toMatchObject({ code });
  });

  it('refuses a token without the username claim, naming the claim', async () => {
    const strict = new TokenVerifier({ issuer: oidc.issuer, audience: oidc.audience, usernameClaim: 'upn' });
    const token = await mintToken(oidc, { user: 'carol' });
    await expect(strict.verify(token)).rejects.toMatchObject({ code: AuthErrorCode.ClaimMissing, message: /'upn'/ });
  });

  it('refuses an unverified email address as the username', async () => {
    const token = await mintToken(oidc, { user: 'gina', extra: { email_verified: false } });
    await expect(verifier.verify(token)).rejects.toMatchObject({ code: AuthErrorCode.EmailUnverified });
    const verified = await mintToken(oidc, { user: 'gina', extra: { email_verified: true } });
    expect((await verifier.verify(verified)).user).toBe('gina@example.com');
  });

  it('never accepts symmetric algorithms, even when configured', () => {
    expect(() => new TokenVerifier({ issuer: oidc.issuer, audience: 'x', algorithms: ['HS256'] })).toThrowError(/HS256/);
  });

  it('fails closed when the issuer cannot be reached', async () => {
    const offline = new TokenVerifier({ issuer: 'http://127.0.0.1:9/', audience: oidc.audience });
    const token = await mintToken(oidc, { user: 'dave' });
    await expect(offline.verify(token)).rejects.toMatchObject({ code: AuthErrorCode.IssuerUnreachable });
  });
});

describe('TokenVerifier with a rotating issuer', () => {
  // A second issuer whose JWKS the test swaps, as an IdP does when it rotates keys.
  let jwks: { keys: unknown[] } = { keys: [] };
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(jwks));
  });
  let issuer = '';

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const keyPair = async (kid: string) => {
    const pair = await generateKeyPair('ES256');
    const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' };
    const sign = (user: string) =>
      new SignJWT({ email: user })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer(issuer)
        .setAudience('rotating')
        .setSubject(user)
        .setExpirationTime('5m')
        .sign(pair.privateKey);
    return { publicJwk, sign };
  };

  it('picks up a new signing key without a restart', async () => {
    const first = await keyPair('k1');
    const second = await keyPair('k2');
    jwks = { keys: [first.publicJwk] };
    const verifier = new TokenVerifier(
      { issuer, audience: 'rotating', jwksUri: `${issuer}/jwks` },
      { jwksCooldownMs: 0 },
    );
    expect((await verifier.verify(await first.sign('erin'))).user).toBe('erin');
    // Before the issuer publishes k2, a k2 token is unknown; after, it verifies.
    await expect(verifier.verify(await second.sign('erin'))).rejects.toMatchObject({ code: AuthErrorCode.UnknownKey });
    jwks = { keys: [second.publicJwk] };
    expect((await verifier.verify(await second.sign('frank'))).user).toBe('frank');
  });
});
