import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { Log, Started } from './proc.ts';
import type { OidcInfo } from './types.ts';

/** Audience (client id) the plane's tokens carry and the gateways under test are configured with. */
export const OIDC_AUDIENCE = 'warden';

const ALG = 'RS256';

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
  });
  response.end(payload);
}

/**
 * Starts a minimal OpenID Connect issuer in this process on a free loopback port: discovery
 * (OpenID Connect Discovery 1.0 §4) and a JWKS with one RS256 key. It has no login flow: tests
 * mint tokens directly with the private key it returns (see tokens.ts). Writes the JWKS and the
 * private JWK into `dir` (created) for debugging.
 */
export async function startOidcIssuer(dir: string, log: Log): Promise<Started<OidcInfo>> {
  const began = Date.now();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { publicKey, privateKey } = await generateKeyPair(ALG, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  // exportJWK of the public key yields only kty, n and e: nothing private reaches the JWKS.
  const jwks = { keys: [{ ...publicJwk, kid, alg: ALG, use: 'sig' }] };
  const privateJwk: Record<string, unknown> = { ...(await exportJWK(privateKey)), kid, alg: ALG, use: 'sig' };

  let discovery: Record<string, unknown> = {};
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://issuer').pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      sendJson(response, 405, { error: 'method not allowed' });
    } else if (path === '/.well-known/openid-configuration') {
      sendJson(response, 200, discovery);
    } else if (path === '/jwks') {
      sendJson(response, 200, jwks);
    } else {
      sendJson(response, 404, { error: `no ${path} here; this issuer serves discovery and /jwks only` });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('oidc issuer: no listening address');
  const issuer = `http://127.0.0.1:${address.port}`;
  const jwksUri = `${issuer}/jwks`;
  discovery = {
    issuer,
    jwks_uri: jwksUri,
    // Required by the spec; nothing serves it because tests mint tokens themselves.
    authorization_endpoint: `${issuer}/authorize`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [ALG],
    claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'email', 'groups', 'preferred_username'],
  };
  await writeFile(join(dir, 'jwks.json'), `${JSON.stringify(jwks, null, 2)}\n`);
  await writeFile(join(dir, 'signing-key.jwk.json'), `${JSON.stringify(privateJwk, null, 2)}\n`, {
    mode: 0o600,
  });

  log(`oidc issuer: ready at ${issuer} in ${Date.now() - began} ms`);
  return {
    info: { issuer, jwksUri, audience: OIDC_AUDIENCE, privateJwk, kid, alg: ALG },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
