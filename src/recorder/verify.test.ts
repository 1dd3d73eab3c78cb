import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Compression, encodeChunk } from './chunk.ts';
import { sha256Hex } from './crypto.ts';
import type { RecorderErrorCode } from './errors.ts';
import type { RecordingEvent } from './events.ts';
import { chunkObjectKey, chunkObjectName } from './naming.ts';
import {
  encryptionKey,
  eventArb,
  flipped,
  otherEncryptionKey,
  otherSigningKey,
  type Recorded,
  record,
  sampleEvents,
  signingKey,
} from './test-support.ts';
import { readEvents, type VerifiedChunk, type VerifyReport, verifyRecording } from './verify.ts';

const events = sampleEvents(60);
const clean = record(events);
const last = clean.chunks.length - 1;
const verify = (recording: Partial<Recorded>, options = {}): VerifyReport =>
  verifyRecording({ chunks: recording.chunks ?? clean.chunks, manifest: recording.manifest }, signingKey, {
    sessionId: 'sess-1',
    ...options,
  });
const withChunk = (seq: number, bytes: Uint8Array): Recorded['chunks'] =>
  clean.chunks.map((chunk, index) => (index === seq ? { ...chunk, bytes } : chunk));
const codes = (report: VerifyReport): Array<[RecorderErrorCode, number | undefined]> =>
  report.problems.map((problem) => [problem.code, problem.seq]);
const chunkBytes = (seq: number): Uint8Array => clean.chunks[seq]?.bytes as Uint8Array;

describe('verifyRecording of an intact recording', () => {
  it('is ok, closed, and counts every event', () => {
    expect(clean.chunks.length).toBeGreaterThanOrEqual(6);
    expect(verify(clean)).toEqual({
      ok: true,
      sessionId: 'sess-1',
      closed: true,
      objects: clean.chunks.length,
      verifiedThrough: last,
      events: 60,
      bodiesChecked: true,
      problems: [],
      notes: [],
    });
  });

  it('accepts full object keys as names and any listing order', () => {
    const startedAt = new Date('2025-03-01T12:00:00Z');
    const chunks = clean.chunks
      .map((chunk, seq) => ({ name: chunkObjectKey('recordings', startedAt, 'sess-1', seq), bytes: chunk.bytes }))
      .reverse();
    expect(verify({ chunks, manifest: clean.manifest }).ok).toBe(true);
  });

  it('infers the session from the chunks when none is given', () => {
    const report = verifyRecording(clean, [otherSigningKey, signingKey]);
    expect(report).toMatchObject({ ok: true, sessionId: 'sess-1' });
  });
});

