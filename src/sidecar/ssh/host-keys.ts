import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { SshGatewayError, SshGatewayErrorCode } from './errors.ts';

/**
 * Pinned SSH host keys (spec.target.hostKeys): OpenSSH public-key lines `type base64 [comment]`,
 * as in `*.pub` files and `ssh-keyscan` output (a leading known_hosts host field is tolerated).
 * Comparison is on the key blob (RFC 4253 §6.6), never on the text.
 */
export interface PinnedHostKey {
  /** Key type as written, e.g. `ssh-ed25519`. */
  type: string;
  /** The public key blob (RFC 4253 §6.6 encoding). */
  blob: Buffer;
  /** `SHA256:…` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com|ssh-ed448)$/;

/** `SHA256:<unpadded base64 of the blob's SHA-256>`, the fingerprint format of OpenSSH ≥ 6.8. */
export function fingerprint(blob: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type a blob declares (its first SSH string), or undefined when the blob is malformed. */
export function blobKeyType(blob: Uint8Array): string | undefined {
  if (blob.length < 4) return undefined;
  const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const length = view.getUint32(0);
  if (length === 0 || length > 64 || 4 + length > blob.length) return undefined;
  return Buffer.from(blob.buffer, blob.byteOffset + 4, length).toString('latin1');
}

/** Parses one pinned key line; throws a {@link SshGatewayError} naming what is wrong. */
export function parsePinnedHostKey(line: string): PinnedHostKey {
  const fields = line.trim().split(/\s+/);
  // Accept known_hosts lines too: skip a leading host field (`[127.0.0.1]:22`, `host,addr`).
  const at = fields.findIndex((f) => KEY_TYPE.test(f));
  const type = at < 0 ? undefined : fields[at];
  const encoded = at < 0 ? undefined : fields[at + 1];
  if (type === undefined || encoded === undefined) {
    throw new SshGatewayError(
      SshGatewayErrorCode.HostKeyInvalid,
      `pinned host key ${JSON.stringify(line.slice(0, 40))} is not an OpenSSH public key line ("ssh-ed25519 AAAA…")`,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) {
    throw new SshGatewayError(SshGatewayErrorCode.HostKeyInvalid, `pinned ${type} host key is not valid base64`);
  }
  const blob = Buffer.from(encoded, 'base64');
  if (blobKeyType(blob) !== type) {
    throw new SshGatewayError(
      SshGatewayErrorCode.HostKeyInvalid,
      `pinned host key says ${type} but its data is ${blobKeyType(blob) ?? 'not a key blob'}`,
    );
  }
  return { type, blob, fingerprint: fingerprint(blob) };
}

/** Outcome of checking the key a target presented against the pins. */
export type HostKeyCheck =
  | { ok: true; fingerprint: string; reason: 'pinned' | 'verification-disabled' }
  | { ok: false; fingerprint: string; type: string; message: string };

/**
 * Checks a presented host key blob against the pinned keys. With no pins and no explicit opt-out
 * the target is refused: trust-on-first-use would defeat the point of pinning.
 */
export function checkHostKey(
  presented: Uint8Array,
  pins: readonly PinnedHostKey[],
  options: { insecureSkipVerification?: boolean; target?: string } = {},
): HostKeyCheck {
  const fp = fingerprint(presented);
  const type = blobKeyType(presented) ?? 'unknown';
  if (options.insecureSkipVerification === true) return { ok: true, fingerprint: fp, reason: 'verification-disabled' };
  const presentedBuffer = Buffer.from(presented.buffer, presented.byteOffset, presented.byteLength);
  if (pins.some((pin) => pin.blob.equals(presentedBuffer))) return { ok: true, fingerprint: fp, reason: 'pinned' };
  const target = options.target === undefined ? 'the target' : `target ${options.target}`;
  const message =
    pins.length === 0
      ? `${target} presented ${type} host key ${fp}, but the Connection pins no host keys: add it to spec.target.hostKeys ` +
        '(or set spec.target.insecureSkipHostKeyVerification: true)'
      : `HOST KEY MISMATCH: ${target} presented ${type} host key ${fp}, which is not among the pinned keys ` +
        `(${pins.map((p) => `${p.type} ${p.fingerprint}`).join(', ')}); refusing to connect. ` +
        'If the host was legitimately re-keyed, update spec.target.hostKeys.';
  return { ok: false, fingerprint: fp, type, message };
}

/**
 * Host key algorithms to offer the target, pinned key types first: a server with several host
 * keys presents the one for the first algorithm both sides support, and it has to be a pinned one.
 */
export function hostKeyAlgorithmsFor(pins: readonly PinnedHostKey[], supported: readonly string[]): string[] {
  const wanted = new Set<string>();
  for (const pin of pins) {
    if (pin.type === 'ssh-rsa') {
      // RSA keys sign with SHA-2 (RFC 8332); the key type stays ssh-rsa.
      wanted.add('rsa-sha2-512');
      wanted.add('rsa-sha2-256');
    } else wanted.add(pin.type);
  }
  const first = supported.filter((a) => wanted.has(a));
  return pins.length === 0 ? [...supported] : first;
}

/**
 * A new Ed25519 host key in OpenSSH's private key format (PROTOCOL.key in the OpenSSH sources),
 * unencrypted. Built here from Node's key material because ssh2's generator drops leading zero
 * bytes of the public key (about 1 key in 256 comes out malformed).
 */
export function generateEd25519HostKey(comment = 'warden-gateway'): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const str = (b: Buffer | string): Buffer => {
    const data = typeof b === 'string' ? Buffer.from(b) : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    return Buffer.concat([len, data]);
  };
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n >>> 0);
    return b;
  };
  const blob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  const check = randomBytes(4).readUInt32BE(0);
  let secret = Buffer.concat([u32(check), u32(check), str('ssh-ed25519'), str(pub), str(Buffer.concat([seed, pub])), str(comment)]);
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([Buffer.from('openssh-key-v1\0'), str('none'), str('none'), str(''), u32(1), str(blob), str(secret)]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${blob.toString('base64')}`,
  };
}
