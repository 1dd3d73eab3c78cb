// A development OpenID Connect issuer: discovery (OpenID Connect Discovery 1.0 §4) and a JWKS,
// served over HTTP on loopback, plus minting of tokens with its key. It has no login flow: whoever
// holds the key (the state directory of `warden dev`, or a test) mints tokens directly. Never for
// production: anyone who can read the key can be anyone.

import { createServer, type Server, type ServerResponse } from 'node:http';
import { calculateJwkThumbprint, type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, type JWTPayload, SignJWT } from 'jose';
import { listenError } from './errors.ts';

export type IssuerAlgorithm = 'ES256' | 'RS256';

/** The issuer's signing key as JWKs (the private one includes the public members). */
export interface IssuerKey {
  alg: IssuerAlgorithm;
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export async function generateIssuerKey(alg: IssuerAlgorithm = 'ES256'): Promise<IssuerKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const bare = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(bare);
  // exportJWK of the public key yields only its public members: nothing private reaches the JWKS.
  const publicJwk: JWK = { ...bare, kid, alg, use: 'sig' };
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateJwk, publicJwk };
}

/** Reads a key written as its private JWK (what {@link generateIssuerKey} returns as privateJwk). */
export function issuerKeyFromPrivateJwk(jwk: JWK): IssuerKey {
  const alg = jwk.alg;
  if ((alg !== 'ES256' && alg !== 'RS256') || typeof jwk.kid !== 'string' || jwk.d === undefined) {
    throw new Error('not a private ES256/RS256 JWK with a kid');
  }
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = jwk;
  return { alg: alg as IssuerAlgorithm, kid: jwk.kid, privateJwk: jwk, publicJwk };
}

export function jwksOf(key: IssuerKey): { keys: JWK[] } {
  return { keys: [key.publicJwk] };
}

export function discoveryDocument(issuer: string, key: IssuerKey): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer}/jwks`,
    // Required by the spec; nothing serves it because tokens are minted directly.
    authorization_endpoint: `${issuer}/authorize`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [key.alg],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'email', 'email_verified', 'groups', 'preferred_username'],
  };
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), 'cache-control': 'no-store' });
  response.end(payload);
}

export interface RunningIssuer {
  /** `http://<host>:<port>`: the `iss` of its tokens. */
  readonly issuer: string;
  readonly jwksUri: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Serves discovery and the JWKS of `key` on `host:port` (port 0: any free port). `issuerHost`
 * is the host written into the issuer URL (default `host`).
 */
export async function startIssuer(options: { key: IssuerKey; host?: string; port?: number; issuerHost?: string }): Promise<RunningIssuer> {
  const host = options.host ?? '127.0.0.1';
  let discovery: Record<string, unknown> = {};
  const jwks = jwksOf(options.key);
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://issuer').pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') sendJson(response, 405, { error: 'method not allowed' });
    else if (path === '/.well-known/openid-configuration') sendJson(response, 200, discovery);
    else if (path === '/jwks') sendJson(response, 200, jwks);
    else if (path === '/healthz') sendJson(response, 200, { ok: true });
    else sendJson(response, 404, { error: `no ${path} here; this development issuer serves discovery and /jwks only` });
  });
  const port = options.port ?? 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(listenError(error, 'development OIDC issuer', host, port, 'choose another port with --issuer-port')));
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const bound = address !== null && typeof address === 'object' ? address.port : port;
  const issuer = `http://${options.issuerHost ?? host}:${bound}`;
  discovery = discoveryDocument(issuer, options.key);
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    port: bound,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface DevTokenClaims {
  /** Becomes `sub` and `preferred_username`. */
  user: string;
  groups?: readonly string[];
  /** Default `<user>@example.com` (marked verified). */
  email?: string;
  /** Lifetime in seconds (default 3600). */
  ttlSeconds?: number;
  /** More claims, merged last. */
  extra?: Record<string, unknown>;
}

const importedKeys = new WeakMap<IssuerKey, Promise<CryptoKey>>();

/** A compact JWT signed by `key`, for `issuer` and `audience`. */
export async function mintIssuerToken(
  key: IssuerKey,
  target: { issuer: string; audience: string },
  claims: DevTokenClaims,
  now: Date = new Date(),
): Promise<string> {
  let signing = importedKeys.get(key);
  if (!signing) {
    signing = importJWK(key.privateJwk, key.alg) as Promise<CryptoKey>;
    importedKeys.set(key, signing);
  }
  const iat = Math.floor(now.getTime() / 1000);
  const payload: JWTPayload = {
    iss: target.issuer,
    sub: claims.user,
    aud: target.audience,
    iat,
    exp: iat + (claims.ttlSeconds ?? 3600),
    jti: crypto.randomUUID(),
    preferred_username: claims.user,
    email: claims.email ?? `${claims.user}@example.com`,
    email_verified: true,
    groups: [...(claims.groups ?? [])],
    ...claims.extra,
  };
  return await new SignJWT(payload).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' }).sign(await signing);
}
