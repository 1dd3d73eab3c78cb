import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decryptAesGcm,
  encryptAesGcm,
  exportSigningKey,
  generateSigningKey,
  loadEncryptionKey,
  loadSigningKey,
  loadVerifyKey,
  sha256,
  signDigest,
  verifyDigest,
} from './crypto.ts';
import { encryptionKey, otherEncryptionKey, signingKey } from './test-support.ts';

describe('Ed25519 keys', () => {
  const seed = Buffer.alloc(32, 1);
  const { privatePem, publicPem } = exportSigningKey(signingKey);

  it.each([
    ['a raw 32-byte seed', seed],
    ['the seed in hex', seed.toString('hex')],
    ['the seed in base64', seed.toString('base64')],
    ['a PKCS#8 PEM', privatePem],
    ['a PKCS#8 PEM as bytes', Buffer.from(privatePem)],
  ])('loads a signing key from %s', (_name, material) => {
    expect(loadSigningKey(material).keyId).toBe(signingKey.keyId);
  });

  it.each([
    ['the raw public key', () => signingKey.publicKeyRaw],
    ['an SPKI PEM', () => publicPem],
    ['a private PEM', () => privatePem],
    ['a signing key object', () => signingKey.privateKey],
  ])('loads a verification key from %s', (_name, material) => {
    expect(loadVerifyKey(material()).keyId).toBe(signingKey.keyId);
  });

  it('derives the key id from the first 16 hex digits of SHA-256 of the raw public key', () => {
    expect(signingKey.keyId).toBe(sha256(signingKey.publicKeyRaw).toString('hex').slice(0, 16));
    expect(signingKey.keyId).toMatch(/^[0-9a-f]{16}$/);
  });

  it.each([
    ['garbage', 'not a key'],
    ['31 bytes', Buffer.alloc(31)],
    ['an RSA key', generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' })],
  ])('refuses %s as a signing key with KEY_INVALID', (_name, material) => {
    expect(() => loadSigningKey(material)).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
  });

  it('signs with context separation: a chunk signature is not a manifest signature', () => {
    const digest = sha256(Buffer.from('x'));
    const signature = signDigest(signingKey, 'warden.recording.v1.chunk\0', digest);
    expect(verifyDigest(signingKey, 'warden.recording.v1.chunk\0', digest, signature)).toBe(true);
    expect(verifyDigest(signingKey, 'warden.recording.v1.manifest\0', digest, signature)).toBe(false);
    expect(verifyDigest(generateSigningKey(), 'warden.recording.v1.chunk\0', digest, signature)).toBe(false);
  });
});

describe('AES-256-GCM', () => {
  const iv = Buffer.alloc(12, 9);
  const aad = Buffer.from('header');

  it('round-trips and appends a 16-byte tag', () => {
    const sealed = encryptAesGcm(encryptionKey, iv, Buffer.from('secret rows'), aad);
    expect(sealed).toHaveLength(11 + 16);
    expect(decryptAesGcm(encryptionKey, iv, sealed, aad)?.toString()).toBe('secret rows');
  });

  it.each([
    ['the wrong key', () => otherEncryptionKey, aad],
    ['other additional data', () => encryptionKey, Buffer.from('other header')],
  ])('does not decrypt with %s', (_name, key, otherAad) => {
    const sealed = encryptAesGcm(encryptionKey, iv, Buffer.from('secret rows'), aad);
    expect(decryptAesGcm(key(), iv, sealed, otherAad)).toBeUndefined();
  });

  it('loads keys from raw bytes, hex or base64 and names them', () => {
    const raw = Buffer.alloc(32, 3);
    expect(loadEncryptionKey(raw.toString('hex')).keyId).toBe(encryptionKey.keyId);
    expect(loadEncryptionKey(raw.toString('base64')).keyId).toBe(encryptionKey.keyId);
    expect(loadEncryptionKey(raw, 'recordings-2025').keyId).toBe('recordings-2025');
    expect(() => loadEncryptionKey(Buffer.alloc(16))).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
    expect(() => loadEncryptionKey(raw, 'a/b')).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
  });
});
