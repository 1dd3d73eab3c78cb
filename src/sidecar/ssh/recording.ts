/**
 * The SSH session's view of its recording: stamps events with the session clock, caps payloads,
 * and turns a refused append into a fail-closed signal. Also converts a recorded terminal channel
 * to asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/) for replay.
 */
import { capPayload, createSessionClock, EventKind, payloadBytes, type RecordingEvent } from '../../recorder/events.ts';
import type { SshSessionRecorder } from './config.ts';

type Unstamped<E> = E extends unknown ? Omit<E, 't'> : never;

export class SessionLog {
  readonly #recorder: SshSessionRecorder;
  readonly #clock: () => number;
  readonly #onFailure: () => void;
  readonly maxEventBytes: number;
  #failed = false;
  #ended = false;

  constructor(recorder: SshSessionRecorder, options: { now: () => number; maxEventBytes: number; onFailure: () => void }) {
    this.#recorder = recorder;
    this.#clock = createSessionClock(options.now);
    this.maxEventBytes = options.maxEventBytes;
    this.#onFailure = options.onFailure;
  }

  get failed(): boolean {
    return this.#failed;
  }

  /** Appends an event; false (and the failure callback, once) when recording is no longer guaranteed. */
  add(event: Unstamped<RecordingEvent>): boolean {
    if (this.#failed) return false;
    // Nothing follows session.end (late timers, channels closing after the connection).
    if (this.#ended) return true;
    if (event.k === EventKind.SessionEnd) this.#ended = true;
    let ok: boolean;
    try {
      ok = this.#recorder.append({ ...event, t: this.#clock() } as RecordingEvent);
    } catch {
      ok = false;
    }
    if (!ok) {
      this.#failed = true;
      this.#onFailure();
    }
    return ok;
  }

  /**
   * Terminal bytes, split into events of at most maxEventBytes so nothing is truncated. `masked`:
   * masking replaced something in these bytes (marked on the first event).
   */
  terminal(kind: 'stdin' | 'stdout' | 'stderr', data: Uint8Array, ch: number, masked = false): boolean {
    const k = kind === 'stdin' ? EventKind.TermStdin : kind === 'stdout' ? EventKind.TermStdout : EventKind.TermStderr;
    for (let at = 0; at < data.length; at += this.maxEventBytes) {
      // Cut on byte offsets: capPayload stores non-UTF-8 pieces as base64, exactly.
      const piece = data.subarray(at, at + this.maxEventBytes);
      const event = { k, ch, data: capPayload(piece, this.maxEventBytes), ...(masked && at === 0 ? { masked: true as const } : {}) };
      if (!this.add(event)) return false;
    }
    return true;
  }

  /** While the recorder is behind: a promise to wait on before reading more from the target. */
  behind(): Promise<void> | undefined {
    return this.#recorder.behind?.();
  }

  payload(text: string): ReturnType<typeof capPayload> {
    return capPayload(text, this.maxEventBytes);
  }

  close(): Promise<void> {
    return this.#recorder.close();
  }
}

/**
 * asciicast v2 of one terminal channel: header line with the first window size, then
 * `[seconds, "o", text]` output and `[seconds, "r", "COLSxROWS"]` resize events. Output bytes are
 * joined across events before decoding, so a character split between two events survives.
 */
export function toAsciicast(events: readonly (RecordingEvent | { t: number; k: string; ch?: number })[], ch?: number): string {
  const mine = events.filter((e) => ch === undefined || !('ch' in e) || e.ch === undefined || e.ch === ch);
  const firstSize = mine.find((e) => e.k === EventKind.TermResize) as { cols: number; rows: number } | undefined;
  const start = mine.find((e) => e.k === EventKind.SessionStart) as { startedAt?: string } | undefined;
  const header: Record<string, unknown> = { version: 2, width: firstSize?.cols ?? 80, height: firstSize?.rows ?? 24 };
  if (start?.startedAt !== undefined) header.timestamp = Math.floor(Date.parse(start.startedAt) / 1000);
  const lines = [JSON.stringify(header)];
  const decoder = new TextDecoder('utf-8', { fatal: false });
  for (const e of mine) {
    if (e.k === EventKind.TermStdout || e.k === EventKind.TermStderr) {
      const text = decoder.decode(payloadBytes((e as { data: Parameters<typeof payloadBytes>[0] }).data), { stream: true });
      if (text.length > 0) lines.push(JSON.stringify([e.t / 1000, 'o', text]));
    } else if (e.k === EventKind.TermResize && e !== firstSize) {
      const r = e as { cols: number; rows: number };
      lines.push(JSON.stringify([e.t / 1000, 'r', `${r.cols}x${r.rows}`]));
    }
  }
  return `${lines.join('\n')}\n`;
}
