import { createHash, createPublicKey, verify } from 'node:crypto';
import { gzipSync, zstdDecompressSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.ts';
import {
  canonicalChunkHeader,
  type ChunkHeader,
  CHUNK_SIGNATURE_CONTEXT,
  Compression,
  decodeChunk,
  encodeChunk,
  GENESIS_PREV,
  type SealedChunk,
} from './chunk.ts';
import { type SigningKey, sha256, signDigest } from './crypto.ts';
import type { RecorderErrorCode } from './errors.ts';
import type { RecordingEvent } from './events.ts';
import {
  encryptionKey,
  eventArb,
  flipped,
  otherEncryptionKey,
  otherSigningKey,
  sampleEvents,
  signingKey,
} from './test-support.ts';

const events = sampleEvents(20);
const encode = (overrides: Partial<Parameters<typeof encodeChunk>[0]> = {}): SealedChunk =>
  encodeChunk({ session: 'sess-1', seq: 0, prev: GENESIS_PREV, events, signingKey, ...overrides });
const decode = (bytes: Uint8Array, extra: Partial<Parameters<typeof decodeChunk>[1]> = {}) =>
  decodeChunk(bytes, { trustedKeys: [signingKey], decryptionKeys: [encryptionKey], ...extra });

/** Frames and signs arbitrary header text and body by the spec, to build chunks our encoder would never write. */
function craft(headerText: string, body: Uint8Array, key: SigningKey = signingKey): Uint8Array {
  const header = Buffer.from(headerText, 'utf8');
  const preamble = Buffer.alloc(16);
  Buffer.from('89575244430d0a1a', 'hex').copy(preamble);
  preamble.writeUInt32BE(header.length, 8);
  preamble.writeUInt32BE(body.length, 12);
  const signed = Buffer.concat([preamble, header, body]);
  return Buffer.concat([signed, signDigest(key, CHUNK_SIGNATURE_CONTEXT, sha256(signed))]);
}

function validHeader(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    v: 1,
    session: 'sess-1',
    seq: 0,
    prev: GENESIS_PREV,
    t0: 5,
    t1: 5,
    events: 1,
    raw: 16,
    comp: 'none',
    signer: signingKey.keyId,
    ...overrides,
  };
}
const oneEventBody = Buffer.from('{"t":5,"k":"x"}\n');

describe('encodeChunk / decodeChunk', () => {
  it.each([
    ['zstd', Compression.Zstd, false],
    ['gzip', Compression.Gzip, false],
    ['no compression', Compression.None, false],
    ['zstd, encrypted', Compression.Zstd, true],
    ['no compression, encrypted', Compression.None, true],
  ])('round-trips events with %s', (_name, compression, encrypted) => {
    const chunk = encode({ compression, ...(encrypted ? { encryption: { key: encryptionKey } } : {}) });
    const decoded = decode(chunk.bytes);
    expect(decoded.ok && decoded.value.events).toEqual(events);
    expect(decoded.ok && decoded.value.header).toEqual(chunk.header);
    expect(decoded.ok && decoded.value.digest).toBe(chunk.digest);
    expect(chunk.header).toMatchObject({ v: 1, session: 'sess-1', seq: 0, events: 20, t0: 0, comp: compression });
    expect(chunk.header.enc !== undefined).toBe(encrypted);
  });

  it('names the encryption key and a fresh IV in the header', () => {
    const a = encode({ encryption: { key: encryptionKey } });
    const b = encode({ encryption: { key: encryptionKey } });
    expect(a.header.enc).toMatchObject({ alg: 'A256GCM', kid: encryptionKey.keyId, iv: expect.stringMatching(/^[0-9a-f]{24}$/) });
    expect(a.header.enc?.iv).not.toBe(b.header.enc?.iv);
  });

  it('can be read by an independent reader that follows docs/recording-format.md', () => {
    const chunk = encode();
    const buf = Buffer.from(chunk.bytes);
    expect(buf.subarray(0, 8).toString('latin1')).toBe('\x89WRDC\r\n\x1a');
    const h = buf.readUInt32BE(8);
    const b = buf.readUInt32BE(12);
    expect(buf.length).toBe(16 + h + b + 64);
    const header = JSON.parse(buf.subarray(16, 16 + h).toString('utf8'));
    const message = Buffer.concat([
      Buffer.from('warden.recording.v1.chunk\0', 'latin1'),
      createHash('sha256').update(buf.subarray(0, 16 + h + b)).digest(),
    ]);
    const publicKey = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), signingKey.publicKeyRaw]),
      format: 'der',
      type: 'spki',
    });
    expect(verify(null, message, publicKey, buf.subarray(16 + h + b))).toBe(true);
    const lines = zstdDecompressSync(buf.subarray(16 + h, 16 + h + b)).toString('utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.map((line) => JSON.parse(line))).toEqual(events);
    expect(header.raw).toBe(lines.join('\n').length + 1);
    expect(createHash('sha256').update(buf).digest('hex')).toBe(chunk.digest);
  });

  it('refuses an empty event list', () => {
    expect(() => encode({ events: [] })).toThrow(expect.objectContaining({ code: 'OPTION_INVALID' }));
  });
});

