// Reading a recording back out of a store: list a session folder, stream its chunks in order, and
// verify or decode them one at a time (memory: one or two chunks, never the session).

import type { EncryptionKey, VerifyKey } from './crypto.ts';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import type { RecordingEvent } from './events.ts';
import { type Manifest, parseManifest } from './manifest.ts';
import { MANIFEST_OBJECT_NAME, parseChunkObjectName } from './naming.ts';
import type { RecordingStore, StoredObject } from './store.ts';
import { type ChainPosition, readEvents, RecordingVerifier, type VerifiedChunk, type VerifyReport } from './verify.ts';

export interface SessionFolderListing {
  /** Session folder key prefix, ending in `/`. */
  readonly folder: string;
  /** The session id the folder is named for. */
  readonly sessionId: string;
  /** Objects named `chunk-<seq>`, in seq order. */
  readonly chunks: ReadonlyArray<StoredObject & { readonly seq: number }>;
  readonly manifest: StoredObject | undefined;
  /** Anything else in the folder (reported by verification). */
  readonly others: readonly StoredObject[];
}

export function normalizeFolder(folder: string): string {
  const trimmed = folder.replace(/^\/+/, '');
  return trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

export async function listSessionFolder(store: RecordingStore, folder: string): Promise<SessionFolderListing> {
  const prefix = normalizeFolder(folder);
  const sessionId = prefix.slice(0, -1).split('/').at(-1) ?? '';
  const chunks: Array<StoredObject & { seq: number }> = [];
  const others: StoredObject[] = [];
  let manifest: StoredObject | undefined;
  for await (const object of store.list(prefix)) {
    const name = object.key.slice(prefix.length);
    const seq = name.includes('/') ? undefined : parseChunkObjectName(name);
    if (seq !== undefined) chunks.push({ ...object, seq });
    else if (name === MANIFEST_OBJECT_NAME) manifest = object;
    else others.push(object);
  }
  chunks.sort((a, b) => a.seq - b.seq);
  return { folder: prefix, sessionId, chunks, manifest, others };
}

/** Fetches objects in order with one request ahead. */
async function* fetchInOrder(store: RecordingStore, objects: readonly StoredObject[]): AsyncGenerator<{ key: string; bytes: Uint8Array }> {
  let next: Promise<Uint8Array | undefined> | undefined = objects[0] ? store.get(objects[0].key) : undefined;
  for (let i = 0; i < objects.length; i++) {
    const current = next as Promise<Uint8Array | undefined>;
    next = objects[i + 1] ? store.get((objects[i + 1] as StoredObject).key) : undefined;
    // A prefetch that fails after we stop reading must not become an unhandled rejection.
    next?.catch(() => undefined);
    const bytes = await current;
    const key = (objects[i] as StoredObject).key;
    if (bytes === undefined) {
      throw new RecorderError(RecorderErrorCode.ObjectNotFound, `${key} disappeared while it was being read`, { object: key });
    }
    yield { key, bytes };
  }
}

export interface ReadSessionOptions {
  readonly trustedKeys: VerifyKey | readonly VerifyKey[];
  readonly decryptionKeys?: readonly EncryptionKey[];
  /** Read from this place in the chain on (chunks before it are neither fetched nor checked again). */
  readonly resume?: ChainPosition;
  /** Each chunk as it is verified (see `readEvents`). */
  readonly onChunk?: (chunk: VerifiedChunk) => void;
}

/**
 * The events of the session in `folder`, in order; every chunk is checked (signature, chain,
 * session) before its events are yielded. Throws a RecorderError at the first problem.
 */
export async function* readSessionEvents(
  store: RecordingStore,
  folder: string,
  options: ReadSessionOptions,
): AsyncGenerator<RecordingEvent, void, undefined> {
  const listing = await listSessionFolder(store, folder);
  if (listing.chunks.length === 0) {
    throw new RecorderError(RecorderErrorCode.NoChunks, `there are no chunk objects under ${store.url(listing.folder)}`);
  }
  // Resuming: from the chunk named for that seq on; readEvents checks it is that chunk and links.
  const from = options.resume === undefined ? 0 : listing.chunks.findIndex((c) => c.seq >= options.resume!.seq);
  const chunks = from < 0 ? [] : listing.chunks.slice(from);
  async function* named(): AsyncGenerator<{ name: string; bytes: Uint8Array }> {
    for await (const { key, bytes } of fetchInOrder(store, chunks)) yield { name: key.slice(listing.folder.length), bytes };
  }
  yield* readEvents(named(), {
    trustedKeys: options.trustedKeys,
    sessionId: listing.sessionId,
    ...(options.decryptionKeys ? { decryptionKeys: options.decryptionKeys } : {}),
    ...(options.resume ? { resume: options.resume } : {}),
    ...(options.onChunk ? { onChunk: options.onChunk } : {}),
  });
}

/** The manifest of a closed session, verified; undefined when there is none. */
export async function readSessionManifest(
  store: RecordingStore,
  folder: string,
  trustedKeys: VerifyKey | readonly VerifyKey[],
): Promise<Manifest | undefined> {
  const bytes = await store.get(`${normalizeFolder(folder)}${MANIFEST_OBJECT_NAME}`);
  if (bytes === undefined) return undefined;
  const parsed = parseManifest(bytes, Array.isArray(trustedKeys) ? trustedKeys : [trustedKeys as VerifyKey]);
  if (!parsed.ok) throw parsed.error;
  return parsed.value;
}

export interface VerifyFolderOptions extends ReadSessionOptions {
  /** Accept a session without manifest.json (still open, or cut off by a crash). */
  readonly allowOpen?: boolean;
  /** Called after each object with (done, total). */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Streams every object of the folder through the verifier (docs/recording-format.md, "Verification"). */
export async function verifySessionFolder(store: RecordingStore, folder: string, options: VerifyFolderOptions): Promise<VerifyReport> {
  const listing = await listSessionFolder(store, folder);
  const verifier = new RecordingVerifier(options.trustedKeys, {
    sessionId: listing.sessionId,
    ...(options.decryptionKeys ? { decryptionKeys: options.decryptionKeys } : {}),
    ...(options.allowOpen ? { allowOpen: true } : {}),
  });
  const objects = [...listing.chunks, ...listing.others];
  let done = 0;
  for await (const { key, bytes } of fetchInOrder(store, objects)) {
    verifier.addChunk(key.slice(listing.folder.length), bytes);
    options.onProgress?.(++done, objects.length + (listing.manifest ? 1 : 0));
  }
  if (listing.manifest) {
    const bytes = await store.get(listing.manifest.key);
    if (bytes !== undefined) verifier.addManifest(bytes);
    options.onProgress?.(++done, objects.length + 1);
  }
  return verifier.finish();
}
