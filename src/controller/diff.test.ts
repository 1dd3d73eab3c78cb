import { describe, expect, it } from 'vitest';
import { isSubset } from './diff.ts';

describe('isSubset', () => {
  it.each([
    ['equal scalars', 1, 1, true],
    ['different scalars', 'a', 'b', false],
    ['fields the server added', { a: 1 }, { a: 1, b: 2 }, true],
    ['a field that changed', { data: { k: 'v' } }, { data: { k: 'edited' } }, false],
    ['a field that is gone', { data: { k: 'v' } }, { data: {} }, false],
    ['a list with an added element', { l: [1] }, { l: [1, 2] }, false],
    ['a list of objects with server defaults', { ports: [{ port: 80 }] }, { ports: [{ port: 80, protocol: 'TCP' }] }, true],
    ['an object where a list is', { a: { x: 1 } }, { a: [1] }, false],
    ['null where an object is', { a: { x: 1 } }, { a: null }, false],
  ])('%s', (_what, desired, live, expected) => {
    expect(isSubset(desired, live)).toBe(expected);
  });
});
