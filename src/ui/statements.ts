// A SQL session as statements: each `sql.query` joined with its result or error (by `id`), the
// shape of the SQL timeline and of its CSV download. Values are as stored (masked when the
// policy masks), never re-read from the database.

import { csvField } from '../recorder/export.ts';
import { EventKind, payloadText, type RecordingEvent } from '../recorder/events.ts';

export interface Statement {
  readonly t: number;
  readonly id?: number;
  readonly text: string;
  readonly class?: string;
  readonly decision: string;
  readonly rule?: string;
  readonly rowCount?: number;
  readonly tag?: string;
  readonly durationMs?: number;
  readonly masked?: boolean;
  readonly error?: string;
}

export const STATEMENT_CSV_COLUMNS = ['t', 'time', 'id', 'decision', 'rule', 'class', 'statement', 'rows', 'tag', 'duration_ms', 'masked', 'error'] as const;

/** Statements in order, streaming: a statement is emitted once its result/error arrives or the next statement starts. */
export async function* statements(events: AsyncIterable<RecordingEvent>): AsyncGenerator<Statement & { startedAt?: number }> {
  let startedAt: number | undefined;
  let open: { -readonly [K in keyof Statement]: Statement[K] } | undefined;
  for await (const event of events) {
    if (event.k === EventKind.SessionStart) {
      const parsed = Date.parse(event.startedAt);
      if (!Number.isNaN(parsed)) startedAt = parsed;
    } else if (event.k === EventKind.SqlQuery) {
      if (open) yield { ...open, ...(startedAt === undefined ? {} : { startedAt }) };
      open = {
        t: event.t,
        ...(event.id === undefined ? {} : { id: event.id }),
        text: payloadText(event.text),
        ...(event.class === undefined ? {} : { class: event.class }),
        decision: event.decision,
        ...(event.rule === undefined ? {} : { rule: event.rule }),
      };
    } else if (event.k === EventKind.SqlResult && open && (event.id === undefined || event.id === open.id)) {
      open.rowCount = (open.rowCount ?? 0) + event.rowCount;
      if (event.tag !== undefined) open.tag = event.tag;
      if (event.durationMs !== undefined) open.durationMs = event.durationMs;
      if (event.masked) open.masked = true;
    } else if (event.k === EventKind.Error && open && (event.id === undefined || event.id === open.id)) {
      open.error = event.code === undefined ? event.message : `${event.code}: ${event.message}`;
    }
  }
  if (open) yield { ...open, ...(startedAt === undefined ? {} : { startedAt }) };
}

/** CSV (RFC 4180, formula-safe cells) of the statements: header first, one line per statement. */
export async function* statementsCsv(events: AsyncIterable<RecordingEvent>): AsyncGenerator<string> {
  yield STATEMENT_CSV_COLUMNS.join(',');
  for await (const s of statements(events)) {
    const time = s.startedAt === undefined ? undefined : new Date(s.startedAt + s.t).toISOString();
    yield [s.t, time, s.id, s.decision, s.rule, s.class, s.text, s.rowCount, s.tag, s.durationMs, s.masked ? 'yes' : undefined, s.error].map(csvField).join(',');
  }
}
