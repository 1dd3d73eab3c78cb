// The state directory of `warden dev`: key material that must survive restarts (so tokens minted
// in another shell stay valid, recordings stay verifiable, and clients do not see a new SSH host
// key each time), the local recordings, the spool, and the Secret files of the running process.
//
//   <state>/                        0700
//     issuer-key.jwk.json           0600  private key of the development OIDC issuer
//     issuer.json                         {issuer, audience} of the last `warden dev` (for `dev token`)
//     recording-signing-key.pem     0600  Ed25519 key that signs local recordings
//     recording-signing-key.pub.pem       its public key (`warden verify --dev` trusts it)
//     generated/<ns>/<secret>/<key> 0600  generated listener keys (SSH host key, TLS certificate)
//     secrets/<ns>/<secret>/<key>   0600  Secrets from the manifests, written at start, removed at stop
//     recordings/                         the local recording store (same format as the bucket)
//     spool/<ns>/<connection>/            the recorder's spool
//
// Default location: $WARDEN_DEV_HOME, else $XDG_STATE_HOME/warden/dev, else ~/.local/state/warden/dev.

import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { JWK } from 'jose';
import { exportSigningKey, generateSigningKey, loadSigningKey, type SigningKey } from '../recorder/crypto.ts';
import { DevError, DevErrorCode } from './errors.ts';
import { generateIssuerKey, type IssuerKey, issuerKeyFromPrivateJwk } from './oidc.ts';

export const DEV_AUDIENCE = 'warden';
export const DEFAULT_ISSUER_PORT = 15556;

export const STATE_FILES = {
  issuerKey: 'issuer-key.jwk.json',
  issuer: 'issuer.json',
  signingKey: 'recording-signing-key.pem',
  publicKey: 'recording-signing-key.pub.pem',
  generated: 'generated',
  secrets: 'secrets',
  recordings: 'recordings',
  spool: 'spool',
} as const;

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WARDEN_DEV_HOME) return resolve(env.WARDEN_DEV_HOME);
  const base = env.XDG_STATE_HOME ? resolve(env.XDG_STATE_HOME) : join(homedir(), '.local', 'state');
  return join(base, 'warden', 'dev');
}

export interface IssuerInfo {
  issuer: string;
  audience: string;
}

function stateError(dir: string, what: string, error: unknown): DevError {
  const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  return new DevError(DevErrorCode.StateInvalid, `state directory ${dir}: cannot ${what} (${code}); fix its permissions or choose another with --state-dir`);
}

async function readOptional(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** A private file: created 0600 (and re-chmodded, should it exist with wider permissions). */
export async function writePrivate(path: string, data: string | Uint8Array): Promise<void> {
  await writeFile(path, data, { mode: 0o600 });
  await chmod(path, 0o600);
}

export class DevState {
  readonly dir: string;
  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Opens (creating, 0700) the state directory. */
  static async open(dir: string = defaultStateDir()): Promise<DevState> {
    const abs = resolve(dir);
    try {
      await mkdir(abs, { recursive: true, mode: 0o700 });
      await chmod(abs, 0o700);
    } catch (error) {
      throw stateError(abs, 'create it', error);
    }
    return new DevState(abs);
  }

  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }

  get recordingsDir(): string {
    return this.path(STATE_FILES.recordings);
  }

  get publicKeyFile(): string {
    return this.path(STATE_FILES.publicKey);
  }

  get signingKeyFile(): string {
    return this.path(STATE_FILES.signingKey);
  }

  /** The issuer key, generated on first use. `create: false` refuses to make one. */
  async issuerKey(options: { create: boolean } = { create: true }): Promise<IssuerKey | undefined> {
    const file = this.path(STATE_FILES.issuerKey);
    let bytes: Buffer | undefined;
    try {
      bytes = await readOptional(file);
    } catch (error) {
      throw stateError(this.dir, `read ${STATE_FILES.issuerKey}`, error);
    }
    if (bytes !== undefined) {
      try {
        return issuerKeyFromPrivateJwk(JSON.parse(bytes.toString('utf8')) as JWK);
      } catch (error) {
        throw new DevError(DevErrorCode.StateInvalid, `${file} is not a valid issuer key (${(error as Error).message}); delete it and start warden dev again (tokens minted before stop working)`);
      }
    }
    if (!options.create) return undefined;
    const key = await generateIssuerKey('ES256');
    try {
      await writePrivate(file, `${JSON.stringify(key.privateJwk, null, 2)}\n`);
    } catch (error) {
      throw stateError(this.dir, `write ${STATE_FILES.issuerKey}`, error);
    }
    return key;
  }

  /** The recording signing key, generated on first use (with its public key beside it). */
  async signingKey(): Promise<SigningKey> {
    const file = this.signingKeyFile;
    let bytes: Buffer | undefined;
    try {
      bytes = await readOptional(file);
    } catch (error) {
      throw stateError(this.dir, `read ${STATE_FILES.signingKey}`, error);
    }
    if (bytes !== undefined) {
      try {
        return loadSigningKey(bytes);
      } catch (error) {
        throw new DevError(DevErrorCode.StateInvalid, `${file} is not a valid Ed25519 key (${(error as Error).message}); delete it (existing local recordings then need the old public key to verify)`);
      }
    }
    const key = generateSigningKey();
    const { privatePem, publicPem } = exportSigningKey(key);
    try {
      await writePrivate(file, privatePem);
      await writeFile(this.publicKeyFile, publicPem, { mode: 0o644 });
    } catch (error) {
      throw stateError(this.dir, `write ${STATE_FILES.signingKey}`, error);
    }
    return key;
  }

  async writeIssuerInfo(info: IssuerInfo): Promise<void> {
    try {
      await writeFile(this.path(STATE_FILES.issuer), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o644 });
    } catch (error) {
      throw stateError(this.dir, `write ${STATE_FILES.issuer}`, error);
    }
  }

  async readIssuerInfo(): Promise<IssuerInfo | undefined> {
    const bytes = await readOptional(this.path(STATE_FILES.issuer)).catch(() => undefined);
    if (bytes === undefined) return undefined;
    try {
      const parsed = JSON.parse(bytes.toString('utf8')) as Partial<IssuerInfo>;
      if (typeof parsed.issuer === 'string' && typeof parsed.audience === 'string') return { issuer: parsed.issuer, audience: parsed.audience };
    } catch {
      // fall through: treated as absent
    }
    return undefined;
  }
}
