// Fixture builders shared by the recorder's tests (STYLE.md point 10). Not part of the public API.

import fc from 'fast-check';
import { Chunker, type ChunkerOptions } from './chunker.ts';
import { loadEncryptionKey, loadSigningKey, type SigningKey } from './crypto.ts';
import { capPayload, Decision, EventKind, type RecordingEvent } from './events.ts';
import type { SessionMeta } from './manifest.ts';
import { chunkObjectName } from './naming.ts';

/** Deterministic keys so failures reproduce. */
export const signingKey: SigningKey = loadSigningKey(Buffer.alloc(32, 1));
export const otherSigningKey: SigningKey = loadSigningKey(Buffer.alloc(32, 2));
export const encryptionKey = loadEncryptionKey(Buffer.alloc(32, 3));
export const otherEncryptionKey = loadEncryptionKey(Buffer.alloc(32, 4), encryptionKey.keyId);

export function meta(overrides: Partial<SessionMeta> = {}): SessionMeta {
  return {
    protocol: 'postgres',
    connection: 'shop/orders-db',
    user: 'alice',
    groups: ['dba'],
    startedAt: '2025-03-01T12:00:00.000Z',
    endedAt: '2025-03-01T12:05:00.000Z',
    ...overrides,
  };
}

/** A plausible mixed session: start, auth, queries with results, terminal bytes, end. */
export function sampleEvents(count: number): RecordingEvent[] {
  const events: RecordingEvent[] = [
    {
      t: 0,
      k: EventKind.SessionStart,
      protocol: 'postgres',
      connection: 'shop/orders-db',
      startedAt: '2025-03-01T12:00:00.000Z',
    },
    { t: 1, k: EventKind.Auth, ok: true, method: 'oidc', user: 'alice', groups: ['dba'] },
  ];
  for (let i = 0; events.length < count - 1; i++) {
    const t = 10 + i * 7;
    if (i % 3 === 2) {
      events.push({ t, k: EventKind.TermStdout, data: capPayload(Uint8Array.of(0x1b, 0x5b, 0x48, 0xff, i & 0xff), 64) });
    } else if (i % 2 === 0) {
      events.push({
        t,
        k: EventKind.SqlQuery,
        id: i,
        text: capPayload(`SELECT * FROM orders WHERE id = ${i}`, 1024),
        class: 'select',
        decision: Decision.Allow,
      });
    } else {
      events.push({ t, k: EventKind.SqlResult, id: i - 1, columns: ['id', 'total'], rows: [[String(i), '9.99']], rowCount: 1 });
    }
  }
  events.push({ t: 10 + count * 7, k: EventKind.SessionEnd, reason: 'client-closed' });
  return events.slice(0, count);
}

export interface Recorded {
  chunks: Array<{ name: string; bytes: Uint8Array }>;
  manifest: Uint8Array;
}

/** Records `events` through a Chunker and returns the objects as they would be stored. */
export function record(
  events: readonly RecordingEvent[],
  options: Partial<ChunkerOptions> = {},
  sessionId = 'sess-1',
): Recorded {
  const chunker = new Chunker({ sessionId, signingKey, maxChunkBytes: 512, now: () => 0, ...options });
  const chunks: Recorded['chunks'] = [];
  const keep = (sealed: { seq: number; bytes: Uint8Array }): void => {
    chunks.push({ name: chunkObjectName(sealed.seq), bytes: sealed.bytes });
  };
  for (const event of events) chunker.append(event).forEach(keep);
  const closed = chunker.close(meta());
  if (closed.tail) keep(closed.tail);
  return { chunks, manifest: closed.manifest.bytes };
}

/** A copy with `bytes[offset] ^= mask`. */
export function flipped(bytes: Uint8Array, offset: number, mask = 0x01): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] ?? 0) ^ mask;
  return copy;
}

const tArb = fc.nat({ max: 10_000_000 });
const payloadArb = fc
  .tuple(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 120 })), fc.nat({ max: 260 }))
  .map(([data, cap]) => capPayload(data, cap));
const nameArb = fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/);

/** Arbitrary events of every payload-bearing shape (kinds are sampled, not exhaustive). */
export const eventArb: fc.Arbitrary<RecordingEvent> = fc.oneof(
  fc.record({ t: tArb, k: fc.constantFrom(EventKind.TermStdin, EventKind.TermStdout, EventKind.TermStderr), data: payloadArb }),
  fc.record({ t: tArb, k: fc.constant(EventKind.TermResize), cols: fc.nat(500), rows: fc.nat(200) }),
  fc.record(
    {
      t: tArb,
      k: fc.constant(EventKind.SqlQuery),
      id: fc.nat(),
      text: payloadArb,
      params: fc.array(fc.option(payloadArb, { nil: null }), { maxLength: 3 }),
      decision: fc.constantFrom(Decision.Allow, Decision.Deny, Decision.RequireApproval),
    },
    { requiredKeys: ['t', 'k', 'text', 'decision'] },
  ),
  fc.record({
    t: tArb,
    k: fc.constant(EventKind.SqlResult),
    columns: fc.array(nameArb, { maxLength: 4 }),
    rows: fc.array(fc.array(fc.option(fc.string(), { nil: null }), { maxLength: 4 }), { maxLength: 4 }),
    rowCount: fc.nat(),
  }),
  fc.record({
    t: tArb,
    k: fc.constant(EventKind.HttpRequest),
    id: fc.nat(),
    method: fc.constantFrom('GET', 'POST', 'DELETE'),
    url: fc.webPath(),
    headers: fc.dictionary(nameArb, fc.string(), { maxKeys: 3 }),
    body: payloadArb,
  }),
  fc.record({ t: tArb, k: fc.constant(EventKind.K8sExec), id: fc.nat(), ch: fc.constantFrom(0, 1, 2, 3, 4), data: payloadArb }),
  fc.record({ t: tArb, k: fc.constant(EventKind.Error), message: fc.string(), code: fc.string({ maxLength: 5 }) }),
) as fc.Arbitrary<RecordingEvent>;
