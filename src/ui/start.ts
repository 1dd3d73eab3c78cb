// Starting the web viewer: what `warden ui` and `warden controller --ui` run once their options
// are parsed (cli.ts). Loads the HTTP server, the Kubernetes and S3 clients and the token
// verifier, so command modules import it inside their actions.

import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import { type AccessOptions, UsageError } from '../cli/command-kit.ts';
import { kubeConfig, loadDecryptionKeys } from '../cli/recording-access.ts';
import { createLogger, type Logger } from '../controller/log.ts';
import { loadVerifyKey } from '../recorder/crypto.ts';
import { TokenVerifier } from '../sidecar/auth/oidc.ts';
import { ensureAssets } from './assets.ts';
import { Authenticator } from './auth.ts';
import { checkUiSettings, type UiOptions, uiOptionLabel, type UiOptionStyle } from './cli.ts';
import { UiError } from './errors.ts';
import { UiServer } from './server.ts';
import { KubeSource, RecordingSource } from './sources.ts';

export interface StartUiContext {
  readonly env?: NodeJS.ProcessEnv;
  readonly log?: Logger;
  /** API server access (default: from options.kubeconfig, else the default kubeconfig). */
  readonly kubeConfig?: KubeConfig;
  /** How the options were spelled, for messages. */
  readonly style?: UiOptionStyle;
}

export interface RunningUi {
  /** http://host:port the viewer listens on. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Checks every setting — issuer, addresses, key and secret files, kubeconfig, front-end assets —
 * and only then listens. Any problem is a UsageError with one line naming the option, thrown
 * before the port is opened: the viewer never runs half-configured.
 */
export async function startUi(options: UiOptions, context: StartUiContext = {}): Promise<RunningUi> {
  const env = context.env ?? process.env;
  const style = context.style ?? {};
  const log = context.log ?? createLogger({ level: 'info' }, { component: 'ui' });
  const { issuer, host, port, redirectUri } = checkUiSettings(options, env, style);
  const access: AccessOptions = { ...options, ...(options.recordings ? { dir: options.recordings } : {}) };
  const extraKeys = (options.publicKey ?? (env.WARDEN_PUBLIC_KEY ? [env.WARDEN_PUBLIC_KEY] : [])).map((file) => {
    try {
      return loadVerifyKey(readFileSync(file));
    } catch (error) {
      throw new UsageError(`public key ${file}: ${(error as Error).message}`);
    }
  });
  const decryptionKeys = loadDecryptionKeys(access);
  let clientSecret: string | undefined;
  if (options.clientSecretFile !== undefined) {
    try {
      clientSecret = readFileSync(options.clientSecretFile, 'utf8').trim();
    } catch (error) {
      throw new UsageError(`${uiOptionLabel(style, 'clientSecretFile')}: cannot read ${options.clientSecretFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if (clientSecret === '') throw new UsageError(`${uiOptionLabel(style, 'clientSecretFile')}: ${options.clientSecretFile} is empty`);
  }
  const kube = new KubeSource(context.kubeConfig ?? kubeConfig(access), options.namespace);
  const prebuilt = options.assets ?? (env.WARDEN_UI_ASSETS || undefined);
  let assetsDir: string;
  try {
    assetsDir = await ensureAssets({ ...(prebuilt ? { outDir: prebuilt, prebuilt: true } : {}), log: (line) => log.info(line) });
  } catch (error) {
    if (error instanceof UiError) throw new UsageError(`${uiOptionLabel(style, 'assets')}: ${error.message}`);
    throw error;
  }
  const verifier = new TokenVerifier({
    issuer,
    audience: options.clientId,
    usernameClaim: options.usernameClaim,
    groupsClaim: options.groupsClaim,
    ...(options.jwksUri ? { jwksUri: options.jwksUri } : {}),
  });
  const server = new UiServer({
    auth: new Authenticator({ issuer, clientId: options.clientId, ...(clientSecret ? { clientSecret } : {}), redirectUri }, verifier),
    kube,
    recordings: new RecordingSource(kube, { access, env, extraKeys, decryptionKeys }),
    assetsDir,
    log,
  });
  let bound: number;
  try {
    bound = await server.listen(port, host);
  } catch (error) {
    await server.close();
    throw new UsageError(`${uiOptionLabel(style, 'listen')}: cannot listen on ${options.listen}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log.info('web viewer listening', { url, redirectUri, issuer, namespace: options.namespace ?? 'all' });
  return { url, port: bound, close: () => server.close() };
}
