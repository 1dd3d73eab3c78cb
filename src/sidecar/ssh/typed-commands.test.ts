import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TypedCommandDetector } from './typed-commands.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function lines(...chunks: string[]): Array<{ command: string; uncertain: boolean }> {
  const d = new TypedCommandDetector();
  return chunks.flatMap((c) => d.feed(enc(c)).flatMap((p) => (p.line ? [p.line] : [])));
}

describe('TypedCommandDetector', () => {
  it.each([
    ['plain typing', ['ls -la\r'], 'ls -la'],
    ['one key per packet', ['e', 'c', 'h', 'o', ' ', 'h', 'i', '\r'], 'echo hi'],
    ['backspace (DEL) and Ctrl-H', ['lx\x7fs -l\x08a\r'], 'ls -a'],
    ['Ctrl-U kills to the start', ['rm -rf /\x15echo safe\r'], 'echo safe'],
    ['Ctrl-W kills a word', ['echo one two\x17three\r'], 'echo one three'],
    ['left arrow then insert', ['echo wrld\x1b[D\x1b[D\x1b[Do\r'], 'echo world'],
    ['SS3 arrows, home and end', ['cho x\x1bOHe\x1bOF!\r'], 'echo x!'],
    ['Ctrl-A / Ctrl-E', ['world\x01hello \x05!\r'], 'hello world!'],
    ['delete key', ['abcd\x1b[D\x1b[D\x1b[3~\r'], 'abd'],
    ['Ctrl-K', ['abcdef\x01\x06\x06\x0b\r'], 'ab'],
    ['CR LF counts once', ['id\r\n'], 'id'],
  ])('%s', (_name, chunks, expected) => {
    expect(lines(...chunks)[0]?.command).toBe(expected);
  });

  it('joins a multi-byte character split across packets', () => {
    const d = new TypedCommandDetector();
    const bytes = enc('echo héllo ✓\r');
    const got = [...bytes].flatMap((b) => d.feed(Uint8Array.of(b)).flatMap((p) => (p.line ? [p.line.command] : [])));
    expect(got).toEqual(['echo héllo ✓']);
  });

  it('Ctrl-C abandons the line', () => {
    expect(lines('rm -rf /\x03', 'true\r')).toEqual([{ command: 'true', uncertain: false }]);
  });

  it('history recall and completion make the line uncertain', () => {
    expect(lines('\x1b[A\r')).toEqual([{ command: '', uncertain: true }]);
    expect(lines('cat /et\tpasswd\r')).toEqual([{ command: 'cat /etpasswd', uncertain: true }]);
  });

  it('splits input after each submitting byte so Enter can be held back', () => {
    const d = new TypedCommandDetector();
    const pieces = d.feed(enc('ls\rpwd\rwho'));
    expect(pieces.map((p) => [Buffer.from(p.data).toString(), p.line?.command])).toEqual([
      ['ls\r', 'ls'],
      ['pwd\r', 'pwd'],
      ['who', undefined],
    ]);
    expect(d.pending).toBe('who');
  });

  it('bracketed paste is text, and its newlines submit', () => {
    expect(lines('\x1b[200~echo a\recho b\x1b[201~\r').map((l) => l.command)).toEqual(['echo a', 'echo b']);
  });

  it('is suspended while a full-screen program holds the alternate screen', () => {
    const d = new TypedCommandDetector();
    d.feed(enc('vim x\r'));
    d.observeOutput(enc('\x1b[?10'));
    d.observeOutput(enc('49h'));
    expect(d.suspended).toBe(true);
    expect(d.feed(enc('ihello\r:wq\r')).some((p) => p.line)).toBe(false);
    d.observeOutput(enc('\x1b[?1049l$ '));
    expect(d.suspended).toBe(false);
    expect(lines('ls\r')[0]?.command).toBe('ls');
  });

  it('gives the same lines however the input is split (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('a', 'b', ' ', 'é', '\x7f', '\x15', '\x1b[D', '\x1b[C', '\x03', '\r', '\x1b[A', '\t')),
        fc.array(fc.nat(), { maxLength: 10 }),
        (keys, cuts) => {
          const bytes = enc(keys.join(''));
          const whole = new TypedCommandDetector().feed(bytes).flatMap((p) => (p.line ? [p.line] : []));
          const d = new TypedCommandDetector();
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          let last = 0;
          const split = [];
          for (const p of [...points, bytes.length]) {
            split.push(...d.feed(bytes.subarray(last, p)).flatMap((x) => (x.line ? [x.line] : [])));
            last = p;
          }
          expect(split).toEqual(whole);
          // Forwarded bytes are exactly the input.
        },
      ),
    );
  });

  it('never loses or reorders bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const pieces = new TypedCommandDetector().feed(bytes);
        expect(Buffer.concat(pieces.map((p) => p.data))).toEqual(Buffer.from(bytes));
      }),
    );
  });
});
