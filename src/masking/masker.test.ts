import { describe, expect, it } from 'vitest';
import type { MaskingRule } from '../api/types.ts';
import { JsonPathError, parseJsonPath } from './jsonpath.ts';
import { compileMasker, compileMaskingRules, MaskingError } from './masker.ts';
import { hashed, partial } from './strategies.ts';

const KEY = new Uint8Array(32).fill(7);

describe('strategies', () => {
  it.each([
    ['4111 1111 1111 1111', 'creditCard', '**** **** **** 1111'],
    ['+1 (415) 555-2671', 'phone', '+* (***) ***-2671'],
    ['alice@example.com', 'email', 'a***@example.com'],
    ['DE89 3704 0044 0532 0130 00', 'iban', '**** **** **** **** **30 00'],
    ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'cloudKey', '****EKEY'],
    ['short', 'value', '****'],
    ['bob@corp.example', 'value', 'b***@corp.example'],
    ['-----BEGIN RSA PRIVATE KEY-----', 'privateKey', '[REDACTED:privateKey]'],
  ] as const)('partial(%j, %s) is %j', (value, kind, expected) => {
    expect(partial(value, kind, kind)).toBe(expected);
  });

  it('hashes with the key: stable per value, different per key and value, prefixed and truncated', () => {
    const a = hashed(KEY, 'alice@example.com');
    expect(a).toMatch(/^hash:[0-9a-f]{16}$/);
    expect(hashed(KEY, 'alice@example.com')).toBe(a);
    expect(hashed(KEY, 'bob@example.com')).not.toBe(a);
    expect(hashed(new Uint8Array(32).fill(8), 'alice@example.com')).not.toBe(a);
  });
});

describe('compileMaskingRules', () => {
  it.each<[string, MaskingRule, RegExp]>([
    ['no selector', { name: 'r' }, /at least one of/],
    ['a bad pattern', { name: 'r', patterns: ['(a)\\1'] }, /not valid RE2/],
    ['a bad JSONPath', { name: 'r', jsonPaths: ['$.a[?(@.b)]'] }, /JSONPath/],
    ['a bad column pattern', { name: 'r', columns: ['a.b.c.d'] }, /column pattern/],
    ['an unknown detector', { name: 'r', detectors: ['dna' as 'email'] }, /detector "dna"/],
    ['an unknown strategy', { name: 'r', columns: ['x'], strategy: 'shred' as 'redact' }, /strategy "shred"/],
  ])('reports %s, naming the rule', (_what, rule, message) => {
    const { problems } = compileMaskingRules([rule]);
    expect(problems).toHaveLength(1);
    expect(problems[0]?.rule).toBe('r');
    expect(problems[0]?.message).toMatch(message);
    expect(() => compileMasker([rule])).toThrowError(MaskingError);
  });

  it('refuses the hash strategy without a key of 16 bytes', () => {
    expect(() => compileMasker([{ name: 'h', columns: ['email'], strategy: 'hash' }])).toThrowError(/key/);
    expect(() => compileMasker([{ name: 'h', columns: ['email'], strategy: 'hash' }], { hashKey: new Uint8Array(8) })).toThrowError(/key/);
  });
});

describe('Masker.maskValue (SQL cells)', () => {
  const masker = compileMasker(
    [
      { name: 'emails', columns: ['email', '*.contact_email'], strategy: 'partial' },
      { name: 'ssn', columns: ['customers.ssn'], strategy: 'nullify' },
      { name: 'card-in-notes', columns: ['notes'], detectors: ['creditCard'] },
      { name: 'tokens', columns: ['api_token'], strategy: 'hash' },
      { name: 'keys', detectors: ['cloudKey'] },
    ],
    { hashKey: KEY },
  );

  it.each<[string, Parameters<typeof masker.maskValue>[0], string, string | null]>([
    ['a column by name', 'email', 'alice@example.com', 'a***@example.com'],
    ['a column by name, case-insensitively', 'EMAIL', 'alice@example.com', 'a***@example.com'],
    ['a column by its source name under an alias', { name: 'e', column: 'email', table: 'users' }, 'alice@example.com', 'a***@example.com'],
    ['a table.column pattern with a glob', { name: 'contact_email', table: 'orders' }, 'bob@example.com', 'b***@example.com'],
    ['nullify to NULL', { name: 'ssn', table: 'customers' }, '123-45-6789', null],
    ['a table-qualified rule when the table is unknown (fail closed)', 'ssn', '123-45-6789', null],
    ['hash', 'api_token', 'secret-token', hashed(KEY, 'secret-token')],
    ['detectors inside a selected column', 'notes', 'paid with 4111 1111 1111 1111 today', 'paid with [REDACTED:creditCard] today'],
    ['content rules in any column', 'comment', 'key AKIAIOSFODNN7EXAMPLE', 'key [REDACTED:cloudKey]'],
    ['content rules without a column', undefined, 'key AKIAIOSFODNN7EXAMPLE', 'key [REDACTED:cloudKey]'],
  ])('masks %s', (_what, column, value, expected) => {
    const result = masker.maskValue(column, value);
    expect(result.value).toBe(expected);
    expect(result.hits.length).toBeGreaterThan(0);
  });

  it.each<[string, Parameters<typeof masker.maskValue>[0], string]>([
    ['another table for a table-qualified rule', { name: 'ssn', table: 'employees' }, '123-45-6789'],
    ['a column no rule names', 'name', 'Alice'],
    ['a selected column whose content has nothing to find', 'notes', 'paid in cash'],
  ])('leaves %s alone', (_what, column, value) => {
    expect(masker.maskValue(column, value)).toEqual({ value, hits: [] });
  });

  it('reports hits without values', () => {
    const { hits } = masker.maskValue('email', 'alice@example.com');
    expect(hits).toEqual([{ rule: 'emails', source: 'column', strategy: 'partial' }]);
    expect(JSON.stringify(hits)).not.toContain('alice');
  });

  it('uses the strictest strategy where spans of two rules overlap', () => {
    const m = compileMasker([
      { name: 'partial-cards', detectors: ['creditCard'], strategy: 'partial' },
      { name: 'digits', patterns: ['[0-9]{4} [0-9]{4}'], strategy: 'redact' },
    ]);
    expect(m.maskText('card 4111 1111 1111 1111').text).toBe('card [REDACTED:digits]');
  });
});

