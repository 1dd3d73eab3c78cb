// The web viewer's HTTP server (node:http): the read-only JSON API under /api, the OIDC login under
// /auth, and the built front-end as static files. Every request under /api is authenticated
// (bearer token or login cookie) and authorized against the RecordingPolicies' `viewers`; every
// read of a recording is logged as an audit line naming the person and the session.

import { createReadStream, type Stats, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize, resolve, sep } from 'node:path';
import type { Session } from '../api/types.ts';
import type { Logger } from '../controller/log.ts';
import { exportLines } from '../recorder/export.ts';
import { EventKind, type RecordingEvent } from '../recorder/events.ts';
import { type ReadSessionOptions, readSessionEvents, verifySessionFolder } from '../recorder/reader.ts';
import { remember } from '../bounded.ts';
import type { VerifiedChunk } from '../recorder/verify.ts';
import { asciicastLines } from '../recorder/replay.ts';
import { RecorderError } from '../recorder/errors.ts';
import type { Identity } from '../sidecar/auth/oidc.ts';
import { type Grants, grantsFor, mayView, connectionKey } from './access.ts';
import type { Authenticator } from './auth.ts';
import { UiError, UiErrorCode } from './errors.ts';
import { listSessions, parseFilter, summarize } from './listing.ts';
import type { KubeSource, OpenRecording, RecordingSource } from './sources.ts';
import { statementsCsv } from './statements.ts';

export interface UiServerOptions {
  readonly auth: Authenticator;
  readonly kube: KubeSource;
  readonly recordings: RecordingSource;
  /** Directory of the built front-end (index.html + assets/). */
  readonly assetsDir: string;
  readonly log: Logger;
  /** Audit lines (default: `log`). */
  readonly audit?: Logger;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // Scripts only from this origin. asciinema-player sets inline style attributes and compiles its
  // terminal emulator from WebAssembly ('wasm-unsafe-eval' allows WebAssembly only, not eval).
  'content-security-policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
} as const;

/** Most events one /events response carries; the page asks again with `after`. */
export const MAX_EVENTS_PER_RESPONSE = 5_000;
/** Sessions whose verified chain prefix is kept for following them (least recently used dropped). */
const FOLLOWED_SESSIONS_KEPT = 256;

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(payload), ...SECURITY_HEADERS });
  response.end(payload);
}

function sendError(response: ServerResponse, error: UiError): void {
  sendJson(response, error.status, { error: { code: error.code, message: error.message }, ...(error.code === UiErrorCode.Unauthenticated ? { login: '/auth/login' } : {}) });
}

function redirect(response: ServerResponse, location: string, cookies: string[] = []): void {
  response.writeHead(302, { location, 'cache-control': 'no-store', ...(cookies.length > 0 ? { 'set-cookie': cookies } : {}), ...SECURITY_HEADERS });
  response.end();
}

/** Streams lines with back-pressure; a client that goes away stops the read. */
async function streamLines(response: ServerResponse, lines: AsyncIterable<string>): Promise<void> {
  for await (const line of lines) {
    if (response.destroyed) return;
    if (!response.write(`${line}\n`)) await new Promise<void>((resolve) => response.once('drain', resolve).once('close', resolve));
  }
  response.end();
}

/** Terminal data events carry the bulk of an SSH recording; the page gets those through the asciicast. */
const TERMINAL_DATA: ReadonlySet<string> = new Set([EventKind.TermStdin, EventKind.TermStdout, EventKind.TermStderr]);

export class UiServer {
  readonly #o: UiServerOptions;
  readonly #audit: Logger;
  /**
   * Per recording (store URL of its folder): the chunks this process has verified, in order from
   * chunk 0, with their digests and event counts, so a poll for events after N resumes at the
   * chunk holding event N + 1 instead of fetching and checking the session from its start again.
   */
  readonly #followed = new Map<string, VerifiedChunk[]>();
  #server: Server | undefined;

  constructor(options: UiServerOptions) {
    this.#o = options;
    this.#audit = options.audit ?? options.log;
  }

