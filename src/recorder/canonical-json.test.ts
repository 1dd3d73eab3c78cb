import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.ts';

describe('canonicalJson', () => {
  it.each([
    ['sorts keys at every level', { b: 1, a: { d: [3, { z: 0, y: 1 }], c: null } }, '{"a":{"c":null,"d":[3,{"y":1,"z":0}]},"b":1}'],
    ['sorts by UTF-16 code units (RFC 8785 §3.2.3)', { '\u20ac': 1, '\r': 2, '\ud83d\ude00': 3, é: 4 }, '{"\\r":2,"é":4,"€":1,"😀":3}'],
    ['leaves out undefined members', { a: undefined, b: 'x' }, '{"b":"x"}'],
    ['escapes strings as JSON.stringify does', { s: 'a"b\\c\n\u0001' }, '{"s":"a\\"b\\\\c\\n\\u0001"}'],
    ['writes safe integers in full', [0, Number.MAX_SAFE_INTEGER, -5], '[0,9007199254740991,-5]'],
  ])('%s', (_name, value, expected) => {
    expect(canonicalJson(value)).toBe(expected);
  });

  it.each([
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['undefined in an array', [undefined]],
    ['a bigint', 1n],
    ['binary', new Uint8Array(1)],
  ])('refuses %s', (_name, value) => {
    expect(() => canonicalJson(value)).toThrow(TypeError);
  });

  it('is a fixed point of parse ∘ serialize and agrees with JSON.parse (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
        expect(canonicalJson(JSON.parse(text))).toBe(text);
      }),
    );
  });
});
