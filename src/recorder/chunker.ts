// The per-session accumulator: events in, sealed chunks out, a manifest at close. It does no I/O
// and never waits: the gateway appends as events happen and hands whatever comes back to the
// shipping layer (spool + bucket), which also calls `tick` from a timer so a quiet session still
// seals within the time bound. The clock is injected.
//
// Memory: at most one chunk's worth of serialized events (`maxChunkBytes`) is buffered; a sealed
// chunk is returned and forgotten, only its manifest entry (a few dozen bytes) is kept.

import {
  type ChunkEncryption,
  Compression,
  eventShapeProblem,
  GENESIS_PREV,
  MAX_RAW_BYTES,
  type SealedChunk,
  sealChunk,
} from './chunk.ts';
import type { SigningKey } from './crypto.ts';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import type { RecordingEvent } from './events.ts';
import { buildManifest, type ManifestChunk, type SealedManifest, type SessionMeta } from './manifest.ts';
import { assertValidSessionId } from './naming.ts';

export const DEFAULT_MAX_CHUNK_BYTES = 1024 * 1024;
export const DEFAULT_MAX_CHUNK_AGE_MS = 2000;
export const DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024;

export interface ChunkerOptions {
  readonly sessionId: string;
  readonly signingKey: SigningKey;
  /** Seal when the uncompressed JSON-lines body would exceed this (default 1 MiB). */
  readonly maxChunkBytes?: number;
  /** Seal when the oldest buffered event was appended this long ago, by `now` (default 2000 ms). */
  readonly maxChunkAgeMs?: number;
  /**
   * Refuse (throw EVENT_TOO_LARGE) a single serialized event larger than this (default 16 MiB):
   * payload caps belong in `capPayload`, this is the backstop. An event larger than
   * `maxChunkBytes` but within this limit is sealed alone in its own chunk.
   */
  readonly maxEventBytes?: number;
  readonly compression?: Compression;
  readonly encryption?: ChunkEncryption;
  /** Monotonic clock in ms for the time bound (default `performance.now`). */
  readonly now?: () => number;
}

/** What `close` returns: the last chunk (if events were buffered) and the manifest to write after it. */
export interface ClosedRecording {
  readonly tail: SealedChunk | undefined;
  readonly manifest: SealedManifest;
}

const NOTHING: readonly SealedChunk[] = Object.freeze([]);
const EMPTY = Buffer.alloc(0);
/** Smallest body allocated. A body larger than `IDLE_BODY_BYTES` is never kept while nothing is buffered. */
const MIN_BODY_BYTES = 16 * 1024;
const IDLE_BODY_BYTES = 64 * 1024;

export class Chunker {
  readonly sessionId: string;
  readonly maxChunkBytes: number;
  readonly maxChunkAgeMs: number;
  readonly maxEventBytes: number;

  readonly #signingKey: SigningKey;
  readonly #compression: Compression;
  readonly #encryption: ChunkEncryption | undefined;
  readonly #now: () => number;

  /**
   * The JSON-lines body being built, events serialized straight into it: no per-event buffers, no
   * concatenation at seal. It stays across a seal while events are still buffered (the usual case
   * of a busy session: the event that did not fit starts the next chunk). A large body is
   * released whenever nothing is buffered, so an idle session holds at most `IDLE_BODY_BYTES`;
   * after a size-bound seal `#bodyHint` sizes the next one at once instead of doubling up again.
   */
  #body: Buffer = EMPTY;
  #bodyHint = 0;
  #bufferedBytes = 0;
  #events = 0;
  #openedAt = 0;
  #t0 = 0;
  #t1 = 0;
  #seq = 0;
  #prev = GENESIS_PREV;
  #closed = false;
  readonly #entries: ManifestChunk[] = [];
  readonly #kinds = new Map<string, number>();
  #rawTotal = 0;

