// Interactive shells through the gateway, driven like a person would: the real ssh client in a
// tmux pane (a real pty), keys sent with tmux send-keys, the screen read with capture-pane.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { run, waitUntil } from '../../../test/plane/proc.ts';
import { mintToken } from '../../../test/plane/tokens.ts';
import { payloadText } from '../../recorder/events.ts';
import { toAsciicast } from './recording.ts';
import { sshPolicy, startTestGateway, type TestGateway } from './test-support.ts';

const plane = inject('plane');

const policy = sshPolicy([
  {
    name: 'ops',
    spec: {
      subjects: [{ kind: 'User', name: 'alice@example.com' }],
      rules: [
        { name: 'no-shutdown', effect: 'Deny', message: 'no shutting down from here', ssh: { exec: ['shutdown.*', 'sudo .*'] } },
        { name: 'work', effect: 'Allow', ssh: { shell: true, exec: ['.*'] } },
      ],
      masking: { rules: [{ name: 'secrets', detectors: ['cloudKey', 'privateKey'] }] },
    },
  },
]);

class Tmux {
  readonly socket: string;
  constructor(socket: string) {
    this.socket = socket;
  }
  async tmux(...args: string[]): Promise<string> {
    return (await run('tmux', ['-L', this.socket, '-f', '/dev/null', ...args])).stdout;
  }
  async screen(): Promise<string> {
    return await this.tmux('capture-pane', '-p', '-t', 's');
  }
  async keys(...keys: string[]): Promise<void> {
    await this.tmux('send-keys', '-t', 's', ...keys);
  }
  async type(text: string): Promise<void> {
    await this.tmux('send-keys', '-t', 's', '-l', text);
  }
  async waitFor(what: string | RegExp, timeoutMs = 15_000): Promise<string> {
    let last = '';
    try {
      await waitUntil(
        `screen to show ${what}`,
        async () => {
          last = await this.screen();
          return typeof what === 'string' ? last.includes(what) : what.test(last);
        },
        { timeoutMs },
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; the screen was:\n${last}`);
    }
    return last;
  }
  async kill(): Promise<void> {
    await this.tmux('kill-server').catch(() => {});
  }
}

describe('SSH gateway: interactive shell in a real pty (tmux)', () => {
  let gw: TestGateway;
  let token: string;
  const tmuxes: Tmux[] = [];
  beforeAll(async () => {
    gw = await startTestGateway(plane, policy);
    token = await mintToken(plane.oidc, { user: 'alice' });
  });
  afterAll(async () => {
    for (const t of tmuxes) await t.kill();
    await gw?.close();
  });

  /** Starts `ssh -t` in a tmux pane of cols×rows; the exit status lands in a file. */
  async function startShell(name: string, cols: number, rows: number): Promise<{ t: Tmux; statusFile: string }> {
    const t = new Tmux(`warden-ssh-${name}-${process.pid}`);
    tmuxes.push(t);
    const env = await gw.env(token);
    const statusFile = join(gw.dir, `${name}.status`);
    const ssh = ['ssh', ...gw.options, '-p', String(gw.port), '-t', `${plane.ssh.user}@127.0.0.1`]
      .map((a) => `'${a.replace(/'/g, "'\\''")}'`)
      .join(' ');
    const envArgs = ['SSH_ASKPASS', 'SSH_ASKPASS_REQUIRE', 'WARDEN_TOKEN_FILE', 'DISPLAY'].flatMap((k) => ['-e', `${k}=${env[k] ?? ''}`]);
    await t.tmux(
      'new-session', '-d', '-s', 's', '-x', String(cols), '-y', String(rows), ...envArgs,
      `${ssh}; echo "exit=$?" > ${statusFile}; sleep 600`,
    );
    await t.tmux('set-option', '-t', 's', 'window-size', 'manual');
    // A predictable prompt; typed into the shell like anything else.
    await t.waitFor(/[$#]\s*$/m);
    await t.type("export PS1='READY> '");
    await t.keys('Enter');
    await t.waitFor('READY> ');
    return { t, statusFile };
  }

  it('types, edits, resizes, interrupts with Ctrl-C and exits with the shell status', async () => {
    const { t, statusFile } = await startShell('basic', 100, 30);
    await t.type('echo hello-$((6*7))');
    await t.keys('Enter');
    await t.waitFor('hello-42');

    // Line editing: the detector's view must match what bash ran.
    await t.type('echo wrong');
    await t.keys('C-u');
    await t.type('echo rigt');
    await t.keys('Left');
    await t.type('h');
    await t.keys('Enter');
    await t.waitFor(/^right$/m);

    await t.tmux('resize-window', '-t', 's', '-x', '120', '-y', '40');
    await t.type('stty size');
    await t.keys('Enter');
    await t.waitFor('40 120');

    await t.type('sleep 30; echo not-interrupted');
    await t.keys('Enter');
    await new Promise((r) => setTimeout(r, 500));
    await t.keys('C-c');
    await t.type('echo after-ctrl-c');
    await t.keys('Enter');
    await t.waitFor(/^after-ctrl-c$/m, 5_000);

    await t.type('exit 7');
    await t.keys('Enter');
    await waitUntil('ssh to exit', async () => (await readFile(statusFile, 'utf8').catch(() => '')).includes('exit='), { timeoutMs: 10_000 });
    expect((await readFile(statusFile, 'utf8')).trim()).toBe('exit=7');
    expect(await t.screen()).not.toMatch(/^not-interrupted$/m);

    await waitUntil('recording closed', async () => gw.sessions.at(-1)?.closed === true, { timeoutMs: 5_000 });
    const events = gw.sessions.at(-1)?.events ?? [];
    const commands = events.filter((e) => e.k === 'command').map((e) => ('command' in e ? e.command : ''));
    expect(commands).toEqual(["export PS1='READY> '", 'echo hello-$((6*7))', 'echo right', 'stty size', 'sleep 30; echo not-interrupted', 'echo after-ctrl-c', 'exit 7']);
    expect(events.filter((e) => e.k === 'term.resize').map((e) => ('cols' in e ? `${e.cols}x${e.rows}` : ''))).toEqual(['100x30', '120x40']);
    expect(events.find((e) => e.k === 'exit')).toMatchObject({ code: 7 });
    const stdin = events.filter((e) => e.k === 'term.stdin').map((e) => ('data' in e ? payloadText(e.data) : '')).join('');
    expect(stdin).toContain('\x03');
    expect(stdin).toContain('stty size\r');
  });

  it('closes the session when a denied command is typed, before the shell runs it', async () => {
    const { t, statusFile } = await startShell('deny', 100, 30);
    await t.type('sudo shutdown now');
    await t.keys('Enter');
    await waitUntil('ssh to exit', async () => (await readFile(statusFile, 'utf8').catch(() => '')).includes('exit='), { timeoutMs: 10_000 });
    const screen = await t.screen();
    expect(screen).toContain('no shutting down from here');
    expect(screen).toContain('closing the session');
    expect((await readFile(statusFile, 'utf8')).trim()).toBe('exit=126');
    await waitUntil('recording closed', async () => gw.sessions.at(-1)?.closed === true, { timeoutMs: 5_000 });
    const events = gw.sessions.at(-1)?.events ?? [];
    expect(events.find((e) => e.k === 'command' && e.command === 'sudo shutdown now')).toMatchObject({ decision: 'deny' });
    expect(events.at(-1)).toMatchObject({ k: 'session.end', reason: 'denied-command' });
  });

  it('masks secrets printed to the terminal, without breaking colours or multi-byte text', async () => {
    const { t } = await startShell('mask', 160, 30);
    const file = `/tmp/warden-ssh-mask-${process.pid}.txt`;
    await writeFile(file, 'aws_access_key_id = AKIAIOSFODNN7EXAMPLE\nnaïve café ✓ \x1b[31mred\x1b[0m\n');
    await run('chmod', ['644', file]);
    await t.type(`cat ${file}`);
    await t.keys('Enter');
    const screen = await t.waitFor('café');
    expect(screen).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(screen).toContain('naïve café ✓ red');
    const events = gw.sessions.at(-1)?.events ?? [];
    const out = events.filter((e) => e.k === 'term.stdout').map((e) => ('data' in e ? payloadText(e.data) : '')).join('');
    expect(out).not.toContain('AKIAIOSFODNN7EXAMPLE');
    expect(out).toContain('\x1b[31mred\x1b[0m');
    // The output that carried the key is marked, for the masking-hits metric; the prompt is not.
    const masked = events.filter((e) => e.k === 'term.stdout' && 'masked' in e && e.masked === true);
    expect(masked.length).toBeGreaterThanOrEqual(1);
    expect(masked.map((e) => ('data' in e ? payloadText(e.data) : '')).join('')).toContain('aws_access_key_id = ');
    expect(events.filter((e) => e.k === 'term.stdout').length).toBeGreaterThan(masked.length);
    await t.type('exit');
    await t.keys('Enter');
  });

  it('replays a recorded session to the same screen (asciicast v2)', async () => {
    const { t } = await startShell('replay', 90, 25);
    await t.type('for i in 1 2 3; do printf "\\033[1;3${i}mline $i \\u00e9\\033[0m\\n"; done; ls -la / | head -5');
    await t.keys('Enter');
    await t.waitFor('line 3');
    await new Promise((r) => setTimeout(r, 400));
    const live = await t.screen();
    const events = [...(gw.sessions.at(-1)?.events ?? [])];
    const cast = toAsciicast(events);
    const [header, ...lines] = cast.trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, width: 90, height: 25 });
    const output = (lines as Array<[number, string, string]>).filter((l) => l[1] === 'o').map((l) => l[2]).join('');
    const replayFile = join(gw.dir, 'replay.out');
    await writeFile(replayFile, output);
    const r = new Tmux(`warden-ssh-replayer-${process.pid}`);
    tmuxes.push(r);
    // Raw mode so the bytes reach the terminal exactly as recorded (no extra CR from onlcr).
    await r.tmux('new-session', '-d', '-s', 's', '-x', '90', '-y', '25', `stty raw -echo; cat ${replayFile}; sleep 600`);
    await waitUntil('replay drawn', async () => (await r.screen()).includes('line 3'), { timeoutMs: 5_000 });
    await new Promise((res) => setTimeout(res, 300));
    expect(await r.screen()).toBe(live);
    await t.type('exit');
    await t.keys('Enter');
  });
});
