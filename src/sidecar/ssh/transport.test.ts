import { once } from 'node:events';
import { createServer, type Socket, connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { coalesceWrites, ssh2NativeCrypto, useKeyObjectsInSsh2 } from './transport.ts';

const require = createRequire(import.meta.url);

describe('ssh2 native crypto binding', () => {
  it('is built for this Node and chosen for the gateway\'s ciphers (else: `node scripts/build-native.ts`, docs/adr/0013)', () => {
    expect(ssh2NativeCrypto()).toBe(true);
    const crypto = require('ssh2/lib/protocol/crypto.js') as {
      CIPHER_INFO: Record<string, { keyLen: number; ivLen: number }>;
      createCipher(config: unknown): object;
    };
    for (const name of ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com']) {
      const info = crypto.CIPHER_INFO[name];
      if (info === undefined) throw new Error(`ssh2 lost ${name}`);
      const cipher = crypto.createCipher({
        outbound: { seqno: 0, onWrite: () => {}, cipherInfo: info, cipherKey: Buffer.alloc(info.keyLen), cipherIV: Buffer.alloc(info.ivLen) },
      });
      expect(cipher.constructor.name, name).toMatch(/Binding$/);
    }
  });
});

describe('useKeyObjectsInSsh2', () => {
  it("patches every JavaScript cipher class of ssh2 1.17 (fails when an ssh2 upgrade moves them: re-check transport.ts)", () => {
    expect([...useKeyObjectsInSsh2()].sort()).toEqual([
      'AESGCMCipherNative',
      'AESGCMDecipherNative',
      'ChaChaPolyCipherNative',
      'ChaChaPolyDecipherNative',
      'GenericCipherNative',
      'GenericDecipherNative',
    ]);
    // Idempotent.
    expect(useKeyObjectsInSsh2()).toHaveLength(6);
  });
});

describe('coalesceWrites', () => {
  it('delivers every write of a tick, in order, and later ticks after them', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect((server.address() as { port: number }).port, '127.0.0.1');
    await once(client, 'connect');
    const [peer] = await accepted;
    const received: Buffer[] = [];
    peer.on('data', (d: Buffer) => received.push(d));
    coalesceWrites(client);
    const expected: string[] = [];
    for (let tick = 0; tick < 5; tick++) {
      for (let i = 0; i < 50; i++) {
        const piece = `${tick}:${i};`;
        expected.push(piece);
        client.write(piece);
      }
      // While corked, nothing of this tick has been handed to the kernel yet.
      expect(client.writableCorked).toBe(1);
      await new Promise((resolve) => setImmediate(resolve));
      expect(client.writableCorked).toBe(0);
    }
    client.end();
    await once(peer, 'end');
    expect(Buffer.concat(received).toString()).toBe(expected.join(''));
    peer.destroy();
    server.close();
  });
});
