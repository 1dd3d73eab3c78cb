// Turning recorded events back into something a person watches: asciicast v2 for terminal sessions
// (https://docs.asciinema.org/manual/asciicast/v2/), a real-time terminal player with speed control
// and idle-gap compression, and a step-through timeline for SQL, HTTP and Kubernetes sessions.
// Everything consumes an async iterable of events, so a long session is never held in memory.

import { setTimeout as sleep } from 'node:timers/promises';
import {
  Decision,
  EventKind,
  ForwardDirection,
  K8sExecChannel,
  MessageDirection,
  payloadBytes,
  payloadSize,
  payloadText,
  type RecordingEvent,
  sftpStatusText,
  WsMessageOpcode,
} from './events.ts';

/** Output bytes of a terminal-like event, if it is one. */
function terminalOutput(event: RecordingEvent): Uint8Array | undefined {
  if (event.k === EventKind.TermStdout || event.k === EventKind.TermStderr) return payloadBytes(event.data);
  if (event.k === EventKind.K8sExec && (event.ch === K8sExecChannel.Stdout || event.ch === K8sExecChannel.Stderr)) {
    return payloadBytes(event.data);
  }
  return undefined;
}

function terminalInput(event: RecordingEvent): Uint8Array | undefined {
  if (event.k === EventKind.TermStdin) return payloadBytes(event.data);
  if (event.k === EventKind.K8sExec && event.ch === K8sExecChannel.Stdin) return payloadBytes(event.data);
  return undefined;
}