  constructor(options: ChunkerOptions) {
    assertValidSessionId(options.sessionId);
    this.sessionId = options.sessionId;
    this.maxChunkBytes = positiveInt(
      'maxChunkBytes',
      options.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES,
      MAX_RAW_BYTES,
    );
    this.maxChunkAgeMs = positiveInt('maxChunkAgeMs', options.maxChunkAgeMs ?? DEFAULT_MAX_CHUNK_AGE_MS);
    this.maxEventBytes = positiveInt(
      'maxEventBytes',
      options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES,
      MAX_RAW_BYTES,
    );
    this.#signingKey = options.signingKey;
    this.#compression = options.compression ?? Compression.Zstd;
    this.#encryption = options.encryption;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Adds an event. Returns the chunks this sealed, in order: usually none, one when a bound was
   * reached, two when an event larger than `maxChunkBytes` had to go into a chunk of its own.
   * Throws EVENT_INVALID / EVENT_TOO_LARGE / CHUNKER_CLOSED (caller bugs, not recording failures).
   */
  append(event: RecordingEvent): readonly SealedChunk[] {
    this.#assertOpen();
    const problem = eventShapeProblem(event);
    if (problem) throw new RecorderError(RecorderErrorCode.EventInvalid, `the ${event.k} event ${problem}`);
    let line: EventLine;
    try {
      line = eventLine(event);
    } catch (cause) {
      throw new RecorderError(
        RecorderErrorCode.EventInvalid,
        `the ${event.k} event is not JSON-serializable (${(cause as Error).message})`,
      );
    }
    // Upper bound of the serialized size without scanning the strings (UTF-8: ≤ 3 bytes per UTF-16 unit).
    const bound = line.b64 === undefined ? line.head.length * 3 + 1 : (line.head.length + line.tail.length) * 3 + line.b64.length + 1;
    if (bound > this.maxChunkBytes) return this.#appendLarge(event, line);

    const start = this.#bufferedBytes;
    this.#reserve(start + bound);
    const length = writeLine(this.#body, start, line);
    if (length > this.maxEventBytes) this.#tooLarge(event, length);
    // Seal first if this event would push the buffer past the size bound, so the buffer never
    // holds more than one chunk's worth; the event's line then moves to the front.
    let first: SealedChunk | undefined;
    if (this.#events > 0 && start + length > this.maxChunkBytes) {
      first = this.#seal(this.#body.subarray(0, start));
      this.#body.copyWithin(0, start, start + length);
    }
    this.#bufferedBytes += length;
    return this.#added(event, first);
  }

  /** An event whose line may exceed `maxChunkBytes`: serialized on its own, never into the reused body. */
  #appendLarge(event: RecordingEvent, parts: EventLine): readonly SealedChunk[] {
    const line = lineBytes(parts);
    if (line.length > this.maxEventBytes) this.#tooLarge(event, line.length);
    let first: SealedChunk | undefined;
    if (this.#events > 0 && this.#bufferedBytes + line.length > this.maxChunkBytes) first = this.#seal(this.#body.subarray(0, this.#bufferedBytes));
    if (this.#events === 0 && line.length >= this.maxChunkBytes) {
      // Sealed alone, straight from its own buffer.
      this.#noteEvent(event, this.#now());
      this.#bufferedBytes = line.length;
      return this.#sealed(first, this.#seal(line));
    }
    this.#reserve(this.#bufferedBytes + line.length);
    this.#body.set(line, this.#bufferedBytes);
    this.#bufferedBytes += line.length;
    return this.#added(event, first);
  }

  #tooLarge(event: RecordingEvent, length: number): never {
    throw new RecorderError(
      RecorderErrorCode.EventTooLarge,
      `the ${event.k} event is ${length} bytes serialized, more than maxEventBytes (${this.maxEventBytes}); cap its payload with capPayload`,
    );
  }

  /** Bookkeeping after an event's line is in the body; seals when a bound is reached. */
  #added(event: RecordingEvent, first: SealedChunk | undefined): readonly SealedChunk[] {
    const now = this.#now();
    this.#noteEvent(event, now);
    const second =
      this.#bufferedBytes >= this.maxChunkBytes || now - this.#openedAt >= this.maxChunkAgeMs
        ? this.#seal(this.#body.subarray(0, this.#bufferedBytes))
        : undefined;
    return this.#sealed(first, second);
  }

  #noteEvent(event: RecordingEvent, now: number): void {
    if (this.#events === 0) {
      this.#openedAt = now;
      this.#t0 = event.t;
      this.#t1 = event.t;
    } else {
      if (event.t < this.#t0) this.#t0 = event.t;
      if (event.t > this.#t1) this.#t1 = event.t;
    }
    this.#events += 1;
    this.#kinds.set(event.k, (this.#kinds.get(event.k) ?? 0) + 1);
  }

  #sealed(first: SealedChunk | undefined, second: SealedChunk | undefined): readonly SealedChunk[] {
    this.#releaseIfEmpty(true);
    if (first === undefined) return second === undefined ? NOTHING : [second];
    return second === undefined ? [first] : [first, second];
  }

