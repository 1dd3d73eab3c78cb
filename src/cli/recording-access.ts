// What `warden replay`, `export` and `verify` share: finding a session's recording (a Session object
// through the kubeconfig, or a location given directly), opening the store it is in with nothing
// but the bucket's credentials, and loading the public keys that vouch for it. This module loads the
// Kubernetes and S3 clients: command modules import it inside their actions (command-kit.ts has
// what defining a command needs).

import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import type { Session } from '../api/types.ts';
import { findSessionFolder } from '../dev/sessions.ts';
import { type EncryptionKey, loadEncryptionKey, loadVerifyKey, type VerifyKey } from '../recorder/crypto.ts';
import { RecorderError } from '../recorder/errors.ts';
import { listSessionFolder } from '../recorder/reader.ts';
import { KubeSessionObjects } from '../recorder/session-objects.ts';
import type { RecordingStore } from '../recorder/store.ts';
import { DirectoryStore } from '../recorder/store-dir.ts';
import { S3Store } from '../recorder/store-s3.ts';
import { type AccessOptions, UsageError, withDevDefaults } from './command-kit.ts';

// Defined in command-kit.ts (cheap to load, for defining commands); re-exported for the modules
// that already import them from here.
export { type AccessOptions, addAccessOptions, ExitCode, runCommand, UsageError, usageExitCode, withDevDefaults } from './command-kit.ts';

export interface ResolvedRecording {
  readonly store: RecordingStore;
  /** Session folder key within the store, ending in `/`. */
  readonly folder: string;
  /** The Session object, when the recording was found through one. */
  readonly session?: Session;
}

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

export function loadPublicKeys(given: AccessOptions, env: NodeJS.ProcessEnv = process.env): VerifyKey[] {
  const options = withDevDefaults(given, env);
  if ((given.dev || given.stateDir !== undefined) && given.publicKey === undefined) {
    const file = options.publicKey?.[0] ?? '';
    if (!existsSync(file)) throw new UsageError(`no recordings of warden dev yet: ${file} does not exist (start \`warden dev\` and connect once)`);
  }
  const files = options.publicKey ?? (env.WARDEN_PUBLIC_KEY ? [env.WARDEN_PUBLIC_KEY] : []);
  if (files.length === 0) {
    throw new UsageError('give the public key that signed the recordings: --public-key <file> (the RecordingPolicy status shows it)');
  }
  return files.map((file) => {
    const material = (() => {
      try {
        return readFileSync(file);
      } catch (error) {
        throw new UsageError(`cannot read public key ${file}: ${(error as Error).message}`);
      }
    })();
    try {
      return loadVerifyKey(material);
    } catch (error) {
      throw new UsageError(`public key ${file}: ${(error as Error).message}`);
    }
  });
}

export function loadDecryptionKeys(options: AccessOptions): EncryptionKey[] {
  return (options.decryptionKey ?? []).map((spec) => {
    const eq = spec.indexOf('=');
    const [kid, file] = eq > 0 && !spec.slice(0, eq).includes('/') ? [spec.slice(0, eq), spec.slice(eq + 1)] : [undefined, spec];
    try {
      return loadEncryptionKey(readFileSync(file), kid);
    } catch (error) {
      if (error instanceof RecorderError) throw new UsageError(`decryption key ${file}: ${error.message}`);
      throw new UsageError(`cannot read decryption key ${file}: ${(error as Error).message}`);
    }
  });
}

