/**
 * ssh2's transport costs, removed from outside ssh2.
 *
 * 0. **The native binding.** ssh2's optional C++ ciphers (`sshcrypto.node`) are built at install
 *    against Node 24's own headers (scripts/build-native.ts, docs/adr/0013); with them the gateway
 *    relays at about half the CPU per MiB. {@link ssh2NativeCrypto} says whether they loaded.
 *    Items 1 and 2 below remain for when they did not (item 1 only applies then).
 *
 * Per-packet costs of ssh2's pure-JavaScript transport (ssh2 1.17 without its optional native
 * binding): Measured with `--cpu-prof` on bench/ssh.ts (bench/README.md,
 * "ssh.ts"): before these, a 256 MiB `ssh cat` through the gateway spent about a sixth of its CPU
 * on the two items below.
 *
 * 1. **Key objects.** ssh2 creates a cipher per packet (AES-GCM: one per packet and direction, its IV
 *    changes; chacha20-poly1305: three) and, for non-AEAD ciphers, an HMAC per packet, passing the
 *    key as a Buffer. Node 24's `createCipheriv`/`createHmac` first ask whether the key is a
 *    KeyObject or a CryptoKey, and both checks work by *throwing and catching* an exception when it
 *    is not (`isKeyObject`/`isCryptoKey` in lib/internal/crypto/keys.js), so every packet paid for
 *    two exceptions. A KeyObject (`createSecretKey`) answers the first check at once. The key
 *    fields are converted once per cipher instance, on its first packet; the bytes are the same.
 * 2. **Write coalescing.** ssh2 writes each packet to the socket in 3–4 pieces (length, ciphertext,
 *    tag/MAC), and an uncorked net.Socket makes one `write(2)` per piece. {@link coalesceWrites}
 *    corks the socket on the first write of a tick and uncorks it on the next tick: the pieces of
 *    all packets of one tick leave in one `writev(2)`. Order and back-pressure are unchanged
 *    (`write()` still returns false above the high-water mark).
 *
 * Both touch ssh2 internals (the *Native cipher classes of lib/protocol/crypto.js), so they are
 * applied defensively: when the shapes are not what ssh2 1.17 has, nothing is patched and the
 * transport is just slower. transport.test.ts fails if the patch no longer applies (an ssh2
 * upgrade), and the integration tests run real OpenSSH clients and sshd through the patched
 * classes with every offered cipher.
 */
