// The test vector in docs/recording-format.md is normative: the reference implementation must
// reproduce it byte for byte, so the page and the code cannot drift apart.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Compression, decodeChunk, encodeChunk, GENESIS_PREV } from './chunk.ts';
import { loadSigningKey } from './crypto.ts';
import { EventKind } from './events.ts';
import { buildManifest, parseManifest } from './manifest.ts';
import { verifyRecording } from './verify.ts';

const page = readFileSync(new URL('../../docs/recording-format.md', import.meta.url), 'utf8');
const vectorSection = page.slice(page.indexOf('## Test vector'));
const block = (language: string): string => {
  const match = new RegExp(`\`\`\`${language}\\n([\\s\\S]*?)\`\`\``).exec(vectorSection);
  if (!match?.[1]) throw new Error(`no ${language} block in the test vector section`);
  return match[1];
};
const key = loadSigningKey(Buffer.alloc(32, 1));

describe('the test vector of docs/recording-format.md', () => {
  const documented = Buffer.from(block('hex').replace(/\s+/g, ''), 'hex');
  const chunk = encodeChunk({
    session: 'example-session',
    seq: 0,
    prev: GENESIS_PREV,
    compression: Compression.None,
    signingKey: key,
    events: [
      { t: 0, k: EventKind.SessionStart, protocol: 'ssh', connection: 'ops/bastion', startedAt: '2025-03-01T12:00:00.000Z' },
      { t: 1250, k: EventKind.TermStdout, data: { text: '$ ' } },
    ],
  });

  it('is the chunk the implementation writes, with the documented key id and digest', () => {
    expect(Buffer.from(chunk.bytes).toString('hex')).toBe(documented.toString('hex'));
    expect(key.keyId).toBe('34750f98bd59fcfc');
    expect(Buffer.from(key.publicKeyRaw).toString('hex')).toBe('8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c');
    expect(page).toContain(`Chunk digest: \`${chunk.digest}\``);
    expect(decodeChunk(documented, { trustedKeys: [key] }).ok).toBe(true);
  });

  it('has the manifest the implementation writes, and the pair verifies', () => {
    const documentedManifest = Buffer.from(block('json'));
    const { bytes } = buildManifest({
      session: 'example-session',
      meta: {
        protocol: 'ssh',
        connection: 'ops/bastion',
        user: 'alice',
        startedAt: '2025-03-01T12:00:00.000Z',
        endedAt: '2025-03-01T12:00:02.000Z',
      },
      chunks: [{ seq: 0, digest: chunk.digest, bytes: chunk.bytes.length, events: 2, t0: 0, t1: 1250 }],
      kinds: { 'session.start': 1, 'term.stdout': 1 },
      raw: chunk.header.raw,
      signingKey: key,
    });
    expect(Buffer.from(bytes).toString()).toBe(documentedManifest.toString());
    expect(parseManifest(documentedManifest, [key]).ok).toBe(true);
    const report = verifyRecording(
      { chunks: [{ name: 'chunk-00000000', bytes: documented }], manifest: documentedManifest },
      key,
      { sessionId: 'example-session' },
    );
    expect(report.problems).toEqual([]);
  });
});
