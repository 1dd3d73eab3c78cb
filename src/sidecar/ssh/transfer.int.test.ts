// File transfer and port forwarding through the gateway with the real scp, sftp and ssh clients.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { canConnect, freePort, waitUntil } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import type { SshPolicy } from './config.ts';
import { sshPolicy, startTestGateway, type TestGateway } from './test-support.ts';

const plane = inject('plane');
const MiB = 1024 * 1024;

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function policyWith(sftp: 'read-write' | 'read-only' | 'none', forwards: Array<{ host: string; port?: number }>): SshPolicy {
  return sshPolicy([
    {
      name: 'files',
      spec: {
        subjects: [{ kind: 'User', name: 'alice@example.com' }],
        rules: [{ name: 'work', effect: 'Allow', ssh: { shell: true, exec: ['.*'], sftp, portForwarding: forwards } }],
      },
    },
  ]);
}

describe('SSH gateway: scp and sftp of a 100 MiB file', () => {
  let gw: TestGateway;
  let token: string;
  const remoteUp = `/tmp/warden-ssh-up-${process.pid}.bin`;
  const remoteSrc = `/tmp/warden-ssh-src-${process.pid}.bin`;
  let local: string;
  let expected: string;
  beforeAll(async () => {
    gw = await startTestGateway(plane, policyWith('read-write', []));
    token = await mintToken(plane.oidc, { user: 'alice' });
    local = join(gw.dir, 'big.bin');
    const data = randomBytes(100 * MiB);
    await writeFile(local, data);
    await writeFile(remoteSrc, data);
    await chmod(remoteSrc, 0o644);
    expected = createHash('sha256').update(data).digest('hex');
  }, 120_000);
  afterAll(async () => {
    await rm(remoteUp, { force: true });
    await rm(remoteSrc, { force: true });
    await gw?.close();
  });

  it('uploads with scp (SFTP protocol, the OpenSSH 9 default) with a matching checksum', async () => {
    const began = performance.now();
    const r = await gw.client('scp', token, ['-q', local, `${plane.ssh.user}@127.0.0.1:${remoteUp}`]);
    const ms = performance.now() - began;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(await sha256(remoteUp)).toBe(expected);
    console.log(`scp upload of 100 MiB through the gateway: ${Math.round(ms)} ms (${((100 * 1000) / ms).toFixed(1)} MiB/s)`);
    const ops = (await gw.settled()).events.filter((e) => e.k === 'sftp');
    expect(ops).toContainEqual(expect.objectContaining({ op: 'write', path: remoteUp, bytes: 100 * MiB, decision: 'allow' }));
  }, 120_000);

  it('downloads with sftp with a matching checksum and records the read', async () => {
    const target = join(gw.dir, 'down.bin');
    const began = performance.now();
    const r = await gw.client('sftp', token, [`${plane.ssh.user}@127.0.0.1`], { input: `get ${remoteSrc} ${target}\nbye\n` });
    const ms = performance.now() - began;
    expect(r.code).toBe(0);
    expect(await sha256(target)).toBe(expected);
    console.log(`sftp download of 100 MiB through the gateway: ${Math.round(ms)} ms (${((100 * 1000) / ms).toFixed(1)} MiB/s)`);
    const ops = (await gw.settled()).events.filter((e) => e.k === 'sftp');
    expect(ops).toContainEqual(expect.objectContaining({ op: 'read', path: remoteSrc, bytes: 100 * MiB }));
  }, 120_000);

  it('copies with legacy scp (-O: scp -t over exec) too', async () => {
    const target = join(gw.dir, 'legacy.bin');
    const r = await gw.client('scp', token, ['-O', '-q', `${plane.ssh.user}@127.0.0.1:${remoteSrc}`, target]);
    expect(r.code).toBe(0);
    expect(await sha256(target)).toBe(expected);
    expect((await stat(target)).size).toBe(100 * MiB);
  }, 120_000);
});

describe('SSH gateway: SFTP policy', () => {
  it('read-only: downloads work, uploads, deletes and renames get SSH_FX_PERMISSION_DENIED with the reason', async () => {
    const gw = await startTestGateway(plane, policyWith('read-only', []));
    const victim = `/tmp/warden-ssh-ro-${process.pid}.txt`;
    try {
      await writeFile(victim, 'keep me\n');
      await chmod(victim, 0o666);
      const token = await mintToken(plane.oidc, { user: 'alice' });
      const local = join(gw.dir, 'small.txt');
      await writeFile(local, 'new content\n');
      const down = join(gw.dir, 'down.txt');
      const r = await gw.client('sftp', token, [`${plane.ssh.user}@127.0.0.1`], {
        input: `get ${victim} ${down}\nput ${local} ${victim}\nrm ${victim}\nrename ${victim} ${victim}.moved\nmkdir /tmp/warden-ro-dir-${process.pid}\nbye\n`,
      });
      // OpenSSH's sftp prints its own text for SSH_FX_PERMISSION_DENIED; the gateway's reason travels
      // in the STATUS message (shown by clients such as WinSCP) and in the recording.
      expect(r.stderr).toContain(`dest open "${victim}": Permission denied`);
      expect(r.stderr).toContain(`remote delete ${victim}: Permission denied`);
      expect((await stat(down)).size).toBe(8);
      // The target never saw the writes.
      expect((await stat(victim)).size).toBe(8);
      const denied = (await gw.settled()).events.filter((e) => e.k === 'sftp' && e.decision === 'deny').map((e) => ('op' in e ? e.op : ''));
      expect(denied).toEqual(expect.arrayContaining(['open', 'remove', 'mkdir']));
    } finally {
      await rm(victim, { force: true });
      await gw.close();
    }
  });

  it('off: the SFTP subsystem is refused with a message', async () => {
    const gw = await startTestGateway(plane, policyWith('none', []));
    try {
      const token = await mintToken(plane.oidc, { user: 'alice' });
      const r = await gw.client('sftp', token, [`${plane.ssh.user}@127.0.0.1`], { input: 'ls\nbye\n' });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('warden: SFTP denied');
    } finally {
      await gw.close();
    }
  });
});

