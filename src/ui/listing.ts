// The session list: filters, the label selector that narrows what the API server returns, and
// paging over the API server's own pages (limit + continue) so that one request reads a bounded
// number of Session objects however many exist. Pure apart from the `fetchPage` it is given.

import { PROTOCOLS, type Protocol, SESSION_PHASES, type Session, type SessionPhase } from '../api/types.ts';
import { CONNECTION_LABEL } from '../recorder/session-objects.ts';
import { type Grants, mayView } from './access.ts';
import { UiError, UiErrorCode } from './errors.ts';

export interface SessionFilter {
  /** Case-insensitive substring of the user name. */
  readonly user?: string;
  /** Connection name (the `warden.dev/connection` label value). */
  readonly connection?: string;
  readonly namespace?: string;
  readonly protocol?: Protocol;
  readonly phase?: SessionPhase;
  /** Started at or after (ms since the epoch). */
  readonly since?: number;
  /** Started before (ms since the epoch). */
  readonly until?: number;
  /** Only sessions with at least one denial. */
  readonly hadDenials?: boolean;
  /** Only sessions with at least one approval. */
  readonly hadApprovals?: boolean;
}

/** One row of the list: what the page shows, from the Session object alone (no recording read). */
export interface SessionSummary {
  readonly namespace: string;
  readonly name: string;
  readonly connection: string;
  readonly protocol: Protocol;
  readonly user: string;
  readonly groups: readonly string[];
  readonly clientAddress?: string;
  readonly clientApplication?: string;
  readonly startedAt: string;
  readonly endedAt?: string;
  readonly duration?: string;
  readonly phase: SessionPhase | 'Unknown';
  readonly reason?: string;
  readonly commands: number;
  readonly denied: number;
  readonly approvals: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly chunks: number;
  readonly location?: string;
  readonly headDigest?: string;
}

export function summarize(session: Session): SessionSummary {
  const s = session.status ?? {};
  return {
    namespace: session.metadata.namespace ?? '',
    name: session.metadata.name ?? '',
    connection: session.spec.connection,
    protocol: session.spec.protocol,
    user: session.spec.user,
    groups: session.spec.groups ?? [],
    ...(session.spec.clientAddress === undefined ? {} : { clientAddress: session.spec.clientAddress }),
    ...(session.spec.clientApplication === undefined ? {} : { clientApplication: session.spec.clientApplication }),
    startedAt: session.spec.startedAt,
    ...(s.endedAt === undefined ? {} : { endedAt: s.endedAt }),
    ...(s.duration === undefined ? {} : { duration: s.duration }),
    phase: s.phase ?? 'Unknown',
    ...(s.reason === undefined ? {} : { reason: s.reason }),
    commands: s.commands ?? 0,
    denied: s.denied ?? 0,
    approvals: s.approvals ?? 0,
    bytesIn: s.bytesIn ?? 0,
    bytesOut: s.bytesOut ?? 0,
    chunks: s.recording?.chunks ?? 0,
    ...(s.recording?.location === undefined ? {} : { location: s.recording.location }),
    ...(s.recording?.headDigest === undefined ? {} : { headDigest: s.recording.headDigest }),
  };
}

/** Kubernetes label values (and object names used as such): 63 characters, alphanumerics and -_. inside. */
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function parseTime(name: string, value: string): number {
  const parsed = Date.parse(value);
  if (Number.isNaN(parsed)) throw new UiError(UiErrorCode.BadRequest, `${name} must be a date and time (ISO 8601), not ${JSON.stringify(value.slice(0, 40))}`);
  return parsed;
}

const truthy = (value: string | null): boolean => value === '1' || value === 'true' || value === 'yes';

