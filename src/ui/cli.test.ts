import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../cli/command-kit.ts';
import { silentLogger } from '../controller/log.ts';
import { addUiOptions, checkUiSettings, CONTROLLER_UI_STYLE, parseListen, UI_DEFAULTS, type UiSettings, uiSettingsOf } from './cli.ts';
import { startUi } from './start.ts';

const settings = (over: Partial<UiSettings> = {}): UiSettings => ({ ...UI_DEFAULTS, issuer: 'https://idp.example.com', ...over });

describe('parseListen', () => {
  it.each([
    ['127.0.0.1:8080', '127.0.0.1', 8080],
    ['0.0.0.0:80', '0.0.0.0', 80],
    ['[::1]:9000', '::1', 9000],
    [':8080', '127.0.0.1', 8080],
    ['8080', '127.0.0.1', 8080],
    ['localhost:0', 'localhost', 0],
  ])('reads %s as host %s port %i', (value, host, port) => {
    expect(parseListen(value)).toEqual({ host, port });
  });

  it.each(['abc', '1.2.3.4:65536', 'host:', '::1:80', ''])('refuses %j, naming the flag it came from', (value) => {
    expect(() => parseListen(value, '--ui-listen')).toThrow(new UsageError(`--ui-listen must be host:port or a port, not ${value}`));
  });
});

describe('checkUiSettings', () => {
  it.each([
    [{ listen: '127.0.0.1:8080' }, 'http://127.0.0.1:8080/auth/callback'],
    [{ listen: '0.0.0.0:8080' }, 'http://localhost:8080/auth/callback'],
    [{ listen: '[::]:8080' }, 'http://localhost:8080/auth/callback'],
    [{ listen: '[::1]:8080' }, 'http://[::1]:8080/auth/callback'],
    [{ listen: '0.0.0.0:8080', publicUrl: 'https://warden.example.com/' }, 'https://warden.example.com/auth/callback'],
    [{ publicUrl: 'https://example.com/warden' }, 'https://example.com/warden/auth/callback'],
  ])('derives the redirect URI from %j', (over, redirectUri) => {
    expect(checkUiSettings(settings(over), {}).redirectUri).toBe(redirectUri);
  });

  it('takes the issuer from WARDEN_OIDC_ISSUER when no flag gives it', () => {
    expect(checkUiSettings(settings({ issuer: undefined }), { WARDEN_OIDC_ISSUER: 'https://env.example.com' }).issuer).toBe('https://env.example.com');
  });

  it.each([
    ['no issuer', { issuer: undefined }, 'give the OIDC issuer: --issuer <url> (the one your Connections trust)'],
    ['an issuer that is no URL', { issuer: 'idp.example.com' }, '--issuer must be an http(s) URL, not "idp.example.com"'],
    ['a public URL that is not http(s)', { publicUrl: 'ftp://x' }, '--public-url must be an http(s) URL, not "ftp://x"'],
    ['a public URL with a query', { publicUrl: 'https://x/?a=1' }, '--public-url must not have a query or fragment: https://x/?a=1'],
    ['a bad listen address', { listen: 'nowhere' }, '--listen must be host:port or a port, not nowhere'],
  ])('refuses %s with one line naming the option', (_, over, message) => {
    expect(() => checkUiSettings(settings(over), {})).toThrow(new UsageError(message));
  });

  it('names the controller spelling of an option, with its environment variable', () => {
    expect(() => checkUiSettings(settings({ publicUrl: 'nope' }), {}, CONTROLLER_UI_STYLE)).toThrow(
      new UsageError('--ui-public-url (env WARDEN_UI_PUBLIC_URL) must be an http(s) URL, not "nope"'),
    );
  });
});

