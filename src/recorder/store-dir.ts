// A recording store in a local directory (for `warden dev` and for tests of pure logic). Keys map
// to paths under the root. Put-once is a hard link from a fsynced temporary file: link(2) fails with
// EEXIST when the name is taken, atomically, so two writers can never both win and a reader never
// sees a partial file.

import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import { assertValidKey, PutOutcome, type PutOptions, type RecordingStore, sameBytes, type StoredObject } from './store.ts';

const TEMP_PREFIX = '.tmp-';

export class DirectoryStore implements RecordingStore {
  readonly root: string;
  readonly description: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.description = pathToFileURL(this.root + sep).href;
  }

  url(key: string): string {
    // join() keeps a trailing slash and pathToFileURL keeps it too: a folder stays a folder.
    return pathToFileURL(join(this.root, key)).href;
  }

  /** Retention options are ignored: a local directory has no object lock. */
  async putOnce(key: string, bytes: Uint8Array, _options?: PutOptions): Promise<PutOutcome> {
    assertValidKey(key);
    const path = join(this.root, key);
    const temp = join(dirname(path), `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    try {
      await mkdir(dirname(path), { recursive: true });
      await writeDurably(temp, bytes);
      try {
        await link(temp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const existing = await readFile(path);
        if (sameBytes(existing, bytes)) return PutOutcome.AlreadyStored;
        throw new RecorderError(
          RecorderErrorCode.ObjectExists,
          `${this.url(key)} already exists with different content; objects are written once and never overwritten`,
          { object: key },
        );
      }
      await fsyncDir(dirname(path));
      return PutOutcome.Created;
    } catch (error) {
      if (error instanceof RecorderError) throw error;
      throw new RecorderError(
        RecorderErrorCode.StoreUnavailable,
        `writing ${this.url(key)} failed: ${(error as Error).message}`,
        { object: key },
      );
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    assertValidKey(key);
    try {
      return await readFile(join(this.root, key));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') return undefined;
      throw new RecorderError(RecorderErrorCode.StoreUnavailable, `reading ${this.url(key)} failed: ${(error as Error).message}`);
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    // Walk from the deepest directory the prefix names completely, then filter by the full prefix.
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash + 1);
    const found: StoredObject[] = [];
    await walk(this.root, base, found);
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const object of found) if (object.key.startsWith(prefix)) yield object;
  }
}

async function walk(root: string, relative: string, out: StoredObject[]): Promise<void> {
  let entries;
  try {
    entries = await readdir(join(root, relative), { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return;
    throw error;
  }
  for (const entry of entries) {
    if (entry.name.startsWith(TEMP_PREFIX)) continue;
    const key = `${relative}${entry.name}`;
    if (entry.isDirectory()) await walk(root, `${key}/`, out);
    else if (entry.isFile()) out.push({ key, size: (await stat(join(root, key))).size });
  }
}

/** Writes a new file and fsyncs it before returning (the caller renames or links it into place). */
export async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename or link in `dir` durable (POSIX: the directory entry lives in the directory). */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