describe('SSH gateway: port forwarding', () => {
  let gw: TestGateway;
  let token: string;
  beforeAll(async () => {
    gw = await startTestGateway(plane, policyWith('none', [{ host: '127.0.0.1', port: plane.nginx.port }]));
    token = await mintToken(plane.oidc, { user: 'alice' });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('forwards -L to an allowed HTTP server and records the connection with its bytes', async () => {
    const localPort = await freePort();
    const child = spawn(
      'ssh',
      [...gw.options, '-p', String(gw.port), '-N', '-o', 'ExitOnForwardFailure=yes', '-L', `${localPort}:127.0.0.1:${plane.nginx.port}`, `${plane.ssh.user}@127.0.0.1`],
      { env: await gw.env(token), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    try {
      await waitUntil('the -L listener', () => canConnect('127.0.0.1', localPort), { timeoutMs: 15_000 });
      const responses = await Promise.all([1, 2, 3].map(() => fetch(`http://127.0.0.1:${localPort}/`, { headers: { connection: 'close' } })));
      for (const response of responses) {
        expect(response.status).toBeLessThan(500);
        await response.arrayBuffer();
      }
      await waitUntil(
        'forward events',
        async () => (gw.sessions.at(-1)?.events ?? []).some((e) => e.k === 'forward' && e.bytesIn > 0),
        { timeoutMs: 10_000 },
      );
      // The readiness probe above made one empty connection; the HTTP requests carried bytes.
      const forwards = gw.sessions.at(-1)?.events.filter((e) => e.k === 'forward') ?? [];
      expect(forwards[0]).toMatchObject({ direction: 'local', host: '127.0.0.1', port: plane.nginx.port, decision: 'allow' });
      expect(forwards.some((f) => 'bytesIn' in f && f.bytesIn > 0 && f.bytesOut > 0)).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('refuses -L / -W to a destination the policy does not allow, saying why', async () => {
    const r = await gw.client('ssh', token, ['-W', `127.0.0.1:${plane.ssh.port}`, `${plane.ssh.user}@127.0.0.1`]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('administratively prohibited');
    expect(r.stderr).toContain(`warden: port forwarding to 127.0.0.1:${plane.ssh.port} denied`);
    expect((await gw.settled()).events.find((e) => e.k === 'forward')).toMatchObject({ decision: 'deny', port: plane.ssh.port });
  });

  it('refuses -R unless policy allows it', async () => {
    const r = await gw.client('ssh', token, ['-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:9', `${plane.ssh.user}@127.0.0.1`, 'sleep 5']);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/remote port forwarding failed/);
  });

  it('forwards -R when allowed: the target connects back to a server on the client side', async () => {
    const engine = policyWith('none', []);
    const allowRemote: SshPolicy = {
      ...engine,
      admission: (s) => engine.admission(s),
      sessionLimits: (s) => engine.sessionLimits(s),
      decide: (s, c) => (c.kind === 'forward' && c.direction === 'remote' ? { effect: 'Allow', reason: 'test allows -R' } : engine.decide(s, c)),
    };
    const rgw = await startTestGateway(plane, allowRemote);
    const server = createServer((_req, res) => res.end('from-the-client-side'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const clientPort = (server.address() as AddressInfo).port;
    const remotePort = await freePort();
    try {
      const r = await rgw.client('ssh', token, [
        '-o',
        'ExitOnForwardFailure=yes',
        '-R',
        `${remotePort}:127.0.0.1:${clientPort}`,
        `${plane.ssh.user}@127.0.0.1`,
        `sleep 1; exec 3<>/dev/tcp/127.0.0.1/${remotePort}; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3`,
      ]);
      expect(r.stdout).toContain('from-the-client-side');
      expect(r.code).toBe(0);
      expect((await rgw.settled()).events.find((e) => e.k === 'forward')).toMatchObject({ direction: 'remote', decision: 'allow' });
    } finally {
      server.close();
      await rgw.close();
    }
  });
});