function terminalSize(event: RecordingEvent): { cols: number; rows: number } | undefined {
  if (event.k === EventKind.TermResize) return { cols: event.cols, rows: event.rows };
  if (event.k === EventKind.K8sExec && event.ch === K8sExecChannel.Resize) {
    try {
      const size = JSON.parse(payloadText(event.data)) as { Width?: unknown; Height?: unknown };
      if (typeof size.Width === 'number' && typeof size.Height === 'number') return { cols: size.Width, rows: size.Height };
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** True when the session's protocol is replayed as a terminal (SSH); false for SQL and HTTP timelines. */
export function isTerminalProtocol(protocol: string | undefined): boolean {
  return protocol === 'ssh';
}

export interface AsciicastOptions {
  /** Include keystrokes as "i" events (asciinema ignores them on playback). */
  readonly input?: boolean;
  /** Typed commands as `"m"` marker events, the player's chapter index (default true). */
  readonly markers?: boolean;
  /** Written as `idle_time_limit` (seconds) so players compress long pauses. */
  readonly idleTimeLimitSeconds?: number;
  readonly title?: string;
}

/**
 * asciicast v2 lines (header first, then `[seconds, "o"|"i"|"r"|"m", data]`), one string per line
 * without the newline. The header is emitted at the first output so that a resize recorded before
 * it gives the initial size. Output split inside a UTF-8 character is decoded across events.
 */
export async function* asciicastLines(events: AsyncIterable<RecordingEvent>, options: AsciicastOptions = {}): AsyncGenerator<string> {
  let header: Record<string, unknown> | undefined;
  let size = { cols: 80, rows: 24 };
  let timestamp: number | undefined;
  const outDecoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  const inDecoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  const time = (t: number): number => Math.round(t * 1000) / 1_000_000;
  function* ensureHeader(): Generator<string> {
    if (header) return;
    header = {
      version: 2,
      width: size.cols,
      height: size.rows,
      ...(timestamp === undefined ? {} : { timestamp }),
      ...(options.idleTimeLimitSeconds === undefined ? {} : { idle_time_limit: options.idleTimeLimitSeconds }),
      ...(options.title === undefined ? {} : { title: options.title }),
      env: { TERM: 'xterm-256color' },
    };
    yield JSON.stringify(header);
  }
  for await (const event of events) {
    if (event.k === EventKind.SessionStart) {
      const started = Date.parse(event.startedAt);
      if (!Number.isNaN(started)) timestamp = Math.floor(started / 1000);
      continue;
    }
    const resized = terminalSize(event);
    if (resized) {
      if (!header) {
        size = resized;
        continue;
      }
      yield JSON.stringify([time(event.t), 'r', `${resized.cols}x${resized.rows}`]);
      continue;
    }
    if (event.k === EventKind.Command && options.markers !== false) {
      yield* ensureHeader();
      yield JSON.stringify([time(event.t), 'm', `$ ${event.command}`]);
      continue;
    }
    const output = terminalOutput(event);
    if (output) {
      yield* ensureHeader();
      const text = outDecoder.decode(output, { stream: true });
      if (text !== '') yield JSON.stringify([time(event.t), 'o', text]);
      continue;
    }
    if (options.input) {
      const input = terminalInput(event);
      if (input) {
        yield* ensureHeader();
        const text = inDecoder.decode(input, { stream: true });
        if (text !== '') yield JSON.stringify([time(event.t), 'i', text]);
      }
    }
  }
  yield* ensureHeader();
}

export interface PlayerOptions {
  /** Playback speed factor (2 = twice as fast). */
  readonly speed?: number;
  /** Pauses longer than this are shortened to it (ms); default no limit. */
  readonly maxIdleMs?: number;
  /** Injected for tests. */
  readonly wait?: (ms: number) => Promise<void>;
}

export interface Writer {
  write(chunk: Uint8Array | string): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** Plays terminal output in real time onto `out`; returns the played duration in ms (after speed and idle compression). */
export async function playTerminal(events: AsyncIterable<RecordingEvent>, out: Writer, options: PlayerOptions = {}): Promise<number> {
  const speed = options.speed ?? 1;
  const maxIdle = options.maxIdleMs ?? Number.POSITIVE_INFINITY;
  const wait = options.wait ?? ((ms: number) => sleep(ms));
  let last: number | undefined;
  let played = 0;
  for await (const event of events) {
    const output = terminalOutput(event);
    if (!output) continue;
    if (last !== undefined) {
      const gap = Math.min(Math.max(0, event.t - last), maxIdle) / speed;
      if (gap >= 1) {
        await wait(gap);
        played += gap;
      }
    }
    last = event.t;
    if (!out.write(output)) await new Promise<void>((resolve) => out.once('drain', resolve));
  }
  return played;
}

function clock(t: number): string {
  const ms = t % 1000;
  const s = Math.floor(t / 1000) % 60;
  const m = Math.floor(t / 60_000) % 60;
  const h = Math.floor(t / 3_600_000);
  return `${h > 0 ? `${h}:` : ''}${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}.${String(ms).padStart(3, '0')}`;
}

/** One line, control characters made visible, cut to `max` characters. */
function oneLine(text: string, max = 2000): string {
  // eslint-disable-next-line no-control-regex -- making control characters visible is the point
  const flat = text.replace(/\r?\n/g, '⏎ ').replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

function table(columns: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | null>>, maxRows: number): string[] {
  const shown = rows.slice(0, maxRows).map((row) => row.map((cell) => (cell === null ? 'NULL' : oneLine(cell, 60))));
  const widths = columns.map((column, i) => Math.max(oneLine(column, 60).length, ...shown.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string => `      ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' | ')}`;
  return [
    line(columns.map((column) => oneLine(column, 60))),
    `      ${widths.map((width) => '-'.repeat(width)).join('-+-')}`,
    ...shown.map(line),
  ];
}

export interface TimelineOptions {
  /** Rows of each result shown (default 20). */
  readonly maxRows?: number;
  /** Called before each command (SQL query, HTTP request, exec, typed command); resolve to go on (step-through). */
  readonly step?: () => Promise<void>;
  /**
   * Show terminal data and resizes (default true). False leaves a terminal session's index: typed
   * commands, execs, exits, SFTP operations, forwards and denials.
   */
  readonly terminalData?: boolean;
}

function channel(ch: number | undefined): string {
  return ch === undefined ? '' : ` ch${ch}`;
}


/**
 * Writes a timeline of a session: one block per command (SQL query, HTTP request, exec, typed
 * shell command, numbered) with its decision and result, and SSH exits, SFTP operations and forwards.
 */
export async function printTimeline(events: AsyncIterable<RecordingEvent>, write: (line: string) => void, options: TimelineOptions = {}): Promise<number> {
  const maxRows = options.maxRows ?? 20;
  let count = 0;
  for await (const event of events) {
    const at = `[${clock(event.t)}]`;
    switch (event.k) {
      case EventKind.SessionStart:
        write(`${at} session started ${event.startedAt}: ${event.protocol} on ${event.connection}${event.client ? ` from ${event.client.addr}${event.client.app ? ` (${event.client.app})` : ''}` : ''}`);
        break;
      case EventKind.Auth:
        write(`${at} auth ${event.ok ? 'ok' : 'FAILED'} (${event.method})${event.user ? ` user=${event.user}` : ''}${event.groups?.length ? ` groups=${event.groups.join(',')}` : ''}${event.reason ? `: ${oneLine(event.reason)}` : ''}`);
        break;
      case EventKind.SqlQuery:
        if (options.step) await options.step();
        count += 1;
        write(`${at} SQL${event.id === undefined ? '' : ` #${event.id}`} [${event.decision}${event.class ? `, ${event.class}` : ''}${event.rule ? `, ${event.rule}` : ''}] ${oneLine(payloadText(event.text))}`);
        if (event.params?.length) write(`      params: ${event.params.map((p) => (p === null ? 'NULL' : JSON.stringify(payloadText(p)))).join(', ')}`);
        break;
      case EventKind.SqlResult:
        for (const line of table(event.columns, event.rows, maxRows)) write(line);
        write(`      (${event.rowCount} row${event.rowCount === 1 ? '' : 's'}${event.rows.length < event.rowCount || event.truncated ? `, ${Math.min(event.rows.length, maxRows)} shown` : ''}${event.tag ? `, ${event.tag}` : ''}${event.masked ? ', masked' : ''})`);
        break;
      case EventKind.HttpRequest:
        if (options.step) await options.step();
        count += 1;
        write(`${at} HTTP #${event.id} ${event.method} ${oneLine(event.url)}${event.decision ? ` [${event.decision}${event.rule ? `, ${event.rule}` : ''}]` : ''}${event.k8s ? ` (${event.k8s.verb} ${event.k8s.resource ?? ''}${event.k8s.namespace ? ` -n ${event.k8s.namespace}` : ''}${event.k8s.name ? ` ${event.k8s.name}` : ''})` : ''}`);
        if (event.body) write(`      body: ${oneLine(payloadText(event.body), 500)}`);
        break;
      case EventKind.HttpResponse:
        write(`${at}   → ${event.status}${event.body ? ` ${oneLine(payloadText(event.body), 500)}` : ''}`);
        break;
      case EventKind.Exec:
        if (options.step) await options.step();
        count += 1;
        write(`${at} exec [${event.decision}${event.rule ? `, ${event.rule}` : ''}]${event.target ? ` ${event.target}` : ''}: ${oneLine(payloadText(event.command))}`);
        break;
      case EventKind.K8sExec:
        write(`${at}   exec #${event.id} ch${event.ch}: ${oneLine(payloadText(event.data), 500)}`);
        break;
      case EventKind.Command:
        if (options.step) await options.step();
        count += 1;
        write(`${at} command ${count}${channel(event.ch)} [${event.decision}${event.rule ? `, ${event.rule}` : ''}${event.uncertain ? ', uncertain' : ''}] $ ${oneLine(event.command)}`);
        break;
      case EventKind.Exit:
        write(`${at} exit${channel(event.ch)}: ${event.code === undefined ? `signal ${event.signal ?? 'unknown'}` : `status ${event.code}`}`);
        break;
      case EventKind.Sftp:
        write(`${at} SFTP${channel(event.ch)} ${event.op} ${oneLine(event.path, 500)}${event.path2 === undefined ? '' : ` → ${oneLine(event.path2, 500)}`} [${event.decision}] ${sftpStatusText(event.status)}${event.bytes > 0 ? `, ${event.bytes} bytes` : ''}`);
        break;
      case EventKind.Forward:
        write(`${at} forward ${event.direction === ForwardDirection.Local ? '-L' : '-R'} ${event.host}:${event.port} [${event.decision}]${event.decision === Decision.Allow ? ` ${event.bytesOut} bytes out, ${event.bytesIn} bytes in` : ''}${event.reason ? `: ${oneLine(event.reason)}` : ''}`);
        break;
      case EventKind.WsMessage:
        write(`${at}   ws #${event.id} ${event.direction === MessageDirection.ToTarget ? '→' : '←'} ${event.opcode === WsMessageOpcode.Text ? oneLine(payloadText(event.data), 500) : `(${payloadSize(event.data)} bytes binary)`}${event.data.truncated ? ' (truncated)' : ''}`);
        break;
      case EventKind.TermStdin:
      case EventKind.TermStdout:
      case EventKind.TermStderr:
        if (options.terminalData === false) break;
        write(`${at} ${event.k.slice(5)}: ${oneLine(payloadText(event.data), 500)}`);
        break;
      case EventKind.TermResize:
        if (options.terminalData === false) break;
        write(`${at} resize ${event.cols}x${event.rows}`);
        break;
      case EventKind.Deny:
        write(`${at} DENIED: ${oneLine(event.reason)}${event.rule ? ` (${event.rule})` : ''}${event.what ? ` — ${oneLine(payloadText(event.what), 500)}` : ''}`);
        break;
      case EventKind.Approval:
        write(`${at} approval ${event.request}: ${event.state}${event.by ? ` by ${event.by}` : ''}${event.reason ? ` (${oneLine(event.reason)})` : ''}`);
        break;
      case EventKind.Error:
        write(`${at} error${event.code ? ` ${event.code}` : ''}${event.id === undefined ? '' : ` (#${event.id})`}: ${oneLine(event.message)}`);
        break;
      case EventKind.SessionEnd:
        write(`${at} session ended: ${event.reason}`);
        break;
      default: {
        const unknown = event as { k: string };
        write(`${at} ${unknown.k}: ${oneLine(JSON.stringify(unknown), 500)}`);
      }
    }
  }
  return count;
}
