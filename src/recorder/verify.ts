// Verification of a whole recording and ordered reading of its events
// (docs/recording-format.md, "Verification").
//
// `RecordingVerifier` takes objects one at a time and keeps only a small summary per chunk, so a
// caller streaming a long session out of the bucket never holds more than one chunk. The report
// names every problem with the object and sequence number it concerns; `ok` is true only when
// there is none.

import {
  type ChunkHeader,
  checkChunkSignature,
  decodeChunk,
  decodeChunkBody,
  GENESIS_PREV,
  parseChunkFrame,
  parseChunkHeader,
} from './chunk.ts';
import { type EncryptionKey, sha256Hex, type VerifyKey } from './crypto.ts';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import type { RecordingEvent } from './events.ts';
import { type Manifest, parseManifest } from './manifest.ts';
import { chunkObjectName, parseChunkObjectName } from './naming.ts';

export interface VerifyProblem {
  readonly code: RecorderErrorCode;
  /** A full sentence naming the object or sequence number; what `warden verify` prints. */
  readonly message: string;
  readonly object?: string;
  readonly seq?: number;
}

export interface VerifyReport {
  /** True when no problem was found. */
  readonly ok: boolean;
  /** The session the recording was checked as. */
  readonly sessionId: string | undefined;
  /** A valid manifest of this session was found and checked against the chunks. */
  readonly closed: boolean;
  /** Chunk objects examined. */
  readonly objects: number;
  /** Highest seq N such that chunks 0..N are present, authentic and chained; -1 if none. */
  readonly verifiedThrough: number;
  /** Events in chunks 0..verifiedThrough. */
  readonly events: number;
  /** False when some encrypted bodies could not be decoded for lack of the key (signatures still checked). */
  readonly bodiesChecked: boolean;
  readonly problems: readonly VerifyProblem[];
  /** Facts that are not problems, e.g. an open session accepted with `allowOpen`. */
  readonly notes: readonly string[];
}

export interface VerifyOptions {
  /** The session the objects should belong to (e.g. from the object path). Recommended. */
  readonly sessionId?: string;
  /** Keys to decode encrypted bodies; without them only signatures, chain and manifest are checked. */
  readonly decryptionKeys?: readonly EncryptionKey[];
  /** Accept a recording without manifest.json (a live session): a note instead of a problem. */
  readonly allowOpen?: boolean;
}

export interface RecordingInput {
  readonly chunks: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>;
  readonly manifest?: Uint8Array;
}

/** Verifies a complete set of objects in one call. */
export function verifyRecording(
  input: RecordingInput,
  trustedKeys: VerifyKey | readonly VerifyKey[],
  options: VerifyOptions = {},
): VerifyReport {
  const verifier = new RecordingVerifier(trustedKeys, options);
  for (const chunk of input.chunks) verifier.addChunk(chunk.name, chunk.bytes);
  if (input.manifest !== undefined) verifier.addManifest(input.manifest);
  return verifier.finish();
}

interface ChunkRecord {
  readonly name: string;
  readonly nameSeq: number | undefined;
  readonly digest: string;
  readonly size: number;
  /** Present when framing, signature and header are valid: the content is authentic. */
  readonly header?: ChunkHeader;
  /** Decoding problem (framing, signature, header or body). */
  readonly problem?: RecorderError;
  readonly encryptedUnchecked?: string;
}

export class RecordingVerifier {
  readonly #trustedKeys: readonly VerifyKey[];
  readonly #options: VerifyOptions;
  readonly #records: ChunkRecord[] = [];
  #manifestBytes: Uint8Array | undefined;
  #finished = false;

  constructor(trustedKeys: VerifyKey | readonly VerifyKey[], options: VerifyOptions = {}) {
    this.#trustedKeys = Array.isArray(trustedKeys) ? trustedKeys : [trustedKeys as VerifyKey];
    this.#options = options;
  }