describe('verifyRecording names each kind of tampering', () => {
  it('one modified byte in a chunk: bad signature and digest mismatch for that chunk', () => {
    const report = verify({ ...clean, chunks: withChunk(2, flipped(chunkBytes(2), chunkBytes(2).length - 80)) });
    expect(codes(report)).toEqual([
      ['CHUNK_BAD_SIGNATURE', 2],
      ['MANIFEST_DIGEST_MISMATCH', 2],
    ]);
    expect(report.problems[0]?.message).toMatch(/^chunk-00000002: the signature does not verify .* altered after it was signed/);
    expect(report.problems[1]?.message).toMatch(/^chunk-00000002 has SHA-256 [0-9a-f]{64} but manifest.json lists [0-9a-f]{64}/);
    expect(report).toMatchObject({ ok: false, verifiedThrough: 1 });
  });

  it('a deleted chunk: missing, by name', () => {
    const report = verify({ ...clean, chunks: clean.chunks.filter((_, seq) => seq !== 3) });
    expect(codes(report)).toEqual([['CHUNK_MISSING', 3]]);
    expect(report.problems[0]?.message).toBe('chunk-00000003 is missing: chunk 3 was deleted or never written');
    expect(report.verifiedThrough).toBe(2);
  });

  it('a deleted last chunk: missing according to the manifest', () => {
    const report = verify({ ...clean, chunks: clean.chunks.slice(0, -1) });
    expect(codes(report)).toEqual([['CHUNK_MISSING', last]]);
  });

  it('two reordered chunks: each object holds the other one', () => {
    const chunks = withChunk(1, chunkBytes(2)).map((chunk, seq) => (seq === 2 ? { ...chunk, bytes: chunkBytes(1) } : chunk));
    const report = verify({ ...clean, chunks });
    expect(codes(report)).toEqual([
      ['CHUNK_MISPLACED', 1],
      ['CHUNK_MISPLACED', 2],
    ]);
    expect(report.problems[0]?.message).toMatch(/^chunk-00000001 holds chunk 2, not 1: objects were renamed or reordered/);
    expect(report.verifiedThrough).toBe(0);
  });

  it('a chunk swapped in from another session: foreign session, and not the listed digest', () => {
    const other = record(events, {}, 'sess-2');
    const report = verify({ ...clean, chunks: withChunk(2, other.chunks[2]?.bytes as Uint8Array) });
    expect(codes(report)).toEqual([
      ['CHUNK_FOREIGN_SESSION', 2],
      ['MANIFEST_DIGEST_MISMATCH', 2],
    ]);
    expect(report.problems[0]?.message).toBe(
      'chunk-00000002 is chunk 2 of session sess-2, not of sess-1: it was copied in from another recording',
    );
  });

  it('a truncated manifest: truncated, and how far the chunks alone verify', () => {
    const report = verify({ ...clean, manifest: clean.manifest.subarray(0, 100) });
    expect(codes(report)).toEqual([['MANIFEST_TRUNCATED', undefined]]);
    expect(report.problems[0]).toMatchObject({ object: 'manifest.json', message: expect.stringMatching(/truncated/) });
    expect(report.notes).toEqual([`without a usable manifest.json, verified up to chunk ${last} (${chunkObjectName(last)})`]);
    expect(report).toMatchObject({ ok: false, closed: false, verifiedThrough: last });
  });

  it('the wrong public key: every object names the key that signed it', () => {
    const report = verifyRecording(clean, otherSigningKey, { sessionId: 'sess-1' });
    expect(report.problems.map((problem) => problem.code)).toEqual([
      'MANIFEST_UNKNOWN_SIGNER',
      ...clean.chunks.map(() => 'CHUNK_UNKNOWN_SIGNER'),
    ]);
    expect(report.problems[1]?.message).toContain(`signed by key ${signingKey.keyId}, which is not a trusted key (trusted: ${otherSigningKey.keyId})`);
    expect(report.verifiedThrough).toBe(-1);
  });

  it('a re-signed chunk with a wrong prev: chain broken at that chunk and the next', () => {
    const forged = encodeChunk({ session: 'sess-1', seq: 2, prev: 'ab'.repeat(32), events: events.slice(0, 3), signingKey });
    const report = verify({ ...clean, chunks: withChunk(2, forged.bytes) });
    expect(codes(report)).toEqual([
      ['CHAIN_BROKEN', 2],
      ['MANIFEST_DIGEST_MISMATCH', 2],
      ['CHAIN_BROKEN', 3],
    ]);
    expect(report.problems[0]?.message).toMatch(/^chain broken at chunk 2: chunk-00000002 says the previous chunk has SHA-256 abab/);
  });

  it('a chunk added after close: not listed in the manifest', () => {
    const lastChunk = clean.chunks[last] as Recorded['chunks'][number];
    const extra = encodeChunk({
      session: 'sess-1',
      seq: last + 1,
      prev: sha256Hex(lastChunk.bytes),
      events: events.slice(0, 2),
      signingKey,
    });
    const report = verify({ ...clean, chunks: [...clean.chunks, { name: chunkObjectName(last + 1), bytes: extra.bytes }] });
    expect(codes(report)).toEqual([['CHUNK_UNLISTED', last + 1]]);
  });

  it('a copy of a chunk under another name: misplaced and duplicate', () => {
    const report = verify({ ...clean, chunks: [...clean.chunks, { name: chunkObjectName(last + 5), bytes: chunkBytes(1) }] });
    expect(codes(report)).toEqual([
      ['CHUNK_DUPLICATE', 1],
      ['CHUNK_MISPLACED', last + 5],
    ]);
    expect(report.problems[0]?.message).toBe(`chunk-00000001 and ${chunkObjectName(last + 5)} are both chunk 1 (identical copies)`);
  });

  it('an object that is not a chunk name', () => {
    const report = verify({ ...clean, chunks: [...clean.chunks, { name: 'notes.txt', bytes: Buffer.from('hello') }] });
    expect(report.problems.map((problem) => problem.code)).toEqual(['CHUNK_BAD_NAME', 'CHUNK_TRUNCATED']);
  });

  it('a manifest of another session', () => {
    const other = record(events, {}, 'sess-2');
    const report = verify({ ...clean, manifest: other.manifest });
    expect(codes(report)).toEqual([['MANIFEST_FOREIGN_SESSION', undefined]]);
    expect(report.closed).toBe(false);
  });
});

