import { describe, expect, it } from 'vitest';
import { capPayload, Decision, EventKind, type RecordingEvent } from '../recorder/events.ts';
import { statements, statementsCsv } from './statements.ts';

async function* from(events: RecordingEvent[]): AsyncGenerator<RecordingEvent> {
  yield* events;
}

const events: RecordingEvent[] = [
  { t: 0, k: EventKind.SessionStart, protocol: 'postgres', connection: 'shop/orders', startedAt: '2026-11-22T08:00:00.000Z' },
  { t: 5, k: EventKind.SqlQuery, id: 1, text: capPayload('SELECT email FROM customers', 100), class: 'read', decision: Decision.Allow, rule: 'ops/read' },
  { t: 9, k: EventKind.SqlResult, id: 1, columns: ['email'], rows: [['[REDACTED:emails]']], rowCount: 1, tag: 'SELECT 1', masked: true, durationMs: 2.5 },
  { t: 12, k: EventKind.SqlQuery, id: 2, text: capPayload('=HYPERLINK("http://evil")', 100), decision: Decision.Allow },
  { t: 13, k: EventKind.Error, id: 2, code: '42601', message: 'syntax error' },
  { t: 20, k: EventKind.SqlQuery, id: 3, text: capPayload('DROP TABLE customers', 100), class: 'ddl', decision: Decision.Deny, rule: 'ops/no-ddl' },
];

describe('statements', () => {
  it('joins each query with its result or error by id, in order', async () => {
    const all = [];
    for await (const s of statements(from(events))) all.push(s);
    expect(all.map((s) => [s.id, s.decision, s.rowCount, s.masked, s.error])).toEqual([
      [1, 'allow', 1, true, undefined],
      [2, 'allow', undefined, undefined, '42601: syntax error'],
      [3, 'deny', undefined, undefined, undefined],
    ]);
  });

  it('writes CSV with times, and neutralises cells a spreadsheet would run as formulas', async () => {
    const lines = [];
    for await (const line of statementsCsv(from(events))) lines.push(line);
    expect(lines[1]).toBe('5,2026-11-22T08:00:00.005Z,1,allow,ops/read,read,SELECT email FROM customers,1,SELECT 1,2.5,yes,');
    expect(lines[2]).toContain(`"'=HYPERLINK(""http://evil"")"`);
    expect(lines).toHaveLength(4);
  });
});
