// The local spool: every sealed chunk and every manifest is on the sidecar's disk, durably, before
// it goes to the bucket, and stays there until the bucket has it. A crash or an outage therefore
// loses nothing that was sealed; on restart `scan` finds what is left and the recorder uploads it.
//
// Layout (one folder per session):
//   <dir>/<sessionId>/session.json      where the session's objects go (written first)
//   <dir>/<sessionId>/chunk-<seq>        sealed chunks not yet in the bucket
//   <dir>/<sessionId>/manifest.json      the manifest, once the session closed
// Files are written to a temporary name, fsynced, renamed into place and the folder fsynced, so a
// file under its final name is always complete (a crash mid-write leaves only a `.tmp-` file, which
// `scan` deletes).

import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import { chunkObjectName, isValidSessionId, MANIFEST_OBJECT_NAME, parseChunkObjectName } from './naming.ts';
import type { ObjectLockMode } from './store.ts';
import { fsyncDir, writeDurably } from './store-dir.ts';

const SESSION_FILE = 'session.json';
const TEMP_PREFIX = '.tmp-';

/** What the recorder needs to finish a session's upload after a restart. */
export interface SpoolSessionInfo {
  readonly v: 1;
  readonly sessionId: string;
  /** Object key prefix of the session folder, ending in `/`. */
  readonly folder: string;
  /** RFC 3339 UTC. */
  readonly startedAt: string;
  /** The Session object to mark Terminated if the session never closed. */
  readonly sessionObject?: { readonly namespace: string; readonly name: string };
  readonly retention?: { readonly mode: ObjectLockMode; readonly days: number };
}

export interface SpooledSession {
  readonly info: SpoolSessionInfo;
  /** Sequence numbers of chunk files present, ascending. */
  readonly chunks: readonly number[];
  readonly manifest: boolean;
  /** Newest modification time of the session's files (≈ when the recorder last sealed something). */
  readonly lastWrite: Date;
}

export class Spool {
  readonly dir: string;
  /** The bound: above it the recorder reports SPOOL_FULL to its sessions. */
  readonly maxBytes: number;
  #usedBytes = 0;
  readonly #tempPrefix = `${randomBytes(6).toString('hex')}-`;
  #tempCounter = 0;

  constructor(dir: string, maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
      throw new RecorderError(RecorderErrorCode.OptionInvalid, `spool bound must be a positive number of bytes, got ${maxBytes}`);
    }
    this.dir = dir;
    this.maxBytes = maxBytes;
  }

  /** Bytes of chunks and manifests waiting for upload. */
  get usedBytes(): number {
    return this.#usedBytes;
  }

  get full(): boolean {
    return this.#usedBytes > this.maxBytes;
  }

  /** Creates the spool folder and counts what an earlier process left in it. */
  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    this.#usedBytes = 0;
    for (const session of await this.scan()) {
      for (const seq of session.chunks) this.#usedBytes += await sizeOf(this.path(session.info.sessionId, chunkObjectName(seq)));
      if (session.manifest) this.#usedBytes += await sizeOf(this.path(session.info.sessionId, MANIFEST_OBJECT_NAME));
    }
  }

  path(sessionId: string, name: string): string {
    return join(this.dir, sessionId, name);
  }

  async openSession(info: SpoolSessionInfo): Promise<void> {
    const folder = join(this.dir, info.sessionId);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    await this.#writeFile(info.sessionId, SESSION_FILE, Buffer.from(`${JSON.stringify(info)}\n`, 'utf8'));
  }

  async writeChunk(sessionId: string, seq: number, bytes: Uint8Array): Promise<void> {
    await this.#writeFile(sessionId, chunkObjectName(seq), bytes);
    this.#usedBytes += bytes.length;
  }

  async writeManifest(sessionId: string, bytes: Uint8Array): Promise<void> {
    await this.#writeFile(sessionId, MANIFEST_OBJECT_NAME, bytes);
    this.#usedBytes += bytes.length;
  }

  async read(sessionId: string, name: string): Promise<Buffer> {
    return await readFile(this.path(sessionId, name));
  }

  /** Forgets an uploaded file. */
  async remove(sessionId: string, name: string, size: number): Promise<void> {
    await unlink(this.path(sessionId, name)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    this.#usedBytes = Math.max(0, this.#usedBytes - size);
  }

  /** Removes a session folder once everything in it is in the bucket. */
  async finishSession(sessionId: string): Promise<void> {
    await rm(join(this.dir, sessionId), { recursive: true, force: true });
  }

  /** Sessions with something left in the spool; deletes temporary files of interrupted writes. */
  async scan(): Promise<SpooledSession[]> {
    const out: SpooledSession[] = [];
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    for (const entry of entries) {
      if (!entry.isDirectory() || !isValidSessionId(entry.name)) continue;
      const folder = join(this.dir, entry.name);
      let info: SpoolSessionInfo;
      try {
        info = JSON.parse(await readFile(join(folder, SESSION_FILE), 'utf8')) as SpoolSessionInfo;
      } catch {
        // Crashed before session.json was durable: nothing was sealed yet either.
        await rm(folder, { recursive: true, force: true });
        continue;
      }
      const chunks: number[] = [];
      let manifest = false;
      let lastWrite = 0;
      for (const name of await readdir(folder)) {
        const path = join(folder, name);
        if (name.startsWith(TEMP_PREFIX)) {
          await unlink(path).catch(() => undefined);
          continue;
        }
        lastWrite = Math.max(lastWrite, (await stat(path)).mtimeMs);
        const seq = parseChunkObjectName(name);
        if (seq !== undefined) chunks.push(seq);
        else if (name === MANIFEST_OBJECT_NAME) manifest = true;
      }
      chunks.sort((a, b) => a - b);
      out.push({ info, chunks, manifest, lastWrite: new Date(lastWrite) });
    }
    return out;
  }

  async #writeFile(sessionId: string, name: string, bytes: Uint8Array): Promise<void> {
    const folder = join(this.dir, sessionId);
    // Unique within this process by the counter, across processes sharing the folder by the prefix.
    const temp = join(folder, `${TEMP_PREFIX}${this.#tempPrefix}${(this.#tempCounter++).toString(36)}`);
    try {
      await writeDurably(temp, bytes);
      await rename(temp, join(folder, name));
      await fsyncDir(folder);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw new RecorderError(
        RecorderErrorCode.SpoolWriteFailed,
        `writing ${name} of session ${sessionId} to the spool ${this.dir} failed: ${(error as Error).message}`,
      );
    }
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}
