import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
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

const escapeHtml = (value: string): string => value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of request) {
    body += String(chunk);
    if (body.length > 65_536) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

/** An authorization code waiting to be exchanged (one use, one minute). */
interface PendingCode {
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  nonce: string | undefined;
  user: string;
  groups: string[];
  expiresAt: number;
}

/**
 * Starts a minimal OpenID Connect issuer in this process on a free loopback port: discovery
 * (OpenID Connect Discovery 1.0 §4) and a JWKS with one RS256 key. Most tests mint tokens directly
 * with the private key it returns (see tokens.ts). For browser tests it also runs the
 * authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636, S256 only): GET /authorize shows a
 * login form where anyone may type any user name and groups (a test issuer: no passwords), POST
 * /authorize redirects back with a code, POST /token exchanges code + code_verifier for an ID
 * token (aud = client_id, nonce echoed) that is also returned as the access token. Writes the JWKS
 * and the private JWK into `dir` (created) for debugging.
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
  let issuerUrl = '';
  const codes = new Map<string, PendingCode>();
  const loginForm = (query: URLSearchParams): string => {
    const hidden = ['client_id', 'redirect_uri', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'response_type', 'scope']
      .map((name) => `<input type="hidden" name="${name}" value="${escapeHtml(query.get(name) ?? '')}">`)
      .join('');
    return `<!doctype html><html><head><title>Test issuer login</title></head><body><h1>Test OIDC issuer</h1><form method="post" action="/authorize">${hidden}<label>User <input name="username" autofocus></label> <label>Groups (comma-separated) <input name="groups"></label> <button type="submit">Log in</button></form></body></html>`;
  };
  const authorize = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const query = request.method === 'POST' ? await readForm(request) : new URL(request.url ?? '/', 'http://issuer').searchParams;
    const redirectUri = query.get('redirect_uri') ?? '';
    if (query.get('response_type') !== 'code' || !query.get('client_id') || !/^https?:\/\//.test(redirectUri) || query.get('code_challenge_method') !== 'S256' || !query.get('code_challenge')) {
      return sendJson(response, 400, { error: 'invalid_request', error_description: 'response_type=code, client_id, an http(s) redirect_uri and an S256 code_challenge are required' });
    }
    if (request.method !== 'POST') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      response.end(loginForm(query));
      return;
    }
    const user = (query.get('username') ?? '').trim();
    if (user === '') {
      response.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
      response.end(loginForm(query));
      return;
    }
    const code = randomBytes(24).toString('base64url');
    codes.set(code, {
      clientId: query.get('client_id') ?? '',
      redirectUri,
      codeChallenge: query.get('code_challenge') ?? '',
      nonce: query.get('nonce') ?? undefined,
      user,
      groups: (query.get('groups') ?? '').split(',').map((g) => g.trim()).filter((g) => g !== ''),
      expiresAt: Date.now() + 60_000,
    });
    const back = new URL(redirectUri);
    back.searchParams.set('code', code);
    const state = query.get('state');
    if (state) back.searchParams.set('state', state);
    response.writeHead(302, { location: back.toString(), 'cache-control': 'no-store' });
    response.end();
  };
  const token = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const form = await readForm(request);
    const pending = codes.get(form.get('code') ?? '');
    codes.delete(form.get('code') ?? '');
    const verifier = form.get('code_verifier') ?? '';
    if (
      form.get('grant_type') !== 'authorization_code' ||
      !pending ||
      pending.expiresAt < Date.now() ||
      pending.redirectUri !== form.get('redirect_uri') ||
      pending.clientId !== form.get('client_id') ||
      createHash('sha256').update(verifier).digest('base64url') !== pending.codeChallenge
    ) {
      return sendJson(response, 400, { error: 'invalid_grant' });
    }
    const idToken = await new SignJWT({
      preferred_username: pending.user,
      email: `${pending.user}@example.com`,
      groups: pending.groups,
      ...(pending.nonce ? { nonce: pending.nonce } : {}),
    })
      .setProtectedHeader({ alg: ALG, kid, typ: 'JWT' })
      .setIssuer(issuerUrl)
      .setSubject(pending.user)
      .setAudience(pending.clientId)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);
    sendJson(response, 200, { access_token: idToken, id_token: idToken, token_type: 'Bearer', expires_in: 3600 });
  };
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://issuer').pathname;
    if (path === '/authorize' || (path === '/token' && request.method === 'POST')) {
      (path === '/authorize' ? authorize : token)(request, response).catch((error: unknown) => sendJson(response, 400, { error: 'invalid_request', error_description: (error as Error).message }));
    } else if (request.method !== 'GET' && request.method !== 'HEAD') {
      sendJson(response, 405, { error: 'method not allowed' });
    } else if (path === '/.well-known/openid-configuration') {
      sendJson(response, 200, discovery);
    } else if (path === '/jwks') {
      sendJson(response, 200, jwks);
    } else {
      sendJson(response, 404, { error: `no ${path} here; this issuer serves discovery, /jwks, /authorize and /token only` });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('oidc issuer: no listening address');
  const issuer = `http://127.0.0.1:${address.port}`;
  issuerUrl = issuer;
  const jwksUri = `${issuer}/jwks`;
  discovery = {
    issuer,
    jwks_uri: jwksUri,
    authorization_endpoint: `${issuer}/authorize`,
    token_endpoint: `${issuer}/token`,
    response_types_supported: ['code', 'id_token'],
    grant_types_supported: ['authorization_code'],
    code_challenge_methods_supported: ['S256'],
    token_endpoint_auth_methods_supported: ['none'],
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
