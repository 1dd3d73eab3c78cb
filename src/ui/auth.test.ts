import { describe, expect, it } from 'vitest';
import { parseCookies, safeReturnTo } from './auth.ts';

describe('safeReturnTo', () => {
  it.each([
    ['/sessions/shop/abc?x=1', '/sessions/shop/abc?x=1'],
    ['https://evil.example/', '/'],
    ['//evil.example/', '/'],
    ['/\\evil.example', '/'],
    ['', '/'],
    [null, '/'],
  ])('%j → %j', (input, expected) => {
    expect(safeReturnTo(input)).toBe(expected);
  });
});

describe('parseCookies', () => {
  it('reads name=value pairs and ignores junk', () => {
    expect([...parseCookies('a=1; warden_ui=xyz;junk; =nope')]).toEqual([
      ['a', '1'],
      ['warden_ui', 'xyz'],
    ]);
  });
});
