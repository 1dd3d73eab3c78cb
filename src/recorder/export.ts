// `warden export`: a session's events as JSON lines (exactly the recorded objects, one per line) or
// CSV (RFC 4180; one row per event with the columns auditors sort by). Streaming: one event at a time.

import { EventKind, K8sExecChannel, payloadSize, payloadText, type RecordingEvent, sftpStatusText, WsMessageOpcode } from './events.ts';

export const ExportFormat = {
  Jsonl: 'jsonl',
  Csv: 'csv',
} as const;
export type ExportFormat = (typeof ExportFormat)[keyof typeof ExportFormat];

export const CSV_COLUMNS = ['t', 'time', 'kind', 'id', 'decision', 'rule', 'class', 'text', 'rows', 'status', 'detail'] as const;

/**
 * One CSV field. Quoted when it holds a comma, quote or line break (RFC 4180 §2). Cells that a
 * spreadsheet would run as a formula (starting with = + @ or a control character, or - followed by
 * something that is not a number) get a leading apostrophe: recorded input is attacker-controlled
 * and an auditor opening the export must not execute it (OWASP "CSV injection").
 */
export function csvField(value: string | number | undefined): string {
  if (value === undefined) return '';
  let text = String(value);
  if (typeof value === 'string' && /^([=+@\t\r]|-(?![\d.]))/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function withChannel(ch: number | undefined, detail: string | undefined): string | undefined {
  if (ch === undefined) return detail;
  return detail === undefined ? `ch${ch}` : `ch${ch}, ${detail}`;
}

function row(event: RecordingEvent, startedAt: number | undefined): Array<string | number | undefined> {
  const time = startedAt === undefined ? undefined : new Date(startedAt + event.t).toISOString();
  const base = { t: event.t, time, kind: event.k } as const;
  const cells: Record<(typeof CSV_COLUMNS)[number], string | number | undefined> = {
    ...base,
    id: undefined,
    decision: undefined,
    rule: undefined,
    class: undefined,
    text: undefined,
    rows: undefined,
    status: undefined,
    detail: undefined,
  };
  switch (event.k) {
    case EventKind.SessionStart:
      cells.text = event.connection;
      cells.detail = `${event.protocol}${event.client ? ` from ${event.client.addr}` : ''}`;
      break;
    case EventKind.Auth:
      cells.text = event.user;
      cells.status = event.ok ? 'ok' : 'failed';
      cells.detail = event.reason;
      break;
    case EventKind.SqlQuery:
      Object.assign(cells, { id: event.id, decision: event.decision, rule: event.rule, class: event.class, text: payloadText(event.text) });
      if (event.params) cells.detail = JSON.stringify(event.params.map((p) => (p === null ? null : payloadText(p))));
      break;
    case EventKind.SqlResult:
      Object.assign(cells, { id: event.id, rows: event.rowCount, status: event.tag, detail: event.columns.join(',') });
      break;
    case EventKind.Exec:
      Object.assign(cells, { decision: event.decision, rule: event.rule, text: payloadText(event.command), detail: event.target });
      break;
    case EventKind.HttpRequest:
      Object.assign(cells, { id: event.id, decision: event.decision, rule: event.rule, text: `${event.method} ${event.url}` });
      break;
    case EventKind.HttpResponse:
      Object.assign(cells, { id: event.id, status: event.status });
      break;
    case EventKind.TermStdin:
    case EventKind.TermStdout:
    case EventKind.TermStderr:
      cells.text = payloadText(event.data);
      break;
    case EventKind.TermResize:
      cells.detail = `${event.cols}x${event.rows}`;
      break;
    case EventKind.K8sExec:
      cells.id = event.id;
      cells.text = payloadText(event.data);
      cells.detail = Object.entries(K8sExecChannel).find(([, ch]) => ch === event.ch)?.[0] ?? String(event.ch);
      break;
    case EventKind.Command:
      Object.assign(cells, { decision: event.decision, rule: event.rule, text: event.command, detail: withChannel(event.ch, event.uncertain ? 'uncertain' : undefined) });
      break;
    case EventKind.Exit:
      Object.assign(cells, { status: event.code ?? event.signal, detail: withChannel(event.ch, undefined) });
      break;
    case EventKind.Sftp:
      Object.assign(cells, {
        decision: event.decision,
        class: event.op,
        text: event.path2 === undefined ? event.path : `${event.path} -> ${event.path2}`,
        status: sftpStatusText(event.status),
        detail: withChannel(event.ch, `${event.bytes} bytes`),
      });
      break;
    case EventKind.Forward:
      Object.assign(cells, {
        decision: event.decision,
        class: event.direction,
        text: `${event.host}:${event.port}`,
        detail: `${event.bytesOut} bytes out, ${event.bytesIn} bytes in${event.reason ? `; ${event.reason}` : ''}`,
      });
      break;
    case EventKind.WsMessage:
      Object.assign(cells, {
        id: event.id,
        class: event.opcode === WsMessageOpcode.Text ? 'text' : 'binary',
        text: event.opcode === WsMessageOpcode.Text ? payloadText(event.data) : (event.data.b64 ?? payloadText(event.data)),
        detail: `${event.direction}, ${payloadSize(event.data)} bytes${event.data.truncated ? ', truncated' : ''}`,
      });
      break;
    case EventKind.Deny:
      Object.assign(cells, { decision: 'deny', rule: event.rule, text: event.what ? payloadText(event.what) : undefined, detail: event.reason });
      break;
    case EventKind.Approval:
      Object.assign(cells, { status: event.state, text: event.request, detail: event.by });
      break;
    case EventKind.Error:
      Object.assign(cells, { id: event.id, status: event.code, detail: event.message });
      break;
    case EventKind.SessionEnd:
      cells.detail = event.reason;
      break;
    default:
      cells.detail = JSON.stringify(event);
  }
  return CSV_COLUMNS.map((column) => cells[column]);
}

/** Export lines (without line terminators) in the chosen format. */
export async function* exportLines(events: AsyncIterable<RecordingEvent>, format: ExportFormat): AsyncGenerator<string> {
  if (format === ExportFormat.Jsonl) {
    for await (const event of events) yield JSON.stringify(event);
    return;
  }
  yield CSV_COLUMNS.join(',');
  let startedAt: number | undefined;
  for await (const event of events) {
    if (event.k === EventKind.SessionStart) {
      const parsed = Date.parse(event.startedAt);
      if (!Number.isNaN(parsed)) startedAt = parsed;
    }
    yield row(event, startedAt).map(csvField).join(',');
  }
}
