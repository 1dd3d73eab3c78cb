// Just-in-time approvals through the SSH gateway (issue 8): the real OpenSSH client, the plane's
// sshd as target, and the real KubeApprovals against the plane's API server; the approver's
// decision is written to the AccessRequest's status subresource with kubectl.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AccessRequest } from '../../api/types.ts';
import { run, waitUntil } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import { approvalsPlane, type ApprovalsPlane } from '../approval-test-support.ts';
import { sshPolicy, startTestGateway, type TestGateway } from './test-support.ts';

const plane = inject('plane');
const BOSS = 'boss@example.com';

const policy = sshPolicy([
  {
    name: 'ops',
    spec: {
      subjects: [{ kind: 'User', name: 'alice@example.com' }],
      approvers: [{ kind: 'User', name: BOSS }],
      approvalTimeout: '60s',
      rules: [
        { name: 'risky', effect: 'RequireApproval', ssh: { exec: ['.*approve-me.*'] } },
        { name: 'work', effect: 'Allow', ssh: { shell: true, exec: ['.*'] } },
      ],
    },
  },
  {
    name: 'hasty',
    spec: {
      subjects: [{ kind: 'User', name: 'dave@example.com' }],
      approvers: [{ kind: 'User', name: BOSS }],
      approvalTimeout: '2s',
      rules: [
        { name: 'risky', effect: 'RequireApproval', ssh: { exec: ['.*approve-me.*'] } },
        { name: 'work', effect: 'Allow', ssh: { exec: ['.*'] } },
      ],
    },
  },
  {
    name: 'jit',
    spec: {
      subjects: [{ kind: 'User', name: 'carol@example.com' }],
      approvers: [{ kind: 'User', name: BOSS }],
      sessionApproval: { required: true, maxDuration: '8s' },
      rules: [{ name: 'work', effect: 'Allow', ssh: { shell: true, exec: ['.*'] } }],
    },
  },
]);

let gw: TestGateway;
let ap: ApprovalsPlane;
const target = `${plane.ssh.user}@127.0.0.1`;

const pendingFor = (text: string) => (r: AccessRequest): boolean => r.spec.command?.text === text && r.status?.decision === undefined;

beforeAll(async () => {
  ap = await approvalsPlane(plane, 'ssh-approvals');
  gw = await startTestGateway(plane, policy, { approvals: ap.approvals, connection: `${ap.namespace}/ssh-jit` });
});

afterAll(async () => {
  await gw?.close();
  await ap?.close();
});