  /** Examines one chunk object; the bytes are not retained. */
  addChunk(name: string, bytes: Uint8Array): void {
    this.#assertOpen();
    const nameSeq = parseChunkObjectName(name);
    const frame = parseChunkFrame(bytes);
    if (!frame.ok) {
      this.#records.push({
        name,
        nameSeq,
        digest: sha256Hex(bytes),
        size: bytes.length,
        problem: frame.error,
      });
      return;
    }
    const { digest, size } = frame.value;
    const signer = checkChunkSignature(frame.value, this.#trustedKeys);
    if (!signer.ok) {
      this.#records.push({ name, nameSeq, digest, size, problem: signer.error });
      return;
    }
    const header = parseChunkHeader(frame.value);
    if (!header.ok) {
      this.#records.push({ name, nameSeq, digest, size, problem: header.error });
      return;
    }
    const body = decodeChunkBody(frame.value, header.value, {
      decryptionKeys: this.#options.decryptionKeys ?? [],
    });
    if (!body.ok && body.error.code === RecorderErrorCode.ChunkKeyUnavailable) {
      this.#records.push({
        name,
        nameSeq,
        digest,
        size,
        header: header.value,
        encryptedUnchecked: header.value.enc?.kid ?? '',
      });
      return;
    }
    this.#records.push({
      name,
      nameSeq,
      digest,
      size,
      header: header.value,
      ...(body.ok ? {} : { problem: body.error }),
    });
  }

  /** Gives the bytes of manifest.json (at most once). */
  addManifest(bytes: Uint8Array): void {
    this.#assertOpen();
    if (this.#manifestBytes !== undefined) {
      throw new RecorderError(RecorderErrorCode.OptionInvalid, 'a session has one manifest.json; it was already given');
    }
    this.#manifestBytes = bytes;
  }

  finish(): VerifyReport {
    this.#assertOpen();
    this.#finished = true;
    return new ReportBuilder(this.#records, this.#manifestBytes, this.#trustedKeys, this.#options).build();
  }

  #assertOpen(): void {
    if (this.#finished) {
      throw new RecorderError(RecorderErrorCode.OptionInvalid, 'this verifier has already produced its report');
    }
  }
}

/** Turns the per-object summaries into the report; one pass per rule, in the order of the spec. */
class ReportBuilder {
  readonly #records: readonly ChunkRecord[];
  readonly #manifestBytes: Uint8Array | undefined;
  readonly #trustedKeys: readonly VerifyKey[];
  readonly #options: VerifyOptions;
  readonly #problems: VerifyProblem[] = [];
  readonly #notes: string[] = [];
  /** Seqs that some problem concerns; `verifiedThrough` stops before the first. */
  readonly #badSeqs = new Set<number>();

  constructor(
    records: readonly ChunkRecord[],
    manifestBytes: Uint8Array | undefined,
    trustedKeys: readonly VerifyKey[],
    options: VerifyOptions,
  ) {
    this.#records = [...records].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    this.#manifestBytes = manifestBytes;
    this.#trustedKeys = trustedKeys;
    this.#options = options;
  }

  build(): VerifyReport {
    if (this.#records.length === 0 && this.#manifestBytes === undefined) {
      this.#problem(RecorderErrorCode.NoChunks, 'there are no chunk objects and no manifest.json: nothing to verify');
      return this.#report(this.#options.sessionId, false, -1, 0, true);
    }
    let manifest = this.#checkManifestBytes();
    const sessionId = this.#options.sessionId ?? manifest?.session ?? this.#guessSession();
    if (manifest && sessionId !== undefined && manifest.session !== sessionId) {
      this.#problem(
        RecorderErrorCode.ManifestForeignSession,
        `manifest.json belongs to session ${manifest.session}, not ${sessionId}; it was not used`,
      );
      manifest = undefined;
    }

    const bySeq = this.#checkObjects(sessionId);
    let lastSeq = manifest ? manifest.chunks.length - 1 : -1;
    for (const seq of bySeq.keys()) lastSeq = Math.max(lastSeq, seq);
    // An object that could not be read still claims its seq by name; an authentic one by its header.
    for (const record of this.#records) {
      if (!record.header) lastSeq = Math.max(lastSeq, record.nameSeq ?? -1);
    }
    this.#checkPresence(bySeq, lastSeq);
    this.#checkChain(bySeq, lastSeq);
    if (manifest) this.#checkAgainstManifest(manifest, bySeq);
    else this.#reportOpen(bySeq);

