// TLS modes towards the upstream, against a local listener that answers SSLRequest like
// PostgreSQL does and then speaks TLS with a throwaway certificate for "localhost".
import { createServer, type Server } from 'node:net';
import { createSecureContext, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TlsMode } from '../../api/types.ts';
import { selfSignedCert } from './testing.ts';
import { openSocket } from './upstream.ts';

let server: Server;
let port: number;
let cert: { cert: string; key: string };
let answer = 'S';

beforeAll(async () => {
  cert = await selfSignedCert();
  const context = createSecureContext(cert);
  server = createServer((socket) => {
    socket.once('data', () => {
      socket.write(answer);
      if (answer !== 'S') return;
      const tls = new TLSSocket(socket, { isServer: true, secureContext: context });
      tls.on('error', () => undefined);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

afterAll(() => {
  server.close();
});

const open = (mode: TlsMode, extra: { ca?: string; serverName?: string } = {}) =>
  openSocket({ host: '127.0.0.1', port, database: 'd', user: 'u', password: 'p', tls: { mode, ...extra }, connectTimeoutMs: 3000 });

describe('upstream TLS', () => {
  it('verify-full connects when the CA and the server name match', async () => {
    const socket = await open('verify-full', { ca: cert.cert, serverName: 'localhost' });
    expect((socket as TLSSocket).authorized).toBe(true);
    socket.destroy();
  });

  it('verify-full refuses a certificate for another name', async () => {
    await expect(open('verify-full', { ca: cert.cert, serverName: 'db.example.com' })).rejects.toMatchObject({ code: 'WARDEN_PG_UPSTREAM_TLS' });
  });

  it('verify-ca accepts the CA whatever the name', async () => {
    const socket = await open('verify-ca', { ca: cert.cert, serverName: 'db.example.com' });
    socket.destroy();
  });

  it('verify-full refuses a certificate from an unknown CA', async () => {
    await expect(open('verify-full', { serverName: 'localhost' })).rejects.toMatchObject({ code: 'WARDEN_PG_UPSTREAM_TLS' });
  });

  it('require encrypts without verifying', async () => {
    const socket = await open('require');
    expect(socket).toBeInstanceOf(TLSSocket);
    socket.destroy();
  });

  it('require refuses a server that declines TLS', async () => {
    answer = 'N';
    try {
      await expect(open('require')).rejects.toMatchObject({ code: 'WARDEN_PG_UPSTREAM_TLS', message: /does not offer TLS/ });
    } finally {
      answer = 'S';
    }
  });
});
