import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { capture } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import { DENIED_EXIT_STATUS } from './channels.ts';
import { sshPolicy, startTestGateway, type TestGateway } from './test-support.ts';

const plane = inject('plane');

const policy = sshPolicy([
  {
    name: 'ops',
    spec: {
      subjects: [{ kind: 'User', name: 'alice@example.com' }],
      rules: [
        { name: 'no-rm', effect: 'Deny', message: 'deleting files is not allowed here', ssh: { exec: ['rm .*'] } },
        { name: 'work', effect: 'Allow', ssh: { shell: true, exec: ['.*'], sftp: 'read-write' } },
      ],
    },
  },
]);

describe('SSH gateway: authentication, exec and exit codes (real sshd, real ssh)', () => {
  let gw: TestGateway;
  let alice: string;
  beforeAll(async () => {
    gw = await startTestGateway(plane, policy);
    alice = await mintToken(plane.oidc, { user: 'alice' });
  });
  afterAll(async () => {
    await gw?.close();
  });
  const target = (): string => `${plane.ssh.user}@127.0.0.1`;

  it('runs a command and passes stdout, stderr and the exit code through exactly', async () => {
    const r = await gw.client('ssh', alice, [target(), 'echo out; echo err >&2; exit 37']);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err\n');
    expect(r.code).toBe(37);
  });

  it.each([0, 1, 2, 126, 255])('exit status %i reaches the client', async (code) => {
    const r = await gw.client('ssh', alice, [target(), `exit ${code}`]);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code, stderr: '' });
  });

  it('passes stdin through and ends it with EOF', async () => {
    const r = await gw.client('ssh', alice, [target(), 'wc -c'], { input: 'x'.repeat(100_000) });
    expect(r.stdout.trim()).toBe('100000');
    expect(r.code).toBe(0);
  });

  it('reports a command killed by a signal as ssh does', async () => {
    const r = await gw.client('ssh', alice, [target(), 'kill -TERM $$']);
    // OpenSSH exits 255 when the remote command died of a signal; the signal itself is recorded.
    expect(r.code).toBe(255);
    expect((await gw.settled()).events.find((e) => e.k === 'exit')).toMatchObject({ signal: 'SIGTERM' });
  });

  it('refuses a denied command with a clear message and exit 126, before it reaches the target', async () => {
    const r = await gw.client('ssh', alice, [target(), 'rm -rf /tmp/warden-should-not-run']);
    expect(r.code).toBe(DENIED_EXIT_STATUS);
    expect(r.stderr).toContain('deleting files is not allowed here');
    const session = await gw.settled();
    expect(session?.events.some((e) => e.k === 'exec' && e.decision === 'deny')).toBe(true);
  });

  it('records exec commands with their exit codes', async () => {
    await gw.client('ssh', alice, [target(), 'echo recorded; exit 5']);
    const session = await gw.settled();
    const kinds = session?.events.map((e) => e.k);
    expect(kinds?.[0]).toBe('session.start');
    expect(kinds).toContain('auth');
    expect(session?.events.find((e) => e.k === 'exec')).toMatchObject({ command: { text: 'echo recorded; exit 5' }, decision: 'allow' });
    expect(session?.events.find((e) => e.k === 'exit')).toMatchObject({ code: 5 });
    expect(session?.events.find((e) => e.k === 'term.stdout')).toMatchObject({ data: { text: 'recorded\n' } });
    expect(kinds?.at(-1)).toBe('session.end');
    expect(session?.info.identity.user).toBe('alice@example.com');
  });

  it('negotiates modern algorithms only, strict KEX, and ssh -v shows nothing alarming', async () => {
    const r = await gw.client('ssh', alice, ['-v', target(), 'true']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/kex: algorithm: curve25519-sha256/);
    expect(r.stderr).toMatch(/kex: host key algorithm: ssh-ed25519/);
    expect(r.stderr).toMatch(/kex: server->client cipher: (aes256-gcm@openssh.com|aes128-gcm@openssh.com|chacha20-poly1305@openssh.com)/);
    // Strict KEX (the Terrapin fix) shows as the sequence number reset after NEWKEYS.
    expect(r.stderr).toMatch(/resetting send seqnr/);
    expect(r.stderr).not.toMatch(/WARNING|deprecated|insecure|not secure/i);
  });

  it.each(['expired', 'wrong-key', 'alg-none', 'wrong-audience'] as const)('refuses a %s token with the reason', async (variant) => {
    const bad = await mintToken(plane.oidc, { user: 'alice' }, variant);
    const r = await gw.client('ssh', bad, [target(), 'echo should-not-run']);
    expect(r.code).toBe(255);
    expect(r.stdout).not.toContain('should-not-run');
    expect(r.stderr).toMatch(/Warden: access refused|Permission denied/);
    expect(r.stderr).toMatch(/WARDEN_TOKEN_/);
  });

  it('refuses garbage instead of a token, and users no policy admits', async () => {
    const r = await gw.client('ssh', 'not-a-jwt', [target(), 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain('WARDEN_TOKEN_MALFORMED');
    const mallory = await mintToken(plane.oidc, { user: 'mallory' });
    const m = await gw.client('ssh', mallory, [target(), 'true']);
    expect(m.code).toBe(255);
    expect(m.stderr).toMatch(/may not use this connection/);
    expect((await gw.settled()).events.find((e) => e.k === 'auth')).toMatchObject({ ok: false, user: 'mallory@example.com' });
  });

  it('refuses an account other than the one the connection logs in as', async () => {
    const r = await gw.client('ssh', alice, ['root@127.0.0.1', 'true']);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain(`logs in to the target as '${plane.ssh.user}' only`);
  });

  it('survives garbage bytes, half-open connections and abrupt closes on the port', async () => {
    const garbage = async (bytes: Buffer, hold = false): Promise<void> =>
      await new Promise((resolve) => {
        const socket = connect(gw.port, '127.0.0.1', () => {
          socket.write(bytes);
          if (!hold) socket.end();
          else setTimeout(() => socket.destroy(), 200);
        });
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
        socket.resume();
      });
    await Promise.all([
      garbage(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
      garbage(Buffer.alloc(70_000, 0xff)),
      garbage(Buffer.concat([Buffer.from('SSH-2.0-evil\r\n'), Buffer.alloc(5000, 0x41)])),
      garbage(Buffer.concat([Buffer.from('SSH-2.0-evil\r\n'), Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 1, 2])]), true),
      garbage(Buffer.alloc(0), true),
    ]);
    const r = await gw.client('ssh', alice, [target(), 'echo still-alive']);
    expect(r.stdout).toBe('still-alive\n');
  });
});

