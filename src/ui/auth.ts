// Authentication for the web viewer, against the same OIDC issuer the gateways trust.
// - People: authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636 S256). The ID token is
//   checked by the gateways' TokenVerifier (signature, iss, aud = our client id, exp) plus the
//   nonce (OIDC Core §3.1.3.7); the browser then holds only an opaque random session id in an
//   HttpOnly, SameSite=Lax cookie. Tokens never reach the browser, logs or errors.
// - Automation: `Authorization: Bearer <token>`, verified by the same TokenVerifier.

import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { decodeJwt } from 'jose';
import { AuthError } from '../sidecar/auth/errors.ts';
import type { Identity, TokenVerifier } from '../sidecar/auth/oidc.ts';
import { UiError, UiErrorCode } from './errors.ts';

export const SESSION_COOKIE = 'warden_ui';
export const LOGIN_COOKIE = 'warden_ui_login';

export interface OidcClientSettings {
  readonly issuer: string;
  readonly clientId: string;
  /** For confidential clients; public clients rely on PKCE alone. */
  readonly clientSecret?: string;
  /** `<public URL>/auth/callback`, registered at the issuer. */
  readonly redirectUri: string;
  readonly scopes?: string;
}

export interface AuthenticatorOptions {
  /** Longest a browser login lasts, whatever the token says (default 8 h). */
  readonly maxSessionMs?: number;
  /** Cookies with `Secure` (default: when the redirect URI is https). */
  readonly secureCookies?: boolean;
  readonly now?: () => number;
}

interface LoginSession {
  readonly identity: Identity;
  readonly expiresAt: number;
}

interface PendingLogin {
  readonly verifier: string;
  readonly nonce: string;
  readonly returnTo: string;
  readonly expiresAt: number;
}

const PENDING_TTL_MS = 10 * 60_000;
const MAX_PENDING = 10_000;
const MAX_SESSIONS = 100_000;

const random = (bytes = 32): string => randomBytes(bytes).toString('base64url');

