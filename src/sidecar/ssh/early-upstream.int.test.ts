// The target connection opened while the caller authenticates (gateway.ts #connectEarly): the
// target must see nothing about the account — no user name, no credential — before the caller is
// authenticated and admitted. The target here is an ssh2 server that logs what it receives; the
// client is the real OpenSSH ssh.
import type { AddressInfo } from 'node:net';
import ssh2, { type AuthContext } from 'ssh2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitUntil } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import { generateHostKey } from './gateway.ts';
import { sshPolicy, startTestGateway, type TestGateway } from './test-support.ts';

const plane = inject('plane');

const policy = sshPolicy([
  { name: 'ops', spec: { subjects: [{ kind: 'User', name: 'alice@example.com' }], rules: [{ name: 'work', effect: 'Allow', ssh: { exec: ['.*'] } }] } },
]);

interface TargetLog {
  connections: number;
  closed: number;
  /** Authentication requests, with whether the gateway had recorded the caller as admitted by then. */
  auths: Array<{ method: string; username: string; callerAdmitted: boolean }>;
}

describe('SSH gateway: the target connection opened during authentication', () => {
  let gw: TestGateway;
  let target: InstanceType<typeof ssh2.Server>;
  const log: TargetLog = { connections: 0, closed: 0, auths: [] };
  const admittedSoFar = (): boolean => gw.sessions.some((s) => s.events.some((e) => e.k === 'auth' && e.ok === true && e.method === 'oidc'));

  beforeAll(async () => {
    const hostKey = generateHostKey();
    const parsed = ssh2.utils.parseKey(hostKey);
    if (parsed instanceof Error) throw parsed;
    target = new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
      log.connections += 1;
      client.on('close', () => void (log.closed += 1));
      client.on('error', () => {});
      client.on('authentication', (ctx: AuthContext) => {
        log.auths.push({ method: ctx.method, username: ctx.username, callerAdmitted: admittedSoFar() });
        ctx.accept();
      });
      client.on('ready', () => {
        client.on('session', (accept) => {
          const session = accept();
          session.on('exec', (acceptExec) => {
            const channel = acceptExec();
            channel.write('from-target\n');
            channel.exit(0);
            channel.end();
          });
        });
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const { port } = target.address() as AddressInfo;
    gw = await startTestGateway(plane, policy, {
      upstream: { host: '127.0.0.1', port, hostKeys: [`ssh-ed25519 ${parsed.getPublicSSH().toString('base64')}`] },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await new Promise<void>((resolve) => (target ? target.close(() => resolve()) : resolve()));
  });

  it('sends the target nothing about the account for a refused caller, and closes it when the caller leaves', async () => {
    const before = { ...log, auths: log.auths.length };
    const garbage = await gw.client('ssh', 'not-a-jwt', [`${plane.ssh.user}@127.0.0.1`, 'true']);
    expect(garbage.code).toBe(255);
    const mallory = await mintToken(plane.oidc, { user: 'mallory' });
    const refused = await gw.client('ssh', mallory, [`${plane.ssh.user}@127.0.0.1`, 'true']);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toMatch(/may not use this connection/);
    // Both callers made the gateway open a target connection (key exchange only) ...
    expect(log.connections - before.connections).toBe(2);
    // ... which never got an authentication request, and was closed.
    expect(log.auths.length - before.auths).toBe(0);
    await waitUntil('the early target connections to close', async () => log.closed - before.closed === 2, { timeoutMs: 10_000 });
  });

  it('logs in to the target only after the caller was admitted, on one connection, without a `none` probe', async () => {
    const before = { connections: log.connections, auths: log.auths.length };
    const alice = await mintToken(plane.oidc, { user: 'alice' });
    const r = await gw.client('ssh', alice, [`${plane.ssh.user}@127.0.0.1`, 'echo hi']);
    expect(r.stdout).toBe('from-target\n');
    expect(r, r.stderr).toMatchObject({ code: 0 });
    expect(log.connections - before.connections).toBe(1);
    // The key check and the signed request: both publickey, both after admission.
    const auths = log.auths.slice(before.auths);
    expect(auths.length).toBeGreaterThan(0);
    for (const auth of auths) expect(auth).toEqual({ method: 'publickey', username: plane.ssh.user, callerAdmitted: true });
  });
});
