import { createHmac, createPublicKey, type JsonWebKey, randomUUID } from 'node:crypto';
import {
  base64url,
  type CryptoKey,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';
import type { OidcInfo } from './types.ts';

/**
 * What kind of token to mint. `valid` is what the issuer would hand out; every other variant is a
 * token a gateway must reject, each for one reason.
 */
export type TokenVariant =
  | 'valid'
  /** exp an hour in the past. */
  | 'expired'
  /** nbf an hour in the future. */
  | 'not-yet-valid'
  /** aud is another client. */
  | 'wrong-audience'
  /** iss is a path below the real issuer, which catches prefix comparisons. */
  | 'wrong-issuer'
  /** Signed by another RSA key, under the issuer's kid. */
  | 'wrong-key'
  /** alg "none", empty signature (RFC 7519 §6). */
  | 'alg-none'
  /** HS256 keyed with the issuer's public key as PEM: the classic algorithm-confusion attack. */
  | 'hs256-with-public-key';

/** Every variant a verifier must reject, for `it.each`. */
export const REJECTED_TOKEN_VARIANTS = [
  'expired',
  'not-yet-valid',
  'wrong-audience',
  'wrong-issuer',
  'wrong-key',
  'alg-none',
  'hs256-with-public-key',
] as const satisfies readonly TokenVariant[];

export interface TokenClaims {
  /** Becomes `sub` and `preferred_username`. */
  user: string;
  groups?: string[];
  /** Defaults to user@example.com. */
  email?: string;
  /** More claims, merged last (may override the ones above). */
  extra?: Record<string, unknown>;
}

const LIFETIME_SECONDS = 3600;
const OTHER_AUDIENCE = 'some-other-client';

const signingKeys = new Map<string, Promise<CryptoKey>>();
let foreignKey: Promise<CryptoKey> | undefined;

function signingKey(oidc: OidcInfo): Promise<CryptoKey> {
  let key = signingKeys.get(oidc.kid);
  if (!key) {
    key = importJWK(oidc.privateJwk as JWK, oidc.alg) as Promise<CryptoKey>;
    signingKeys.set(oidc.kid, key);
  }
  return key;
}

/** A second key pair, made once per worker (RSA generation costs tens of milliseconds). */
function otherKey(): Promise<CryptoKey> {
  foreignKey ??= generateKeyPair('RS256').then((pair) => pair.privateKey);
  return foreignKey;
}

const encodeJson = (value: unknown): string => base64url.encode(JSON.stringify(value));

/**
 * Mints a compact JWT from the plane's issuer for `claims.user`. Variants other than `valid` are
 * negative-test tokens; `alg-none` and `hs256-with-public-key` are assembled by hand because jose
 * (rightly) refuses to produce them. `now` is injectable for clock tests.
 */
export async function mintToken(
  oidc: OidcInfo,
  claims: TokenClaims,
  variant: TokenVariant = 'valid',
  now: Date = new Date(),
): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  const payload: JWTPayload = {
    iss: oidc.issuer,
    sub: claims.user,
    aud: oidc.audience,
    iat,
    exp: iat + LIFETIME_SECONDS,
    jti: randomUUID(),
    preferred_username: claims.user,
    email: claims.email ?? `${claims.user}@example.com`,
    groups: claims.groups ?? [],
    ...claims.extra,
  };
  const header = { alg: oidc.alg, kid: oidc.kid, typ: 'JWT' };

  switch (variant) {
    case 'valid':
      break;
    case 'expired':
      payload.iat = iat - 2 * LIFETIME_SECONDS;
      payload.exp = iat - LIFETIME_SECONDS;
      break;
    case 'not-yet-valid':
      payload.nbf = iat + LIFETIME_SECONDS;
      payload.exp = iat + 2 * LIFETIME_SECONDS;
      break;
    case 'wrong-audience':
      payload.aud = OTHER_AUDIENCE;
      break;
    case 'wrong-issuer':
      payload.iss = `${oidc.issuer}/other`;
      break;
    case 'wrong-key':
      return await new SignJWT(payload).setProtectedHeader(header).sign(await otherKey());
    case 'alg-none':
      return `${encodeJson({ alg: 'none', typ: 'JWT' })}.${encodeJson(payload)}.`;
    case 'hs256-with-public-key': {
      const pem = createPublicKey({ key: oidc.privateJwk as JsonWebKey, format: 'jwk' }).export({
        type: 'spki',
        format: 'pem',
      });
      const input = `${encodeJson({ alg: 'HS256', kid: oidc.kid, typ: 'JWT' })}.${encodeJson(payload)}`;
      const signature = createHmac('sha256', pem).update(input).digest('base64url');
      return `${input}.${signature}`;
    }
  }
  return await new SignJWT(payload).setProtectedHeader(header).sign(await signingKey(oidc));
}
