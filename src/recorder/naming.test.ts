import { describe, expect, it } from 'vitest';
import { chunkObjectKey, chunkObjectName, manifestObjectKey, parseChunkObjectName, sessionFolder } from './naming.ts';

const startedAt = new Date('2025-03-01T23:59:59.999Z');

describe('object names', () => {
  it.each([
    ['recordings', 'recordings/2025/03/01/sess-1/'],
    ['/recordings/team-a/', 'recordings/team-a/2025/03/01/sess-1/'],
    ['', '2025/03/01/sess-1/'],
  ])('puts a session started in UTC on its day under prefix %j', (prefix, folder) => {
    expect(sessionFolder(prefix, startedAt, 'sess-1')).toBe(folder);
  });

  it('names chunks with at least 8 digits and the manifest as manifest.json', () => {
    expect(chunkObjectKey('r', startedAt, 'sess-1', 42)).toBe('r/2025/03/01/sess-1/chunk-00000042');
    expect(chunkObjectName(123_456_789)).toBe('chunk-123456789');
    expect(manifestObjectKey('r', startedAt, 'sess-1')).toBe('r/2025/03/01/sess-1/manifest.json');
  });

  it.each([
    ['chunk-00000000', 0],
    ['r/2025/03/01/sess-1/chunk-00000042', 42],
    ['chunk-123456789', 123_456_789],
    ['chunk-0000001', undefined],
    ['chunk-000000001', undefined],
    ['chunk-0000000a', undefined],
    ['manifest.json', undefined],
    ['chunk-00000001/', undefined],
  ])('reads the seq of %j as %j', (name, seq) => {
    expect(parseChunkObjectName(name)).toBe(seq);
  });

  it.each(['', 'a/b', '../x', '.hidden', 'x'.repeat(254)])('refuses session id %j', (sessionId) => {
    expect(() => sessionFolder('r', startedAt, sessionId)).toThrow(expect.objectContaining({ code: 'SESSION_ID_INVALID' }));
  });

  it('refuses an invalid start date', () => {
    expect(() => sessionFolder('r', new Date(Number.NaN), 's')).toThrow(expect.objectContaining({ code: 'OPTION_INVALID' }));
  });
});
