// Kubernetes request attributes from an HTTP request line, I/O-free: a port of the apiserver's
// RequestInfoFactory (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go), so that what the
// gateway's policy sees is what the apiserver's own authorizer (RBAC) would see for the same request.
//
// One deliberate difference: the apiserver decodes the path before splitting it (Go's URL.Path), so
// `a%2Fb` there is two segments. Rather than guess which of several servers in front of the
// apiserver would decode what, paths that could be read two ways (encoded `/` or `\`, dot
// segments, `//`, malformed escapes, control characters) are refused; kubectl never sends them.

import type { KubernetesCommand } from '../../policy/command.ts';

/** Everything the apiserver derives from a request (RequestInfo), plus the exec argv. */
export interface RequestInfo {
  isResourceRequest: boolean;
  /** The decoded path, for non-resource requests the nonResourceURL. */
  path: string;
  verb: string;
  apiPrefix: string;
  apiGroup: string;
  apiVersion: string;
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
  /** The path segments from the resource on (resource/name/subresource/...). */
  parts: string[];
}

export const RequestInfoErrorCode = {
  /** The path could be read in more than one way (encoded slash, dot segment, …). */
  AmbiguousPath: 'WARDEN_K8S_AMBIGUOUS_PATH',
  /** `/apis/g/v/watch` or `/api/v1/proxy` with nothing after the special verb. */
  IncompletePath: 'WARDEN_K8S_INCOMPLETE_PATH',
} as const;
export type RequestInfoErrorCode = (typeof RequestInfoErrorCode)[keyof typeof RequestInfoErrorCode];

export class RequestInfoError extends Error {
  readonly code: RequestInfoErrorCode;
  constructor(code: RequestInfoErrorCode, message: string) {
    super(message);
    this.name = 'RequestInfoError';
    this.code = code;
  }
}

// The apiserver's defaults (server/config.go: APIPrefixes "api", "apis"; GrouplessAPIPrefixes "api").
const API_PREFIXES = new Set(['api', 'apis']);
const GROUPLESS_API_PREFIXES = new Set(['api']);
/** Verbs spelled in the path (legacy `/watch/...`, `/proxy/...`). */
const SPECIAL_VERBS = new Set(['proxy', 'watch']);
/** Special verbs whose trailing segments are not a subresource (the proxied path). */
const SPECIAL_VERBS_NO_SUBRESOURCES = new Set(['proxy']);
/** Subresources of a namespace itself: `/api/v1/namespaces/ns/status` is not a resource named status. */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);

const METHOD_VERBS: Record<string, string> = {
  POST: 'create',
  GET: 'get',
  HEAD: 'get',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/**
 * Parses a request as the apiserver would. `target` is the request-target of an origin-form
 * request line (`/api/v1/pods?watch=1`). Throws RequestInfoError for paths refused (see above).
 */
export function parseRequestInfo(method: string, target: string): RequestInfo {
  const queryStart = target.indexOf('?');
  const rawPath = queryStart === -1 ? target : target.slice(0, queryStart);
  const query = new URLSearchParams(queryStart === -1 ? '' : target.slice(queryStart + 1));
  const path = decodePath(rawPath);

  const info: RequestInfo = {
    isResourceRequest: false,
    path,
    verb: method.toLowerCase(),
    apiPrefix: '',
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
    parts: [],
  };

  let parts = splitPath(path);
  if (parts.length < 3) return info;
  if (!API_PREFIXES.has(parts[0] as string)) return info;
  const apiPrefix = parts[0] as string;
  parts = parts.slice(1);
  let apiGroup = '';
  if (!GROUPLESS_API_PREFIXES.has(apiPrefix)) {
    // One part (the prefix) is consumed already, so this asks for four parts in all.
    if (parts.length < 3) return info;
    apiGroup = parts[0] as string;
    parts = parts.slice(1);
  }
  info.apiPrefix = apiPrefix;
  info.apiGroup = apiGroup;
  info.isResourceRequest = true;
  info.apiVersion = parts[0] as string;
  parts = parts.slice(1);

  // `/{specialVerb}/*`
  if (SPECIAL_VERBS.has(parts[0] as string)) {
    if (parts.length < 2) {
      throw new RequestInfoError(
        RequestInfoErrorCode.IncompletePath,
        `unable to determine kind and namespace from the path ${truncate(rawPath)}`,
      );
    }
    info.verb = parts[0] as string;
    parts = parts.slice(1);
  } else {
    info.verb = METHOD_VERBS[method.toUpperCase()] ?? '';
  }

  // `/namespaces/{namespace}/{resource}/*`: parts become relative to the resource.
  if (parts[0] === 'namespaces') {
    if (parts.length > 1) {
      info.namespace = parts[1] as string;
      if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2] as string)) parts = parts.slice(2);
    }
  }
  info.parts = parts;

  // resource/name/subresource/other/stuff/not/interpreted
  if (parts.length >= 3 && !SPECIAL_VERBS_NO_SUBRESOURCES.has(info.verb)) info.subresource = parts[2] as string;
  if (parts.length >= 2) info.name = parts[1] as string;
  if (parts.length >= 1) info.resource = parts[0] as string;

  // No name and a get: a list or a watch (the query decides), maybe of one object by field selector.
  if (info.name === '' && info.verb === 'get') {
    const options = listOptions(query);
    info.verb = options.watch ? 'watch' : 'list';
    if (options.fieldName !== undefined && isValidPathSegmentName(options.fieldName)) info.name = options.fieldName;
  }
  // No name and a delete: deletecollection.
  if (info.name === '' && info.verb === 'delete') info.verb = 'deletecollection';
  return info;
}

