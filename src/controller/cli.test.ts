import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../cli/command-kit.ts';
import type { UiOptions } from '../ui/cli.ts';
import { CONTROLLER_UI_LISTEN, type ControllerFlags, controllerUiOptions, parseUiEnabled, registerControllerCommand } from './cli.ts';

// Every variable the controller command reads, blank unless a test sets it.
const ENV = ['WARDEN_UI', 'WARDEN_UI_LISTEN', 'WARDEN_UI_ISSUER', 'WARDEN_UI_CLIENT_ID', 'WARDEN_UI_CLIENT_SECRET_FILE', 'WARDEN_UI_PUBLIC_URL', 'WARDEN_UI_USERNAME_CLAIM', 'WARDEN_UI_GROUPS_CLAIM', 'WARDEN_UI_ASSETS', 'WARDEN_OIDC_ISSUER', 'WARDEN_OIDC_AUDIENCE', 'WARDEN_OIDC_USERNAME_CLAIM', 'WARDEN_OIDC_GROUPS_CLAIM', 'WARDEN_OIDC_JWKS_URI'];

/** Parses `warden controller <args>` with the real command definition, without running it. */
async function uiOptions(args: string[], env: Record<string, string> = {}): Promise<UiOptions | undefined> {
  for (const name of ENV) vi.stubEnv(name, env[name] ?? '');
  const program = new Command('warden').exitOverride();
  const command = registerControllerCommand(program).exitOverride();
  let flags: ControllerFlags | undefined;
  command.action((parsed: ControllerFlags) => {
    flags = parsed;
  });
  await program.parseAsync(['controller', ...args], { from: 'user' });
  return controllerUiOptions(flags as ControllerFlags, process.env);
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('parseUiEnabled (WARDEN_UI)', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['false', false],
    ['0', false],
    ['true', true],
    ['TRUE', true],
    ['1', true],
  ])('reads %j as %s', (value, enabled) => {
    expect(parseUiEnabled(value)).toBe(enabled);
  });

  it.each(['yes', 'on', 'ture'])('refuses %j rather than guess', (value) => {
    expect(() => parseUiEnabled(value)).toThrow(new UsageError(`WARDEN_UI must be true or false, not "${value}"`));
  });
});

describe('warden controller: the web viewer in the controller process', () => {
  it('is off by default, even with the image setting WARDEN_UI_ASSETS and UI settings present', async () => {
    expect(await uiOptions([], { WARDEN_UI_ASSETS: '/app/ui', WARDEN_UI_ISSUER: 'https://idp.example.com' })).toBeUndefined();
    expect(await uiOptions([], { WARDEN_UI: 'false', WARDEN_UI_ISSUER: 'https://idp.example.com' })).toBeUndefined();
  });

  it('turns on with WARDEN_UI=true and takes its settings from WARDEN_UI_*', async () => {
    const options = await uiOptions(['-n', 'payments', '--kubeconfig', '/k'], {
      WARDEN_UI: 'true',
      WARDEN_UI_ISSUER: 'https://idp.example.com',
      WARDEN_UI_CLIENT_ID: 'warden-ui',
      WARDEN_UI_PUBLIC_URL: 'https://warden.example.com',
      WARDEN_UI_USERNAME_CLAIM: 'preferred_username',
      WARDEN_UI_ASSETS: '/app/ui',
      WARDEN_UI_LISTEN: '',
    });
    expect(options).toEqual({
      listen: CONTROLLER_UI_LISTEN,
      issuer: 'https://idp.example.com',
      clientId: 'warden-ui',
      publicUrl: 'https://warden.example.com',
      usernameClaim: 'preferred_username',
      groupsClaim: 'groups',
      assets: '/app/ui',
      namespace: 'payments',
      kubeconfig: '/k',
    });
  });

  it("turns on with --ui and falls back to the gateways' OIDC settings", async () => {
    const options = await uiOptions(['--ui', '--oidc-issuer', 'https://idp.example.com', '--oidc-audience', 'warden-gw', '--oidc-username-claim', 'sub', '--oidc-groups-claim', 'roles']);
    expect(options).toEqual({ listen: CONTROLLER_UI_LISTEN, issuer: 'https://idp.example.com', clientId: 'warden-gw', usernameClaim: 'sub', groupsClaim: 'roles' });
  });

  it("uses the gateways' JWKS URL only for the gateways' issuer", async () => {
    const gateways = ['--ui', '--oidc-issuer', 'https://idp.example.com', '--oidc-audience', 'gw', '--oidc-jwks-uri', 'https://idp.example.com/keys'];
    expect(await uiOptions(gateways)).toMatchObject({ jwksUri: 'https://idp.example.com/keys' });
    expect(await uiOptions([...gateways, '--ui-issuer', 'https://other.example.com'])).not.toHaveProperty('jwksUri');
  });

  it('prefers a flag over its environment variable, and the UI setting over the gateway one', async () => {
    const options = await uiOptions(['--ui', '--ui-listen', '127.0.0.1:9999', '--ui-issuer', 'https://ui-idp.example.com'], {
      WARDEN_UI_LISTEN: '0.0.0.0:1',
      WARDEN_OIDC_ISSUER: 'https://gw-idp.example.com',
      WARDEN_OIDC_AUDIENCE: 'gw',
    });
    expect(options).toMatchObject({ listen: '127.0.0.1:9999', issuer: 'https://ui-idp.example.com', clientId: 'gw' });
  });

  it.each([
    ['WARDEN_UI is not a boolean', [], { WARDEN_UI: 'yes' }, 'WARDEN_UI must be true or false, not "yes"'],
    ['no issuer anywhere', ['--ui'], {}, "--ui needs the OIDC issuer: --ui-issuer <url> (env WARDEN_UI_ISSUER), or the controller's --oidc-issuer (env WARDEN_OIDC_ISSUER)"],
    ['a listen address that is not one', ['--ui', '--ui-issuer', 'https://idp'], { WARDEN_UI_LISTEN: 'everywhere' }, '--ui-listen (env WARDEN_UI_LISTEN) must be host:port or a port, not everywhere'],
    ['a public URL that is not http(s)', [], { WARDEN_UI: 'true', WARDEN_UI_ISSUER: 'https://idp', WARDEN_UI_PUBLIC_URL: 'warden.example.com' }, '--ui-public-url (env WARDEN_UI_PUBLIC_URL) must be an http(s) URL, not "warden.example.com"'],
    ['the health port', ['--ui', '--ui-issuer', 'https://idp', '--health-port', '8081', '--ui-listen', '0.0.0.0:8081'], {}, "--ui-listen (env WARDEN_UI_LISTEN): port 8081 is the controller's --health-port; choose another"],
    ['an issuer that is not a URL', ['--ui', '--ui-issuer', 'idp'], {}, '--ui-issuer (env WARDEN_UI_ISSUER) must be an http(s) URL, not "idp"'],
  ])('refuses %s with one line naming the setting', async (_, args, env, message) => {
    await expect(uiOptions(args, env)).rejects.toThrow(new UsageError(message));
  });
});
