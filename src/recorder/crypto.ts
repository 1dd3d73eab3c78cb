// Keys, digests, signatures and body encryption for recordings. Everything is node:crypto; the
// byte-level rules (what is signed, what is authenticated) are in docs/recording-format.md.
//
// Signing: Ed25519 (RFC 8032) over `context || SHA-256(data)`. The context string separates chunk
// signatures from manifest signatures so one can never be replayed as the other; pre-hashing lets
// a reader check a signature while streaming the object.
// Encryption: AES-256-GCM (NIST SP 800-38D) with a fresh random 96-bit IV per chunk and a 128-bit tag.

import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  KeyObject,
  randomBytes,
  sign,
  verify,
} from 'node:crypto';
import { RecorderError, RecorderErrorCode } from './errors.ts';

/** A public key trusted to have signed recordings. */
export interface VerifyKey {
  /** First 16 hex digits of SHA-256 of the raw 32-byte public key. */
  readonly keyId: string;
  readonly publicKey: KeyObject;
  readonly publicKeyRaw: Uint8Array;
}

/** A private signing key; also usable wherever a `VerifyKey` is expected. */
export interface SigningKey extends VerifyKey {
  readonly privateKey: KeyObject;
}

/** An AES-256 key for client-side body encryption. */
export interface EncryptionKey {
  /** Stored in chunk headers so a reader can pick the right key; never derived from secret material alone by a reader. */
  readonly keyId: string;
  readonly key: KeyObject;
}

export const ED25519_SIGNATURE_BYTES = 64;
export const AES_GCM_IV_BYTES = 12;
export const AES_GCM_TAG_BYTES = 16;

// DER prefixes of an Ed25519 key in PKCS#8 / SubjectPublicKeyInfo (RFC 8410 §7 and §4): the raw
// 32 bytes follow directly.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ENC_KEY_ID_CONTEXT = 'warden.recording.v1.enc-key-id\0';
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function sha256(...parts: readonly Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

export function sha256Hex(...parts: readonly Uint8Array[]): string {
  return sha256(...parts).toString('hex');
}

export function keyIdOf(publicKeyRaw: Uint8Array): string {
  return sha256Hex(publicKeyRaw).slice(0, 16);
}

/**
 * Loads an Ed25519 private key from a PKCS#8 PEM, a 32-byte seed (raw bytes, 64 hex digits or
 * base64), or a KeyObject. Throws KEY_INVALID with a message saying what was expected.
 */
export function loadSigningKey(material: string | Uint8Array | KeyObject): SigningKey {
  let privateKey: KeyObject;
  try {
    if (material instanceof KeyObject) {
      privateKey = material;
    } else {
      const seed = rawKeyBytes(material);
      privateKey = seed
        ? createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' })
        : createPrivateKey(textOf(material));
    }
  } catch (cause) {
    throw keyError('signing key', 'an Ed25519 private key in PEM (PKCS#8) or a 32-byte seed', cause);
  }
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw keyError(
      'signing key',
      'an Ed25519 private key',
      `got a ${privateKey.asymmetricKeyType ?? privateKey.type} key`,
    );
  }
  const publicKey = createPublicKey(privateKey);
  return { ...publicParts(publicKey), privateKey };
}

/**
 * Loads an Ed25519 public key from an SPKI PEM (a private PEM works too), the raw 32-byte public
 * key (raw bytes, 64 hex digits or base64), or a KeyObject.
 */
export function loadVerifyKey(material: string | Uint8Array | KeyObject): VerifyKey {
  let publicKey: KeyObject;
  try {
    if (material instanceof KeyObject) {
      publicKey = material.type === 'private' ? createPublicKey(material) : material;
    } else {
      const raw = rawKeyBytes(material);
      publicKey = raw
        ? createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' })
        : createPublicKey(textOf(material));
    }
  } catch (cause) {
    throw keyError('verification key', 'an Ed25519 public key in PEM (SPKI) or the raw 32-byte key', cause);
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw keyError(
      'verification key',
      'an Ed25519 public key',
      `got a ${publicKey.asymmetricKeyType ?? publicKey.type} key`,
    );
  }
  return publicParts(publicKey);
}

/** A fresh Ed25519 key pair (for `warden dev` and tests; production keys come from a Secret). */
export function generateSigningKey(): SigningKey {
  return loadSigningKey(generateKeyPairSync('ed25519').privateKey);
}