/** Only local paths: never an absolute or protocol-relative URL (no open redirect). */
export function safeReturnTo(value: string | null | undefined): string {
  if (!value || !value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return '/';
  return value.slice(0, 2048);
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const raw of (header ?? '').split(';')) {
    const part = raw.trim();
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    cookies.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return cookies;
}

interface Endpoints {
  readonly authorization: string;
  readonly token: string;
  readonly endSession?: string;
}

export class Authenticator {
  readonly #settings: OidcClientSettings;
  readonly #verifier: TokenVerifier;
  readonly #maxSessionMs: number;
  readonly #secure: boolean;
  readonly #now: () => number;
  readonly #sessions = new Map<string, LoginSession>();
  readonly #pending = new Map<string, PendingLogin>();
  #endpoints: Promise<Endpoints> | undefined;

  constructor(settings: OidcClientSettings, verifier: TokenVerifier, options: AuthenticatorOptions = {}) {
    this.#settings = settings;
    this.#verifier = verifier;
    this.#maxSessionMs = options.maxSessionMs ?? 8 * 3600_000;
    this.#secure = options.secureCookies ?? settings.redirectUri.startsWith('https:');
    this.#now = options.now ?? Date.now;
  }

  /** Who is calling: a bearer token or a login cookie; undefined when neither is present. Throws on a bad token. */
  async identify(request: IncomingMessage): Promise<Identity | undefined> {
    const authorization = request.headers.authorization;
    if (authorization !== undefined) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
      if (!match) throw new UiError(UiErrorCode.Unauthenticated, 'the Authorization header must be "Bearer <OIDC token>"');
      try {
        return await this.#verifier.verify(match[1]);
      } catch (error) {
        if (error instanceof AuthError) throw new UiError(UiErrorCode.Unauthenticated, error.message);
        throw error;
      }
    }
    const sid = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
    if (sid === undefined) return undefined;
    const session = this.#sessions.get(sid);
    if (!session) return undefined;
    if (session.expiresAt <= this.#now()) {
      this.#sessions.delete(sid);
      return undefined;
    }
    return session.identity;
  }

  /** Starts a login: where to send the browser and the cookie that ties the callback to it. */
  async beginLogin(returnTo: string | null): Promise<{ location: string; cookie: string }> {
    const endpoints = await this.#discover();
    this.#prune();
    if (this.#pending.size >= MAX_PENDING) throw new UiError(UiErrorCode.Unauthenticated, 'too many logins in progress; try again in a few minutes');
    const state = random();
    const verifier = random();
    const nonce = random();
    this.#pending.set(state, { verifier, nonce, returnTo: safeReturnTo(returnTo), expiresAt: this.#now() + PENDING_TTL_MS });
    const url = new URL(endpoints.authorization);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', this.#settings.clientId);
    url.searchParams.set('redirect_uri', this.#settings.redirectUri);
    url.searchParams.set('scope', this.#settings.scopes ?? 'openid profile email groups');
    url.searchParams.set('state', state);
    url.searchParams.set('nonce', nonce);
    url.searchParams.set('code_challenge', createHash('sha256').update(verifier).digest('base64url'));
    url.searchParams.set('code_challenge_method', 'S256');
    return { location: url.toString(), cookie: this.#cookie(LOGIN_COOKIE, state, PENDING_TTL_MS / 1000) };
  }

  /** The issuer sent the browser back: exchange the code, check the ID token, open a login session. */
  async finishLogin(request: IncomingMessage, query: URLSearchParams): Promise<{ cookies: string[]; returnTo: string }> {
    const error = query.get('error');
    if (error !== null) {
      throw new UiError(UiErrorCode.Unauthenticated, `the identity provider refused the login: ${error.slice(0, 100)} ${(query.get('error_description') ?? '').slice(0, 300)}`.trim());
    }
    const state = query.get('state') ?? '';
    const code = query.get('code') ?? '';
    const pending = this.#pending.get(state);
    // The state must be the one this browser started (its login cookie), once, in time: login CSRF.
    if (!pending || parseCookies(request.headers.cookie).get(LOGIN_COOKIE) !== state || pending.expiresAt <= this.#now() || code === '') {
      throw new UiError(UiErrorCode.Unauthenticated, 'this login link is stale or was not started in this browser; log in again');
    }
    this.#pending.delete(state);
    const endpoints = await this.#discover();
    const body = new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: this.#settings.redirectUri,
      client_id: this.#settings.clientId,
      code_verifier: pending.verifier,
    });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (this.#settings.clientSecret !== undefined) {
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(this.#settings.clientId)}:${encodeURIComponent(this.#settings.clientSecret)}`).toString('base64')}`;
    }
    let tokens: { id_token?: unknown };
    try {
      const response = await fetch(endpoints.token, { method: 'POST', headers, body, signal: AbortSignal.timeout(10_000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      tokens = (await response.json()) as typeof tokens;
    } catch (cause) {
      throw new UiError(UiErrorCode.Unauthenticated, `the identity provider's token endpoint did not answer the code exchange (${(cause as Error).message}); log in again`, { cause });
    }
    if (typeof tokens.id_token !== 'string') throw new UiError(UiErrorCode.Unauthenticated, 'the identity provider returned no ID token');
    let identity: Identity;
    try {
      identity = await this.#verifier.verify(tokens.id_token);
    } catch (cause) {
      if (cause instanceof AuthError) throw new UiError(UiErrorCode.Unauthenticated, cause.message, { cause });
      throw cause;
    }
    // Verified above; decodeJwt only reads the nonce out of it.
    if (decodeJwt(tokens.id_token).nonce !== pending.nonce) throw new UiError(UiErrorCode.Unauthenticated, 'the ID token is not for this login (nonce mismatch); log in again');
    if (this.#sessions.size >= MAX_SESSIONS) this.#prune();
    const sid = random();
    const expiresAt = Math.min(this.#now() + this.#maxSessionMs, identity.expiresAt?.getTime() ?? Number.POSITIVE_INFINITY);
    this.#sessions.set(sid, { identity, expiresAt });
    return {
      cookies: [this.#cookie(SESSION_COOKIE, sid, Math.max(0, Math.floor((expiresAt - this.#now()) / 1000))), this.#cookie(LOGIN_COOKIE, '', 0)],
      returnTo: pending.returnTo,
    };
  }

  /** Ends the browser's login session; returns the cookie that clears it. */
  logout(request: IncomingMessage): string {
    const sid = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
    if (sid !== undefined) this.#sessions.delete(sid);
    return this.#cookie(SESSION_COOKIE, '', 0);
  }

  #cookie(name: string, value: string, maxAgeSeconds: number): string {
    return `${name}=${value}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${this.#secure ? '; Secure' : ''}`;
  }

  #prune(): void {
    const now = this.#now();
    for (const [k, v] of this.#pending) if (v.expiresAt <= now) this.#pending.delete(k);
    for (const [k, v] of this.#sessions) if (v.expiresAt <= now) this.#sessions.delete(k);
  }

  #discover(): Promise<Endpoints> {
    this.#endpoints ??= (async () => {
      const url = `${this.#settings.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
      let document: { issuer?: unknown; authorization_endpoint?: unknown; token_endpoint?: unknown; end_session_endpoint?: unknown };
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        document = (await response.json()) as typeof document;
      } catch (cause) {
        throw new UiError(UiErrorCode.Unauthenticated, `cannot read the OIDC discovery document at ${url} (${(cause as Error).message})`, { cause });
      }
      if (document.issuer !== this.#settings.issuer || typeof document.authorization_endpoint !== 'string' || typeof document.token_endpoint !== 'string') {
        throw new UiError(UiErrorCode.Unauthenticated, `the discovery document at ${url} does not name issuer ${this.#settings.issuer} with authorization and token endpoints`);
      }
      return {
        authorization: document.authorization_endpoint,
        token: document.token_endpoint,
        ...(typeof document.end_session_endpoint === 'string' ? { endSession: document.end_session_endpoint } : {}),
      };
    })();
    this.#endpoints.catch(() => {
      this.#endpoints = undefined;
    });
    return this.#endpoints;
  }
}
