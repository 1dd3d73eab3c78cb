import { createRemoteJWKSet, errors, type JWTPayload, jwtVerify } from 'jose';
import { AuthError, AuthErrorCode } from './errors.ts';

/** How a gateway checks callers' OIDC tokens; rendered from the Connection by the controller. */
export interface OidcSettings {
  /** Issuer URL, compared exactly with the token's `iss` and the discovery document's `issuer`. */
  issuer: string;
  /** Audience (client id) the token's `aud` must contain. */
  audience: string;
  /** JWKS URL; found through OpenID discovery when absent. */
  jwksUri?: string;
  /** Claim that names the user (default `email`). */
  usernameClaim?: string;
  /** Claim with the user's groups: an array of strings or one string (default `groups`). */
  groupsClaim?: string;
  /** Asymmetric signature algorithms accepted (default RS256, PS256, ES256, EdDSA). */
  algorithms?: string[];
  /** Allowed clock skew for exp/nbf, in seconds (default 30). */
  clockToleranceSeconds?: number;
}

/** Who the caller is, as far as policy and recordings are concerned. */
export interface Identity {
  user: string;
  groups: string[];
  /** The token's `sub`, recorded alongside the mapped username. */
  subject: string;
  issuer: string;
  /** When the token stops being valid; sessions may be bounded by it. */
  expiresAt: Date | undefined;
}

export const DEFAULT_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'] as const;
// Symmetric algorithms would let anyone who knows the key material (for HMAC: the public key, in
// the classic confusion attack) forge tokens; they are never accepted, whatever the settings say.
const FORBIDDEN_ALGORITHMS = /^(none|HS\d+)$/i;

/**
 * Verifies OIDC ID/access tokens against an issuer's JWKS. Keys are fetched lazily and cached;
 * a token signed with an unknown `kid` triggers a refetch (at most once per cooldown), which is
 * how key rotation at the issuer reaches running gateways.
 */
export class TokenVerifier {
  readonly settings: Required<Omit<OidcSettings, 'jwksUri'>> & { jwksUri?: string };
  #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  #discovery: Promise<string> | undefined;

  readonly #jwksCooldownMs: number;

  /**
   * `jwksCooldownMs` bounds how often an unknown `kid` may trigger a JWKS refetch (default 30 s),
   * so a flood of forged tokens cannot turn the gateway into a load generator for the issuer.
   */
  constructor(settings: OidcSettings, options: { jwksCooldownMs?: number } = {}) {
    this.#jwksCooldownMs = options.jwksCooldownMs ?? 30_000;
    const algorithms = settings.algorithms ?? [...DEFAULT_ALGORITHMS];
    const forbidden = algorithms.filter((a) => FORBIDDEN_ALGORITHMS.test(a));
    if (forbidden.length > 0) {
      throw new Error(`OIDC algorithms ${forbidden.join(', ')} are not allowed: use asymmetric ones (RS256, ES256…)`);
    }
    this.settings = {
      issuer: settings.issuer,
      audience: settings.audience,
      usernameClaim: settings.usernameClaim ?? 'email',
      groupsClaim: settings.groupsClaim ?? 'groups',
      algorithms,
      clockToleranceSeconds: settings.clockToleranceSeconds ?? 30,
      ...(settings.jwksUri ? { jwksUri: settings.jwksUri } : {}),
    };
  }

