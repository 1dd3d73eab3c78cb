// `warden ui`: the read-only web viewer over Session objects and recordings (docs/ui.md).
// `warden controller --ui` runs the same viewer in the controller process; both use the option
// table (addUiOptions) and the checks (checkUiSettings) below, and the start-up (startUi) of
// start.ts, which loads the servers and clients and is imported inside the commands' actions.

import { Command, Option } from 'commander';
import { type AccessOptions, addAccessOptions, runCommand, UsageError, usageExitCode } from '../cli/command-kit.ts';

/** The viewer's own settings; API server and recording access come from AccessOptions. */
export interface UiSettings {
  listen: string;
  issuer?: string;
  clientId: string;
  clientSecretFile?: string;
  publicUrl?: string;
  usernameClaim: string;
  groupsClaim: string;
  assets?: string;
}

export interface UiOptions extends AccessOptions, UiSettings {
  /** A local directory store instead of the buckets (`warden dev`); `warden ui` only. */
  recordings?: string;
  /** JWKS URL for bearer tokens when the issuer has no discovery (the controller's --oidc-jwks-uri). */
  jwksUri?: string;
}

export const UI_DEFAULTS = { listen: '127.0.0.1:8080', clientId: 'warden', usernameClaim: 'email', groupsClaim: 'groups' } as const;

interface UiOptionSpec {
  readonly key: keyof UiSettings;
  readonly flag: string;
  readonly arg: string;
  readonly description: string;
}

/** The viewer's options, in --help order. */
const UI_OPTION_SPECS: readonly UiOptionSpec[] = [
  { key: 'listen', flag: 'listen', arg: '<host:port>', description: 'address to serve on' },
  { key: 'issuer', flag: 'issuer', arg: '<url>', description: 'OIDC issuer URL' },
  { key: 'clientId', flag: 'client-id', arg: '<id>', description: 'OIDC client id; also the audience bearer tokens must carry' },
  { key: 'clientSecretFile', flag: 'client-secret-file', arg: '<file>', description: 'client secret for a confidential OIDC client (public clients use PKCE alone)' },
  { key: 'publicUrl', flag: 'public-url', arg: '<url>', description: 'URL browsers reach the viewer at, for the OIDC redirect (default http://<listen>, localhost for 0.0.0.0)' },
  { key: 'usernameClaim', flag: 'username-claim', arg: '<claim>', description: 'token claim naming the user' },
  { key: 'groupsClaim', flag: 'groups-claim', arg: '<claim>', description: "token claim with the user's groups" },
  { key: 'assets', flag: 'assets', arg: '<dir>', description: 'prebuilt front-end directory; default: build on first start' },
];

/** How a command spells the viewer's options. */
export interface UiOptionStyle {
  /** Flag prefix: `ui-` gives --ui-listen, read back as `uiListen`. */
  readonly prefix?: string;
  /** Environment prefix commander reads when the flag is absent: `WARDEN_UI_` gives WARDEN_UI_LISTEN. */
  readonly envPrefix?: string;
  /** Defaults commander fills in and --help shows. */
  readonly defaults?: Partial<Record<keyof UiSettings, string>>;
  /** Extra words after an option's description. */
  readonly notes?: Partial<Record<keyof UiSettings, string>>;
}

/** `warden ui` itself: plain flags; the issuer and assets also from the environment (read in startUi). */
const UI_COMMAND_STYLE: UiOptionStyle = {
  defaults: UI_DEFAULTS,
  notes: { issuer: '(env WARDEN_OIDC_ISSUER)', assets: '(env WARDEN_UI_ASSETS)' },
};

/** `warden controller --ui`: --ui-listen and friends, each also from WARDEN_UI_<NAME>. */
export const CONTROLLER_UI_STYLE: UiOptionStyle = { prefix: 'ui-', envPrefix: 'WARDEN_UI_' };

const envName = (style: UiOptionStyle, spec: UiOptionSpec): string | undefined =>
  style.envPrefix === undefined ? undefined : `${style.envPrefix}${spec.flag.toUpperCase().replaceAll('-', '_')}`;
/** Commander's attribute for a flag: --ui-client-id is read back as `uiClientId`. */
const attribute = (style: UiOptionStyle, spec: UiOptionSpec): string => `${style.prefix ?? ''}${spec.flag}`.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The option's name as the user wrote it, for messages: `--ui-listen (env WARDEN_UI_LISTEN)`. */
export function uiOptionLabel(style: UiOptionStyle, key: keyof UiSettings): string {
  const spec = UI_OPTION_SPECS.find((s) => s.key === key) as UiOptionSpec;
  const env = envName(style, spec);
  return `--${style.prefix ?? ''}${spec.flag}${env ? ` (env ${env})` : ''}`;
}

