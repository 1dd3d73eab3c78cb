// A recording store in an S3-compatible bucket through the `minio` client (v8).
//
// Write-once: every PUT carries `If-None-Match: *` (S3 conditional writes, supported by AWS S3 since
// 2024-08 and by MinIO since RELEASE.2024-08); the server refuses with 412 PreconditionFailed when
// the key exists, atomically, so there is no window between a check and the write as there would be
// with stat-before-put. A 412 is then resolved by reading the stored object: the same bytes mean an
// earlier attempt succeeded and only its reply was lost; different bytes are OBJECT_EXISTS. (Tested
// against the MinIO the test plane builds; see store-s3.int.test.ts.) A single PUT is atomic in S3,
// so a failed upload never leaves a partial object: chunks are small (≈1 MiB) and never multipart.
//
// Object Lock retention and server-side encryption travel as headers of that same PUT, so an
// object is never visible without them. The minio client turns unknown headers into user metadata,
// so the PUT goes through its signed-request primitive (`makeRequestAsyncOmit`) with the headers
// as given.

import { Agent as HttpsAgent } from 'node:https';
import { Client, S3Error } from 'minio';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import {
  assertValidKey,
  md5Base64,
  PutOutcome,
  type PutOptions,
  type RecordingStore,
  sameBytes,
  type StoredObject,
} from './store.ts';

export const SseMode = {
  None: 'none',
  S3: 'S3',
  Kms: 'KMS',
} as const;
export type SseMode = (typeof SseMode)[keyof typeof SseMode];

export interface S3StoreOptions {
  /** `http(s)://host[:port]`. */
  readonly endpoint: string;
  readonly bucket: string;
  readonly region?: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly sessionToken?: string;
  /** Path-style addressing (MinIO); default true. */
  readonly pathStyle?: boolean;
  readonly sse?: SseMode;
  readonly kmsKeyId?: string;
  /** PEM bundle of the CA that signed an https endpoint's certificate (private CAs). */
  readonly ca?: string;
}

/** S3 error codes that a retry will not fix without a person (credentials, bucket, policy). */
const DENIED_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'NoSuchBucket',
  'InvalidBucketName',
  'InvalidRequest',
  'InvalidArgument',
  'AllAccessDisabled',
  'KMS.NotFoundException',
]);

export class S3Store implements RecordingStore {
  readonly client: Client;
  readonly bucket: string;
  readonly description: string;
  readonly #sse: SseMode;
  readonly #kmsKeyId: string | undefined;

  constructor(options: S3StoreOptions) {
    let url: URL;
    try {
      url = new URL(options.endpoint);
    } catch {
      throw new RecorderError(RecorderErrorCode.OptionInvalid, `S3 endpoint ${JSON.stringify(options.endpoint)} is not a URL (http(s)://host:port)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new RecorderError(RecorderErrorCode.OptionInvalid, `S3 endpoint ${url.href} must be http:// or https://`);
    }
    const useSSL = url.protocol === 'https:';
    this.client = new Client({
      endPoint: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? (useSSL ? 443 : 80) : Number(url.port),
      useSSL,
      accessKey: options.accessKey,
      secretKey: options.secretKey,
      ...(options.sessionToken === undefined ? {} : { sessionToken: options.sessionToken }),
      region: options.region ?? 'us-east-1',
      pathStyle: options.pathStyle ?? true,
      // The shipper retries with its own back-off and knows when to tell the session; a hidden
      // retry loop inside the client would only delay that.
      retryOptions: { disableRetry: true },
      ...(options.ca !== undefined && useSSL ? { transportAgent: new HttpsAgent({ ca: options.ca, keepAlive: true }) } : {}),
    });
    this.bucket = options.bucket;
    this.description = `s3://${options.bucket}/`;
    this.#sse = options.sse ?? SseMode.None;
    this.#kmsKeyId = options.kmsKeyId;
  }

  url(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  async putOnce(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<PutOutcome> {
    assertValidKey(key);
    const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headers: Record<string, string> = {
      'Content-Type': 'application/octet-stream',
      'Content-MD5': md5Base64(body),
      'If-None-Match': '*',
    };
    if (this.#sse === SseMode.S3) headers['x-amz-server-side-encryption'] = 'AES256';
    if (this.#sse === SseMode.Kms) {
      headers['x-amz-server-side-encryption'] = 'aws:kms';
      if (this.#kmsKeyId !== undefined) headers['x-amz-server-side-encryption-aws-kms-key-id'] = this.#kmsKeyId;
    }
    if (options.retention) {
      headers['x-amz-object-lock-mode'] = options.retention.mode;
      headers['x-amz-object-lock-retain-until-date'] = options.retention.retainUntil.toISOString();
    }
    try {
      await this.client.makeRequestAsyncOmit({ method: 'PUT', bucketName: this.bucket, objectName: key, headers }, body, [200]);
      return PutOutcome.Created;
    } catch (error) {
      const code = s3Code(error);
      if (code !== 'PreconditionFailed' && code !== 'ConditionalRequestConflict') throw this.#storeError('writing', key, error);
    }
    // The key exists (or a concurrent write of it is in flight): compare instead of overwriting.
    const existing = await this.get(key);
    if (existing !== undefined && sameBytes(existing, body)) return PutOutcome.AlreadyStored;
    if (existing === undefined) {
      throw new RecorderError(RecorderErrorCode.StoreUnavailable, `${this.url(key)} was being written concurrently; will retry`, { object: key });
    }
    throw new RecorderError(
      RecorderErrorCode.ObjectExists,
      `${this.url(key)} already exists with different content; objects are written once and never overwritten`,
      { object: key },
    );
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    assertValidKey(key);
    try {
      const stream = await this.client.getObject(this.bucket, key);
      const parts: Buffer[] = [];
      for await (const part of stream) parts.push(part as Buffer);
      return Buffer.concat(parts);
    } catch (error) {
      const code = s3Code(error);
      if (code === 'NoSuchKey' || code === 'NotFound') return undefined;
      throw this.#storeError('reading', key, error);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const stream = this.client.listObjectsV2(this.bucket, prefix, true);
    try {
      for await (const item of stream) {
        const entry = item as { name?: string; size?: number };
        if (entry.name !== undefined) yield { key: entry.name, size: entry.size ?? 0 };
      }
    } catch (error) {
      throw this.#storeError('listing', prefix, error);
    }
  }

  /** Creates the bucket if it is missing (for `warden dev` and tests; production buckets come from the controller). */
  async ensureBucket(options: { objectLock?: boolean } = {}): Promise<void> {
    try {
      if (await this.client.bucketExists(this.bucket)) return;
      await this.client.makeBucket(this.bucket, '', options.objectLock ? { ObjectLocking: true } : {});
    } catch (error) {
      if (s3Code(error) === 'BucketAlreadyOwnedByYou') return;
      throw this.#storeError('creating bucket', this.bucket, error);
    }
  }

  #storeError(what: string, key: string, error: unknown): RecorderError {
    const code = s3Code(error);
    const denied = code !== undefined && DENIED_CODES.has(code);
    // Messages carry the S3 code and text, never the request (which holds the signature).
    const detail = code === undefined ? (error as Error).message : `${code}: ${(error as Error).message}`;
    return new RecorderError(
      denied ? RecorderErrorCode.StoreDenied : RecorderErrorCode.StoreUnavailable,
      `${what} ${this.url(key)} failed: ${detail}`,
      { object: key },
    );
  }
}

function s3Code(error: unknown): string | undefined {
  if (error instanceof S3Error) return error.code;
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && !/^E[A-Z_]+$/.test(code) ? code : undefined;
}