describe('verifyRecording of sessions that never closed', () => {
  it('fails without a manifest and says how far the chunks verify', () => {
    const report = verify({ chunks: clean.chunks });
    expect(codes(report)).toEqual([['MANIFEST_MISSING', undefined]]);
    expect(report.problems[0]?.message).toMatch(
      new RegExp(`^no manifest.json: the session never closed .*; verified up to chunk ${last} \\(chunk-0+${last}\\)`),
    );
    expect(report).toMatchObject({ ok: false, closed: false, verifiedThrough: last, events: 60 });
  });

  it('accepts an open session with allowOpen, as a note', () => {
    const report = verify({ chunks: clean.chunks.slice(0, 3) }, { allowOpen: true });
    expect(report).toMatchObject({ ok: true, closed: false, verifiedThrough: 2 });
    expect(report.notes).toEqual(['no manifest.json: the session has not closed; verified up to chunk 2 (chunk-00000002)']);
  });

  it('still finds a gap in an open session', () => {
    const report = verify({ chunks: clean.chunks.filter((_, seq) => seq !== 1) }, { allowOpen: true });
    expect(codes(report)).toEqual([['CHUNK_MISSING', 1]]);
    expect(report.verifiedThrough).toBe(0);
  });

  it('reports an empty input', () => {
    expect(codes(verify({ chunks: [] }))).toEqual([['NO_CHUNKS', undefined]]);
  });
});

describe('verifyRecording of encrypted recordings', () => {
  const encrypted = record(events, { encryption: { key: encryptionKey } });

  it('verifies signatures, chain and manifest without the decryption key, and says so', () => {
    const report = verify(encrypted);
    expect(report).toMatchObject({ ok: true, bodiesChecked: false });
    expect(report.notes[0]).toMatch(new RegExp(`encrypted with key id ${encryptionKey.keyId}.*bodies were not decoded`));
  });

  it('decodes the bodies with the key', () => {
    expect(verify(encrypted, { decryptionKeys: [encryptionKey] })).toMatchObject({ ok: true, bodiesChecked: true, notes: [] });
  });

  it('names the wrong key', () => {
    const report = verify(encrypted, { decryptionKeys: [otherEncryptionKey] });
    expect(report.problems[0]).toMatchObject({ code: 'CHUNK_DECRYPT_FAILED', seq: 0 });
  });
});

describe('readEvents', () => {
  const collect = async (source: Parameters<typeof readEvents>[0], options = {}): Promise<RecordingEvent[]> => {
    const out: RecordingEvent[] = [];
    for await (const event of readEvents(source, { trustedKeys: signingKey, ...options })) out.push(event);
    return out;
  };

  it('yields every event in order, one chunk at a time, from sync or async sources', async () => {
    expect(await collect(clean.chunks)).toEqual(events);
    async function* slowly(): AsyncGenerator<Uint8Array> {
      for (const chunk of clean.chunks) yield chunk.bytes;
    }
    expect(await collect(slowly())).toEqual(events);
  });

  it('reports each verified chunk, and resumes inside the chain from what it reported', async () => {
    const seen: VerifiedChunk[] = [];
    expect(await collect(clean.chunks, { onChunk: (c: VerifiedChunk) => seen.push(c) })).toEqual(events);
    expect(seen.map((c) => c.seq)).toEqual(clean.chunks.map((_, i) => i));
    expect(seen.reduce((n, c) => n + c.events, 0)).toBe(events.length);
    expect(seen[1]?.digest).toBe(sha256Hex(chunkBytes(1)));
    // From chunk 2 on, linked to chunk 1's digest: exactly the events after the first two chunks.
    const before = (seen[0]?.events ?? 0) + (seen[1]?.events ?? 0);
    const rest = clean.chunks.slice(2);
    expect(await collect(rest, { resume: { seq: 2, prev: seen[1]?.digest } })).toEqual(events.slice(before));
    // The chain is still checked: another predecessor digest, or the wrong first chunk, is refused.
    await expect(collect(rest, { resume: { seq: 2, prev: seen[0]?.digest } })).rejects.toMatchObject({ code: 'CHAIN_BROKEN', seq: 2 });
    await expect(collect(clean.chunks.slice(3), { resume: { seq: 2, prev: seen[1]?.digest } })).rejects.toMatchObject({ code: 'CHUNK_MISSING', seq: 2 });
  });

  it('decrypts with the key', async () => {
    const encrypted = record(events, { encryption: { key: encryptionKey } });
    expect(await collect(encrypted.chunks, { decryptionKeys: [encryptionKey] })).toEqual(events);
    await expect(collect(encrypted.chunks)).rejects.toMatchObject({ code: 'CHUNK_KEY_UNAVAILABLE', seq: 0 });
  });

  it.each<[string, () => Recorded['chunks'], RecorderErrorCode, number, string]>([
    ['a gap', () => clean.chunks.filter((_, seq) => seq !== 2), 'CHUNK_MISSING', 2, 'chunk-00000003'],
    [
      'a repeated chunk',
      () => [clean.chunks[0], clean.chunks[1], clean.chunks[1]] as Recorded['chunks'],
      'CHUNK_MISPLACED',
      2,
      'chunk-00000001',
    ],
    ['a modified byte', () => withChunk(1, flipped(chunkBytes(1), 40)), 'CHUNK_BAD_SIGNATURE', 1, 'chunk-00000001'],
    [
      'a foreign chunk',
      () => withChunk(1, record(events, {}, 'sess-9').chunks[1]?.bytes as Uint8Array),
      'CHUNK_FOREIGN_SESSION',
      1,
      'chunk-00000001',
    ],
    [
      'a broken chain',
      () =>
        withChunk(
          1,
          encodeChunk({ session: 'sess-1', seq: 1, prev: 'cd'.repeat(32), events: events.slice(0, 1), signingKey }).bytes,
        ),
      'CHAIN_BROKEN',
      1,
      'chunk-00000001',
    ],
  ])('stops at %s with a RecorderError naming the object and the expected seq', async (_name, chunks, code, seq, object) => {
    await expect(collect(chunks())).rejects.toMatchObject({ code, seq, object });
  });
});