/** PEM forms of a signing key, e.g. to write a Secret. */
export function exportSigningKey(key: SigningKey): { privatePem: string; publicPem: string } {
  return {
    privatePem: key.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: key.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

/** Signs `context || digest`. */
export function signDigest(key: SigningKey, context: string, digest: Uint8Array): Buffer {
  return sign(null, Buffer.concat([Buffer.from(context, 'latin1'), digest]), key.privateKey);
}

export function verifyDigest(
  key: VerifyKey,
  context: string,
  digest: Uint8Array,
  signature: Uint8Array,
): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  return verify(null, Buffer.concat([Buffer.from(context, 'latin1'), digest]), key.publicKey, signature);
}

/**
 * Loads an AES-256 key: 32 raw bytes, 64 hex digits, or base64 of 32 bytes. The key id defaults to
 * the first 16 hex digits of SHA-256("warden.recording.v1.enc-key-id\0" || key); pass the Secret's
 * own identifier instead if you rotate keys by name.
 */
export function loadEncryptionKey(material: string | Uint8Array, keyId?: string): EncryptionKey {
  const raw = rawKeyBytes(material);
  if (!raw) {
    throw new RecorderError(
      RecorderErrorCode.KeyInvalid,
      'encryption key: expected exactly 32 bytes (raw, 64 hex digits or base64) for AES-256-GCM',
    );
  }
  if (keyId !== undefined && !KEY_ID_PATTERN.test(keyId)) {
    throw new RecorderError(
      RecorderErrorCode.KeyInvalid,
      `encryption key id ${JSON.stringify(keyId)}: use 1-64 characters from A-Z a-z 0-9 . _ -`,
    );
  }
  return {
    keyId: keyId ?? sha256Hex(Buffer.from(ENC_KEY_ID_CONTEXT, 'latin1'), raw).slice(0, 16),
    key: createSecretKey(raw),
  };
}

export function generateEncryptionKey(): Buffer {
  return randomBytes(32);
}

export function randomIv(): Buffer {
  return randomBytes(AES_GCM_IV_BYTES);
}

/** AES-256-GCM: returns ciphertext || 16-byte tag. */
export function encryptAesGcm(
  key: EncryptionKey,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key.key, iv, { authTagLength: AES_GCM_TAG_BYTES });
  cipher.setAAD(aad);
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** Inverse of `encryptAesGcm`; `undefined` when the key, IV, AAD or data do not authenticate. */
export function decryptAesGcm(
  key: EncryptionKey,
  iv: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Buffer | undefined {
  if (sealed.length < AES_GCM_TAG_BYTES) return undefined;
  const cut = sealed.length - AES_GCM_TAG_BYTES;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key.key, iv, { authTagLength: AES_GCM_TAG_BYTES });
    decipher.setAAD(aad);
    decipher.setAuthTag(sealed.subarray(cut));
    return Buffer.concat([decipher.update(sealed.subarray(0, cut)), decipher.final()]);
  } catch {
    return undefined;
  }
}

function publicParts(publicKey: KeyObject): VerifyKey {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  const publicKeyRaw = new Uint8Array(der.subarray(SPKI_ED25519_PREFIX.length));
  return { keyId: keyIdOf(publicKeyRaw), publicKey, publicKeyRaw };
}

/** 32 key bytes from raw bytes, hex or base64 text; `undefined` if the material is something else (e.g. PEM). */
function rawKeyBytes(material: string | Uint8Array): Buffer | undefined {
  if (typeof material !== 'string') {
    if (material.length === 32) return Buffer.from(material);
    const text = Buffer.from(material).toString('utf8');
    return text.includes('-----BEGIN') ? undefined : rawKeyBytes(text);
  }
  const text = material.trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{42,43}={0,1}$/.test(text)) {
    const bytes = Buffer.from(text, text.includes('-') || text.includes('_') ? 'base64url' : 'base64');
    if (bytes.length === 32) return bytes;
  }
  return undefined;
}

function textOf(material: string | Uint8Array): string {
  return typeof material === 'string' ? material : Buffer.from(material).toString('utf8');
}

function keyError(what: string, expected: string, cause: unknown): RecorderError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new RecorderError(RecorderErrorCode.KeyInvalid, `${what}: expected ${expected} (${detail})`);
}