/** Adds the viewer's options to a command, spelled as `style` says. */
export function addUiOptions(command: Command, style: UiOptionStyle = {}): Command {
  for (const spec of UI_OPTION_SPECS) {
    const note = style.notes?.[spec.key];
    const option = new Option(`--${style.prefix ?? ''}${spec.flag} ${spec.arg}`, note ? `${spec.description} ${note}` : spec.description);
    const env = envName(style, spec);
    if (env) option.env(env);
    const value = style.defaults?.[spec.key];
    if (value !== undefined) option.default(value);
    command.addOption(option);
  }
  return command;
}

/** The viewer's settings among a command's parsed options; empty values (a settings ConfigMap's blanks) are unset. */
export function uiSettingsOf(values: object, style: UiOptionStyle = {}): Partial<UiSettings> {
  const settings: Partial<Record<keyof UiSettings, string>> = {};
  for (const spec of UI_OPTION_SPECS) {
    const value = (values as Readonly<Record<string, unknown>>)[attribute(style, spec)];
    if (typeof value === 'string' && value.trim() !== '') settings[spec.key] = value.trim();
  }
  return settings;
}

export function parseListen(value: string, flag = '--listen'): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !(port >= 0 && port <= 65535)) throw new UsageError(`${flag} must be host:port or a port, not ${value}`);
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

function httpUrl(value: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${what} must be an http(s) URL, not ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`${what} must be an http(s) URL, not ${JSON.stringify(value)}`);
  return url;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '']);

/** What startUi derives from the settings before touching anything; throws a UsageError naming the option. */
export interface CheckedUiSettings {
  readonly issuer: string;
  readonly host: string;
  readonly port: number;
  /** `<public URL>/auth/callback`. */
  readonly redirectUri: string;
}

/** Checks the settings that need no file or network: the issuer is there, the addresses parse. */
export function checkUiSettings(options: UiSettings, env: NodeJS.ProcessEnv = process.env, style: UiOptionStyle = {}): CheckedUiSettings {
  const issuer = options.issuer ?? (env.WARDEN_OIDC_ISSUER || undefined);
  if (!issuer) throw new UsageError(`give the OIDC issuer: ${uiOptionLabel(style, 'issuer')} <url> (the one your Connections trust)`);
  httpUrl(issuer, uiOptionLabel(style, 'issuer'));
  const { host, port } = parseListen(options.listen, uiOptionLabel(style, 'listen'));
  let publicUrl: string;
  if (options.publicUrl !== undefined) {
    const url = httpUrl(options.publicUrl, uiOptionLabel(style, 'publicUrl'));
    if (url.search || url.hash) throw new UsageError(`${uiOptionLabel(style, 'publicUrl')} must not have a query or fragment: ${options.publicUrl}`);
    publicUrl = options.publicUrl;
  } else {
    // A browser cannot be sent back to 0.0.0.0: a wildcard listener is reached as localhost (kubectl port-forward).
    const shown = WILDCARD_HOSTS.has(host) ? 'localhost' : host.includes(':') ? `[${host}]` : host;
    publicUrl = `http://${shown}:${port}`;
  }
  return { issuer, host, port, redirectUri: `${publicUrl.replace(/\/+$/, '')}/auth/callback` };
}

export function uiCommand(): Command {
  const command = new Command('ui').description(
    'Serve the web session viewer: find, replay and verify recordings in a browser (read-only).\n' +
      'People log in with the OIDC issuer (authorization code + PKCE); scripts send Authorization: Bearer <token>.\n' +
      "Only a RecordingPolicy's viewers see the sessions of the Connections it records. See docs/ui.md.",
  );
  addUiOptions(command, UI_COMMAND_STYLE);
  command.option('--recordings <dir>', 'read recordings from a local directory store instead of their bucket (warden dev)');
  addAccessOptions(command);
  usageExitCode(command);
  return command.action(async (options: UiOptions) => {
    await runCommand(async () => {
      await runUi(options);
      return 0;
    });
  });
}

async function runUi(options: UiOptions): Promise<void> {
  const { startUi } = await import('./start.ts');
  const ui = await startUi(options);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      void ui.close().then(resolve);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
