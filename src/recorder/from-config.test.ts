import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RecordingConfig } from '../sidecar/config.ts';
import { exportSigningKey } from './crypto.ts';
import { RecorderErrorCode } from './errors.ts';
import { recorderOptionsFromConfig } from './from-config.ts';
import { S3Store } from './store-s3.ts';
import { encryptionKey, signingKey } from './test-support.ts';

let root: string;
const file = (secret: string, key: string) => ({ secret, key, file: `/etc/warden/secrets/${secret}/${key}` });

const config: RecordingConfig = {
  policy: 'default',
  s3: {
    endpoint: 'http://minio.storage:9000',
    bucket: 'recordings',
    region: 'us-east-1',
    pathStyle: true,
    prefix: 'prod/ops/bastion/',
    accessKeyId: file('s3', 'accessKeyId'),
    secretAccessKey: file('s3', 'secretAccessKey'),
    sse: 'S3',
  },
  record: { input: true, output: true, maxEventBytes: 65536, maxResultRows: 100 },
  signingKey: file('signing', 'key.pem'),
  encryptionKey: file('enc', 'key'),
  storeMasked: true,
  onStorageFailure: 'FailClosed',
  objectLock: { mode: 'COMPLIANCE', days: 30 },
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'warden-from-config-'));
  const put = async (path: string, content: string): Promise<void> => {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  };
  await put('/etc/warden/secrets/s3/accessKeyId', 'AKIA-TEST\n');
  await put('/etc/warden/secrets/s3/secretAccessKey', 'not-logged\n');
  await put('/etc/warden/secrets/signing/key.pem', exportSigningKey(signingKey).privatePem);
  await put('/etc/warden/secrets/enc/key', Buffer.alloc(32, 3).toString('base64'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('recorderOptionsFromConfig', () => {
  it('builds the store, keys, prefix and retention from the sidecar document and its mounted Secrets', async () => {
    const options = await recorderOptionsFromConfig(config, { spoolDir: join(root, 'spool'), fsRoot: root });
    expect(options.store).toBeInstanceOf(S3Store);
    expect(options.store.description).toBe('s3://recordings/');
    expect(options.signingKey.keyId).toBe(signingKey.keyId);
    expect(options.encryption?.key.keyId).toBe(encryptionKey.keyId);
    expect(options.prefix).toBe('prod/ops/bastion/');
    expect(options.retention).toEqual({ mode: 'COMPLIANCE', days: 30 });
  });

  it('names the Secret and key of a file it cannot read, not its content', async () => {
    const broken = { ...config, signingKey: file('missing', 'key.pem') };
    const error = await recorderOptionsFromConfig(broken, { spoolDir: join(root, 'spool'), fsRoot: root }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: RecorderErrorCode.KeyInvalid });
    expect(String((error as Error).message)).toContain('key key.pem of Secret missing');
  });
});