describe('addUiOptions and uiSettingsOf', () => {
  const parse = (style: Parameters<typeof addUiOptions>[1], args: string[]): Record<string, unknown> => {
    const command = addUiOptions(new Command('x').exitOverride(), style);
    command.parse(args, { from: 'user' });
    return command.opts();
  };

  it('spells the options of `warden ui` plainly, with its defaults', () => {
    const opts = parse({ defaults: UI_DEFAULTS }, ['--issuer', 'https://idp', '--public-url', 'https://ui']);
    expect(opts).toEqual({ ...UI_DEFAULTS, issuer: 'https://idp', publicUrl: 'https://ui' });
    expect(uiSettingsOf(opts)).toEqual({ ...UI_DEFAULTS, issuer: 'https://idp', publicUrl: 'https://ui' });
  });

  it('spells them --ui-* for the controller and reads them back without the prefix', () => {
    const opts = parse(CONTROLLER_UI_STYLE, ['--ui-listen', ':9', '--ui-client-id', 'viewer', '--ui-client-secret-file', '/s', '--ui-groups-claim', 'roles']);
    expect(opts).toEqual({ uiListen: ':9', uiClientId: 'viewer', uiClientSecretFile: '/s', uiGroupsClaim: 'roles' });
    expect(uiSettingsOf(opts, CONTROLLER_UI_STYLE)).toEqual({ listen: ':9', clientId: 'viewer', clientSecretFile: '/s', groupsClaim: 'roles' });
  });

  it('drops empty values (a settings ConfigMap ships blanks)', () => {
    expect(uiSettingsOf({ uiIssuer: '', uiPublicUrl: '  ', uiListen: ':1' }, CONTROLLER_UI_STYLE)).toEqual({ listen: ':1' });
  });
});

describe('startUi', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-ui-cli-'));
  const assets = join(dir, 'assets');
  const secret = join(dir, 'empty-secret');
  writeFileSync(secret, '\n');
  // A prebuilt front end is a directory with index.html; startUi only checks that it is there.
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>viewer</title>');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1' }],
    users: [{ name: 'u', token: 'x' }],
    contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
    currentContext: 'c',
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves once every setting is good: /healthz answers, /api refuses without a login', async () => {
    const ui = await startUi({ ...settings({ listen: '127.0.0.1:0', assets: dir }) }, { kubeConfig, log: silentLogger, env: {} });
    try {
      expect(ui.url).toBe(`http://127.0.0.1:${ui.port}`);
      expect((await fetch(`${ui.url}/healthz`)).status).toBe(200);
      const me = await fetch(`${ui.url}/api/me`);
      expect(me.status).toBe(401);
      expect(await me.json()).toMatchObject({ error: { code: 'UNAUTHENTICATED' }, login: '/auth/login' });
    } finally {
      await ui.close();
    }
  });

  it.each([
    ['front-end assets that are not there', { assets }, /^--ui-assets \(env WARDEN_UI_ASSETS\): no built web viewer in .*assets \(index\.html missing\)$/],
    ['a client secret file that cannot be read', { clientSecretFile: join(dir, 'missing') }, /^--ui-client-secret-file \(env WARDEN_UI_CLIENT_SECRET_FILE\): cannot read .*missing: ENOENT$/],
    ['an empty client secret file', { clientSecretFile: secret }, /^--ui-client-secret-file \(env WARDEN_UI_CLIENT_SECRET_FILE\): .*empty-secret is empty$/],
  ])('refuses %s before it listens', async (_, over, message) => {
    const start = startUi({ ...settings({ listen: '127.0.0.1:0', assets: dir, ...over }) }, { kubeConfig, log: silentLogger, env: {}, style: CONTROLLER_UI_STYLE });
    await expect(start).rejects.toThrow(UsageError);
    await expect(start).rejects.toThrow(message);
  });

  it('refuses a port that is taken, with one line naming it', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      await expect(startUi({ ...settings({ listen: `127.0.0.1:${port}`, assets: dir }) }, { kubeConfig, log: silentLogger, env: {} })).rejects.toThrow(
        new UsageError(`--listen: cannot listen on 127.0.0.1:${port}: EADDRINUSE`),
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
