// Client side of the password authentications PostgreSQL asks an upstream client for:
// SCRAM-SHA-256 (RFC 5802 + RFC 7677, as PostgreSQL implements it: §55.3.1) and md5. Node crypto
// only. Channel binding (SCRAM-SHA-256-PLUS) is not offered; the upstream TLS (verify-full)
// already authenticates the server.

import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export class ScramError extends Error {
  readonly code = 'WARDEN_PG_UPSTREAM_SCRAM';
  constructor(message: string) {
    super(message);
    this.name = 'ScramError';
  }
}

const hmac = (key: Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

/** One SCRAM-SHA-256 exchange: `first()`, then `final(serverFirst)`, then `verify(serverFinal)`. */
export class ScramClient {
  readonly #password: string;
  readonly #nonce: string;
  #clientFirstBare = '';
  #serverSignature: Buffer | undefined;

  constructor(password: string, nonce: string = randomBytes(18).toString('base64')) {
    this.#password = password;
    this.#nonce = nonce;
  }

  /** client-first-message; PostgreSQL takes the user from the startup packet, so `n=` is empty. */
  first(): string {
    this.#clientFirstBare = `n=*,r=${this.#nonce}`;
    return `n,,${this.#clientFirstBare}`;
  }

  /** client-final-message for the server-first-message. */
  final(serverFirst: string): string {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (!nonce || !salt || !Number.isSafeInteger(iterations) || iterations < 1) {
      throw new ScramError('the database sent an invalid SCRAM server-first-message');
    }
    if (!nonce.startsWith(this.#nonce) || nonce.length === this.#nonce.length) {
      throw new ScramError('the database answered with a SCRAM nonce that does not extend ours');
    }
    if (iterations > 10_000_000) throw new ScramError('the database asks for an unreasonable SCRAM iteration count');
    // SASLprep is skipped: PostgreSQL uses the raw password when it is not valid SASLprep input
    // too, and credentials from a Secret are expected to be ASCII.
    const salted = pbkdf2Sync(this.#password, Buffer.from(salt, 'base64'), iterations, 32, 'sha256');
    const clientKey = hmac(salted, 'Client Key');
    const storedKey = sha256(clientKey);
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.#serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks the server-final-message: proves the server knew the password too. */
  verify(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal);
    if (attrs.has('e')) throw new ScramError(`the database refused the SCRAM exchange: ${attrs.get('e')}`);
    const v = Buffer.from(attrs.get('v') ?? '', 'base64');
    if (!this.#serverSignature || v.length !== this.#serverSignature.length || !timingSafeEqual(v, this.#serverSignature)) {
      throw new ScramError('the database sent a wrong SCRAM server signature');
    }
  }
}

function parseAttributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0]!, part.slice(2));
  }
  return out;
}

/** The md5 password response: 'md5' + md5(md5(password + user) + salt). */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  const inner = createHash('md5').update(password + user).digest('hex');
  return `md5${createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex')}`;
}
