import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeChunk, GENESIS_PREV, type SealedChunk } from './chunk.ts';
import { Chunker, type ChunkerOptions, serializeEventLine } from './chunker.ts';
import { capPayload, EventKind, type RecordingEvent, type TerminalDataEvent } from './events.ts';
import { parseManifest } from './manifest.ts';
import { chunkObjectName } from './naming.ts';
import { meta, sampleEvents, signingKey } from './test-support.ts';
import { RecordingVerifier } from './verify.ts';

/** A chunker on a hand-driven clock. */
function chunkerAt(options: Partial<ChunkerOptions> = {}): { chunker: Chunker; clock: { now: number } } {
  const clock = { now: 1_000 };
  const chunker = new Chunker({ sessionId: 'sess-1', signingKey, now: () => clock.now, ...options });
  return { chunker, clock };
}

const out = (t: number, text: string): TerminalDataEvent => ({ t, k: EventKind.TermStdout, data: capPayload(text, 1 << 20) });
const lineBytes = (event: RecordingEvent): number => Buffer.byteLength(`${JSON.stringify(event)}\n`);
const eventsOf = (chunk: SealedChunk): RecordingEvent[] => {
  const decoded = decodeChunk(chunk.bytes, { trustedKeys: [signingKey] });
  if (!decoded.ok) throw decoded.error;
  return decoded.value.events;
};

describe('Chunker size bound', () => {
  it('seals before an event would push the body past maxChunkBytes', () => {
    const event = out(0, 'x'.repeat(50));
    const size = lineBytes(event);
    const { chunker } = chunkerAt({ maxChunkBytes: size * 3 + 1 });
    expect(chunker.append(event)).toEqual([]);
    expect(chunker.append(event)).toEqual([]);
    expect(chunker.append(event)).toEqual([]);
    expect(chunker.bufferedBytes).toBe(size * 3);
    const [sealed, ...rest] = chunker.append(event);
    expect(rest).toEqual([]);
    expect(sealed?.header).toMatchObject({ seq: 0, events: 3, raw: size * 3, prev: GENESIS_PREV });
    expect(chunker.bufferedEvents).toBe(1);
  });

  it('seals as soon as the body reaches maxChunkBytes exactly', () => {
    const event = out(0, 'y'.repeat(20));
    const { chunker } = chunkerAt({ maxChunkBytes: lineBytes(event) * 2 });
    chunker.append(event);
    expect(chunker.append(event).map((c) => c.header.events)).toEqual([2]);
    expect(chunker.bufferedBytes).toBe(0);
  });

  it('puts an event larger than maxChunkBytes in a chunk of its own, after sealing what was buffered', () => {
    const { chunker } = chunkerAt({ maxChunkBytes: 100 });
    chunker.append(out(1, 'small'));
    const sealed = chunker.append(out(2, 'big'.repeat(100)));
    expect(sealed.map((c) => [c.seq, c.header.events])).toEqual([
      [0, 1],
      [1, 1],
    ]);
    expect(eventsOf(sealed[1] as SealedChunk)[0]).toMatchObject({ t: 2 });
    expect(chunker.bufferedBytes).toBe(0);
  });

  it('refuses an event beyond maxEventBytes with EVENT_TOO_LARGE and keeps working', () => {
    const { chunker } = chunkerAt({ maxChunkBytes: 100, maxEventBytes: 200 });
    expect(() => chunker.append(out(1, 'z'.repeat(500)))).toThrow(expect.objectContaining({ code: 'EVENT_TOO_LARGE' }));
    expect(chunker.append(out(2, 'ok'))).toEqual([]);
    expect(chunker.bufferedEvents).toBe(1);
  });
});

describe('Chunker time bound', () => {
  it('seals on tick once the oldest buffered event is maxChunkAgeMs old', () => {
    const { chunker, clock } = chunkerAt({ maxChunkAgeMs: 2000 });
    chunker.append(out(0, 'a'));
    clock.now += 1500;
    chunker.append(out(1500, 'b'));
    expect(chunker.deadline()).toBe(3_000);
    expect(chunker.tick(2_999)).toBeUndefined();
    const sealed = chunker.tick(3_000);
    expect(sealed?.header).toMatchObject({ seq: 0, events: 2, t0: 0, t1: 1500 });
    expect(chunker.deadline()).toBeUndefined();
    expect(chunker.tick(10_000)).toBeUndefined();
  });

  it('seals on append when the bound has passed without a tick', () => {
    const { chunker, clock } = chunkerAt({ maxChunkAgeMs: 2000 });
    chunker.append(out(0, 'a'));
    clock.now += 2500;
    expect(chunker.append(out(2500, 'b')).map((c) => c.header.events)).toEqual([2]);
  });

  it('uses the injected clock when tick is called without a time', () => {
    const { chunker, clock } = chunkerAt({ maxChunkAgeMs: 10 });
    chunker.append(out(0, 'a'));
    clock.now += 10;
    expect(chunker.tick()?.seq).toBe(0);
  });
});

