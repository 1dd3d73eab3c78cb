import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../controller/log.ts';
import type { Authenticator } from './auth.ts';
import { UiServer } from './server.ts';
import type { KubeSource, RecordingSource } from './sources.ts';

// Static files and the unauthenticated edges of the server; the API is tested on the plane (test/ui).
let dir: string;
let server: UiServer;
let port: number;

/** Raw GET (fetch would normalise `..` away before sending). */
const get = async (path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> =>
  await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-ui-static-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>viewer</title>');
  writeFileSync(join(dir, 'assets', 'app-1234.js'), 'console.log(1)');
  writeFileSync(join(tmpdir(), 'warden-ui-outside.txt'), 'secret');
  const unused = {} as never;
  server = new UiServer({ auth: { identify: async () => undefined } as unknown as Authenticator, kube: unused as KubeSource, recordings: unused as RecordingSource, assetsDir: `${dir}/`, log: silentLogger });
  port = await server.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('UiServer static files', () => {
  it('serves hashed assets as immutable and with the security headers', async () => {
    const response = await get('/assets/app-1234.js');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(response.headers['cache-control']).toContain('immutable');
    expect(response.headers['content-security-policy']).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(response.headers['x-content-type-options']).toBe('nosniff');
  });

  it('answers the app for client-side routes and 404 for a missing asset', async () => {
    expect((await get('/sessions/ns/abc')).body).toContain('<title>viewer</title>');
    expect((await get('/assets/nope.js')).status).toBe(404);
  });

  it.each(['/../warden-ui-outside.txt', '/%2e%2e/warden-ui-outside.txt', '/..%2fwarden-ui-outside.txt'])('never serves a file outside the assets directory: %s', async (path) => {
    const response = await get(path);
    expect(response.body).not.toContain('secret');
  });

  it('refuses a malformed URL with 400 and the API without a login with 401', async () => {
    expect((await get('/%E0%A4%A')).status).toBe(400);
    const api = await get('/api/sessions');
    expect(api.status).toBe(401);
    expect(JSON.parse(api.body)).toMatchObject({ error: { code: 'UNAUTHENTICATED' }, login: '/auth/login' });
  });
});
