// Header hygiene, I/O-free: what a request must look like to be taken at all (framing), what goes
// upstream (hop-by-hop headers and the caller's token removed, the target's credentials and
// X-Forwarded-* set), what comes back, and what a recording may keep.

import type { HttpFlavour, UpstreamCredentials } from './config.ts';

/** RFC 9110 §7.6.1 hop-by-hop fields, plus the non-standard ones proxies have seen in the wild. */
export const HOP_BY_HOP_HEADERS = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
] as const;

const HOP_BY_HOP = new Set<string>(HOP_BY_HOP_HEADERS);

/** Never forwarded upstream: the caller's credentials and forwarding claims the caller could forge. */
const CLIENT_ONLY_HEADERS = new Set(['authorization', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-forwarded-port', 'x-real-ip', 'expect', 'host']);

/** Stored as `[redacted]` in recordings. */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']);

export type HeaderMap = Record<string, string | string[]>;

export const FramingProblem = {
  ContentLengthAndTransferEncoding: 'both Content-Length and Transfer-Encoding',
  DuplicateContentLength: 'more than one Content-Length',
  InvalidContentLength: 'an invalid Content-Length',
  DuplicateTransferEncoding: 'more than one Transfer-Encoding',
  UnsupportedTransferEncoding: 'a Transfer-Encoding other than chunked',
  DuplicateHost: 'more than one Host',
} as const;
export type FramingProblem = (typeof FramingProblem)[keyof typeof FramingProblem];

/**
 * Request smuggling defence (RFC 9112 §6.1, §6.3): a request whose body length two servers could
 * read differently is refused, even where Node's parser would pick one reading. `rawHeaders` is
 * Node's flat [name, value, name, value…] list, which keeps duplicates.
 */
export function framingProblem(rawHeaders: readonly string[]): FramingProblem | undefined {
  let contentLengths = 0;
  let transferEncodings = 0;
  let hosts = 0;
  let contentLength = '';
  let transferEncoding = '';
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    const value = rawHeaders[i + 1] as string;
    if (name === 'content-length') {
      contentLengths++;
      contentLength = value;
    } else if (name === 'transfer-encoding') {
      transferEncodings++;
      transferEncoding = value;
    } else if (name === 'host') hosts++;
  }
  if (contentLengths > 0 && transferEncodings > 0) return FramingProblem.ContentLengthAndTransferEncoding;
  if (contentLengths > 1) return FramingProblem.DuplicateContentLength;
  if (contentLengths === 1 && !/^\d{1,15}$/.test(contentLength.trim())) return FramingProblem.InvalidContentLength;
  if (transferEncodings > 1) return FramingProblem.DuplicateTransferEncoding;
  if (transferEncodings === 1 && transferEncoding.trim().toLowerCase() !== 'chunked') return FramingProblem.UnsupportedTransferEncoding;
  if (hosts > 1) return FramingProblem.DuplicateHost;
  return undefined;
}

/** The token of `Authorization: Bearer <token>` (RFC 6750 §2.1); undefined when absent or another scheme. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorization);
  return match?.[1];
}

const NONE: ReadonlySet<string> = new Set();

/** Names listed in Connection (RFC 9110 §7.6.1), lower-cased. */
function connectionListed(headers: HeaderMap): ReadonlySet<string> {
  const value = headers.connection;
  if (value === undefined) return NONE;
  const listed = new Set<string>();
  for (const v of Array.isArray(value) ? value : [value]) {
    for (const name of v.split(',')) {
      const trimmed = name.trim().toLowerCase();
      if (trimmed !== '') listed.add(trimmed);
    }
  }
  return listed;
}

/** The headers without hop-by-hop ones (and without those in `drop`), names lower-cased. */
function withoutHopByHop(headers: HeaderMap, drop: ReadonlySet<string> = NONE): HeaderMap {
  const listed = connectionListed(headers);
  const out: HeaderMap = {};
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed.has(lower) || drop.has(lower)) continue;
    out[lower] = headers[name] as string | string[];
  }
  return out;
}