describe('Chunker chain and close', () => {
  it('numbers chunks from 0 and links each to the digest of the previous one', () => {
    const { chunker } = chunkerAt({ maxChunkBytes: 200 });
    const sealed = sampleEvents(40).flatMap((event) => chunker.append(event));
    expect(sealed.length).toBeGreaterThan(3);
    sealed.forEach((chunk, index) => {
      expect(chunk.seq).toBe(index);
      expect(chunk.header.prev).toBe(index === 0 ? GENESIS_PREV : sealed[index - 1]?.digest);
    });
    expect(chunker.head).toBe(sealed.at(-1)?.digest);
    expect(chunker.nextSeq).toBe(sealed.length);
  });

  it('seals the tail at close and signs a manifest listing every chunk', () => {
    const { chunker } = chunkerAt({ maxChunkBytes: 300 });
    const events = sampleEvents(25);
    const sealed = events.flatMap((event) => chunker.append(event));
    const { tail, manifest } = chunker.close(meta());
    expect(tail).toBeDefined();
    const all = [...sealed, tail as SealedChunk];
    expect(all.flatMap(eventsOf)).toEqual(events);
    expect(manifest.manifest.chunks.map((c) => [c.seq, c.digest])).toEqual(all.map((c) => [c.seq, c.digest]));
    expect(manifest.manifest.totals).toMatchObject({
      chunks: all.length,
      events: 25,
      bytes: all.reduce((sum, c) => sum + c.bytes.length, 0),
      duration: events.at(-1)?.t,
      kinds: { 'session.start': 1, auth: 1, 'session.end': 1 },
    });
    expect(manifest.manifest.final).toBe(tail?.digest);
    expect(parseManifest(manifest.bytes, [signingKey]).ok).toBe(true);
  });

  it('closes a session with nothing buffered without an empty chunk', () => {
    const { chunker } = chunkerAt();
    const { tail, manifest } = chunker.close(meta());
    expect(tail).toBeUndefined();
    expect(manifest.manifest).toMatchObject({ chunks: [], final: GENESIS_PREV, totals: { chunks: 0, events: 0 } });
  });

  it.each<[string, (chunker: Chunker) => unknown]>([
    ['append', (chunker) => chunker.append(out(0, 'late'))],
    ['flush', (chunker) => chunker.flush()],
    ['close', (chunker) => chunker.close(meta())],
  ])('refuses %s after close with CHUNKER_CLOSED', (_name, call) => {
    const { chunker } = chunkerAt();
    chunker.close(meta());
    expect(() => call(chunker)).toThrow(expect.objectContaining({ code: 'CHUNKER_CLOSED' }));
    expect(chunker.tick(Number.MAX_SAFE_INTEGER)).toBeUndefined();
  });

  it.each<[string, RecordingEvent]>([
    ['a fractional t', { ...out(0, 'a'), t: 1.5 }],
    ['a negative t', { ...out(0, 'a'), t: -1 }],
    ['an empty kind', { ...out(0, 'a'), k: '' as typeof EventKind.TermStdout }],
  ])('refuses an event with %s as EVENT_INVALID', (_name, event) => {
    const { chunker } = chunkerAt();
    expect(() => chunker.append(event)).toThrow(expect.objectContaining({ code: 'EVENT_INVALID' }));
  });

  it.each<[string, Partial<ChunkerOptions>, string]>([
    ['a session id with a slash', { sessionId: 'a/b' }, 'SESSION_ID_INVALID'],
    ['a zero size bound', { maxChunkBytes: 0 }, 'OPTION_INVALID'],
    ['a size bound over 64 MiB', { maxChunkBytes: 65 * 1024 * 1024 }, 'OPTION_INVALID'],
  ])('refuses %s', (_name, options, code) => {
    expect(() => chunkerAt(options)).toThrow(expect.objectContaining({ code }));
  });
});

describe('Chunker memory bound', () => {
  it('streams 64 MiB of events while never buffering more than one chunk', () => {
    const maxChunkBytes = 1024 * 1024;
    const { chunker, clock } = chunkerAt({ maxChunkBytes });
    const verifier = new RecordingVerifier(signingKey, { sessionId: 'sess-1' });
    // Varied, partly compressible terminal output, ~4 KiB per event.
    const pool = Array.from({ length: 64 }, (_, i) =>
      Buffer.from(Array.from({ length: 512 }, (_, j) => ((i * 7919 + j * 104729) % 9973).toString(16)).join(' ')).subarray(0, 4000),
    );
    let produced = 0;
    let events = 0;
    let chunks = 0;
    let peak = 0;
    const ship = (chunk: SealedChunk): void => {
      verifier.addChunk(chunkObjectName(chunk.seq), chunk.bytes);
      chunks += 1;
    };
    for (let i = 0; produced < 64 * 1024 * 1024; i++) {
      clock.now += 1;
      const event: RecordingEvent = { t: i, k: EventKind.TermStdout, data: capPayload(pool[i % pool.length] as Buffer, 8192) };
      produced += lineBytes(event);
      events += 1;
      for (const chunk of chunker.append(event)) ship(chunk);
      peak = Math.max(peak, chunker.bufferedBytes);
      expect(chunker.bufferedBytes).toBeLessThanOrEqual(maxChunkBytes);
    }
    const { tail, manifest } = chunker.close(meta());
    if (tail) ship(tail);
    verifier.addManifest(manifest.bytes);
    const report = verifier.finish();

    expect(peak).toBeLessThanOrEqual(maxChunkBytes);
    expect(chunks).toBeGreaterThanOrEqual(64);
    expect(report).toMatchObject({ ok: true, events, verifiedThrough: chunks - 1 });
  }, 120_000);
});