  /** Releases a large body when nothing is buffered; `busy` (a size-bound seal) keeps its size as the hint. */
  #releaseIfEmpty(busy: boolean): void {
    if (this.#events > 0 || this.#body.length <= IDLE_BODY_BYTES) return;
    this.#bodyHint = busy ? this.#body.length : 0;
    this.#body = EMPTY;
  }

  /** Grows the body to hold `bytes` (doubling, keeping what is buffered). */
  #reserve(bytes: number): void {
    if (bytes <= this.#body.length) return;
    const hint = this.#bufferedBytes === 0 ? this.#bodyHint : 0;
    const grown = Buffer.allocUnsafe(
      Math.max(bytes, hint, Math.min(this.#body.length * 2, this.maxChunkBytes * 2), Math.min(MIN_BODY_BYTES, this.maxChunkBytes)),
    );
    this.#body.copy(grown, 0, 0, this.#bufferedBytes);
    this.#body = grown;
  }

  /** Seals the buffered events if the oldest was appended `maxChunkAgeMs` or more before `now`. */
  tick(now: number = this.#now()): SealedChunk | undefined {
    if (this.#closed || this.#events === 0 || now - this.#openedAt < this.maxChunkAgeMs)
      return undefined;
    const chunk = this.#seal(this.#body.subarray(0, this.#bufferedBytes));
    this.#releaseIfEmpty(false);
    return chunk;
  }

  /** Seals whatever is buffered now (e.g. before the process may be stopped). */
  flush(): SealedChunk | undefined {
    this.#assertOpen();
    if (this.#events === 0) return undefined;
    const chunk = this.#seal(this.#body.subarray(0, this.#bufferedBytes));
    this.#releaseIfEmpty(false);
    return chunk;
  }

  /** Clock time by which `tick` will seal the buffered events; undefined when nothing is buffered. */
  deadline(): number | undefined {
    return this.#events === 0 ? undefined : this.#openedAt + this.maxChunkAgeMs;
  }

  /** Seals the tail and signs the manifest. The chunker accepts nothing afterwards. */
  close(meta: SessionMeta): ClosedRecording {
    this.#assertOpen();
    const tail = this.#events === 0 ? undefined : this.#seal(this.#body.subarray(0, this.#bufferedBytes));
    this.#closed = true;
    this.#body = EMPTY;
    const manifest = buildManifest({
      session: this.sessionId,
      meta,
      chunks: this.#entries,
      kinds: Object.fromEntries(this.#kinds),
      raw: this.#rawTotal,
      signingKey: this.#signingKey,
    });
    return { tail, manifest };
  }

  /** Serialized bytes of the events waiting for the next seal; never more than `maxChunkBytes` between calls. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  get bufferedEvents(): number {
    return this.#events;
  }

  /** Sequence number the next sealed chunk will carry. */
  get nextSeq(): number {
    return this.#seq;
  }

  /** Digest of the last sealed chunk (`GENESIS_PREV` before the first). */
  get head(): string {
    return this.#prev;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Seals `raw` (the buffered events' lines) as the next chunk; `raw` is not kept. */
  #seal(raw: Buffer): SealedChunk {
    const chunk = sealChunk({
      session: this.sessionId,
      seq: this.#seq,
      prev: this.#prev,
      t0: this.#t0,
      t1: this.#t1,
      events: this.#events,
      raw,
      compression: this.#compression,
      signingKey: this.#signingKey,
      encryption: this.#encryption,
    });
    this.#entries.push({
      seq: chunk.seq,
      digest: chunk.digest,
      bytes: chunk.bytes.length,
      events: chunk.header.events,
      t0: chunk.header.t0,
      t1: chunk.header.t1,
    });
    this.#rawTotal += raw.length;
    this.#seq += 1;
    this.#prev = chunk.digest;
    this.#events = 0;
    this.#bufferedBytes = 0;
    return chunk;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new RecorderError(
        RecorderErrorCode.ChunkerClosed,
        `the recording of session ${this.sessionId} is already closed`,
      );
    }
  }
}

/** Scratch space for the base64 check: decoding into it allocates nothing per event. */
let scratch = Buffer.allocUnsafe(0);
const MAX_SCRATCH_BYTES = 1024 * 1024;

/** Decodes and re-encodes to itself: only `A–Z a–z 0–9 + / =`, so nothing JSON would escape. */
function isCanonicalBase64(text: string): boolean {
  const size = Math.ceil(text.length / 4) * 3;
  if (size > MAX_SCRATCH_BYTES) return Buffer.from(text, 'base64').toString('base64') === text;
  if (scratch.length < size) scratch = Buffer.allocUnsafe(Math.min(MAX_SCRATCH_BYTES, Math.max(size, 64 * 1024)));
  const written = scratch.write(text, 'base64');
  return scratch.toString('base64', 0, written) === text;
}

/** Below this, the plain path is as fast. */
const FAST_B64_MIN_LENGTH = 1024;
const B64_SLOT = '"b64":""';

/**
 * `JSON.stringify(event) + "\n"` as UTF-8 bytes, byte for byte, faster for the bulk case: an event
 * whose `data.b64` is a long base64 string (binary terminal output, e.g. `ssh host cat file`).
 * V8's JSON.stringify scans a long string character by character for escapes (≈ 6–10 ms per MiB
 * on the development VM, more than zstd and signing together); base64 never needs escaping, so
 * the rest of the event is serialized with an empty `b64` and the string copied into its slot.
 * The string must be canonical base64 (it decodes and re-encodes to itself, a native check):
 * anything else, or a slot that is not unique, takes the plain path.
 */
export function serializeEventLine(event: RecordingEvent): Buffer {
  return lineBytes(eventLine(event));
}

/**
 * An event's JSON line as strings: `head` alone (then `tail` is empty), or `head + b64 + tail`
 * for the fast path. The newline is not included.
 */
type EventLine = { readonly head: string; readonly b64: undefined; readonly tail: '' } | { readonly head: string; readonly b64: string; readonly tail: string };

function eventLine(event: RecordingEvent): EventLine {
  const data = (event as { data?: unknown }).data;
  const b64 = typeof data === 'object' && data !== null ? (data as { b64?: unknown }).b64 : undefined;
  if (
    typeof b64 === 'string' &&
    b64.length >= FAST_B64_MIN_LENGTH &&
    Object.getPrototypeOf(event) === Object.prototype &&
    Object.getPrototypeOf(data) === Object.prototype &&
    !('toJSON' in event) &&
    !('toJSON' in (data as object)) &&
    isCanonicalBase64(b64)
  ) {
    const rest = JSON.stringify({ ...event, data: { ...(data as object), b64: '' } });
    const slot = rest.indexOf(B64_SLOT);
    // Exactly one slot: in JSON text the sequence can only be our key with its empty value.
    if (slot !== -1 && rest.indexOf(B64_SLOT, slot + 1) === -1) {
      const cut = slot + B64_SLOT.length - 1;
      return { head: rest.slice(0, cut), b64, tail: rest.slice(cut) };
    }
  }
  // JSON.stringify returns undefined (not a string) for e.g. a function; the shape check rules
  // that out for events, but fail loudly rather than write "undefined".
  const json = JSON.stringify(event) as string | undefined;
  if (typeof json !== 'string') throw new TypeError('JSON.stringify produced no text');
  return { head: json, b64: undefined, tail: '' };
}

/** Writes the line and its newline at `offset` (the buffer has room for the size bound); returns its byte length. */
function writeLine(buffer: Buffer, offset: number, line: EventLine): number {
  let at = offset + buffer.write(line.head, offset, 'utf8');
  if (line.b64 !== undefined) {
    at += buffer.write(line.b64, at, 'latin1');
    at += buffer.write(line.tail, at, 'utf8');
  }
  buffer[at] = 0x0a;
  return at + 1 - offset;
}

function lineBytes(line: EventLine): Buffer {
  const size =
    Buffer.byteLength(line.head, 'utf8') + (line.b64 === undefined ? 0 : line.b64.length + Buffer.byteLength(line.tail, 'utf8')) + 1;
  const buffer = Buffer.allocUnsafe(size);
  writeLine(buffer, 0, line);
  return buffer;
}

function positiveInt(name: string, value: number, max: number = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new RecorderError(
      RecorderErrorCode.OptionInvalid,
      `${name} must be an integer in 1..${max}, got ${value}`,
    );
  }
  return value;
}
