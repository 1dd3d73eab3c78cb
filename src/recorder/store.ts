// Where recordings live: a bucket in production (store-s3.ts), a local directory for `warden dev`
// and for tests of pure logic (store-dir.ts). The recorder needs three operations only, and the
// first is the one that matters: an object is written at most once and never overwritten, so a
// retried upload can never replace a chunk with different bytes.

import { createHash } from 'node:crypto';
import { RecorderError, RecorderErrorCode } from './errors.ts';

/** What `putOnce` did. */
export const PutOutcome = {
  /** The object did not exist and now holds the bytes. */
  Created: 'created',
  /** The object already held exactly these bytes (an earlier attempt succeeded; its reply was lost). */
  AlreadyStored: 'already-stored',
} as const;
export type PutOutcome = (typeof PutOutcome)[keyof typeof PutOutcome];

export const ObjectLockMode = {
  Governance: 'GOVERNANCE',
  Compliance: 'COMPLIANCE',
} as const;
export type ObjectLockMode = (typeof ObjectLockMode)[keyof typeof ObjectLockMode];

export interface PutOptions {
  /** S3 Object Lock retention for this object (ignored by stores without object lock). */
  readonly retention?: { readonly mode: ObjectLockMode; readonly retainUntil: Date };
}

export interface StoredObject {
  readonly key: string;
  readonly size: number;
}

export interface RecordingStore {
  /** Where the objects are, for messages and Session status: `s3://bucket/` or `file:///dir/`. No credentials. */
  readonly description: string;
  /**
   * Writes `bytes` under `key` unless an object of that name exists. When one exists with the same
   * bytes the outcome is `AlreadyStored`; with different bytes it throws OBJECT_EXISTS and leaves
   * the stored object alone. A failure that may pass (network, 5xx) throws STORE_UNAVAILABLE; a
   * refusal that needs a person (credentials, missing bucket) throws STORE_DENIED. Either way no
   * partial object is ever visible under `key`.
   */
  putOnce(key: string, bytes: Uint8Array, options?: PutOptions): Promise<PutOutcome>;
  /** The object's bytes, or undefined if there is none. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Objects whose key starts with `prefix`, in lexicographic key order. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** A URL naming `key` in this store, e.g. `s3://bucket/key`. */
  url(key: string): string;
}

export function md5Base64(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('base64');
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** Object keys are relative, `/`-separated, without empty, `.` or `..` segments. */
export function assertValidKey(key: string): void {
  const segments = key.split('/');
  if (
    key.length === 0 ||
    key.length > 1024 ||
    segments.some((segment) => segment === '' || segment === '.' || segment === '..') ||
    key.includes('\\') ||
    key.includes('\0')
  ) {
    throw new RecorderError(RecorderErrorCode.OptionInvalid, `object key ${JSON.stringify(key)} is not a valid relative key`);
  }
}

/** Collects every object under `prefix` (small listings: one session folder). */
export async function listAll(store: RecordingStore, prefix: string): Promise<StoredObject[]> {
  const out: StoredObject[] = [];
  for await (const object of store.list(prefix)) out.push(object);
  return out;
}

/** True for failures worth retrying later (the store may come back); false for OBJECT_EXISTS and caller bugs. */
export function isRetryable(error: unknown): boolean {
  return (
    error instanceof RecorderError &&
    (error.code === RecorderErrorCode.StoreUnavailable || error.code === RecorderErrorCode.StoreDenied)
  );
}
