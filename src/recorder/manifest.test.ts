import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.ts';
import { GENESIS_PREV } from './chunk.ts';
import { sha256, signDigest } from './crypto.ts';
import type { RecorderErrorCode } from './errors.ts';
import { buildManifest, MANIFEST_SIGNATURE_CONTEXT, type Manifest, manifestDigest, parseManifest } from './manifest.ts';
import { meta, otherSigningKey, signingKey } from './test-support.ts';

const digest = (n: number): string => sha256(Buffer.from([n])).toString('hex');
const sealed = buildManifest({
  session: 'sess-1',
  meta: meta({ client: '10.0.0.7 psql' }),
  chunks: [
    { seq: 0, digest: digest(0), bytes: 900, events: 10, t0: 0, t1: 1900 },
    { seq: 1, digest: digest(1), bytes: 300, events: 2, t0: 2100, t1: 2400 },
  ],
  kinds: { 'session.start': 1, 'sql.query': 6, 'sql.result': 4, 'session.end': 1 },
  raw: 5000,
  signingKey,
});
const text = Buffer.from(sealed.bytes).toString('utf8');

/** Re-signs an edited manifest, so only the edit (not the signature) can be what the parser objects to. */
function resigned(edit: (m: Manifest) => void): Uint8Array {
  const { signature: _old, ...unsigned }: Manifest = JSON.parse(text);
  edit(unsigned as Manifest);
  const signature = signDigest(signingKey, MANIFEST_SIGNATURE_CONTEXT, manifestDigest(unsigned as Manifest));
  return Buffer.from(`${canonicalJson({ ...unsigned, signature: signature.toString('base64') })}\n`);
}

describe('buildManifest', () => {
  it('stores canonical JSON plus one newline', () => {
    expect(text.endsWith('}\n')).toBe(true);
    expect(canonicalJson(JSON.parse(text))).toBe(text.slice(0, -1));
  });

  it('adds up totals and names the final digest', () => {
    expect(sealed.manifest).toMatchObject({
      v: 1,
      session: 'sess-1',
      final: digest(1),
      signer: signingKey.keyId,
      totals: { chunks: 2, events: 12, bytes: 1200, raw: 5000, duration: 2400 },
    });
  });

  it('parses back to the same manifest', () => {
    expect(parseManifest(sealed.bytes, [signingKey])).toEqual({ ok: true, value: sealed.manifest });
  });

  it('uses the all-zero digest as final for a session without chunks', () => {
    const empty = buildManifest({ session: 's', meta: meta(), chunks: [], kinds: {}, raw: 0, signingKey });
    expect(empty.manifest.final).toBe(GENESIS_PREV);
    expect(parseManifest(empty.bytes, [signingKey]).ok).toBe(true);
  });
});

describe('parseManifest', () => {
  it.each<[string, () => Uint8Array, RecorderErrorCode, RegExp?]>([
    ['an empty file', () => new Uint8Array(0), 'MANIFEST_TRUNCATED', /empty/],
    ['a manifest cut in half', () => sealed.bytes.subarray(0, sealed.bytes.length >> 1), 'MANIFEST_TRUNCATED', /truncated/],
    ['a manifest without its final newline', () => sealed.bytes.subarray(0, -1), 'MANIFEST_TRUNCATED', /final newline/],
    ['garbage', () => Buffer.from('not json\n'), 'MANIFEST_UNPARSEABLE'],
    ['a pretty-printed manifest', () => Buffer.from(`${JSON.stringify(JSON.parse(text), null, 2)}\n`), 'MANIFEST_NOT_CANONICAL'],
    ['a newer version', () => Buffer.from(`${canonicalJson({ ...JSON.parse(text), v: 2 })}\n`), 'MANIFEST_UNSUPPORTED_VERSION'],
    [
      'an edited event count',
      () => Buffer.from(text.replace('"events":12', '"events":11')),
      'MANIFEST_BAD_SIGNATURE',
      /altered after it was signed/,
    ],
    ['an edited chunk digest', () => Buffer.from(text.replace(digest(0), digest(9))), 'MANIFEST_BAD_SIGNATURE'],
    [
      'a manifest signed by another key',
      () => buildManifest({ session: 's', meta: meta(), chunks: [], kinds: {}, raw: 0, signingKey: otherSigningKey }).bytes,
      'MANIFEST_UNKNOWN_SIGNER',
      /not a trusted key/,
    ],
    ['a signed manifest missing totals', () => resigned((m) => delete (m as Partial<Manifest>).totals), 'MANIFEST_INVALID'],
    [
      'a signed manifest whose totals disagree with its chunks',
      () => resigned((m) => (m.totals.events = 99)),
      'MANIFEST_INCONSISTENT',
      /totals.events/,
    ],
    ['a signed manifest with a gap in seqs', () => resigned((m) => m.chunks.splice(0, 1)), 'MANIFEST_INCONSISTENT', /seq 1/],
  ])('refuses %s', (_name, bytes, code, message) => {
    const result = parseManifest(bytes(), [signingKey]);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe(code);
    if (message) expect(result.error.message).toMatch(message);
  });
});