function s3Store(bucket: string, options: AccessOptions, env: NodeJS.ProcessEnv): S3Store {
  const endpoint = options.endpoint ?? env.WARDEN_S3_ENDPOINT ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  if (!endpoint) throw new UsageError('the recording is in a bucket: give the S3 endpoint with --endpoint or WARDEN_S3_ENDPOINT');
  const accessKey = options.accessKey ?? env.AWS_ACCESS_KEY_ID;
  const secretKey =
    options.secretKey ?? (options.secretKeyFile ? readSecretFile(options.secretKeyFile, 'secret key file') : env.AWS_SECRET_ACCESS_KEY);
  if (!accessKey || !secretKey) {
    throw new UsageError('give the bucket credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or --access-key and --secret-key-file)');
  }
  try {
    return new S3Store({
      endpoint,
      bucket,
      region: options.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
      accessKey,
      secretKey,
      pathStyle: options.pathStyle ?? true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** A location string: `s3://bucket/key/`, `file:///path/`, a local path, or a key under `--dir`. */
export function storeForLocation(location: string, options: AccessOptions, env: NodeJS.ProcessEnv = process.env): ResolvedRecording {
  if (location.startsWith('s3://')) {
    const rest = location.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const folder = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/*$/, '/');
    if (bucket === '' || folder === '/' || folder === '') {
      throw new UsageError(`location ${location} must name a session folder: s3://<bucket>/<prefix>/<yyyy>/<mm>/<dd>/<session>/`);
    }
    return { store: s3Store(bucket, options, env), folder };
  }
  if (options.dir !== undefined && !location.startsWith('file:')) {
    return { store: new DirectoryStore(options.dir), folder: location.replace(/^\/+/, '').replace(/\/*$/, '/') };
  }
  const path = location.startsWith('file:') ? fileURLToPath(location) : resolve(location);
  try {
    if (!statSync(path).isDirectory()) throw new UsageError(`${path} is not a session folder (a directory)`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot open session folder ${path}: ${(error as Error).message}`);
  }
  const trimmed = path.replace(/\/+$/, '');
  return { store: new DirectoryStore(dirname(trimmed)), folder: `${basename(trimmed)}/` };
}

function looksLikeLocation(arg: string): boolean {
  return arg.includes('://') || arg.includes('/') || arg.startsWith('.');
}

/** Finds the recording of `session`: a location, or the name of a Session object whose status says where. */
export async function resolveRecording(
  session: string,
  given: AccessOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedRecording> {
  const options = withDevDefaults(given, env);
  if (options.dir !== undefined && !session.includes('/') && !session.includes('://')) {
    // A bare session id: find its folder (<prefix>/<yyyy>/<mm>/<dd>/<id>/) in the directory store.
    const store = new DirectoryStore(options.dir);
    const folder = await findSessionFolder(store, session);
    if (!folder) throw new UsageError(`no session ${session} in ${store.description}; list them with \`warden sessions${given.dev ? ' --dev' : ` --dir ${options.dir}`}\``);
    return { store, folder };
  }
  if (looksLikeLocation(session)) return storeForLocation(session, options, env);
  const found = await findSessionObject(session, options);
  const location = found.status?.recording?.location;
  if (!location) {
    throw new UsageError(`Session ${found.metadata.namespace}/${session} has no status.recording.location yet (no chunk shipped)`);
  }
  return { ...storeForLocation(location, options, env), session: found };
}

export function kubeConfig(options: AccessOptions): KubeConfig {
  const config = new KubeConfig();
  try {
    if (options.kubeconfig) config.loadFromFile(options.kubeconfig);
    else config.loadFromDefault();
  } catch (error) {
    throw new UsageError(`cannot load the kubeconfig: ${(error as Error).message}`);
  }
  return config;
}

async function findSessionObject(name: string, options: AccessOptions): Promise<Session> {
  const client = new KubeSessionObjects(kubeConfig(options));
  if (options.namespace) {
    const found = await client.get({ namespace: options.namespace, name });
    if (!found) throw new UsageError(`no Session ${name} in namespace ${options.namespace}`);
    return found;
  }
  const matches = (await client.list()).filter((candidate) => candidate.metadata.name === name);
  if (matches.length === 0) throw new UsageError(`no Session named ${name} in any namespace (or give its location: s3://bucket/.../${name}/)`);
  if (matches.length > 1) {
    throw new UsageError(`Sessions named ${name} exist in ${matches.map((m) => m.metadata.namespace).join(', ')}: choose one with -n`);
  }
  return matches[0] as Session;
}

/**
 * Refuses a location that is a prefix above session folders (a common slip: the bucket prefix
 * instead of `<prefix>/<yyyy>/<mm>/<dd>/<id>/`), rather than reporting every object as misplaced.
 */
export async function assertSessionFolder(store: RecordingStore, folder: string): Promise<void> {
  const listing = await listSessionFolder(store, folder);
  if (listing.chunks.length > 0 || listing.manifest) return;
  const nested = listing.others.find((object) => object.key.slice(listing.folder.length).includes('/'));
  if (nested) {
    throw new UsageError(
      `${store.url(listing.folder)} is not a session folder: it holds folders such as ${store.url(nested.key.slice(0, nested.key.lastIndexOf('/') + 1))}; ` +
        'give the folder of one session (<prefix>/<yyyy>/<mm>/<dd>/<session>/)',
    );
  }
}

/** Writes lines to a stream, waiting when it asks to (so exporting a huge session stays small in memory). */
export async function writeLines(out: NodeJS.WritableStream, lines: AsyncIterable<string>): Promise<number> {
  let count = 0;
  for await (const line of lines) {
    count += 1;
    if (!out.write(`${line}\n`)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  return count;
}