describe('strict decoding', () => {
  const good = encode().bytes;
  const withHeader = (overrides: Record<string, unknown>, body: Uint8Array = oneEventBody): Uint8Array =>
    craft(canonicalJson(validHeader(overrides)), body);

  it('accepts the crafted baseline (so the cases below fail for their stated reason)', () => {
    expect(decode(withHeader({})).ok).toBe(true);
  });

  it.each<[string, () => Uint8Array, RecorderErrorCode, RegExp?]>([
    ['an empty object', () => new Uint8Array(0), 'CHUNK_TRUNCATED', /empty/],
    ['a text file', () => Buffer.from('{"not":"a chunk"}'.repeat(10)), 'CHUNK_BAD_MAGIC', /magic/],
    ['a chunk cut short', () => good.subarray(0, good.length - 10), 'CHUNK_TRUNCATED', /truncated/],
    ['trailing bytes', () => Buffer.concat([good, Buffer.from('x')]), 'CHUNK_BAD_LENGTH', /trailing/],
    ['a zero header length', () => Buffer.concat([good.subarray(0, 8), Buffer.alloc(4), good.subarray(12)]), 'CHUNK_BAD_LENGTH'],
    ['one flipped body byte', () => flipped(good, good.length - 70), 'CHUNK_BAD_SIGNATURE', /altered/],
    ['one flipped signature byte', () => flipped(good, good.length - 1), 'CHUNK_BAD_SIGNATURE'],
    ['one flipped header byte', () => flipped(good, 20), 'CHUNK_BAD_SIGNATURE'],
    ['a chunk signed by another key', () => encode({ signingKey: otherSigningKey }).bytes, 'CHUNK_UNKNOWN_SIGNER', /not a trusted key/],
    ['a header that is not JSON', () => craft('{"v":1', oneEventBody), 'CHUNK_BAD_HEADER_JSON'],
    ['a header in non-canonical form', () => craft(JSON.stringify(validHeader(), null, 1), oneEventBody), 'CHUNK_HEADER_NOT_CANONICAL'],
    ['a newer format version', () => withHeader({ v: 2 }), 'CHUNK_UNSUPPORTED_VERSION', /version 2/],
    ['a negative seq', () => withHeader({ seq: -1 }), 'CHUNK_BAD_HEADER', /"seq"/],
    ['an uppercase prev', () => withHeader({ prev: 'A'.repeat(64) }), 'CHUNK_BAD_HEADER', /"prev"/],
    ['t1 before t0', () => withHeader({ t0: 6, t1: 5 }), 'CHUNK_BAD_HEADER', /"t1"/],
    ['zero events', () => withHeader({ events: 0 }), 'CHUNK_BAD_HEADER', /"events"/],
    ['an unknown compression', () => withHeader({ comp: 'lz4' }), 'CHUNK_BAD_HEADER', /"comp"/],
    ['a session id with a slash', () => withHeader({ session: 'a/b' }), 'CHUNK_BAD_HEADER', /"session"/],
    ['an oversized raw body', () => withHeader({ raw: 65 * 1024 * 1024 }), 'CHUNK_TOO_LARGE'],
    ['a raw size that disagrees with the body', () => withHeader({ raw: 17 }), 'CHUNK_BODY_MISMATCH'],
    ['an event count that disagrees with the body', () => withHeader({ events: 2 }), 'CHUNK_BODY_MISMATCH', /holds 1 events/],
    ['t0/t1 that disagree with the events', () => withHeader({ t0: 1 }), 'CHUNK_BODY_MISMATCH', /t=5..5/],
    ['a body that is not gzip', () => withHeader({ comp: 'gzip' }), 'CHUNK_DECOMPRESS_FAILED'],
    [
      'a gzip body larger than announced',
      () => withHeader({ comp: 'gzip', raw: 10 }, gzipSync(Buffer.from('x'.repeat(1000)))),
      'CHUNK_DECOMPRESS_FAILED',
    ],
    ['an event without t', () => withHeader({ raw: 10 }, Buffer.from('{"k":"x"}\n')), 'CHUNK_BAD_EVENT', /event 1 has t=undefined/],
    ['a line that is not JSON', () => withHeader({ raw: 5 }, Buffer.from('{"t"\n')), 'CHUNK_BAD_EVENT', /event 1 is not valid JSON/],
    ['a body without final newline', () => withHeader({ raw: 15 }, Buffer.from('{"t":5,"k":"x"}')), 'CHUNK_BAD_EVENT', /newline/],
    [
      'an encrypted chunk without its key',
      () => encode({ encryption: { key: encryptionKey } }).bytes,
      'CHUNK_KEY_UNAVAILABLE',
      /provide that key/,
    ],
  ])('refuses %s', (_name, bytes, code, message) => {
    const result = decode(bytes(), code === 'CHUNK_KEY_UNAVAILABLE' ? { decryptionKeys: [] } : {});
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe(code);
    if (message) expect(result.error.message).toMatch(message);
  });

  it('says clearly when the encryption key is wrong', () => {
    const result = decode(encode({ encryption: { key: encryptionKey } }).bytes, { decryptionKeys: [otherEncryptionKey] });
    expect(result).toMatchObject({ ok: false, error: { code: 'CHUNK_DECRYPT_FAILED' } });
    expect(!result.ok && result.error.message).toMatch(/not the key that encrypted this chunk/);
  });

  it('accepts a chunk signed by any of several trusted keys', () => {
    expect(decode(encode({ signingKey: otherSigningKey }).bytes, { trustedKeys: [signingKey, otherSigningKey] }).ok).toBe(true);
  });
});

