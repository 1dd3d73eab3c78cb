import { once } from 'node:events';
import { createServer, type Socket, connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { coalesceWrites, useKeyObjectsInSsh2 } from './transport.ts';

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
