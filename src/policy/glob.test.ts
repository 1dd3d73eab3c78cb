import { describe, expect, it } from 'vitest';
import { compileGlob, compileHostGlob, compilePathGlob } from './glob.ts';

describe('compilePathGlob', () => {
  it.each([
    ['/api/*', '/api/x', true],
    ['/api/*', '/api/', true],
    ['/api/*', '/api/x/y', false],
    ['/api/*', '/api', false],
    ['/api/**', '/api/x/y/z', true],
    ['/api/**', '/api', true],
    ['/api/**', '/api/', true],
    ['/api/**', '/apix', false],
    ['/api/v1/invoices/*', '/api/v1/invoices/42', true],
    ['/api/v1/invoices/*', '/api/v1/invoices/42/lines', false],
    ['/api/*/invoices', '/api/v1/invoices', true],
    ['/api/*/invoices', '/api/v1/v2/invoices', false],
    ['/api/**/invoices', '/api/v1/v2/invoices', true],
    ['/files/*.pdf', '/files/a.pdf', true],
    ['/files/*.pdf', '/files/a.pdfx', false],
    ['/exact', '/exact', true],
    ['/exact', '/Exact', false],
    ['/a?b', '/a?b', true],
    ['/a?b', '/axb', false],
    ['/**', '/', true],
    ['/**', '/anything/at/all', true],
  ])('%s against %s → %s', (pattern, path, expected) => {
    expect(compilePathGlob(pattern)(path)).toBe(expected);
  });
});

describe('compileHostGlob', () => {
  it.each([
    ['*.billing.example.com', 'api.billing.example.com', true],
    ['*.billing.example.com', 'a.b.billing.example.com', true],
    ['*.billing.example.com', 'billing.example.com', false],
    ['API.example.com', 'api.EXAMPLE.com', true],
    ['*', 'anything', true],
  ])('%s against %s → %s', (pattern, host, expected) => {
    expect(compileHostGlob(pattern)(host)).toBe(expected);
  });
});

describe('compileGlob', () => {
  it('treats runs of stars as one', () => {
    expect(compileGlob('a***b')('axyzb')).toBe(true);
    expect(compileGlob('a*/**b', { separator: '/', doubleStar: true })('ax/y/b')).toBe(true);
  });

  it('finishes quickly on a pattern that makes backtracking matchers exponential', () => {
    const pattern = `${'*a'.repeat(200)}*b`;
    const input = 'a'.repeat(20_000);
    const started = performance.now();
    expect(compileGlob(pattern, { separator: '/' })(input)).toBe(false);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});