describe('verification properties', () => {
  const recordingArb: fc.Arbitrary<{ events: RecordingEvent[]; maxChunkBytes: number; compression: Compression }> = fc.record({
    events: fc.array(eventArb, { minLength: 1, maxLength: 40 }),
    maxChunkBytes: fc.integer({ min: 64, max: 4096 }),
    compression: fc.constantFrom(Compression.Zstd, Compression.Gzip, Compression.None),
  });
  const recorded = (input: { events: RecordingEvent[]; maxChunkBytes: number; compression: Compression }): Recorded =>
    record(input.events, { maxChunkBytes: input.maxChunkBytes, compression: input.compression });

  it('any recorded sequence verifies and reads back unchanged (property)', async () => {
    await fc.assert(
      fc.asyncProperty(recordingArb, async (input) => {
        const recording = recorded(input);
        const report = verify(recording);
        expect(report.problems).toEqual([]);
        expect(report.events).toBe(input.events.length);
        const read: RecordingEvent[] = [];
        for await (const event of readEvents(recording.chunks, { trustedKeys: signingKey })) read.push(event);
        expect(read).toEqual(JSON.parse(JSON.stringify(input.events)));
      }),
      { numRuns: 100 },
    );
  });

  it('any single flipped byte in any object makes verification fail (property)', () => {
    fc.assert(
      fc.property(recordingArb, fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), (input, which, at, mask) => {
        const recording = recorded(input);
        const target = which % (recording.chunks.length + 1);
        const tampered: Recorded =
          target === recording.chunks.length
            ? { ...recording, manifest: flipped(recording.manifest, at % recording.manifest.length, mask) }
            : {
                ...recording,
                chunks: recording.chunks.map((chunk, seq) =>
                  seq === target ? { ...chunk, bytes: flipped(chunk.bytes, at % chunk.bytes.length, mask) } : chunk,
                ),
              };
        const report = verify(tampered);
        expect(report.ok).toBe(false);
        // The damage is pinned to the object that was touched.
        if (target < recording.chunks.length) expect(report.problems.some((problem) => problem.seq === target)).toBe(true);
        else expect(report.problems.some((problem) => problem.object === 'manifest.json')).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('deleting or swapping chunks is always named (property)', () => {
    fc.assert(
      fc.property(recordingArb, fc.nat(), fc.nat(), (input, a, b) => {
        const recording = recorded(input);
        const n = recording.chunks.length;
        fc.pre(n >= 2);
        const [i, j] = [a % n, b % n];
        const deleted = verify({ ...recording, chunks: recording.chunks.filter((_, seq) => seq !== i) });
        expect(codes(deleted)).toContainEqual(['CHUNK_MISSING', i]);
        fc.pre(i !== j);
        const swapped = recording.chunks.map((chunk, seq) => {
          const from = seq === i ? j : seq === j ? i : seq;
          return { name: chunk.name, bytes: recording.chunks[from]?.bytes as Uint8Array };
        });
        const report = verify({ ...recording, chunks: swapped });
        expect(codes(report)).toEqual(expect.arrayContaining([['CHUNK_MISPLACED', i], ['CHUNK_MISPLACED', j]]));
      }),
      { numRuns: 200 },
    );
  });
});