describe('SSH exec held for approval', () => {
  it('runs the command once approved; its output and exact exit status reach the client', async () => {
    const token = await mintToken(plane.oidc, { user: 'alice' });
    const command = 'echo approve-me-1; exit 3';
    const client = gw.client('ssh', token, ['-p', String(gw.port), target, command]);
    const request = await ap.waitFor('the AccessRequest', pendingFor(command));
    expect(request.spec).toMatchObject({
      requester: { user: 'alice@example.com' },
      connection: 'ssh-jit',
      kind: 'Command',
      command: { protocol: 'ssh', text: command },
      policy: 'ops',
      rule: 'risky',
      approvers: [{ kind: 'User', name: BOSS }],
    });
    const started = Date.now();
    await ap.decide(request.metadata.name ?? '', 'Approved', BOSS, 'go ahead');
    const result = await client;
    const latency = Date.now() - started;
    expect(result.stdout).toBe('approve-me-1\n');
    expect(result.stderr).toContain(`warden: waiting for approval: ${request.metadata.name} (ops/risky)`);
    expect(result.stderr).toContain(`warden: approved by ${BOSS}`);
    expect(result.code).toBe(3);
    console.log(`ssh exec: approval → command output at the client in ${latency} ms`);

    const session = await gw.settled();
    const approvals = session.events.filter((e) => e.k === 'approval');
    expect(approvals).toEqual([
      expect.objectContaining({ request: `${ap.namespace}/${request.metadata.name}`, state: 'pending' }),
      expect.objectContaining({ request: `${ap.namespace}/${request.metadata.name}`, state: 'approved', by: BOSS, reason: 'go ahead' }),
    ]);
    expect(session.events.find((e) => e.k === 'exec')).toMatchObject({ decision: 'approval', rule: 'ops/risky' });
    expect(session.events.find((e) => e.k === 'exit')).toMatchObject({ code: 3 });
  });

  it('refuses a denied command naming who denied it and why; exit status 126', async () => {
    const token = await mintToken(plane.oidc, { user: 'alice' });
    const command = 'echo approve-me-2 > /tmp/warden-should-not-exist';
    const client = gw.client('ssh', token, ['-p', String(gw.port), target, command]);
    const request = await ap.waitFor('the AccessRequest', pendingFor(command));
    await ap.decide(request.metadata.name ?? '', 'Denied', BOSS, 'not on a Sunday');
    const result = await client;
    expect(result.code).toBe(126);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(new RegExp(`was denied by ${BOSS.replace('.', '\\.')} \\(request ${request.metadata.name}: not on a Sunday\\)`));
    const session = await gw.settled();
    expect(session.events.filter((e) => e.k === 'approval').map((e) => ('state' in e ? e.state : ''))).toEqual(['pending', 'denied']);
    expect(session.events.some((e) => e.k === 'exit')).toBe(false);
    const check = await gw.client('ssh', token, ['-p', String(gw.port), target, 'test -e /tmp/warden-should-not-exist; echo $?']);
    expect(check.stdout.trim()).toBe('1');
  });

  it('refuses when nobody decides before the request expires', async () => {
    const token = await mintToken(plane.oidc, { user: 'dave' });
    const command = 'echo approve-me-3';
    const started = Date.now();
    const result = await gw.client('ssh', token, ['-p', String(gw.port), target, command]);
    expect(result.code).toBe(126);
    expect(result.stderr).toMatch(/was not approved in time: request \S+ expired/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000);
    const request = await ap.waitFor('the expired request', (r) => r.spec.command?.text === command);
    expect(request.status?.decision).toBe('Expired');
  });

  it('withdraws the request when the client disconnects while waiting', async () => {
    const token = await mintToken(plane.oidc, { user: 'alice' });
    const command = 'echo approve-me-4';
    const child = spawn('ssh', [...gw.options, '-p', String(gw.port), target, command], { env: await gw.env(token), stdio: 'ignore' });
    const request = await ap.waitFor('the AccessRequest', pendingFor(command));
    child.kill('SIGTERM');
    await waitUntil('the request to be withdrawn', async () => (await ap.get(request.metadata.name ?? '')).status?.decision === 'Withdrawn', { timeoutMs: 10_000 });
    const session = await gw.settled();
    expect(session.events.filter((e) => e.k === 'approval').at(-1)).toMatchObject({ state: 'withdrawn' });
  });
});

