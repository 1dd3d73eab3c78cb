import { describe, expect, it } from 'vitest';
import { EventKind, type RecordingEvent } from './events.ts';
import { csvField, exportLines, ExportFormat } from './export.ts';
import { asciicastLines, playTerminal, printTimeline } from './replay.ts';

async function* from(events: readonly RecordingEvent[]): AsyncGenerator<RecordingEvent> {
  yield* events;
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

const start: RecordingEvent = { t: 0, k: EventKind.SessionStart, protocol: 'ssh', connection: 'ops/bastion', startedAt: '2026-11-22T10:00:00.000Z' };

describe('asciicastLines', () => {
  it('writes a v2 header with the size of the first resize, output as "o", later resizes as "r"', async () => {
    const lines = await collect(
      asciicastLines(
        from([
          start,
          { t: 0, k: EventKind.TermResize, cols: 120, rows: 40 },
          { t: 1500, k: EventKind.TermStdout, data: { text: '$ ls\r\n' } },
          { t: 1600, k: EventKind.TermStdin, data: { text: 'q' } },
          { t: 2000, k: EventKind.TermResize, cols: 80, rows: 24 },
          { t: 2250, k: EventKind.TermStderr, data: { text: 'err\r\n' } },
        ]),
        { idleTimeLimitSeconds: 2 },
      ),
    );
    expect(lines.map((line) => JSON.parse(line) as unknown)).toEqual([
      { version: 2, width: 120, height: 40, timestamp: 1795341600, idle_time_limit: 2, env: { TERM: 'xterm-256color' } },
      [1.5, 'o', '$ ls\r\n'],
      [2, 'r', '80x24'],
      [2.25, 'o', 'err\r\n'],
    ]);
  });

  it('joins a UTF-8 character split across two output events and includes input with input: true', async () => {
    const check = Buffer.from('✓', 'utf8');
    const lines = await collect(
      asciicastLines(
        from([
          { t: 1, k: EventKind.TermStdout, data: { b64: check.subarray(0, 1).toString('base64') } },
          { t: 2, k: EventKind.TermStdout, data: { b64: check.subarray(1).toString('base64') } },
          { t: 3, k: EventKind.TermStdin, data: { text: 'y' } },
        ]),
        { input: true },
      ),
    );
    expect(lines.slice(1).map((line) => JSON.parse(line) as unknown)).toEqual([
      [0.002, 'o', '✓'],
      [0.003, 'i', 'y'],
    ]);
  });

  it('writes a header even for a session without output', async () => {
    expect(await collect(asciicastLines(from([start])))).toHaveLength(1);
  });
});

describe('playTerminal', () => {
  it('waits the recorded gaps divided by the speed, shortened to the idle limit', async () => {
    const waits: number[] = [];
    const written: string[] = [];
    const played = await playTerminal(
      from([
        { t: 0, k: EventKind.TermStdout, data: { text: 'a' } },
        { t: 1000, k: EventKind.TermStdout, data: { text: 'b' } },
        { t: 61_000, k: EventKind.TermStdout, data: { text: 'c' } },
      ]),
      { write: (chunk) => (written.push(Buffer.from(chunk).toString()), true), once: () => undefined },
      { speed: 2, maxIdleMs: 3000, wait: async (ms) => void waits.push(ms) },
    );
    expect(written.join('')).toBe('abc');
    expect(waits).toEqual([500, 1500]);
    expect(played).toBe(2000);
  });
});

describe('printTimeline', () => {
  it('shows queries with decisions, results as tables, denials and the end', async () => {
    const lines: string[] = [];
    const steps: number[] = [];
    const commands = await printTimeline(
      from([
        { ...start, protocol: 'postgres' } as RecordingEvent,
        { t: 1234, k: EventKind.SqlQuery, id: 1, text: { text: 'SELECT 1\nAS one' }, decision: 'allow', class: 'read' },
        { t: 1240, k: EventKind.SqlResult, id: 1, columns: ['one'], rows: [['1']], rowCount: 1, tag: 'SELECT 1' },
        { t: 2000, k: EventKind.HttpRequest, id: 7, method: 'GET', url: '/api/v1/pods', decision: 'allow' },
        { t: 2001, k: EventKind.HttpResponse, id: 7, status: 200 },
        { t: 3000, k: EventKind.Deny, reason: 'no DDL', rule: 'p/r' },
        { t: 3600_000, k: EventKind.SessionEnd, reason: 'client-closed' },
      ]),
      (line) => lines.push(line),
      { step: async () => void steps.push(1) },
    );
    expect(commands).toBe(2);
    expect(steps).toHaveLength(2);
    expect(lines).toEqual([
      '[00:00.000] session started 2026-11-22T10:00:00.000Z: postgres on ops/bastion',
      '[00:01.234] SQL #1 [allow, read] SELECT 1⏎ AS one',
      '      one',
      '      ---',
      '      1  ',
      '      (1 row, SELECT 1)',
      '[00:02.000] HTTP #7 GET /api/v1/pods [allow]',
      '[00:02.001]   → 200',
      '[00:03.000] DENIED: no DDL (p/r)',
      '[1:00:00.000] session ended: client-closed',
    ]);
  });
});

const sshSession: RecordingEvent[] = [
  start,
  { t: 100, k: EventKind.TermStdout, ch: 0, data: { text: '$ ' } },
  { t: 900, k: EventKind.Command, ch: 0, command: 'ls -la', decision: 'allow' },
  { t: 950, k: EventKind.TermResize, ch: 0, cols: 100, rows: 30 },
  { t: 2000, k: EventKind.Command, ch: 0, command: 'sudo reboot', uncertain: true, decision: 'deny', rule: 'ops/no-sudo' },
  { t: 2100, k: EventKind.Exit, ch: 0, code: 7 },
  { t: 2200, k: EventKind.Exit, ch: 1, signal: 'SIGTERM' },
  { t: 2300, k: EventKind.Sftp, ch: 2, op: 'write', path: '/tmp/a', bytes: 42, status: 0, decision: 'allow' },
  { t: 2400, k: EventKind.Sftp, ch: 2, op: 'rename', path: '/tmp/a', path2: '/etc/b', bytes: 0, status: 3, decision: 'deny' },
  { t: 2500, k: EventKind.Forward, direction: 'local', host: '10.0.0.5', port: 5432, bytesOut: 10, bytesIn: 20, decision: 'allow' },
  { t: 2600, k: EventKind.Forward, direction: 'remote', host: '0.0.0.0', port: 8080, bytesOut: 0, bytesIn: 0, decision: 'deny', reason: 'no -R' },
];

describe('SSH and WebSocket kinds', () => {
  it('the timeline numbers typed commands, shows exits, SFTP and forwards, and can leave out terminal data', async () => {
    const lines: string[] = [];
    const steps: number[] = [];
    const commands = await printTimeline(from(sshSession), (line) => lines.push(line), { step: async () => void steps.push(1), terminalData: false });
    expect(commands).toBe(2);
    expect(steps).toHaveLength(2);
    expect(lines).toEqual([
      '[00:00.000] session started 2026-11-22T10:00:00.000Z: ssh on ops/bastion',
      '[00:00.900] command 1 ch0 [allow] $ ls -la',
      '[00:02.000] command 2 ch0 [deny, ops/no-sudo, uncertain] $ sudo reboot',
      '[00:02.100] exit ch0: status 7',
      '[00:02.200] exit ch1: signal SIGTERM',
      '[00:02.300] SFTP ch2 write /tmp/a [allow] ok, 42 bytes',
      '[00:02.400] SFTP ch2 rename /tmp/a → /etc/b [deny] permission denied',
      '[00:02.500] forward -L 10.0.0.5:5432 [allow] 10 bytes out, 20 bytes in',
      '[00:02.600] forward -R 0.0.0.0:8080 [deny]: no -R',
    ]);
    const full: string[] = [];
    await printTimeline(from(sshSession), (line) => full.push(line));
    expect(full).toContain('[00:00.100] stdout: $ ');
    expect(full).toContain('[00:00.950] resize 100x30');
  });

  it('the timeline shows WebSocket messages: text as text, binary by size', async () => {
    const lines: string[] = [];
    await printTimeline(
      from([
        { t: 10, k: EventKind.WsMessage, id: 4, direction: 'to-target', opcode: 1, data: { text: 'hello' } },
        { t: 11, k: EventKind.WsMessage, id: 4, direction: 'to-client', opcode: 2, data: { b64: 'AAEC' } },
        { t: 12, k: EventKind.WsMessage, id: 4, direction: 'to-client', opcode: 1, data: { text: 'ab', truncated: true, size: 9 } },
      ]),
      (line) => lines.push(line),
    );
    expect(lines).toEqual([
      '[00:00.010]   ws #4 → hello',
      '[00:00.011]   ws #4 ← (3 bytes binary)',
      '[00:00.012]   ws #4 ← ab (truncated)',
    ]);
  });

  it('asciicast marks typed commands with "m" events', async () => {
    const lines = await collect(asciicastLines(from(sshSession)));
    expect(lines.slice(1).map((line) => JSON.parse(line) as unknown)).toEqual([
      [0.1, 'o', '$ '],
      [0.9, 'm', '$ ls -la'],
      [0.95, 'r', '100x30'],
      [2, 'm', '$ sudo reboot'],
    ]);
    const unmarked = await collect(asciicastLines(from(sshSession), { markers: false }));
    expect(unmarked.some((line) => line.includes('"m"'))).toBe(false);
  });

  it('CSV gives the kinds their columns: decisions, exit codes, SFTP status, forward bytes', async () => {
    const lines = await collect(
      exportLines(
        from([...sshSession, { t: 2700, k: EventKind.WsMessage, id: 4, direction: 'to-target', opcode: 1, data: { text: 'hi' } }]),
        ExportFormat.Csv,
      ),
    );
    expect(lines.slice(2)).toEqual([
      '100,2026-11-22T10:00:00.100Z,term.stdout,,,,,$ ,,,',
      '900,2026-11-22T10:00:00.900Z,command,,allow,,,ls -la,,,ch0',
      '950,2026-11-22T10:00:00.950Z,term.resize,,,,,,,,100x30',
      '2000,2026-11-22T10:00:02.000Z,command,,deny,ops/no-sudo,,sudo reboot,,,"ch0, uncertain"',
      '2100,2026-11-22T10:00:02.100Z,exit,,,,,,,7,ch0',
      '2200,2026-11-22T10:00:02.200Z,exit,,,,,,,SIGTERM,ch1',
      '2300,2026-11-22T10:00:02.300Z,sftp,,allow,,write,/tmp/a,,ok,"ch2, 42 bytes"',
      '2400,2026-11-22T10:00:02.400Z,sftp,,deny,,rename,/tmp/a -> /etc/b,,permission denied,"ch2, 0 bytes"',
      '2500,2026-11-22T10:00:02.500Z,forward,,allow,,local,10.0.0.5:5432,,,"10 bytes out, 20 bytes in"',
      '2600,2026-11-22T10:00:02.600Z,forward,,deny,,remote,0.0.0.0:8080,,,"0 bytes out, 0 bytes in; no -R"',
      '2700,2026-11-22T10:00:02.700Z,ws.message,4,,,text,hi,,,"to-target, 2 bytes"',
    ]);
  });
});

describe('export', () => {
  it('JSONL gives back exactly the events', async () => {
    const events: RecordingEvent[] = [start, { t: 5, k: EventKind.TermStdout, data: { b64: 'AAE=' } }];
    const lines = await collect(exportLines(from(events), ExportFormat.Jsonl));
    expect(lines.map((line) => JSON.parse(line) as unknown)).toEqual(events);
  });

  it('CSV has one row per event with wall-clock times and quoted fields', async () => {
    const lines = await collect(
      exportLines(
        from([
          start,
          { t: 1500, k: EventKind.SqlQuery, id: 3, text: { text: 'SELECT "a", 1\nFROM t' }, decision: 'allow', class: 'read' },
          { t: 1600, k: EventKind.SqlResult, id: 3, columns: ['a'], rows: [], rowCount: 0, tag: 'SELECT 0' },
        ]),
        ExportFormat.Csv,
      ),
    );
    expect(lines[0]).toBe('t,time,kind,id,decision,rule,class,text,rows,status,detail');
    expect(lines[2]).toBe('1500,2026-11-22T10:00:01.500Z,sql.query,3,allow,,read,"SELECT ""a"", 1\nFROM t",,,');
    expect(lines[3]).toBe('1600,2026-11-22T10:00:01.600Z,sql.result,3,,,,,0,SELECT 0,a');
  });

  it.each([
    ['=HYPERLINK("x")', `"'=HYPERLINK(""x"")"`],
    ['+1', "'+1"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['-1.5', '-1.5'],
    ['-cmd', "'-cmd"],
    ['plain', 'plain'],
  ])('neutralises spreadsheet formulas: %s → %s', (input, expected) => {
    expect(csvField(input)).toBe(expected);
  });
});