    const { verifiedThrough, events } = this.#intactPrefix(bySeq);
    const unchecked = this.#records.filter((record) => record.encryptedUnchecked !== undefined);
    if (unchecked.length > 0) {
      const keyIds = [...new Set(unchecked.map((record) => record.encryptedUnchecked))].join(', ');
      this.#notes.push(
        `${unchecked.length} chunk${unchecked.length === 1 ? ' is' : 's are'} encrypted with key id ${keyIds}; ` +
          'signatures, chain and manifest were verified, the event bodies were not decoded (no decryption key given)',
      );
    }
    return this.#report(sessionId, manifest !== undefined, verifiedThrough, events, unchecked.length === 0);
  }

  #report(
    sessionId: string | undefined,
    closed: boolean,
    verifiedThrough: number,
    events: number,
    bodiesChecked: boolean,
  ): VerifyReport {
    return {
      ok: this.#problems.length === 0,
      sessionId,
      closed,
      objects: this.#records.length,
      verifiedThrough,
      events,
      bodiesChecked,
      problems: this.#sortedProblems(),
      notes: this.#notes,
    };
  }

  #checkManifestBytes(): Manifest | undefined {
    if (this.#manifestBytes === undefined) return undefined;
    const parsed = parseManifest(this.#manifestBytes, this.#trustedKeys);
    if (parsed.ok) return parsed.value;
    this.#problem(parsed.error.code, parsed.error.message, { object: 'manifest.json' });
    return undefined;
  }

  /** The session of seq 0 if authentic, else the most frequent session among authentic chunks. */
  #guessSession(): string | undefined {
    const counts = new Map<string, number>();
    for (const record of this.#records) {
      if (!record.header) continue;
      if (record.header.seq === 0) return record.header.session;
      counts.set(record.header.session, (counts.get(record.header.session) ?? 0) + 1);
    }
    let best: string | undefined;
    for (const [session, count] of counts) {
      if (best === undefined || count > (counts.get(best) ?? 0)) best = session;
    }
    return best;
  }

  /** Per-object rules; returns the authentic chunks of this session by their signed seq. */
  #checkObjects(sessionId: string | undefined): Map<number, ChunkRecord> {
    const bySeq = new Map<number, ChunkRecord>();
    for (const record of this.#records) {
      const where = { object: record.name, ...(record.nameSeq === undefined ? {} : { seq: record.nameSeq }) };
      if (record.nameSeq === undefined) {
        this.#problem(
          RecorderErrorCode.ChunkBadName,
          `${record.name} is not named chunk-<seq> with at least 8 digits; it does not belong in a session folder`,
          { object: record.name },
        );
      }
      if (record.problem) this.#problem(record.problem.code, `${record.name}: ${record.problem.message}`, where);
      if (!record.header) continue;
      const { header } = record;
      if (sessionId !== undefined && header.session !== sessionId) {
        this.#problem(
          RecorderErrorCode.ChunkForeignSession,
          `${record.name} is chunk ${header.seq} of session ${header.session}, not of ${sessionId}: it was copied in from another recording`,
          where,
        );
        continue;
      }
      if (record.nameSeq !== undefined && header.seq !== record.nameSeq) {
        this.#problem(
          RecorderErrorCode.ChunkMisplaced,
          `${record.name} holds chunk ${header.seq}, not ${record.nameSeq}: objects were renamed or reordered ` +
            `(chunk ${header.seq} belongs at ${chunkObjectName(header.seq)})`,
          where,
        );
        this.#badSeqs.add(header.seq);
      }
      const earlier = bySeq.get(header.seq);
      if (earlier) {
        this.#problem(
          RecorderErrorCode.ChunkDuplicate,
          earlier.digest === record.digest
            ? `${earlier.name} and ${record.name} are both chunk ${header.seq} (identical copies)`
            : `${earlier.name} and ${record.name} are both chunk ${header.seq} with different content: two chunks were ` +
              'signed for one place (a writer restarted this session id, or the signing key was misused)',
          { object: record.name, seq: header.seq },
        );
        this.#badSeqs.add(header.seq);
        // Keep the copy stored under its proper name.
        if (earlier.nameSeq === header.seq) continue;
      }
      bySeq.set(header.seq, record);
    }
    return bySeq;
  }

  #checkPresence(bySeq: ReadonlyMap<number, ChunkRecord>, lastSeq: number): void {
    const occupiedNames = new Set(this.#records.map((record) => record.nameSeq));
    for (let seq = 0; seq <= lastSeq; seq++) {
      // An object under this name that failed to decode or came from elsewhere is already reported.
      if (bySeq.has(seq) || occupiedNames.has(seq)) continue;
      this.#problem(
        RecorderErrorCode.ChunkMissing,
        `${chunkObjectName(seq)} is missing: chunk ${seq} was deleted or never written`,
        {
          seq,
        },
      );
    }
  }

  #checkChain(bySeq: ReadonlyMap<number, ChunkRecord>, lastSeq: number): void {
    for (let seq = 0; seq <= lastSeq; seq++) {
      const record = bySeq.get(seq);
      if (!record?.header) continue;
      const where = { object: record.name, seq };
      if (seq === 0) {
        if (record.header.prev !== GENESIS_PREV) {
          this.#problem(
            RecorderErrorCode.ChainBroken,
            `chain broken at chunk 0: ${record.name} has prev ${record.header.prev}, but the first chunk's prev is all zeros`,
            where,
          );
        }
        continue;
      }
      const previous = bySeq.get(seq - 1);
      if (previous && record.header.prev !== previous.digest) {
        this.#problem(
          RecorderErrorCode.ChainBroken,
          `chain broken at chunk ${seq}: ${record.name} says the previous chunk has SHA-256 ${record.header.prev}, ` +
            `but ${previous.name} has ${previous.digest}`,
          where,
        );
      }
    }
  }

  #checkAgainstManifest(manifest: Manifest, bySeq: ReadonlyMap<number, ChunkRecord>): void {
    for (const entry of manifest.chunks) {
      // Compare with the authentic chunk of that seq, else with whatever object sits under its name.
      const record =
        bySeq.get(entry.seq) ?? this.#records.find((candidate) => candidate.nameSeq === entry.seq);
      if (!record) continue; // reported as missing
      const where = { object: record.name, seq: entry.seq };
      if (record.digest !== entry.digest) {
        this.#problem(
          RecorderErrorCode.ManifestDigestMismatch,
          `${record.name} has SHA-256 ${record.digest} but manifest.json lists ${entry.digest} for chunk ${entry.seq}`,
          where,
        );
        continue;
      }
      const header = record.header;
      if (
        header &&
        (header.events !== entry.events ||
          header.t0 !== entry.t0 ||
          header.t1 !== entry.t1 ||
          record.size !== entry.bytes)
      ) {
        this.#problem(
          RecorderErrorCode.ManifestEntryMismatch,
          `manifest.json describes chunk ${entry.seq} as ${entry.bytes} bytes, ${entry.events} events, t=${entry.t0}..${entry.t1}; ` +
            `${record.name} is ${record.size} bytes, ${header.events} events, t=${header.t0}..${header.t1}`,
          where,
        );
      }
    }
    for (const [seq, record] of bySeq) {
      if (seq >= manifest.chunks.length) {
        this.#problem(
          RecorderErrorCode.ChunkUnlisted,
          `${record.name} (chunk ${seq}) is not in manifest.json, which lists ${manifest.chunks.length} chunk` +
            `${manifest.chunks.length === 1 ? '' : 's'}: it was written after the session closed`,
          { object: record.name, seq },
        );
      }
    }
  }

  /** Chunks 0..N that are present, authentic and concerned by no problem. */
  #intactPrefix(bySeq: ReadonlyMap<number, ChunkRecord>): { verifiedThrough: number; events: number } {
    let verifiedThrough = -1;
    let events = 0;
    for (;;) {
      const seq = verifiedThrough + 1;
      const header = bySeq.get(seq)?.header;
      if (!header || this.#badSeqs.has(seq)) return { verifiedThrough, events };
      verifiedThrough = seq;
      events += header.events;
    }
  }

  #reportOpen(bySeq: ReadonlyMap<number, ChunkRecord>): void {
    const { verifiedThrough } = this.#intactPrefix(bySeq);
    const extent =
      verifiedThrough < 0
        ? 'no chunk could be verified'
        : `verified up to chunk ${verifiedThrough} (${chunkObjectName(verifiedThrough)})`;
    if (this.#manifestBytes !== undefined) {
      // The manifest is there but unusable (already reported); say how far the chunks alone go.
      this.#notes.push(`without a usable manifest.json, ${extent}`);
    } else if (this.#options.allowOpen) {
      this.#notes.push(`no manifest.json: the session has not closed; ${extent}`);
    } else {
      this.#problem(
        RecorderErrorCode.ManifestMissing,
        `no manifest.json: the session never closed (or its manifest was deleted); ${extent}. ` +
          'Chunks after the last one present cannot be vouched for',
      );
    }
  }

  #problem(code: RecorderErrorCode, message: string, where: { object?: string; seq?: number } = {}): void {
    this.#problems.push({ code, message, ...where });
    if (where.seq !== undefined) this.#badSeqs.add(where.seq);
  }

  /** Whole-recording problems first, then by seq; stable otherwise. */
  #sortedProblems(): VerifyProblem[] {
    return this.#problems
      .map((problem, index) => ({ problem, index }))
      .sort((a, b) => (a.problem.seq ?? -1) - (b.problem.seq ?? -1) || a.index - b.index)
      .map(({ problem }) => problem);
  }
}

