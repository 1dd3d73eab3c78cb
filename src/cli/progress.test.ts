import { describe, expect, it } from 'vitest';
import { progressLine } from './progress.ts';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; written: string[] } {
  const written: string[] = [];
  return { stream: { isTTY, write: (text: string) => written.push(text) } as unknown as NodeJS.WriteStream, written };
}

describe('progressLine', () => {
  it('rewrites one line on a terminal, at most every 250 ms, and clears it when done', () => {
    const { stream, written } = fakeStream(true);
    let clock = 1000;
    const progress = progressLine('verifying s3://b/x/', stream, () => clock);
    progress.update('1/100 objects');
    clock += 100;
    progress.update('2/100 objects');
    clock += 200;
    progress.update('3/100 objects');
    progress.done();
    expect(written).toEqual(['\r\x1b[Kverifying s3://b/x/: 1/100 objects', '\r\x1b[Kverifying s3://b/x/: 3/100 objects', '\r\x1b[K']);
  });

  it('says nothing when stderr is not a terminal', () => {
    const { stream, written } = fakeStream(false);
    const progress = progressLine('exporting', stream, () => 0);
    progress.update('5 events');
    progress.done();
    expect(written).toEqual([]);
  });
});