/** Reads the filter from query parameters; throws UiError BAD_REQUEST on a malformed value. */
export function parseFilter(query: URLSearchParams): SessionFilter {
  const get = (name: string): string | undefined => {
    const value = query.get(name)?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const filter: { -readonly [K in keyof SessionFilter]: SessionFilter[K] } = {};
  const user = get('user');
  if (user !== undefined) filter.user = user.slice(0, 256).toLowerCase();
  const connection = get('connection');
  if (connection !== undefined) {
    if (!LABEL_VALUE.test(connection)) throw new UiError(UiErrorCode.BadRequest, 'connection must be a Connection name');
    filter.connection = connection;
  }
  const namespace = get('namespace');
  if (namespace !== undefined) {
    if (!NAMESPACE.test(namespace)) throw new UiError(UiErrorCode.BadRequest, 'namespace must be a namespace name');
    filter.namespace = namespace;
  }
  const protocol = get('protocol');
  if (protocol !== undefined) {
    if (!(PROTOCOLS as readonly string[]).includes(protocol)) throw new UiError(UiErrorCode.BadRequest, `protocol must be one of ${PROTOCOLS.join(', ')}`);
    filter.protocol = protocol as Protocol;
  }
  const phase = get('phase');
  if (phase !== undefined) {
    if (!(SESSION_PHASES as readonly string[]).includes(phase)) throw new UiError(UiErrorCode.BadRequest, `phase must be one of ${SESSION_PHASES.join(', ')}`);
    filter.phase = phase as SessionPhase;
  }
  const since = get('since');
  if (since !== undefined) filter.since = parseTime('since', since);
  const until = get('until');
  if (until !== undefined) filter.until = parseTime('until', until);
  if (truthy(query.get('denials'))) filter.hadDenials = true;
  if (truthy(query.get('approvals'))) filter.hadApprovals = true;
  return filter;
}

/** The filters the label selector and namespace cannot express, applied to each object read. */
export function matchesFilter(session: Session, filter: SessionFilter): boolean {
  const status = session.status ?? {};
  if (filter.user !== undefined && !session.spec.user.toLowerCase().includes(filter.user)) return false;
  if (filter.connection !== undefined && session.spec.connection !== filter.connection) return false;
  if (filter.namespace !== undefined && session.metadata.namespace !== filter.namespace) return false;
  if (filter.protocol !== undefined && session.spec.protocol !== filter.protocol) return false;
  if (filter.phase !== undefined && status.phase !== filter.phase) return false;
  const started = Date.parse(session.spec.startedAt);
  if (filter.since !== undefined && !(started >= filter.since)) return false;
  if (filter.until !== undefined && !(started < filter.until)) return false;
  if (filter.hadDenials && !((status.denied ?? 0) > 0)) return false;
  if (filter.hadApprovals && !((status.approvals ?? 0) > 0)) return false;
  return true;
}

/** True when the filter has criteria that only the viewer applies (not namespace or connection). */
export function hasResidualFilter(filter: SessionFilter): boolean {
  return (
    filter.user !== undefined ||
    filter.protocol !== undefined ||
    filter.phase !== undefined ||
    filter.since !== undefined ||
    filter.until !== undefined ||
    filter.hadDenials === true ||
    filter.hadApprovals === true
  );
}

/** Where and what to ask the API server for. */
export interface ListScope {
  /** One namespace when the grants (or the filter) stay inside it; undefined: all namespaces. */
  readonly namespace?: string;
  /** `warden.dev/connection=x` or `warden.dev/connection in (a,b)`; undefined: no selector. */
  readonly labelSelector?: string;
  /** Nothing can match: no request needed. */
  readonly empty: boolean;
}

/** Longest `in (...)` set put into a selector; beyond it the filter runs on the objects read. */
export const MAX_SELECTOR_VALUES = 100;

/** Narrows the API request by what the viewer may see and the filter, so fewer objects are read. */
export function listScope(grants: Grants, filter: SessionFilter): ListScope {
  let keys = [...grants.connections];
  if (filter.namespace !== undefined) keys = keys.filter((k) => k.startsWith(`${filter.namespace}/`));
  if (filter.connection !== undefined) keys = keys.filter((k) => k.endsWith(`/${filter.connection}`));
  if (keys.length === 0) return { empty: true };
  const namespaces = new Set(keys.map((k) => k.slice(0, k.indexOf('/'))));
  const names = [...new Set(keys.map((k) => k.slice(k.indexOf('/') + 1)))].filter((n) => LABEL_VALUE.test(n)).sort();
  const namespace = namespaces.size === 1 ? [...namespaces][0] : undefined;
  let labelSelector: string | undefined;
  if (names.length === 1) labelSelector = `${CONNECTION_LABEL}=${names[0]}`;
  else if (names.length > 0 && names.length <= MAX_SELECTOR_VALUES) labelSelector = `${CONNECTION_LABEL} in (${names.join(',')})`;
  return { ...(namespace === undefined ? {} : { namespace }), ...(labelSelector === undefined ? {} : { labelSelector }), empty: false };
}

/** One page as the API server returns it. */
export interface ApiPage {
  readonly items: readonly Session[];
  readonly continue?: string;
}

export type FetchPage = (scope: ListScope, limit: number, continueToken: string | undefined) => Promise<ApiPage>;

export interface ListRequest {
  readonly filter: SessionFilter;
  readonly grants: Grants;
  /** Rows wanted (1–200). */
  readonly limit: number;
  /** Our continue token from the previous response. */
  readonly continueToken?: string;
  /** Most objects read from the API server for one request (default 5,000): bounds the latency of a selective filter. */
  readonly maxScan?: number;
  /** Objects per API server page (default twice the limit, 100–500; 500 when the viewer filters). */
  readonly apiPageSize?: number;
}

export interface ListResult {
  readonly items: SessionSummary[];
  /** Present when there may be more: pass it back as `continue`. */
  readonly continue?: string;
  /** Session objects read from the API server for this response. */
  readonly scanned: number;
}

/**
 * Our continue token: the API server's continue token of the page being read (none: the first
 * page) and how many of that page's objects this viewer has already been through.
 */
interface Cursor {
  readonly c?: string;
  readonly s: number;
  /** The API page size the chain was started with: `s` counts within a page of this size. */
  readonly p?: number;
}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url');
}