export interface ReadEventsOptions {
  readonly trustedKeys: VerifyKey | readonly VerifyKey[];
  readonly decryptionKeys?: readonly EncryptionKey[];
  /** Refuse chunks of any other session; defaults to the session of the first chunk. */
  readonly sessionId?: string;
  /**
   * Start inside the chain: the first chunk of `source` must be chunk `seq` and name `prev` (the
   * SHA-256 of chunk `seq - 1`, as a reader that verified it reported through `onChunk`) as its
   * predecessor. For following a live session without reading it again from the start.
   */
  readonly resume?: ChainPosition;
  /** Called after each chunk is verified, before its events are yielded. */
  readonly onChunk?: (chunk: VerifiedChunk) => void;
}

/** A place in a session's hash chain: the next chunk's seq and the digest it must name. */
export interface ChainPosition {
  readonly seq: number;
  readonly prev: string;
}

export interface VerifiedChunk {
  readonly seq: number;
  /** Its SHA-256, which the next chunk names as `prev`. */
  readonly digest: string;
  readonly events: number;
}

export type ChunkSource =
  | Iterable<Uint8Array | { readonly name: string; readonly bytes: Uint8Array }>
  | AsyncIterable<Uint8Array | { readonly name: string; readonly bytes: Uint8Array }>;

