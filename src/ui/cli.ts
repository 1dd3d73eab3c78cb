// `warden ui`: the read-only web viewer over Session objects and recordings (docs/ui.md).

import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { type AccessOptions, addAccessOptions, kubeConfig, loadDecryptionKeys, runCommand, UsageError, usageExitCode } from '../cli/recording-access.ts';
import { createLogger } from '../controller/log.ts';
import { loadVerifyKey } from '../recorder/crypto.ts';
import { TokenVerifier } from '../sidecar/auth/oidc.ts';
import { ensureAssets } from './assets.ts';
import { Authenticator } from './auth.ts';
import { UiServer } from './server.ts';
import { KubeSource, RecordingSource } from './sources.ts';

interface UiOptions extends AccessOptions {
  listen: string;
  recordings?: string;
  issuer?: string;
  clientId: string;
  clientSecretFile?: string;
  publicUrl?: string;
  usernameClaim: string;
  groupsClaim: string;
  assets?: string;
}

export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value) ?? /^()()(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !(port >= 0 && port <= 65535)) throw new UsageError(`--listen must be host:port or a port, not ${value}`);
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

export function uiCommand(): Command {
  const command = new Command('ui')
    .description(
      'Serve the web session viewer: find, replay and verify recordings in a browser (read-only).\n' +
        'People log in with the OIDC issuer (authorization code + PKCE); scripts send Authorization: Bearer <token>.\n' +
        "Only a RecordingPolicy's viewers see the sessions of the Connections it records. See docs/ui.md.",
    )
    .option('--listen <host:port>', 'address to serve on', '127.0.0.1:8080')
    .option('--recordings <dir>', 'read recordings from a local directory store instead of their bucket (warden dev)')
    .option('--issuer <url>', 'OIDC issuer URL (env WARDEN_OIDC_ISSUER)')
    .option('--client-id <id>', 'OIDC client id; also the audience bearer tokens must carry', 'warden')
    .option('--client-secret-file <file>', 'client secret for a confidential OIDC client (public clients use PKCE alone)')
    .option('--public-url <url>', 'URL browsers reach the viewer at, for the OIDC redirect (default http://<listen>)')
    .option('--username-claim <claim>', 'token claim naming the user', 'email')
    .option('--groups-claim <claim>', "token claim with the user's groups", 'groups')
    .option('--assets <dir>', 'prebuilt front-end directory (env WARDEN_UI_ASSETS); default: build on first start');
  addAccessOptions(command);
  usageExitCode(command);
  return command.action(async (options: UiOptions) => {
    await runCommand(async () => {
      await runUi(options);
      return 0;
    });
  });
}

async function runUi(options: UiOptions, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const log = createLogger({ level: 'info' }, { component: 'ui' });
  const issuer = options.issuer ?? env.WARDEN_OIDC_ISSUER;
  if (!issuer) throw new UsageError('give the OIDC issuer: --issuer <url> (the one your Connections trust)');
  const { host, port } = parseListen(options.listen);
  const access: AccessOptions = { ...options, ...(options.recordings ? { dir: options.recordings } : {}) };
  const extraKeys = (options.publicKey ?? (env.WARDEN_PUBLIC_KEY ? [env.WARDEN_PUBLIC_KEY] : [])).map((file) => {
    try {
      return loadVerifyKey(readFileSync(file));
    } catch (error) {
      throw new UsageError(`public key ${file}: ${(error as Error).message}`);
    }
  });
  const prebuilt = options.assets ?? env.WARDEN_UI_ASSETS;
  const assetsDir = await ensureAssets({ ...(prebuilt ? { outDir: prebuilt, prebuilt: true } : {}), log: (line) => process.stderr.write(`warden ui: ${line}\n`) });
  const kube = new KubeSource(kubeConfig(access), options.namespace);
  const verifier = new TokenVerifier({ issuer, audience: options.clientId, usernameClaim: options.usernameClaim, groupsClaim: options.groupsClaim });
  const clientSecret = options.clientSecretFile ? readFileSync(options.clientSecretFile, 'utf8').trim() : undefined;
  const server = new UiServer({
    auth: new Authenticator(
      { issuer, clientId: options.clientId, ...(clientSecret ? { clientSecret } : {}), redirectUri: `${(options.publicUrl ?? `http://${options.listen}`).replace(/\/$/, '')}/auth/callback` },
      verifier,
    ),
    kube,
    recordings: new RecordingSource(kube, { access, env, extraKeys, decryptionKeys: loadDecryptionKeys(access) }),
    assetsDir,
    log,
  });
  const bound = await server.listen(port, host);
  log.info('web viewer listening', { url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`, issuer, namespace: options.namespace ?? 'all' });
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      void server.close().then(resolve);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
