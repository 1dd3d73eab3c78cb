import { describe, expect, it } from 'vitest';
import { compileUserPattern, MAX_PATTERN_LENGTH, PatternError } from './patterns.ts';

describe('compileUserPattern', () => {
  it('compiles an ordinary pattern that matches as JavaScript would', () => {
    const re = compileUserPattern('^rm\\s+-rf\\s+/');
    expect(re.test('rm -rf /var')).toBe(true);
    expect(re.test('echo rm -rf /')).toBe(false);
    // Repeated calls give the same answer (no lastIndex state leaks between calls).
    expect(re.test('rm -rf /var')).toBe(true);
  });

  it.each([
    ['V8', {}],
    ['re2js (case-insensitive)', { caseInsensitive: true }],
  ])('lists every match with its offset on %s', (_engine, options) => {
    const re = compileUserPattern('AKIA[0-9A-Z]{4}', options);
    const found = [...re.matches('key=AKIA1234 and AKIAABCD.')];
    expect(found).toEqual([
      { index: 4, text: 'AKIA1234' },
      { index: 17, text: 'AKIAABCD' },
    ]);
  });

  it('matches case-insensitively when asked', () => {
    expect(compileUserPattern('drop\\s+table', { caseInsensitive: true }).test('DROP TABLE x')).toBe(true);
    expect(compileUserPattern('drop\\s+table').test('DROP TABLE x')).toBe(false);
  });

  it.each([
    ['a backreference', '(a)\\1', 'RE2'],
    ['a lookahead', 'foo(?=bar)', 'RE2'],
    ['a negative lookbehind', '(?<!x)y', 'RE2'],
    ['an unbalanced group', '(abc', 'RE2'],
    ['RE2-only inline flags at the start', '(?i)abc', 'JavaScript'],
  ])('rejects %s with a message that names the pattern', (_what, pattern, engine) => {
    const error = (() => {
      try {
        compileUserPattern(pattern);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(PatternError);
    expect((error as PatternError).pattern).toBe(pattern);
    expect((error as PatternError).message).toMatch(new RegExp(`not valid ${engine} syntax`));
  });

  it('rejects over-long patterns', () => {
    expect(() => compileUserPattern('a'.repeat(MAX_PATTERN_LENGTH + 1))).toThrowError(/longer than/);
  });

  // (a+)+$ against a^n b is exponential for a backtracking engine: at n = 30,000 it never ends.
  // Both engines must finish; the bound is generous because the point is "finishes", not speed.
  it.each([
    ['V8 with the linear fallback', {}],
    ['V8, multiline and dotAll', { multiline: true, dotAll: true }],
    ['re2js (case-insensitive)', { caseInsensitive: true }],
  ])('runs a catastrophic-backtracking pattern in linear time on %s', (_engine, options) => {
    const re = compileUserPattern('(a+)+$', options);
    const input = `${'a'.repeat(30_000)}b`;
    const started = performance.now();
    expect(re.test(input)).toBe(false);
    expect([...re.matches(input)]).toEqual([]);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