/**
 * Yields the events of a recording in order, decoding one chunk at a time. The chunks must come
 * in sequence order starting at 0; each one is checked (signature, session, seq, chain) before any
 * of its events is yielded. Throws a RecorderError at the first problem; `verifyRecording` is the
 * tool for a full diagnosis.
 */
export async function* readEvents(
  source: ChunkSource,
  options: ReadEventsOptions,
): AsyncGenerator<RecordingEvent, void, undefined> {
  const trustedKeys = Array.isArray(options.trustedKeys)
    ? options.trustedKeys
    : [options.trustedKeys as VerifyKey];
  let sessionId = options.sessionId;
  let expectedSeq = options.resume?.seq ?? 0;
  let prev = options.resume?.prev ?? GENESIS_PREV;
  for await (const item of source) {
    const { name, bytes } =
      item instanceof Uint8Array ? { name: chunkObjectName(expectedSeq), bytes: item } : item;
    const where = { object: name, seq: expectedSeq };
    const decoded = decodeChunk(bytes, { trustedKeys, decryptionKeys: options.decryptionKeys ?? [] });
    if (!decoded.ok) throw new RecorderError(decoded.error.code, `${name}: ${decoded.error.message}`, where);
    const { header } = decoded.value;
    sessionId ??= header.session;
    if (header.session !== sessionId) {
      throw new RecorderError(
        RecorderErrorCode.ChunkForeignSession,
        `${name} is chunk ${header.seq} of session ${header.session}, not of ${sessionId}`,
        where,
      );
    }
    if (header.seq !== expectedSeq) {
      throw new RecorderError(
        header.seq > expectedSeq ? RecorderErrorCode.ChunkMissing : RecorderErrorCode.ChunkMisplaced,
        header.seq > expectedSeq
          ? `${name} is chunk ${header.seq} but chunk ${expectedSeq} was expected: chunk ${expectedSeq} is missing`
          : `${name} is chunk ${header.seq} but chunk ${expectedSeq} was expected: chunks are out of order or repeated`,
        where,
      );
    }
    if (header.prev !== prev) {
      throw new RecorderError(
        RecorderErrorCode.ChainBroken,
        `chain broken at chunk ${expectedSeq}: ${name} names ${header.prev} as its predecessor, but that chunk has SHA-256 ${prev}`,
        where,
      );
    }
    prev = decoded.value.digest;
    options.onChunk?.({ seq: expectedSeq, digest: prev, events: decoded.value.events.length });
    expectedSeq += 1;
    yield* decoded.value.events;
  }
}
