// From the sidecar's configuration document (src/sidecar/config.ts, rendered by the controller from
// the RecordingPolicy) to a running Recorder: the bucket with its credentials and CA, the signing
// and encryption keys from the mounted Secrets, object-lock retention, the spool, Session objects.

import { readFile } from 'node:fs/promises';
import { type RecordingConfig, resolveSidecarPath, type SecretFile } from '../sidecar/config.ts';
import { loadEncryptionKey, loadSigningKey } from './crypto.ts';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import { Recorder, type RecorderOptions } from './recorder.ts';
import type { SessionObjectClient } from './session-objects.ts';
import { S3Store } from './store-s3.ts';

export interface RecorderEnvironment {
  /** The spool folder (the sidecar's emptyDir). */
  readonly spoolDir: string;
  /** Where Session objects go (the Connection's namespace); without a client none are written. */
  readonly sessionObjects?: { readonly client: SessionObjectClient; readonly namespace: string; readonly intervalMs?: number };
  /** Root under which the document's absolute paths are found (WARDEN_FS_ROOT); default from the environment. */
  readonly fsRoot?: string;
  readonly log?: (message: string) => void;
  /** Overrides for tests and tuning (bounds, chunk size, retry policy). */
  readonly overrides?: Partial<RecorderOptions>;
}

async function secret(file: SecretFile, what: string, fsRoot: string | undefined): Promise<Buffer> {
  try {
    return await readFile(resolveSidecarPath(file.file, fsRoot));
  } catch (error) {
    // Name the Secret and key, never the content.
    throw new RecorderError(
      RecorderErrorCode.KeyInvalid,
      `cannot read the ${what} (key ${file.key} of Secret ${file.secret}): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

/** Builds the Recorder options a RecordingConfig describes (reads the mounted Secret files). */
export async function recorderOptionsFromConfig(config: RecordingConfig, env: RecorderEnvironment): Promise<RecorderOptions> {
  const fsRoot = env.fsRoot ?? process.env.WARDEN_FS_ROOT;
  const s3 = config.s3;
  const store = new S3Store({
    endpoint: s3.endpoint,
    bucket: s3.bucket,
    region: s3.region,
    pathStyle: s3.pathStyle,
    accessKey: (await secret(s3.accessKeyId, 'S3 access key id', fsRoot)).toString('utf8').trim(),
    secretKey: (await secret(s3.secretAccessKey, 'S3 secret access key', fsRoot)).toString('utf8').trim(),
    sse: s3.sse,
    ...(s3.kmsKeyId === undefined ? {} : { kmsKeyId: s3.kmsKeyId }),
    ...(s3.ca === undefined ? {} : { ca: (await secret(s3.ca, 'S3 CA bundle', fsRoot)).toString('utf8') }),
  });
  const signingKey = loadSigningKey(await secret(config.signingKey, 'recording signing key', fsRoot));
  const encryption = config.encryptionKey
    ? { key: loadEncryptionKey(await secret(config.encryptionKey, 'recording encryption key', fsRoot)) }
    : undefined;
  return {
    store,
    spoolDir: env.spoolDir,
    signingKey,
    ...(encryption ? { encryption } : {}),
    prefix: s3.prefix,
    ...(config.objectLock ? { retention: { mode: config.objectLock.mode, days: config.objectLock.days } } : {}),
    ...(env.sessionObjects ? { sessionObjects: env.sessionObjects } : {}),
    ...(env.log ? { log: env.log } : {}),
    ...env.overrides,
  };
}

/** Opens the Recorder for a RecordingConfig; call `recover()` on the result at start-up. */
export async function openRecorderFromConfig(config: RecordingConfig, env: RecorderEnvironment): Promise<Recorder> {
  return await Recorder.open(await recorderOptionsFromConfig(config, env));
}