  /** Listens; resolves with the bound port. */
  async listen(port: number, host: string): Promise<number> {
    const server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => this.#fail(response, error));
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const address = server.address();
    return typeof address === 'object' && address !== null ? address.port : port;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #fail(response: ServerResponse, error: unknown): void {
    if (error instanceof RecorderError) error = new UiError(UiErrorCode.RecordingUnavailable, `${error.code}: ${error.message}`, { cause: error });
    if (!(error instanceof UiError)) {
      this.#o.log.error('request failed', { error: error as Error });
      error = new UiError(UiErrorCode.RecordingUnavailable, 'the viewer could not complete this request; see its log');
    }
    if (response.headersSent) {
      response.destroy();
      return;
    }
    sendError(response, error as UiError);
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://viewer');
    const path = url.pathname;
    if (path === '/healthz') return sendJson(response, 200, { ok: true });
    if (path === '/auth/login') {
      const { location, cookie } = await this.#o.auth.beginLogin(url.searchParams.get('returnTo'));
      return redirect(response, location, [cookie]);
    }
    if (path === '/auth/callback') {
      try {
        const { cookies, returnTo } = await this.#o.auth.finishLogin(request, url.searchParams);
        return redirect(response, returnTo, cookies);
      } catch (error) {
        if (!(error instanceof UiError)) throw error;
        response.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS });
        response.end(`Login failed: ${error.message}\n`);
        return;
      }
    }
    if (path === '/auth/logout') return redirect(response, '/', [this.#o.auth.logout(request)]);
    if (path === '/api' || path.startsWith('/api/')) {
      if (request.method !== 'GET' && request.method !== 'HEAD') throw new UiError(UiErrorCode.BadRequest, 'the viewer is read-only: only GET');
      const identity = await this.#o.auth.identify(request);
      if (!identity) throw new UiError(UiErrorCode.Unauthenticated, 'log in first (or send Authorization: Bearer <OIDC token>)');
      return await this.#api(path, url.searchParams, identity, request, response);
    }
    return this.#static(path, response);
  }

  async #grants(identity: Identity): Promise<Grants> {
    const { policies, connections } = await this.#o.kube.policiesAndConnections();
    return grantsFor(identity, policies, connections);
  }

  async #api(path: string, query: URLSearchParams, identity: Identity, request: IncomingMessage, response: ServerResponse): Promise<void> {
    const grants = await this.#grants(identity);
    if (path === '/api/me') {
      return sendJson(response, 200, { user: identity.user, groups: identity.groups, connections: [...grants.connections].sort() });
    }
    if (path === '/api/sessions') {
      const limitParam = Number(query.get('limit') ?? 50);
      const limit = Number.isSafeInteger(limitParam) && limitParam >= 1 ? Math.min(limitParam, 200) : 50;
      const continueToken = query.get('continue') ?? undefined;
      const result = await listSessions(this.#o.kube.fetchSessions, { filter: parseFilter(query), grants, limit, ...(continueToken ? { continueToken } : {}) });
      return sendJson(response, 200, result);
    }
    const match = /^\/api\/sessions\/([a-z0-9-]{1,63})\/([a-z0-9][-a-z0-9.]{0,252})(\/[a-z.]+)?$/.exec(path);
    if (!match) throw new UiError(UiErrorCode.NotFound, `no API ${path}`);
    const [, namespace = '', name = '', sub = ''] = match;
    const session = await this.#o.kube.getSession(namespace, name);
    if (!session) throw new UiError(UiErrorCode.NotFound, `no Session ${namespace}/${name}`);
    if (!mayView(grants, session)) {
      this.#audit.warn('recording access refused', { audit: true, user: identity.user, groups: identity.groups, session: `${namespace}/${name}`, what: sub || 'metadata', remote: request.socket.remoteAddress });
      throw new UiError(UiErrorCode.Forbidden, `you (${identity.user}) are not among the viewers of the RecordingPolicy that covers this session`);
    }
    if (sub === '') return sendJson(response, 200, { session: summarize(session) });
    const policy = grants.policyOf.get(connectionKey(namespace, session.spec.connection));
    if (!policy) throw new UiError(UiErrorCode.Forbidden, 'no RecordingPolicy covers this session');
    const recording = await this.#o.recordings.open(session, policy);
    const live = (session.status?.phase ?? 'Active') === 'Active';
    const audit = (what: string): void =>
      this.#audit.info('recording viewed', { audit: true, user: identity.user, groups: identity.groups, session: `${namespace}/${name}`, connection: session.spec.connection, sessionUser: session.spec.user, what, remote: request.socket.remoteAddress });
    switch (sub) {
      case '/verify': {
        audit('verify');
        const report = await verifySessionFolder(recording.store, recording.folder, { trustedKeys: recording.trustedKeys, decryptionKeys: recording.decryptionKeys, allowOpen: live });
        return sendJson(response, 200, { ...report, live });
      }
      case '/events':
        return await this.#events(session, recording, query, live, audit, response);
      case '/asciicast':
        audit(query.get('download') ? 'download-asciicast' : 'replay');
        return await this.#download(response, 'application/x-asciicast', query.get('download') ? `${name}.cast` : undefined, asciicastLines(this.#read(recording), { title: `${session.spec.user}@${session.spec.connection}` }));
      case '/export.jsonl':
        audit('download-jsonl');
        return await this.#download(response, 'application/x-ndjson', `${name}.jsonl`, exportLines(this.#read(recording), 'jsonl'));
      case '/statements.csv':
        audit('download-csv');
        return await this.#download(response, 'text/csv; charset=utf-8', `${name}-statements.csv`, statementsCsv(this.#read(recording)));
      default:
        throw new UiError(UiErrorCode.NotFound, `no API ${path}`);
    }
  }

  #read(recording: OpenRecording, follow: Pick<ReadSessionOptions, 'resume' | 'onChunk'> = {}): AsyncGenerator<RecordingEvent> {
    return readSessionEvents(recording.store, recording.folder, { trustedKeys: recording.trustedKeys, decryptionKeys: recording.decryptionKeys, ...follow });
  }

  async #download(response: ServerResponse, type: string, filename: string | undefined, lines: AsyncIterable<string>): Promise<void> {
    // Read the first line before the headers, so a recording that cannot be read is a clean error.
    const iterator = lines[Symbol.asyncIterator]();
    const first = await iterator.next();
    response.writeHead(200, {
      'content-type': type,
      'cache-control': 'no-store',
      ...(filename ? { 'content-disposition': `attachment; filename="${filename.replace(/[^A-Za-z0-9._-]/g, '_')}"` } : {}),
      ...SECURITY_HEADERS,
    });
    async function* rest(): AsyncGenerator<string> {
      if (!first.done) yield first.value;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    }
    await streamLines(response, rest());
  }

  /** Events from index `after` (for following a live session), at most MAX_EVENTS_PER_RESPONSE. */
  async #events(session: Session, recording: OpenRecording, query: URLSearchParams, live: boolean, audit: (what: string) => void, response: ServerResponse): Promise<void> {
    const afterParam = Number(query.get('after') ?? 0);
    const after = Number.isSafeInteger(afterParam) && afterParam >= 0 ? afterParam : 0;
    if (after === 0) audit('events');
    const omitTerminal = query.get('terminal') === '0';
    const events: Array<RecordingEvent & { n: number }> = [];
    const key = recording.store.url(recording.folder);
    const known = this.#followed.get(key) ?? [];
    this.#followed.delete(key); // the newest again (least recently used dropped first)
    remember(this.#followed, FOLLOWED_SESSIONS_KEPT, key, known);
    // Skip the verified chunks whose events all lie at or before `after`.
    let skip = 0;
    let n = 0;
    while (skip < known.length && n + known[skip]!.events <= after) n += known[skip++]!.events;
    const resume = skip === 0 ? undefined : { seq: skip, prev: known[skip - 1]!.digest };
    const onChunk = (chunk: VerifiedChunk): void => {
      if (chunk.seq === known.length) known.push(chunk);
    };
    let more = false;
    for await (const event of this.#read(recording, { ...(resume ? { resume } : {}), onChunk })) {
      n += 1;
      if (n <= after) continue;
      if (events.length >= MAX_EVENTS_PER_RESPONSE) {
        more = true;
        break;
      }
      if (omitTerminal && TERMINAL_DATA.has(event.k)) continue;
      events.push({ ...event, n });
    }
    sendJson(response, 200, { events, next: more ? n - 1 : n, more, live: live && session.status?.phase !== 'Closed' });
  }

  #static(path: string, response: ServerResponse): void {
    const root = resolve(this.#o.assetsDir);
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      throw new UiError(UiErrorCode.BadRequest, 'malformed URL');
    }
    let file = normalize(join(root, decoded));
    if (!file.startsWith(root + sep) && file !== root) file = join(root, 'index.html');
    let stat = statSafe(file);
    const isAsset = path.startsWith('/assets/');
    if (!stat?.isFile()) {
      if (isAsset) {
        sendJson(response, 404, { error: { code: UiErrorCode.NotFound, message: `no ${path}` } });
        return;
      }
      file = join(root, 'index.html');
      stat = statSafe(file);
      if (!stat?.isFile()) throw new UiError(UiErrorCode.AssetsMissing, `the front-end is not built (${file} is missing)`);
    }
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': stat.size,
      // Vite names assets by content hash: they never change; index.html always may.
      'cache-control': isAsset ? 'public, max-age=31536000, immutable' : 'no-cache',
      ...SECURITY_HEADERS,
    });
    createReadStream(file).pipe(response);
  }
}

function statSafe(file: string): Stats | undefined {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}
