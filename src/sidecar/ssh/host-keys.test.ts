import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utils } from 'ssh2';
import { blobKeyType, generateEd25519HostKey, checkHostKey, fingerprint, hostKeyAlgorithmsFor, parsePinnedHostKey } from './host-keys.ts';

function ed25519Line(): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const type = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([u32(type.length), type, u32(raw.length), raw]);
  return `ssh-ed25519 ${blob.toString('base64')}`;
}
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

describe('host key pinning', () => {
  const line = ed25519Line();
  const pin = parsePinnedHostKey(`${line} root@host`);

  it('parses OpenSSH public key lines, with or without comment or known_hosts host field', () => {
    expect(pin.type).toBe('ssh-ed25519');
    expect(blobKeyType(pin.blob)).toBe('ssh-ed25519');
    expect(parsePinnedHostKey(`[127.0.0.1]:2222 ${line}`).blob).toEqual(pin.blob);
    expect(pin.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(fingerprint(pin.blob)).toBe(pin.fingerprint);
  });

  it.each([
    ['garbage', 'not a key'],
    ['bad base64', 'ssh-ed25519 !!!'],
    ['type disagrees with blob', `ssh-rsa ${line.split(' ')[1]}`],
  ])('rejects %s', (_n, bad) => {
    expect(() => parsePinnedHostKey(bad)).toThrow(expect.objectContaining({ code: 'WARDEN_SSH_HOST_KEY_INVALID' }));
  });

  it('accepts the pinned key and refuses another, naming both fingerprints', () => {
    expect(checkHostKey(pin.blob, [pin])).toMatchObject({ ok: true, reason: 'pinned' });
    const other = parsePinnedHostKey(ed25519Line());
    const check = checkHostKey(other.blob, [pin], { target: 'db:22' });
    expect(check.ok).toBe(false);
    if (!check.ok) {
      expect(check.message).toContain('HOST KEY MISMATCH');
      expect(check.message).toContain(other.fingerprint);
      expect(check.message).toContain(pin.fingerprint);
    }
  });

  it('refuses when nothing is pinned unless verification is explicitly skipped', () => {
    expect(checkHostKey(pin.blob, []).ok).toBe(false);
    expect(checkHostKey(pin.blob, [], { insecureSkipVerification: true })).toMatchObject({ ok: true, reason: 'verification-disabled' });
  });

  it('offers the pinned key types only', () => {
    const supported = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'rsa-sha2-512', 'rsa-sha2-256'];
    expect(hostKeyAlgorithmsFor([pin], supported)).toEqual(['ssh-ed25519']);
    expect(hostKeyAlgorithmsFor([], supported)).toEqual(supported);
  });
});

describe('generateEd25519HostKey', () => {
  it('writes keys ssh2 parses, every time (ssh2\'s own generator drops leading zero bytes)', () => {
    for (let i = 0; i < 600; i++) {
      const { privateKey, publicKey } = generateEd25519HostKey();
      const parsed = utils.parseKey(privateKey);
      if (parsed instanceof Error) throw parsed;
      expect(`ssh-ed25519 ${parsed.getPublicSSH().toString('base64')}`).toBe(publicKey);
      expect(parsePinnedHostKey(publicKey).type).toBe('ssh-ed25519');
    }
  });

  it('writes keys OpenSSH reads (ssh-keygen -y gives the same public key)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-hostkey-'));
    try {
      const { privateKey, publicKey } = generateEd25519HostKey();
      const file = join(dir, 'key');
      writeFileSync(file, privateKey, { mode: 0o600 });
      expect(execFileSync('ssh-keygen', ['-y', '-f', file]).toString().trim()).toBe(`${publicKey} warden-gateway`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