describe('Masker.maskText', () => {
  it('masks with detectors and custom patterns, leaving column-only rules out', () => {
    const masker = compileMasker([
      { name: 'pii', detectors: ['email', 'phone'] },
      { name: 'order-ids', patterns: ['ORD-[0-9]{8}'], strategy: 'partial' },
      { name: 'emails', columns: ['email'] },
    ]);
    const { text, hits } = masker.maskText('alice@example.com called +44 20 7946 0958 about ORD-12345678');
    expect(text).toBe('[REDACTED:email] called [REDACTED:phone] about ****5678');
    expect(hits.map((h) => h.rule)).toEqual(['pii', 'pii', 'order-ids']);
  });

  it('redacts for nullify, as text has no null', () => {
    expect(compileMasker([{ name: 'n', detectors: ['email'], strategy: 'nullify' }]).maskText('a@b.example').text).toBe('[REDACTED:email]');
  });

  it('runs a catastrophic custom pattern in linear time', () => {
    const masker = compileMasker([{ name: 'evil', patterns: ['(a+)+$'] }]);
    const started = performance.now();
    masker.maskText(`${'a'.repeat(30_000)}b`);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('JSONPath subset', () => {
  it.each([
    ['$', []],
    ['$.a.b', [{ kind: 'member', name: 'a' }, { kind: 'member', name: 'b' }]],
    ['$.items[*].email', [{ kind: 'member', name: 'items' }, { kind: 'wildcard' }, { kind: 'member', name: 'email' }]],
    ['$..password', [{ kind: 'descendant', name: 'password' }]],
    ["$['a-b'][0]", [{ kind: 'member', name: 'a-b' }, { kind: 'index', index: 0 }]],
    ['$.*', [{ kind: 'wildcard' }]],
    ['$..*', [{ kind: 'descendant', name: undefined }]],
  ])('parses %s', (path, segments) => {
    expect(parseJsonPath(path)).toEqual(segments);
  });

  it.each(['a.b', '$.a[?(@.x)]', '$.a[-1]', '$.a[0:2]', '$.', "$['open", '$.a b'])('rejects %j', (path) => {
    expect(() => parseJsonPath(path)).toThrowError(JsonPathError);
  });
});

describe('Masker.maskJson', () => {
  const masker = compileMasker(
    [
      { name: 'customer-email', jsonPaths: ['$.customer.email'], strategy: 'partial' },
      { name: 'item-emails', jsonPaths: ['$.items[*].email'] },
      { name: 'passwords', jsonPaths: ['$..password'], strategy: 'nullify' },
      { name: 'notes-cards', jsonPaths: ['$.notes'], detectors: ['creditCard'] },
      { name: 'tokens', jsonPaths: ['$.token'], strategy: 'hash' },
      { name: 'keys', detectors: ['cloudKey'] },
    ],
    { hashKey: KEY },
  );

  it('masks the values the paths select and scans every string for content rules', () => {
    const input = {
      customer: { email: 'alice@example.com', name: 'Alice' },
      items: [{ email: 'bob@example.com', qty: 1 }, { email: 'carol@example.com' }],
      auth: { nested: { password: 'hunter2' } },
      password: { old: 'x' },
      notes: 'paid with 4111 1111 1111 1111',
      token: { id: 1 },
      log: ['AKIAIOSFODNN7EXAMPLE'],
    };
    const { value, hits } = masker.maskJson(input);
    expect(value).toEqual({
      customer: { email: 'a***@example.com', name: 'Alice' },
      items: [{ email: '[REDACTED:item-emails]', qty: 1 }, { email: '[REDACTED:item-emails]' }],
      auth: { nested: { password: null } },
      password: null,
      notes: 'paid with [REDACTED:creditCard]',
      token: hashed(KEY, '{"id":1}'),
      log: ['[REDACTED:cloudKey]'],
    });
    expect(hits.length).toBe(8);
    // The input is not changed.
    expect(input.customer.email).toBe('alice@example.com');
  });

  it('copes with documents nested deeper than the stack', () => {
    let deep: unknown = 'AKIAIOSFODNN7EXAMPLE';
    for (let i = 0; i < 50_000; i++) deep = [deep];
    expect(() => compileMasker([{ name: 'keys', detectors: ['cloudKey'] }, { name: 'p', jsonPaths: ['$..password'] }]).maskJson(deep)).not.toThrow();
  });
});
