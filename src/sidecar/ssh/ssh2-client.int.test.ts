// The gateway driven by the ssh2 client library, for what OpenSSH's client cannot send on demand:
// signal requests, and window changes sent before the target channel is open.
import { Client, type ClientChannel } from 'ssh2';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { mintToken } from '../../../test/plane/tokens.ts';
import { parsePinnedHostKey } from './host-keys.ts';
import { sshPolicy, startTestGateway, type TestGateway } from './test-support.ts';

const plane = inject('plane');

describe('SSH gateway with the ssh2 client library', () => {
  let gw: TestGateway;
  let client: Client;
  beforeAll(async () => {
    gw = await startTestGateway(
      plane,
      sshPolicy([
        { name: 'ops', spec: { subjects: [{ kind: 'User', name: 'alice@example.com' }], rules: [{ name: 'all', effect: 'Allow', ssh: { shell: true, exec: ['.*'] } }] } },
      ]),
    );
    const token = await mintToken(plane.oidc, { user: 'alice' });
    const pin = parsePinnedHostKey(gw.publicKey);
    client = new Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve).once('error', reject);
      client.connect({
        host: '127.0.0.1',
        port: gw.port,
        username: plane.ssh.user,
        password: token,
        hostVerifier: (key: Buffer) => key.equals(pin.blob),
      });
    });
  });
  afterAll(async () => {
    client?.end();
    await gw?.close();
  });

  function collect(stream: ClientChannel): Promise<{ out: string; code: number | null; signal?: string }> {
    return new Promise((resolve) => {
      let out = '';
      let code: number | null = null;
      let signal: string | undefined;
      stream.on('data', (d: Buffer) => {
        out += d.toString();
      });
      stream.stderr.resume();
      stream.on('exit', (c: number | null, s?: string) => {
        code = c;
        signal = s;
      });
      stream.on('close', () => resolve({ out, code, ...(signal ? { signal } : {}) }));
    });
  }

  it('relays a signal request to the target process', async () => {
    const stream = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec('trap "echo got-term; exit 3" TERM; echo started; sleep 30 & wait', (e, s) => (e ? reject(e) : resolve(s))),
    );
    const result = collect(stream);
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.signal('TERM');
    expect(await result).toMatchObject({ out: 'started\ngot-term\n', code: 3 });
  });

  it('queues a window change sent before the target channel is open', async () => {
    const stream = await new Promise<ClientChannel>((resolve, reject) =>
      client.exec('sleep 1; stty size', { pty: { rows: 24, cols: 80, term: 'xterm' } }, (e, s) => (e ? reject(e) : resolve(s))),
    );
    // Sent at once: the gateway is most likely still opening the target channel.
    stream.setWindow(33, 111, 0, 0);
    const result = await collect(stream);
    expect(result.out.trim()).toBe('33 111');
    expect(result.code).toBe(0);
  });

  it('reports a signal death as exit-signal', async () => {
    const stream = await new Promise<ClientChannel>((resolve, reject) => client.exec('kill -KILL $$', (e, s) => (e ? reject(e) : resolve(s))));
    expect(await collect(stream)).toMatchObject({ code: null, signal: 'SIGKILL' });
  });
});
