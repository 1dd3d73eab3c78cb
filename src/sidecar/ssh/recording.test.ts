import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { capPayload, payloadBytes } from '../../recorder/events.ts';
import type { SshRecordingEvent } from './config.ts';
import { SessionLog, toAsciicast } from './recording.ts';

function sink(limit = Infinity): { events: SshRecordingEvent[]; log: SessionLog; failures: number } {
  const state = { events: [] as SshRecordingEvent[], failures: 0, log: undefined as unknown as SessionLog };
  let now = 1_000;
  state.log = new SessionLog(
    { append: (e) => (state.events.length < limit ? (state.events.push(e), true) : false), close: async () => {} },
    { now: () => (now += 10), maxEventBytes: 4, onFailure: () => state.failures++ },
  );
  return state;
}

describe('SessionLog', () => {
  it('splits terminal data into events of at most maxEventBytes, exactly, even mid-character', () => {
    const s = sink();
    const bytes = Buffer.from('héllo ✓', 'utf8');
    s.log.terminal('stdout', bytes, 0);
    const stored = Buffer.concat(s.events.map((e) => ('data' in e && e.data ? Buffer.from(payloadBytes(e.data)) : Buffer.alloc(0))));
    expect(stored).toEqual(bytes);
    expect(s.events.every((e) => e.k === 'term.stdout' && e.t >= 0)).toBe(true);
  });

  it('stores each piece exactly as capPayload would (text when UTF-8, base64 otherwise)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 20 }).map((t) => new Uint8Array(Buffer.from(t, 'utf8')))), fc.integer({ min: 1, max: 16 }), (bytes, max) => {
        const events: SshRecordingEvent[] = [];
        const log = new SessionLog({ append: (e) => (events.push(e), true), close: async () => {} }, { now: () => 0, maxEventBytes: max, onFailure: () => {} });
        log.terminal('stdout', bytes, 0);
        const expected = [];
        for (let at = 0; at < bytes.length; at += max) expected.push(capPayload(bytes.subarray(at, at + max), max));
        expect(events.map((e) => ('data' in e ? e.data : undefined))).toEqual(expected);
      }),
    );
  });

  it('reports a refused append once, fails closed, and records nothing after session.end', () => {
    const s = sink(2);
    expect(s.log.add({ k: 'session.end', reason: 'client-closed' })).toBe(true);
    expect(s.log.add({ k: 'error', message: 'late' })).toBe(true);
    expect(s.events).toHaveLength(1);
    const f = sink(1);
    f.log.add({ k: 'error', message: 'a' });
    expect(f.log.add({ k: 'error', message: 'b' })).toBe(false);
    expect(f.log.add({ k: 'error', message: 'c' })).toBe(false);
    expect(f.failures).toBe(1);
  });
});

describe('toAsciicast', () => {
  it('writes a v2 header with the first window size, output joined across split characters, and resizes', () => {
    const s = sink();
    s.log.add({ k: 'session.start', protocol: 'ssh', connection: 'ns/c', startedAt: '2026-11-22T00:00:00.000Z' });
    s.log.add({ k: 'term.resize', ch: 0, cols: 100, rows: 30 });
    const bytes = Buffer.from('é✓', 'utf8');
    s.log.terminal('stdout', bytes, 0);
    s.log.add({ k: 'term.resize', ch: 0, cols: 120, rows: 40 });
    const lines = toAsciicast(s.events).trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(lines[0]).toEqual({ version: 2, width: 100, height: 30, timestamp: 1795305600 });
    const out = (lines.slice(1) as Array<[number, string, string]>).filter((l) => l[1] === 'o').map((l) => l[2]).join('');
    expect(out).toBe('é✓');
    expect(lines.at(-1)).toEqual([expect.any(Number), 'r', '120x40']);
  });
});