describe('Chunker body', () => {
  // The body is one buffer reused from chunk to chunk and released after a time-bound seal; events
  // larger than the size bound bypass it. Whatever the mix, each chunk must hold exactly the JSON
  // lines of its events, in order, within the size bound unless alone.
  const eventArb = fc.oneof(
    fc.record({ text: fc.string({ unit: 'binary', maxLength: 600 }) }).map(({ text }) => ({ k: 'term.stdout', data: { text } })),
    fc.uint8Array({ minLength: 0, maxLength: 3000 }).map((bytes) => ({ k: 'term.stdout', data: { b64: Buffer.from(bytes).toString('base64') } })),
    fc.record({ id: fc.nat(), url: fc.string({ unit: 'grapheme', maxLength: 80 }) }).map((fields) => ({ k: 'http.request', method: 'GET', ...fields })),
  );

  it('seals exactly the events appended, in order, whatever the sizes, encodings and seals in between', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 64, max: 4096 }),
        fc.array(fc.tuple(eventArb, fc.constantFrom('none', 'none', 'none', 'tick', 'flush')), { minLength: 1, maxLength: 60 }),
        (maxChunkBytes, steps) => {
          const { chunker, clock } = chunkerAt({ maxChunkBytes, maxChunkAgeMs: 10 });
          const sealed: SealedChunk[] = [];
          const appended: RecordingEvent[] = [];
          steps.forEach(([shape, after], i) => {
            const event = { t: i, ...shape } as unknown as RecordingEvent;
            appended.push(event);
            sealed.push(...chunker.append(event));
            if (after === 'tick') {
              clock.now += 10;
              const chunk = chunker.tick();
              if (chunk) sealed.push(chunk);
            } else if (after === 'flush') {
              const chunk = chunker.flush();
              if (chunk) sealed.push(chunk);
            }
          });
          const { tail } = chunker.close(meta());
          if (tail) sealed.push(tail);

          expect(sealed.map((chunk) => chunk.seq)).toEqual(sealed.map((_, i) => i));
          const decoded = sealed.flatMap((chunk) => {
            const events = eventsOf(chunk);
            expect(chunk.header.raw).toBe(events.reduce((sum, event) => sum + lineBytes(event), 0));
            if (events.length > 1) expect(chunk.header.raw).toBeLessThanOrEqual(maxChunkBytes);
            return events;
          });
          expect(decoded).toEqual(appended);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('serializeEventLine', () => {
  const plain = (event: unknown): Buffer => Buffer.from(`${JSON.stringify(event)}\n`, 'utf8');
  const b64 = (n: number): string => randomBytes(n).toString('base64');

  it.each([
    ['binary terminal output', { k: 'term.stdout', ch: 0, data: { b64: b64(32_768) }, t: 12 }],
    ['a truncated payload with size', { t: 3, k: 'term.stdout', data: { b64: b64(4096), truncated: true, size: 99_999 }, ch: 1 }],
    ['non-ASCII text around the slot', { t: 1, k: 'x', note: 'héllo ✓ "b64"', data: { size: 1, b64: b64(2000) }, after: '→' }],
    ['a short b64 (plain path)', { t: 0, k: 'term.stdin', ch: 0, data: { b64: 'AAEC' } }],
    ['b64 that is not canonical base64 (plain path)', { t: 0, k: 'x', data: { b64: `${'A'.repeat(2000)}"}` } }],
    ['a second "b64":"" slot elsewhere (plain path)', { t: 0, k: 'x', other: { 'q"b64': '' }, data: { b64: b64(2000) } }],
  ])('writes exactly JSON.stringify + newline for %s', (_name, event) => {
    expect(serializeEventLine(event as unknown as RecordingEvent).equals(plain(event))).toBe(true);
  });

  it('matches JSON.stringify for arbitrary events with base64 payloads', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 4 }),
        fc.uint8Array({ minLength: 700, maxLength: 3000 }),
        fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }),
        fc.boolean(),
        (extra, bytes, dataExtra, b64First) => {
          const b = Buffer.from(bytes).toString('base64');
          const data = b64First ? { b64: b, ...dataExtra } : { ...dataExtra, b64: b };
          const event = { ...extra, t: 5, k: 'term.stdout', data };
          expect(serializeEventLine(event as unknown as RecordingEvent).toString('utf8')).toBe(plain(event).toString('utf8'));
        },
      ),
      { numRuns: 300 },
    );
  });
});
