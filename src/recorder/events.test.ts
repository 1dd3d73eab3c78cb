import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { capPayload, capRows, createSessionClock, EventKind, payloadBytes, payloadSize, payloadText } from './events.ts';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);
const utf8 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'utf8'));

describe('capPayload', () => {
  it.each([
    ['UTF-8 bytes as text', utf8('ls -la\r\n'), 100, { text: 'ls -la\r\n' }],
    ['invalid UTF-8 as base64', bytes(0xff, 0xfe, 0x00), 100, { b64: '//4A' }],
    ['a lone escape byte sequence as text', bytes(0x1b, 0x5b, 0x32, 0x4a), 100, { text: '\u001b[2J' }],
    ['an empty payload', bytes(), 0, { text: '' }],
    ['over the cap, cut on a character boundary', utf8('añb'), 2, { text: 'a', truncated: true, size: 4 }],
    ['over the cap, binary kept to the cap', bytes(1, 0xff, 3, 4), 3, { b64: 'Af8D', truncated: true, size: 4 }],
    ['a string over the cap', 'héllo', 3, { text: 'hé', truncated: true, size: 6 }],
    ['a string within the cap', 'héllo', 6, { text: 'héllo' }],
  ])('stores %s', (_name, data, cap, expected) => {
    expect(capPayload(data, cap)).toEqual(expected);
  });

  it('keeps a byte-order mark, so terminal bytes survive exactly', () => {
    const data = bytes(0xef, 0xbb, 0xbf, 0x41);
    expect(payloadBytes(capPayload(data, 10))).toEqual(data);
  });

  it('reports the original size of a truncated payload', () => {
    const payload = capPayload(new Uint8Array(5000), 1024);
    expect(payload.truncated).toBe(true);
    expect(payloadSize(payload)).toBe(5000);
    expect(payloadBytes(payload)).toHaveLength(1024);
  });

  it('refuses a negative cap', () => {
    expect(() => capPayload('x', -1)).toThrow(expect.objectContaining({ code: 'OPTION_INVALID' }));
  });

  it('round-trips any bytes within the cap exactly (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (data) => {
        const payload = capPayload(data, data.length);
        expect(payload.truncated).toBeUndefined();
        expect(payloadBytes(JSON.parse(JSON.stringify(payload)))).toEqual(data);
      }),
    );
  });

  it('stores a prefix of at most the cap, flagged with the original size (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 512 }), fc.nat(511), (data, cap) => {
        fc.pre(cap < data.length);
        const payload = capPayload(data, cap);
        const kept = payloadBytes(payload);
        expect(payload).toMatchObject({ truncated: true, size: data.length });
        expect(kept.length).toBeLessThanOrEqual(cap);
        expect(kept).toEqual(data.subarray(0, kept.length));
      }),
    );
  });

  it('shows base64 payloads as text for display', () => {
    expect(payloadText(capPayload(bytes(0x68, 0x69, 0xff), 10))).toBe('hi\ufffd');
  });
});

describe('capRows', () => {
  const rows = [
    ['1', 'alice'],
    ['2', null],
    ['3', 'carol'],
  ];

  it.each([
    ['all rows when they fit', { maxRows: 10, maxBytes: 100 }, 3, false],
    ['at most maxRows', { maxRows: 2, maxBytes: 100 }, 2, true],
    ['whole rows within maxBytes', { maxRows: 10, maxBytes: 8 }, 2, true],
    ['nothing when the first row is too big', { maxRows: 10, maxBytes: 3 }, 0, true],
  ])('keeps %s', (_name, caps, kept, truncated) => {
    expect(capRows(rows, caps)).toEqual({ rows: rows.slice(0, kept), truncated });
  });
});

describe('createSessionClock', () => {
  it('counts whole milliseconds from the start and never goes backwards', () => {
    let now = 1000.4;
    const clock = createSessionClock(() => now);
    now = 1010.9;
    expect(clock()).toBe(10);
    now = 1005;
    expect(clock()).toBe(10);
    now = 3000;
    expect(clock()).toBe(1999);
  });
});

describe('EventKind', () => {
  it('names every kind once', () => {
    const values = Object.values(EventKind);
    expect(new Set(values).size).toBe(values.length);
  });
});