describe('chunk properties', () => {
  const compressionArb = fc.constantFrom(Compression.Zstd, Compression.Gzip, Compression.None);

  it('writes chunk headers exactly as canonicalJson does (property)', () => {
    const hex = (length: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`));
    fc.assert(
      fc.property(
        fc.record({
          session: fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
          seq: fc.maxSafeNat(),
          prev: hex(64),
          t0: fc.maxSafeNat(),
          t1: fc.maxSafeNat(),
          events: fc.maxSafeNat(),
          raw: fc.maxSafeNat(),
          comp: compressionArb,
          signer: hex(16),
        }),
        fc.option(fc.record({ kid: fc.string({ unit: 'binary', maxLength: 64 }), iv: hex(24) }), { nil: undefined }),
        (fields, enc) => {
          const header: ChunkHeader = { v: 1, ...fields, ...(enc ? { enc: { alg: 'A256GCM', ...enc } } : {}) };
          expect(canonicalChunkHeader(header)).toBe(canonicalJson(header));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('decode ∘ encode is the identity on events and header (property)', () => {
    fc.assert(
      fc.property(
        fc.array(eventArb, { minLength: 1, maxLength: 30 }),
        fc.nat(),
        compressionArb,
        fc.boolean(),
        (evs: RecordingEvent[], seq, compression, encrypted) => {
          const chunk = encode({
            events: evs,
            seq,
            prev: sha256(Buffer.from(String(seq))).toString('hex'),
            compression,
            ...(encrypted ? { encryption: { key: encryptionKey } } : {}),
          });
          const decoded = decode(chunk.bytes);
          expect(decoded.ok).toBe(true);
          if (!decoded.ok) return;
          expect(decoded.value.events).toEqual(JSON.parse(JSON.stringify(evs)));
          expect(decoded.value.header).toEqual(chunk.header);
          expect(decoded.value.header.t0).toBe(Math.min(...evs.map((e) => e.t)));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('any single flipped byte makes decoding fail (property)', () => {
    const chunks = [encode(), encode({ compression: Compression.None }), encode({ encryption: { key: encryptionKey } })];
    fc.assert(
      fc.property(fc.constantFrom(...chunks), fc.nat(), fc.integer({ min: 1, max: 255 }), (chunk, at, mask) => {
        const result = decode(flipped(chunk.bytes, at % chunk.bytes.length, mask));
        expect(result.ok).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on arbitrary input, only returns errors (property)', () => {
    const good = encode().bytes;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.tuple(fc.nat(good.length), fc.uint8Array({ maxLength: 64 })).map(([cut, tail]) =>
            Buffer.concat([good.subarray(0, cut), tail]),
          ),
        ),
        (bytes) => {
          expect(() => decode(bytes)).not.toThrow();
        },
      ),
      { numRuns: 500 },
    );
  });
});