  /** Checks signature, iss, aud, exp/nbf and the algorithm; maps claims to an Identity. */
  async verify(token: string | undefined): Promise<Identity> {
    if (!token) throw new AuthError(AuthErrorCode.Missing, 'no token was given: pass your OIDC token as the password');
    const jwks = await this.#keys();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token.trim(), jwks, {
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        algorithms: this.settings.algorithms,
        clockTolerance: this.settings.clockToleranceSeconds,
        requiredClaims: ['exp'],
      }));
    } catch (error) {
      throw this.#translate(error);
    }
    return this.#identity(payload);
  }

  /**
   * Fetches the discovery document and the signing keys now, so the first logins of a fresh
   * gateway do not all wait on (and, on a loaded machine, time out in) the same first fetch.
   * Never throws: a failure leaves it to the first token, as without the prefetch.
   */
  async prefetch(): Promise<boolean> {
    try {
      await (await this.#keys()).reload();
      return true;
    } catch {
      return false;
    }
  }

  async #keys(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (this.#jwks) return this.#jwks;
    const uri = this.settings.jwksUri ?? (await this.#discover());
    this.#jwks = createRemoteJWKSet(new URL(uri), {
      timeoutDuration: 5_000,
      cooldownDuration: this.#jwksCooldownMs,
      cacheMaxAge: 10 * 60_000,
    });
    return this.#jwks;
  }

  /** OpenID Connect Discovery 1.0 §4: the document's issuer must equal the configured one. */
  #discover(): Promise<string> {
    this.#discovery ??= (async () => {
      const url = `${this.settings.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
      let document: { issuer?: unknown; jwks_uri?: unknown };
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        document = (await response.json()) as typeof document;
      } catch (error) {
        throw new AuthError(
          AuthErrorCode.IssuerUnreachable,
          `cannot read the OIDC discovery document at ${url} (${(error as Error).message}); check the issuer URL`,
          { cause: error },
        );
      }
      if (document.issuer !== this.settings.issuer) {
        throw new AuthError(
          AuthErrorCode.IssuerUnreachable,
          `the discovery document at ${url} names issuer ${JSON.stringify(document.issuer)}, not ${JSON.stringify(this.settings.issuer)}`,
        );
      }
      if (typeof document.jwks_uri !== 'string') {
        throw new AuthError(AuthErrorCode.IssuerUnreachable, `the discovery document at ${url} has no jwks_uri`);
      }
      return document.jwks_uri;
    })();
    // A failed discovery is retried on the next token rather than cached forever.
    this.#discovery.catch(() => {
      this.#discovery = undefined;
    });
    return this.#discovery;
  }

  #identity(payload: JWTPayload): Identity {
    const { usernameClaim, groupsClaim } = this.settings;
    const user = payload[usernameClaim];
    if (typeof user !== 'string' || user.length === 0) {
      throw new AuthError(AuthErrorCode.ClaimMissing, `the token has no string claim '${usernameClaim}' to name the user`);
    }
    // As kube-apiserver does: an unverified address must not name a user.
    if (usernameClaim === 'email' && payload.email_verified === false) {
      throw new AuthError(
        AuthErrorCode.EmailUnverified,
        'the token says its email address is not verified (email_verified: false); verify it with your identity provider',
      );
    }
    const rawGroups = payload[groupsClaim];
    let groups: string[];
    if (rawGroups === undefined) groups = [];
    else if (typeof rawGroups === 'string') groups = [rawGroups];
    else if (Array.isArray(rawGroups) && rawGroups.every((g) => typeof g === 'string')) groups = rawGroups;
    else throw new AuthError(AuthErrorCode.ClaimMissing, `the token's '${groupsClaim}' claim is not a list of strings`);
    return {
      user,
      groups,
      subject: payload.sub ?? user,
      issuer: payload.iss ?? this.settings.issuer,
      expiresAt: payload.exp === undefined ? undefined : new Date(payload.exp * 1000),
    };
  }

  #translate(error: unknown): AuthError {
    if (error instanceof AuthError) return error;
    if (error instanceof errors.JWTExpired) {
      return new AuthError(AuthErrorCode.Expired, 'the token has expired: get a new one from your identity provider');
    }
    if (error instanceof errors.JWTClaimValidationFailed) {
      switch (error.claim) {
        case 'iss':
          return new AuthError(AuthErrorCode.WrongIssuer, `the token was not issued by ${this.settings.issuer}`);
        case 'aud':
          return new AuthError(
            AuthErrorCode.WrongAudience,
            `the token is not meant for this gateway (audience must include '${this.settings.audience}')`,
          );
        case 'nbf':
          return new AuthError(AuthErrorCode.NotYetValid, 'the token is not valid yet (nbf is in the future); check clocks');
        default:
          return new AuthError(AuthErrorCode.ClaimMissing, `the token's '${error.claim}' claim is invalid: ${error.reason}`);
      }
    }
    if (error instanceof errors.JOSEAlgNotAllowed) {
      return new AuthError(
        AuthErrorCode.AlgorithmNotAllowed,
        `the token's signature algorithm is not accepted (allowed: ${this.settings.algorithms.join(', ')})`,
      );
    }
    if (error instanceof errors.JWKSNoMatchingKey) {
      return new AuthError(AuthErrorCode.UnknownKey, "the token was signed with a key the issuer doesn't publish");
    }
    if (error instanceof errors.JWSSignatureVerificationFailed) {
      return new AuthError(AuthErrorCode.BadSignature, 'the token signature does not verify');
    }
    if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error instanceof TypeError) {
      return new AuthError(
        AuthErrorCode.IssuerUnreachable,
        `cannot fetch the issuer's signing keys (${(error as Error).message}); try again shortly`,
        { cause: error },
      );
    }
    return new AuthError(AuthErrorCode.Malformed, 'the token is not a valid signed JWT', { cause: error });
  }
}
