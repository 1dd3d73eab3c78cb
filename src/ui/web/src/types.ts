// The shapes the viewer's API returns (src/ui/listing.ts, src/recorder/events.ts, verify.ts).

export interface SessionSummary {
  namespace: string;
  name: string;
  connection: string;
  protocol: 'postgres' | 'ssh' | 'kubernetes' | 'http';
  user: string;
  groups: string[];
  clientAddress?: string;
  clientApplication?: string;
  startedAt: string;
  endedAt?: string;
  duration?: string;
  phase: string;
  reason?: string;
  commands: number;
  denied: number;
  approvals: number;
  bytesIn: number;
  bytesOut: number;
  chunks: number;
  location?: string;
  headDigest?: string;
}

export interface ListResult {
  items: SessionSummary[];
  continue?: string;
  scanned: number;
}

export interface Payload {
  text?: string;
  b64?: string;
  truncated?: boolean;
  size?: number;
}

/** One recorded event; `n` is its position in the recording (1-based). */
export interface RecEvent {
  n: number;
  t: number;
  k: string;
  [field: string]: unknown;
}

export interface EventsResult {
  events: RecEvent[];
  next: number;
  more: boolean;
  live: boolean;
}

export interface VerifyReport {
  ok: boolean;
  closed: boolean;
  objects: number;
  verifiedThrough: number;
  events: number;
  bodiesChecked: boolean;
  problems: Array<{ code: string; message: string }>;
  notes: string[];
  live: boolean;
}

export interface Me {
  user: string;
  groups: string[];
  connections: string[];
}

export function payloadText(payload: unknown): string {
  if (typeof payload !== 'object' || payload === null) return '';
  const p = payload as Payload;
  if (typeof p.text === 'string') return p.text;
  if (typeof p.b64 === 'string') {
    const bytes = Uint8Array.from(atob(p.b64), (c) => c.charCodeAt(0));
    return new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  }
  return '';
}

export const formatOffset = (ms: number): string => {
  const s = Math.floor(ms / 1000);
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${h > 0 ? `${h}:` : ''}${pad(m % 60)}:${pad(s % 60)}.${String(ms % 1000).padStart(3, '0')}`;
};