import { createRequire } from 'node:module';
import { createSecretKey, type KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';

const require = createRequire(import.meta.url);

interface CipherInfo {
  sslName: string;
  keyLen: number;
  ivLen: number;
  blockLen: number;
  authLen: number;
}
interface MacInfo {
  sslName: string;
  len: number;
  actualLen: number;
  isETM: boolean;
}
interface Ssh2Crypto {
  CIPHER_INFO: Record<string, CipherInfo>;
  MAC_INFO: Record<string, MacInfo>;
  createCipher(config: unknown): object;
  createDecipher(config: unknown): object;
}

/** Which Buffer-valued key fields each ssh2 1.17 *Native class reads per packet, and in which method. */
const KEY_FIELDS: ReadonlyArray<{ cipher: string; mac?: string; direction: 'outbound' | 'inbound'; method: 'encrypt' | 'decrypt'; fields: readonly string[] }> = [
  { cipher: 'aes128-gcm@openssh.com', direction: 'outbound', method: 'encrypt', fields: ['_encKey'] },
  { cipher: 'aes128-gcm@openssh.com', direction: 'inbound', method: 'decrypt', fields: ['_decipherKey'] },
  { cipher: 'chacha20-poly1305@openssh.com', direction: 'outbound', method: 'encrypt', fields: ['_encKeyMain', '_encKeyPktLen'] },
  { cipher: 'chacha20-poly1305@openssh.com', direction: 'inbound', method: 'decrypt', fields: ['_decKeyMain', '_decKeyPktLen'] },
  // AES-CTR (upstream only) with an HMAC: the cipher is created once, the HMAC per packet.
  { cipher: 'aes128-ctr', mac: 'hmac-sha2-256-etm@openssh.com', direction: 'outbound', method: 'encrypt', fields: ['_macKey'] },
  { cipher: 'aes128-ctr', mac: 'hmac-sha2-256-etm@openssh.com', direction: 'inbound', method: 'decrypt', fields: ['_macKey'] },
];

/** Whether ssh2 loaded its native crypto binding (see item 0 of the module comment). */
export function ssh2NativeCrypto(): boolean {
  try {
    return (require('ssh2/lib/protocol/crypto.js') as { bindingAvailable?: boolean }).bindingAvailable === true;
  } catch {
    return false;
  }
}

/** On a patched prototype. */
const PATCHED_CLASS = Symbol('warden.keyObjects.class');
/** On an instance whose key fields are KeyObjects now. */
const CONVERTED = Symbol('warden.keyObjects.converted');
let applied: readonly string[] | undefined;

/**
 * Makes ssh2's JavaScript ciphers pass KeyObjects to Node's crypto (see the module comment).
 * Idempotent; returns the patched classes' names (empty when ssh2's shapes were not recognised).
 */
export function useKeyObjectsInSsh2(): readonly string[] {
  if (applied !== undefined) return applied;
  const names: string[] = [];
  try {
    const crypto = require('ssh2/lib/protocol/crypto.js') as Ssh2Crypto;
    for (const entry of KEY_FIELDS) {
      const info = crypto.CIPHER_INFO[entry.cipher];
      const mac = entry.mac === undefined ? undefined : crypto.MAC_INFO[entry.mac];
      if (info === undefined || (entry.mac !== undefined && mac === undefined)) continue;
      // A throwaway instance of the JavaScript (forceNative) class, only to reach its prototype.
      const side = {
        seqno: 0,
        forceNative: true,
        onWrite: () => {},
        onPayload: () => {},
        ...(entry.direction === 'outbound'
          ? { cipherInfo: info, cipherKey: Buffer.alloc(info.keyLen), cipherIV: Buffer.alloc(info.ivLen) }
          : { decipherInfo: info, decipherKey: Buffer.alloc(info.keyLen), decipherIV: Buffer.alloc(info.ivLen) }),
        ...(mac === undefined ? {} : { macInfo: mac, macKey: Buffer.alloc(mac.len) }),
      };
      const instance = (entry.direction === 'outbound' ? crypto.createCipher({ outbound: side }) : crypto.createDecipher({ inbound: side })) as Record<string, unknown>;
      const proto = Object.getPrototypeOf(instance) as Record<string | symbol, unknown>;
      const original = proto[entry.method];
      if (typeof original !== 'function' || proto[PATCHED_CLASS] === true) continue;
      // Only patch when every field is where we expect it, as a Buffer.
      if (!entry.fields.every((f) => Buffer.isBuffer(instance[f]))) continue;
      const fields = entry.fields;
      proto[entry.method] = function (this: Record<string | symbol, unknown>, ...args: unknown[]): unknown {
        if (this[CONVERTED] !== true) {
          for (const f of fields) {
            const key = this[f];
            if (Buffer.isBuffer(key)) this[f] = createSecretKey(key) satisfies KeyObject;
          }
          this[CONVERTED] = true;
        }
        return (original as (...a: unknown[]) => unknown).apply(this, args);
      };
      proto[PATCHED_CLASS] = true;
      names.push((instance.constructor as { name: string }).name);
    }
  } catch {
    // ssh2's internals moved: leave it alone (slower, still correct).
  }
  applied = names;
  return names;
}

/**
 * Coalesces the writes of one tick into one system call (see the module comment). For sockets
 * that ssh2 writes packets to; call before ssh2 starts writing.
 */
export function coalesceWrites(socket: Socket): void {
  const write = socket.write;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>): boolean {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Socket['write'];
}
