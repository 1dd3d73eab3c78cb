import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DurationError, formatGoDuration, parseGoDuration } from './duration.ts';

describe('parseGoDuration', () => {
  it.each([
    ['0', 0],
    ['45s', 45_000],
    ['500ms', 500],
    ['1h30m', 5_400_000],
    ['1h30m15s', 5_415_000],
    ['1.5h', 5_400_000],
    ['.5s', 500],
    ['5.s', 5_000],
    ['2m0s', 120_000],
    ['100us', 0.1],
    ['100µs', 0.1],
    ['1000000ns', 1],
    ['720h', 2_592_000_000],
    ['1s500ms', 1_500],
  ])('reads %s as %d ms', (input, ms) => {
    expect(parseGoDuration(input)).toBeCloseTo(ms, 9);
  });

  it.each([
    ['', /empty/],
    ['-1s', /sign/],
    ['+1s', /sign/],
    ['10', /unexpected/],
    ['1d', /unexpected/],
    ['s', /unit without a number/],
    ['1h 30m', /unexpected/],
    ['1H', /unexpected/],
    ['1000000000h', /100 years/],
    ['9'.repeat(80), /longer than 64/],
  ])('rejects %j', (input, reason) => {
    expect(() => parseGoDuration(input)).toThrowError(DurationError);
    expect(() => parseGoDuration(input)).toThrowError(reason);
  });
});

describe('formatGoDuration', () => {
  it.each([
    [0, '0s'],
    [0.5, '500µs'],
    [500, '500ms'],
    [1_500, '1.5s'],
    [750_000, '12m30s'],
    [3_600_000, '1h0m0s'],
    [5_415_000, '1h30m15s'],
  ])('formats %d ms as %s', (ms, text) => {
    expect(formatGoDuration(ms)).toBe(text);
  });

  it('round-trips whole milliseconds through parse', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 * 24 * 3_600_000 }), (ms) => {
        expect(parseGoDuration(formatGoDuration(ms))).toBeCloseTo(ms, 6);
      }),
    );
  });
});