describe('SSH gateway: target host key pinning', () => {
  it('refuses a target whose host key does not match the pin, clearly', async () => {
    const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPRMGn3fvTbb3Ktu1NYlGvF0H8eJuQqZ6U9E2jUqVjYz';
    const gw = await startTestGateway(plane, policy, { upstream: { hostKeys: [other] } });
    try {
      const alice = await mintToken(plane.oidc, { user: 'alice' });
      const r = await gw.client('ssh', alice, [`${plane.ssh.user}@127.0.0.1`, 'echo should-not-run']);
      expect(r.code).toBe(255);
      expect(r.stdout).not.toContain('should-not-run');
      expect(r.stderr).toContain('HOST KEY MISMATCH');
      expect((await gw.settled()).events.some((e) => e.k === 'error' && e.code === 'WARDEN_SSH_HOST_KEY_MISMATCH')).toBe(true);
    } finally {
      await gw.close();
    }
  });

  it('connects without pins only when the Connection explicitly opts out', async () => {
    const gw = await startTestGateway(plane, policy, { upstream: { hostKeys: [], insecureSkipHostKeyVerification: true } });
    try {
      const alice = await mintToken(plane.oidc, { user: 'alice' });
      const r = await gw.client('ssh', alice, [`${plane.ssh.user}@127.0.0.1`, 'echo ok']);
      expect(r.stdout).toBe('ok\n');
      expect((await gw.settled()).events.find((e) => e.k === 'auth' && e.method === 'target-hostkey')).toMatchObject({
        reason: expect.stringContaining('verification-disabled'),
      });
    } finally {
      await gw.close();
    }
  });
});

describe('SSH gateway: limits, agent forwarding and fail-closed recording', () => {
  it('ends a session at its maximum duration and tells the user', async () => {
    const gw = await startTestGateway(plane, policy, { limits: { maxDurationMs: 1_500 } });
    try {
      const alice = await mintToken(plane.oidc, { user: 'alice' });
      const began = Date.now();
      const r = await gw.client('ssh', alice, [`${plane.ssh.user}@127.0.0.1`, 'sleep 20']);
      expect(Date.now() - began).toBeLessThan(10_000);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('maximum duration (1500ms)');
      expect((await gw.settled()).events.at(-1)).toMatchObject({ k: 'session.end', reason: 'max-duration' });
    } finally {
      await gw.close();
    }
  });

  it('ends an idle session (idle timeout from the policy bundle) and tells the user', async () => {
    const idle = sshPolicy(
      [{ name: 'ops', spec: { subjects: [{ kind: 'User', name: 'alice@example.com' }], rules: [{ name: 'all', effect: 'Allow', ssh: { exec: ['.*'] } }] } }],
      { idleTimeout: '1s' },
    );
    const gw = await startTestGateway(plane, idle);
    try {
      const alice = await mintToken(plane.oidc, { user: 'alice' });
      const r = await gw.client('ssh', alice, [`${plane.ssh.user}@127.0.0.1`, 'sleep 20']);
      expect(r.stderr).toContain('idle for 1s');
      expect((await gw.settled()).events.at(-1)).toMatchObject({ k: 'session.end', reason: 'idle-timeout' });
    } finally {
      await gw.close();
    }
  });

  it('refuses agent forwarding: the target never gets an agent socket', async () => {
    const gw = await startTestGateway(plane, policy);
    try {
      const alice = await mintToken(plane.oidc, { user: 'alice' });
      const env = await gw.env(alice);
      const sshCmd = ['ssh', ...gw.options, '-p', String(gw.port), '-A', `${plane.ssh.user}@127.0.0.1`, 'echo agent=${SSH_AUTH_SOCK:-none}'];
      const r = await capture('ssh-agent', sshCmd, { env });
      expect(r.stdout).toContain('agent=none');
      expect(r.code).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('fails closed when the recording stops accepting events', async () => {
    let appended = 0;
    const gw = await startTestGateway(plane, policy, {
      recorder: () => ({ append: () => ++appended < 6, close: async () => {} }),
    });
    try {
      const alice = await mintToken(plane.oidc, { user: 'alice' });
      const r = await gw.client('ssh', alice, [`${plane.ssh.user}@127.0.0.1`, 'for i in $(seq 1 50); do echo $i; sleep 0.05; done']);
      expect(r.code).not.toBe(0);
      expect(r.stdout).not.toContain('50\n');
      expect(r.stderr).toContain('recording is no longer possible');
    } finally {
      await gw.close();
    }
  });
});