/** Kubernetes headers that change who the apiserver thinks is calling; refused from clients. */
export function impersonationHeader(headers: HeaderMap): string | undefined {
  return Object.keys(headers).find((name) => /^(impersonate-|x-remote-)/i.test(name));
}

export interface UpstreamRequestContext {
  flavour: HttpFlavour;
  /** `host[:port]` of the target, for Host. */
  upstreamHost: string;
  credentials: UpstreamCredentials;
  clientAddress: string;
  /** The Host the client asked for. */
  clientHost: string | undefined;
  secure: boolean;
  /** Masking applies: ask for an identity encoding (and JSON from an apiserver) so bodies can be read. */
  needsReadableBody: boolean;
  /** The client sent a WebSocket (or other) upgrade that the gateway relays. */
  upgrade?: string;
  /** Kubernetes impersonation of the caller (client-sent Impersonate-* headers are refused earlier). */
  impersonate?: { user: string; groups: string[] };
}

/** The headers sent upstream. */
export function upstreamRequestHeaders(client: HeaderMap, context: UpstreamRequestContext): HeaderMap {
  const out = withoutHopByHop(client, CLIENT_ONLY_HEADERS);
  out.host = context.upstreamHost;
  out['x-forwarded-for'] = context.clientAddress;
  out['x-forwarded-proto'] = context.secure ? 'https' : 'http';
  if (context.clientHost !== undefined) out['x-forwarded-host'] = context.clientHost;
  if (context.needsReadableBody) {
    out['accept-encoding'] = 'identity';
    if (context.flavour === 'kubernetes' && typeof out.accept === 'string' && /protobuf|cbor/i.test(out.accept)) {
      out.accept = 'application/json';
    }
  }
  if (context.upgrade !== undefined) {
    out.connection = 'Upgrade';
    out.upgrade = context.upgrade;
  }
  const credentials = context.credentials;
  switch (credentials.kind) {
    case 'bearer':
      out.authorization = `Bearer ${credentials.token}`;
      break;
    case 'basic':
      out.authorization = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
      break;
    case 'headers':
      for (const [name, value] of Object.entries(credentials.headers)) out[name.toLowerCase()] = value;
      break;
    case 'none':
      break;
  }
  if (context.impersonate !== undefined) {
    out['impersonate-user'] = context.impersonate.user;
    if (context.impersonate.groups.length > 0) out['impersonate-group'] = [...context.impersonate.groups];
  }
  return out;
}

/** The headers sent back to the client: hop-by-hop ones removed. */
export function clientResponseHeaders(upstream: HeaderMap): HeaderMap {
  return withoutHopByHop(upstream);
}

/** Headers for the recording: secrets (and the credential header names) as `[redacted]`. */
export function recordedHeaders(headers: HeaderMap, credentials?: UpstreamCredentials): HeaderMap {
  const injected = credentials?.kind === 'headers' ? new Set(Object.keys(credentials.headers).map((n) => n.toLowerCase())) : NONE;
  const out: HeaderMap = {};
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase();
    out[lower] = SECRET_HEADERS.has(lower) || injected.has(lower) ? '[redacted]' : (headers[name] as string | string[]);
  }
  return out;
}

/** `application/json`, `application/*+json` (incl. merge-patch), ignoring parameters. */
export function isJsonType(contentType: string | undefined): boolean {
  const type = mediaType(contentType);
  return type === 'application/json' || /^application\/[a-z0-9.+-]*\+json$/.test(type);
}

/** Newline-delimited JSON: Kubernetes watch streams and JSON lines. */
export function isJsonStreamType(contentType: string | undefined): boolean {
  const type = mediaType(contentType);
  if (type === 'application/x-ndjson' || type === 'application/jsonl' || type === 'application/json-seq') return true;
  return type === 'application/json' && /;\s*stream=watch/i.test(contentType ?? '');
}

export function isTextType(contentType: string | undefined): boolean {
  const type = mediaType(contentType);
  return type.startsWith('text/') || type === 'application/xml' || type === 'application/yaml' || type.endsWith('+xml');
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}