describe('SSH interactive shell: a typed line held for approval', () => {
  it('holds the Enter until approved; a denied line is discarded and the session goes on', async () => {
    const token = await mintToken(plane.oidc, { user: 'alice' });
    const socket = `warden-ssh-approval-${process.pid}`;
    const tmux = async (...args: string[]): Promise<string> => (await run('tmux', ['-L', socket, '-f', '/dev/null', ...args])).stdout;
    const screen = async (): Promise<string> => await tmux('capture-pane', '-p', '-t', 's');
    const waitFor = async (what: RegExp, timeoutMs = 15_000): Promise<string> => {
      let last = '';
      await waitUntil(`screen to show ${what}`, async () => what.test((last = await screen())), { timeoutMs }).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}; the screen was:\n${last}`);
      });
      return last;
    };
    try {
      const env = await gw.env(token);
      const statusFile = join(gw.dir, 'shell.status');
      const ssh = ['ssh', ...gw.options, '-p', String(gw.port), '-t', target].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
      const envArgs = ['SSH_ASKPASS', 'SSH_ASKPASS_REQUIRE', 'WARDEN_TOKEN_FILE', 'DISPLAY'].flatMap((k) => ['-e', `${k}=${env[k] ?? ''}`]);
      await tmux('new-session', '-d', '-s', 's', '-x', '220', '-y', '40', ...envArgs, `${ssh}; echo "exit=$?" > ${statusFile}; sleep 600`);
      await waitFor(/[$#]\s*$/m);
      await tmux('send-keys', '-t', 's', '-l', "export PS1='READY> '");
      await tmux('send-keys', '-t', 's', 'Enter');
      await waitFor(/^READY>/m);

      // Approved: runs, and what was typed while waiting runs after it.
      await tmux('send-keys', '-t', 's', '-l', 'echo approve-me-shell-$((40+2))');
      await tmux('send-keys', '-t', 's', 'Enter');
      const first = await ap.waitFor('the typed line request', pendingFor('echo approve-me-shell-$((40+2))'));
      await waitFor(new RegExp(`waiting for approval: ${first.metadata.name}`));
      await tmux('send-keys', '-t', 's', '-l', 'echo typed-while-waiting');
      await tmux('send-keys', '-t', 's', 'Enter');
      await new Promise((r) => setTimeout(r, 300));
      expect(await screen()).not.toMatch(/^approve-me-shell-42$/m);
      await ap.decide(first.metadata.name ?? '', 'Approved', BOSS);
      await waitFor(/^approve-me-shell-42$/m);
      await waitFor(/^typed-while-waiting$/m);

      // Denied: the line never runs; the shell takes the next one.
      await tmux('send-keys', '-t', 's', '-l', 'touch /tmp/approve-me-denied-$$');
      await tmux('send-keys', '-t', 's', 'Enter');
      const second = await ap.waitFor('the second request', pendingFor('touch /tmp/approve-me-denied-$$'));
      await ap.decide(second.metadata.name ?? '', 'Denied', BOSS, 'no');
      await waitFor(/the line was discarded/);
      await tmux('send-keys', '-t', 's', '-l', "ls /tmp | grep -c '^appr''ove-me-denied-'; echo after-$((1+1))");
      await tmux('send-keys', '-t', 's', 'Enter');
      const last = await waitFor(/^after-2$/m);
      expect(last).toMatch(/^0\s*$/m);
      await tmux('send-keys', '-t', 's', '-l', 'exit 5');
      await tmux('send-keys', '-t', 's', 'Enter');
      await waitUntil('ssh to exit', async () => (await readFile(statusFile, 'utf8').catch(() => '')).includes('exit='), { timeoutMs: 10_000 });
      expect((await readFile(statusFile, 'utf8')).trim()).toBe('exit=5');
      const session = await gw.settled();
      expect(session.events.filter((e) => e.k === 'approval').map((e) => ('state' in e ? e.state : ''))).toEqual(['pending', 'approved', 'pending', 'denied']);
    } finally {
      await tmux('kill-server').catch(() => {});
    }
  });
});

describe('SSH session-level JIT', () => {
  it('refuses the connection naming the request, admits once approved, and ends the session when the access expires', async () => {
    const token = await mintToken(plane.oidc, { user: 'carol' });
    const refused = await gw.client('ssh', token, ['-p', String(gw.port), target, 'echo in']);
    expect(refused.code).toBe(255);
    const request = await ap.waitFor('the Session request', (r) => r.spec.kind === 'Session' && r.spec.requester.user === 'carol@example.com');
    const name = request.metadata.name ?? '';
    expect(refused.stderr).toContain(`access to ssh-jit needs approval: request ${name} created; connect again once it is approved`);
    expect(request.spec).toMatchObject({ connection: 'ssh-jit', kind: 'Session', duration: '8s', policy: 'jit' });

    // Connecting again while it waits names the same request.
    const again = await gw.client('ssh', token, ['-p', String(gw.port), target, 'echo in']);
    expect(again.stderr).toContain(`request ${name} is waiting for a decision`);
    expect((await ap.list()).filter((r) => r.spec.kind === 'Session')).toHaveLength(1);

    await ap.decide(name, 'Approved', BOSS, 'for the incident');
    const approvedAt = Date.now();
    const ok = await gw.client('ssh', token, ['-p', String(gw.port), target, 'echo in']);
    expect(ok.stdout).toBe('in\n');
    expect(ok.code).toBe(0);

    // A live session ends when the access does (8 s after the decision).
    const long = await gw.client('ssh', token, ['-p', String(gw.port), target, 'sleep 60; echo too-long']);
    const endedAfter = Date.now() - approvedAt;
    expect(long.stdout).not.toContain('too-long');
    expect(long.stderr).toContain(`the approved access (request ${name}) has expired`);
    expect(endedAfter).toBeGreaterThanOrEqual(7_000);
    expect(endedAfter).toBeLessThan(15_000);
    const session = await gw.settled();
    expect(session.events.at(-1)).toMatchObject({ k: 'session.end', reason: 'approval-expired' });
    console.log(`ssh session JIT: session ended ${endedAfter} ms after approval (access 8 s)`);

    // And afterwards the connection is refused again, with a new request.
    const after = await gw.client('ssh', token, ['-p', String(gw.port), target, 'echo in']);
    expect(after.code).toBe(255);
    expect(after.stderr).toMatch(/needs approval: request \S+ created/);
  });
});