export function decodeCursor(token: string): Cursor {
  try {
    const value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (typeof value === 'object' && value !== null) {
      const { c, s, p } = value as { c?: unknown; s?: unknown; p?: unknown };
      const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
      if ((c === undefined || typeof c === 'string') && count(s) && (p === undefined || (count(p) && p >= 1 && p <= 500))) {
        return { ...(c === undefined ? {} : { c }), s, ...(p === undefined ? {} : { p }) };
      }
    }
  } catch {
    // fall through
  }
  throw new UiError(UiErrorCode.BadRequest, 'the continue token is not one this server issued; start from the first page');
}

/**
 * Reads API pages until `limit` rows the viewer may see and that match the filter are found, the
 * scan budget is spent, or the list ends. Rows come in the API server's order (namespace, name);
 * each page is sorted newest first for display.
 */
export async function listSessions(fetchPage: FetchPage, request: ListRequest): Promise<ListResult> {
  const scope = listScope(request.grants, request.filter);
  if (scope.empty) return { items: [], scanned: 0 };
  const maxScan = request.maxScan ?? 5_000;
  let cursor: Cursor = request.continueToken ? decodeCursor(request.continueToken) : { s: 0 };
  // The same page size along one chain of tokens, whatever `limit` later requests ask for.
  // Filters the API server cannot apply read more objects per row shown: larger pages, fewer round trips.
  const pageSize = cursor.p ?? request.apiPageSize ?? (hasResidualFilter(request.filter) ? 500 : Math.min(500, Math.max(100, request.limit * 2)));
  const items: SessionSummary[] = [];
  let scanned = 0;
  for (;;) {
    const page = await fetchPage(scope, pageSize, cursor.c);
    for (let i = cursor.s; i < page.items.length; i++) {
      const session = page.items[i] as Session;
      scanned += 1;
      if (mayView(request.grants, session) && matchesFilter(session, request.filter)) items.push(summarize(session));
      const more = i + 1 < page.items.length || page.continue !== undefined;
      if ((items.length >= request.limit || scanned >= maxScan) && more) {
        const next: Cursor = i + 1 < page.items.length ? { ...(cursor.c === undefined ? {} : { c: cursor.c }), s: i + 1, p: pageSize } : { c: page.continue as string, s: 0, p: pageSize };
        return { items: sortNewestFirst(items), continue: encodeCursor(next), scanned };
      }
    }
    if (page.continue === undefined) return { items: sortNewestFirst(items), scanned };
    cursor = { c: page.continue, s: 0, p: pageSize };
  }
}

function sortNewestFirst(items: SessionSummary[]): SessionSummary[] {
  return items.sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
}