/** The policy engine's view of a request; `execCommand` from the `command` parameters of exec. */
export function toKubernetesCommand(info: RequestInfo, target: string): KubernetesCommand {
  if (!info.isResourceRequest) {
    return { protocol: 'kubernetes', verb: info.verb, apiGroup: '', resource: '', nonResourceURL: info.path };
  }
  const command: KubernetesCommand = {
    protocol: 'kubernetes',
    verb: info.verb,
    apiGroup: info.apiGroup,
    resource: info.resource,
  };
  if (info.subresource !== '') command.subresource = info.subresource;
  if (info.namespace !== '') command.namespace = info.namespace;
  if (info.name !== '') command.name = info.name;
  if (info.apiGroup === '' && info.resource === 'pods' && (info.subresource === 'exec' || info.subresource === 'attach')) {
    const queryStart = target.indexOf('?');
    const query = new URLSearchParams(queryStart === -1 ? '' : target.slice(queryStart + 1));
    if (info.subresource === 'exec') command.execCommand = query.getAll('command');
  }
  return command;
}

/** `parseRequestInfo` + `toKubernetesCommand`. */
export function kubernetesCommand(method: string, target: string): { info: RequestInfo; command: KubernetesCommand } {
  const info = parseRequestInfo(method, target);
  return { info, command: toKubernetesCommand(info, target) };
}

/** strings.Split(strings.Trim(path, "/"), "/"), with "" for the empty path. */
function splitPath(path: string): string[] {
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? [] : trimmed.split('/');
}

function decodePath(raw: string): string {
  const ambiguous = (why: string): never => {
    throw new RequestInfoError(RequestInfoErrorCode.AmbiguousPath, `the path ${truncate(raw)} ${why}; send a plain path`);
  };
  if (!raw.startsWith('/')) ambiguous('does not start with /');
  let decoded = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i] as string;
    const code = ch.charCodeAt(0);
    if (code < 0x21 || code === 0x7f) ambiguous('has a control character or space');
    if (ch === '\\') ambiguous('has a backslash');
    if (ch === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) ambiguous('has a malformed percent escape');
      const byte = Number.parseInt(hex, 16);
      if (byte === 0x2f || byte === 0x5c) ambiguous('has an encoded slash or backslash');
      if (byte < 0x21 || byte === 0x7f) ambiguous('has an encoded control character');
      decoded += `%${hex}`;
      i += 2;
      continue;
    }
    decoded += ch;
  }
  let text: string;
  try {
    text = decodeURIComponent(decoded);
  } catch {
    return ambiguous('has escapes that are not UTF-8');
  }
  const segments = text.split('/').slice(1);
  for (const [index, segment] of segments.entries()) {
    if (segment === '.' || segment === '..') ambiguous('has a dot segment');
    if (segment === '' && index < segments.length - 1) ambiguous('has an empty segment (//)');
  }
  return text;
}

/**
 * The parts of metav1 ListOptions the verb depends on: `watch` (strconv.ParseBool; on a value it
 * cannot parse the apiserver falls back to "anything but false/0 is a watch") and an exact
 * `metadata.name` field selector.
 */
function listOptions(query: URLSearchParams): { watch: boolean; fieldName?: string } {
  const watchValues = query.getAll('watch');
  let watch = false;
  let valid = true;
  if (watchValues.length > 0) {
    const parsed = parseGoBool(watchValues[0] as string);
    if (parsed === undefined) valid = false;
    else watch = parsed;
  }
  let fieldName: string | undefined;
  const selector = query.get('fieldSelector');
  if (selector !== null && valid) {
    const name = exactNameFromFieldSelector(selector);
    if (name === null) valid = false;
    else if (name !== undefined) fieldName = name;
  }
  if (!valid) {
    // DecodeParameters failed: the apiserver resets the options and keeps only the watch flag.
    const first = (watchValues[0] ?? '').toLowerCase();
    return { watch: watchValues.length > 0 && first !== 'false' && first !== '0' };
  }
  return fieldName === undefined ? { watch } : { watch, fieldName };
}

function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/**
 * fields.ParseSelector + RequiresExactMatch("metadata.name"), for the selectors clients send:
 * comma-separated `key=value`, `key==value`, `key!=value`. null: the selector does not parse;
 * undefined: no exact match on metadata.name. Backslash escapes are taken as not parsing (the name
 * is then unknown, which only ever makes a name-scoped rule not match).
 */
function exactNameFromFieldSelector(selector: string): string | null | undefined {
  if (selector === '') return undefined;
  if (selector.includes('\\')) return null;
  let name: string | undefined;
  for (const term of selector.split(',')) {
    const match = /^([^=!]+)(==|=|!=)(.*)$/.exec(term);
    if (!match) return null;
    const [, key, op, value] = match as unknown as [string, string, string, string];
    if (key.trim() === 'metadata.name' && op !== '!=') name = value;
  }
  return name;
}

/** path.IsValidPathSegmentName: not `.` or `..`, no `/` or `%`. */
function isValidPathSegmentName(name: string): boolean {
  return name !== '.' && name !== '..' && !name.includes('/') && !name.includes('%');
}

function truncate(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
