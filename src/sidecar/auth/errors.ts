/**
 * Authentication failures, each with a stable code (for metrics, recordings and tests) and a
 * message written for the person holding the token. Gateways encode them in their protocol
 * (SQLSTATE 28000, SSH auth failure banner, HTTP 401) — never with the token itself.
 */
export const AuthErrorCode = {
  /** No token was presented. */
  Missing: 'WARDEN_TOKEN_MISSING',
  /** Not a compact JWS/JWT. */
  Malformed: 'WARDEN_TOKEN_MALFORMED',
  /** exp is in the past. */
  Expired: 'WARDEN_TOKEN_EXPIRED',
  /** nbf is in the future. */
  NotYetValid: 'WARDEN_TOKEN_NOT_YET_VALID',
  /** iss is not the configured issuer. */
  WrongIssuer: 'WARDEN_TOKEN_WRONG_ISSUER',
  /** aud does not contain the configured audience. */
  WrongAudience: 'WARDEN_TOKEN_WRONG_AUDIENCE',
  /** alg is not on the allow-list (including "none" and HMAC). */
  AlgorithmNotAllowed: 'WARDEN_TOKEN_ALGORITHM_NOT_ALLOWED',
  /** No key in the issuer's JWKS has the token's kid. */
  UnknownKey: 'WARDEN_TOKEN_UNKNOWN_KEY',
  /** The signature does not verify. */
  BadSignature: 'WARDEN_TOKEN_BAD_SIGNATURE',
  /** A claim the configuration needs (username, groups shape) is missing or malformed. */
  ClaimMissing: 'WARDEN_TOKEN_CLAIM_MISSING',
  /** The username claim is `email` and the token says the address is not verified. */
  EmailUnverified: 'WARDEN_TOKEN_EMAIL_UNVERIFIED',
  /** The issuer's discovery document or JWKS could not be fetched; fail closed. */
  IssuerUnreachable: 'WARDEN_ISSUER_UNREACHABLE',
} as const;
export type AuthErrorCode = (typeof AuthErrorCode)[keyof typeof AuthErrorCode];

export class AuthError extends Error {
  readonly code: AuthErrorCode;
  constructor(code: AuthErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuthError';
    this.code = code;
  }
}
