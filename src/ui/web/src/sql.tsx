// A SQL session as a timeline of statements: decision, duration, rows and the result table as
// stored (masked values stay masked: the viewer shows what the recording holds).
import { useState } from 'preact/hooks';
import { formatOffset, payloadText, type RecEvent } from './types.ts';

interface Row {
  query: RecEvent;
  results: RecEvent[];
  errors: RecEvent[];
}

export function statementsOf(events: RecEvent[]): Row[] {
  const rows: Row[] = [];
  for (const e of events) {
    if (e.k === 'sql.query') rows.push({ query: e, results: [], errors: [] });
    else if ((e.k === 'sql.result' || e.k === 'error') && rows.length > 0) {
      const target = [...rows].reverse().find((r) => e.id === undefined || r.query.id === e.id);
      if (target) (e.k === 'sql.result' ? target.results : target.errors).push(e);
    }
  }
  return rows;
}

function ResultTable({ result }: { result: RecEvent }) {
  const columns = (result.columns as string[] | undefined) ?? [];
  const rows = (result.rows as Array<Array<string | null>> | undefined) ?? [];
  return (
    <table class="result">
      <thead>
        <tr>
          {columns.map((c, i) => (
            <th key={i}>{c}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((r, i) => (
          <tr key={i}>
            {r.map((v, j) => (
              <td key={j} class={v === null ? 'null' : /\[REDACTED|\*\*\*/.test(v) ? 'masked' : ''}>
                {v === null ? 'NULL' : v}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
      {result.truncated ? (
        <caption>
          {rows.length} of {String(result.rowCount)} rows stored
        </caption>
      ) : null}
    </table>
  );
}

export function SqlTimeline({ events }: { events: RecEvent[] }) {
  const [open, setOpen] = useState<Set<number>>(new Set());
  const rows = statementsOf(events);
  const toggle = (n: number): void => {
    const next = new Set(open);
    if (next.has(n)) next.delete(n);
    else next.add(n);
    setOpen(next);
  };
  if (rows.length === 0) return <p class="empty">No statements recorded.</p>;
  return (
    <ol class="timeline" data-testid="sql-timeline">
      {rows.map(({ query, results, errors }) => {
        const decision = String(query.decision ?? 'allow');
        const duration = results.reduce((sum, r) => sum + (typeof r.durationMs === 'number' ? r.durationMs : 0), 0);
        const rowCount = results.reduce((sum, r) => sum + (typeof r.rowCount === 'number' ? r.rowCount : 0), 0);
        const masked = results.some((r) => r.masked === true);
        return (
          <li key={query.n} class={`statement decision-${decision}`}>
            <div class="line" onClick={() => toggle(query.n)}>
              <span class="t">{formatOffset(query.t)}</span> <span class={`badge ${decision}`}>{decision}</span>{' '}
              {query.class ? <span class="class">{String(query.class)}</span> : null} <code class="sql">{payloadText(query.text)}</code>
              <span class="stats">
                {results.length > 0 ? ` ${rowCount} row${rowCount === 1 ? '' : 's'}` : ''}
                {duration > 0 ? `, ${duration.toFixed(1)} ms` : ''}
                {masked ? ', masked' : ''}
              </span>
            </div>
            {query.rule ? <div class="rule">rule {String(query.rule)}</div> : null}
            {errors.map((e) => (
              <div key={e.n} class="sql-error">
                {e.code ? `${String(e.code)}: ` : ''}
                {String(e.message)}
              </div>
            ))}
            {open.has(query.n) || results.length === 1
              ? results.filter((r) => ((r.columns as unknown[] | undefined) ?? []).length > 0).map((r) => <ResultTable key={r.n} result={r} />)
              : null}
          </li>
        );
      })}
    </ol>
  );
}
