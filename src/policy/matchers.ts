// Protocol matchers of AccessPolicy rules, compiled once into functions. A matcher returns a short
// description of why the command matched (it becomes part of the decision's reason) or undefined.
// Semantics follow the field descriptions in crds/warden.dev_accesspolicies.yaml; where those leave
// a choice, the choice is written next to the code and in src/policy/README.md.
import type {
  HttpMatcher,
  KubernetesMatcher,
  PortForwardDestination,
  RuleEffect,
  SqlMatcher,
  SshMatcher,
} from '../api/types.ts';
import type { Command, HttpCommand, KubernetesCommand, SqlCommand, SshCommand } from './command.ts';
import { PolicyErrorCode, type PolicyProblem } from './errors.ts';
import { compileGlob, compileHostGlob, compilePathGlob, type GlobMatcher } from './glob.ts';
import { compileUserPattern, PatternError, type SafePattern } from './patterns.ts';

/** Why the command matched, as a phrase ("statement class write, tables public.orders"), or undefined. */
export type CommandMatcher = (command: Command) => string | undefined;

/** A problem without the policy/rule it belongs to; the caller adds those. */
export type MatcherProblem = Omit<PolicyProblem, 'policy' | 'rule'>;
type Report = (problem: MatcherProblem) => void;

/** The schema name PostgreSQL resolves unqualified names to with the default search_path. */
export const DEFAULT_SQL_SCHEMA = 'public';

const list = (items: readonly string[]): string => items.join(', ');

// ---------------------------------------------------------------------------------------------
// SQL

interface TablePattern {
  source: string;
  schema: GlobMatcher | undefined;
  table: GlobMatcher;
}

/** A table as the gateway names it: `table`, `schema.table` or `catalog.schema.table`. */
function splitTable(name: string): { schema: string | undefined; table: string } {
  const parts = name.split('.');
  const table = parts[parts.length - 1] ?? '';
  return { schema: parts.length >= 2 ? parts[parts.length - 2] : undefined, table };
}

/**
 * Table patterns are globs per part, compared case-insensitively (PostgreSQL folds unquoted
 * identifiers to lower case; a quoted mixed-case name matches its lower-case pattern too, which
 * errs towards matching). A one-part pattern matches that table in any schema.
 *
 * Unqualified tables in a statement: an Allow rule takes them to be in `public` (the default
 * search_path; the gateway cannot know a changed one, so deny `SET search_path` where it
 * matters); Deny and RequireApproval rules match them against the table part alone, because the
 * statement may mean any schema.
 */
function compileTablePattern(source: string, report: Report): TablePattern | undefined {
  const parts = source.split('.');
  if (parts.length > 2 || parts.some((p) => p.length === 0)) {
    report({
      code: PolicyErrorCode.InvalidGlob,
      pattern: source,
      message: `table pattern ${JSON.stringify(source)} must be "table" or "schema.table"`,
    });
    return undefined;
  }
  const glob = (part: string): GlobMatcher => compileGlob(part, { caseInsensitive: true });
  return parts.length === 2
    ? { source, schema: glob(parts[0] as string), table: glob(parts[1] as string) }
    : { source, schema: undefined, table: glob(parts[0] as string) };
}

function tableMatches(pattern: TablePattern, name: string, effect: RuleEffect): boolean {
  const { schema, table } = splitTable(name);
  if (!pattern.table(table)) return false;
  if (pattern.schema === undefined) return true;
  if (schema !== undefined) return pattern.schema(schema);
  return effect === 'Allow' ? pattern.schema(DEFAULT_SQL_SCHEMA) : true;
}

export function compileSqlMatcher(matcher: SqlMatcher, effect: RuleEffect, report: Report): CommandMatcher {
  const classes = matcher.statementClasses === undefined ? undefined : new Set<string>(matcher.statementClasses);
  const tables = matcher.tables?.map((t) => compileTablePattern(t, report));
  const patterns = tables?.filter((t): t is TablePattern => t !== undefined);
  return (command) => {
    if (command.protocol !== 'postgres') return undefined;
    const facts: string[] = [];
    if (classes !== undefined) {
      if (!classes.has(command.statementClass)) return undefined;
      facts.push(`statement class ${command.statementClass}`);
    }
    if (patterns !== undefined) {
      // With tables set, a statement that names no table does not match (for Allow that would be
      // vacuously true and allow `SELECT pg_read_file(...)`).
      if (command.tables.length === 0) return undefined;
      const matching = command.tables.filter((t) => patterns.some((p) => tableMatches(p, t, effect)));
      if (effect === 'Allow' ? matching.length !== command.tables.length : matching.length === 0) return undefined;
      facts.push(`${matching.length === 1 ? 'table' : 'tables'} ${list(matching)}`);
    }
    return facts.length === 0 ? 'any statement' : list(facts);
  };
}

/** Describes a SQL command without its text (which may carry secrets such as passwords). */
function describeSql(command: SqlCommand): string {
  const tables = command.tables.length > 0 ? ` on ${list(command.tables.slice(0, 8))}${command.tables.length > 8 ? ', …' : ''}` : '';
  return `${command.statementClass} statement${tables}`;
}

// ---------------------------------------------------------------------------------------------
// SSH

const SFTP_READ_OPERATIONS = new Set(['read']);

/**
 * The matcher matches a request of any kind it lists. An empty matcher (no shell, exec or
 * portForwarding field, sftp absent or "none" as the API server defaults it) matches every request.
 * `shell: true` also matches command lines typed in a shell (they are part of the shell it
 * allows); exec patterns match exec requests and typed command lines. Deny and RequireApproval
 * rules also try their exec patterns on every line of a multi-line command.
 */
export function compileSshMatcher(matcher: SshMatcher, effect: RuleEffect, report: Report): CommandMatcher {
  const empty =
    matcher.shell === undefined &&
    matcher.exec === undefined &&
    matcher.portForwarding === undefined &&
    (matcher.sftp === undefined || matcher.sftp === 'none');
  if (empty) return (command) => (command.protocol === 'ssh' ? 'any SSH request' : undefined);
  const exec: SafePattern[] = [];
  for (const source of matcher.exec ?? []) {
    const compiled = compileAnchored(source, report);
    if (compiled !== undefined) exec.push(compiled);
  }
  const forwards = (matcher.portForwarding ?? []).map((d) => compileForward(d));
  const sftp = matcher.sftp ?? 'none';
  const eachLine = effect !== 'Allow';
  return (command) => {
    if (command.protocol !== 'ssh') return undefined;
    switch (command.kind) {
      case 'shell':
        return matcher.shell === true ? 'shell' : undefined;
      case 'exec':
      case 'typed': {
        const hit = exec.find((p) => p.test(command.command) || (eachLine && command.command.split(/\r?\n/).some((line) => p.test(line))));
        if (hit !== undefined) return `${command.kind === 'exec' ? 'exec command' : 'typed command'} matching ${JSON.stringify(hit.source)}`;
        return command.kind === 'typed' && matcher.shell === true ? 'command typed in a shell' : undefined;
      }
      case 'sftp':
        if (sftp === 'read-write' || (sftp === 'read-only' && SFTP_READ_OPERATIONS.has(command.operation))) return `sftp ${sftp}`;
        return undefined;
      case 'forward': {
        if (command.direction !== 'local') return undefined;
        const hit = forwards.find((f) => f.matches(command.host, command.port));
        return hit === undefined ? undefined : `port forwarding to ${hit.source}`;
      }
    }
  };
}

function compileAnchored(source: string, report: Report): SafePattern | undefined {
  try {
    // Compile the pattern alone first: a pattern such as `a)|(b` would otherwise escape the
    // anchoring group and match unanchored.
    compileUserPattern(source);
    const anchored = compileUserPattern(`^(?:${source})$`);
    return { source, test: (input) => anchored.test(input), matches: (input) => anchored.matches(input) };
  } catch (error) {
    report({
      code: PolicyErrorCode.InvalidPattern,
      pattern: source,
      message: error instanceof PatternError ? error.message : `pattern ${JSON.stringify(source)} did not compile`,
    });
    return undefined;
  }
}

function compileForward(destination: PortForwardDestination): { source: string; matches: (host: string, port: number) => boolean } {
  const host = compileHostGlob(destination.host);
  const source = destination.port === undefined ? `${destination.host}:*` : `${destination.host}:${destination.port}`;
  return { source, matches: (h, p) => host(h) && (destination.port === undefined || destination.port === p) };
}

function describeSsh(command: SshCommand): string {
  switch (command.kind) {
    case 'shell':
      return 'an interactive shell';
    case 'exec':
      return `exec of ${firstWord(command.command)}`;
    case 'typed':
      return `typed command ${firstWord(command.command)}`;
    case 'sftp':
      return `sftp ${command.operation} of ${truncate(command.path, 200)}`;
    case 'forward':
      return `${command.direction} port forwarding to ${truncate(command.host, 253)}:${command.port}`;
  }
}

// Only the program name: arguments may carry secrets (`mysql -pS3cret`).
function firstWord(commandLine: string): string {
  const word = commandLine.trim().split(/\s/, 1)[0] ?? '';
  return `"${truncate(word, 64)} …"`;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/**
 * RBAC-shaped: every field that is set must match, an omitted one matches anything.
 * - resources: "*" any resource and subresource, "pods" only pods (not pods/exec), "pods/exec"
 *   the subresource, "*\/scale" that subresource of any resource (k8s.io/kubernetes
 *   pkg/apis/rbac/v1 ResourceMatches).
 * - namespaces: "" cluster-scoped requests, "*" any namespaced request.
 * - names: requests without a name (list, create) do not match a rule with names.
 * - nonResourceURLs: exact, or a prefix when ending in "*". A rule with nonResourceURLs matches only
 *   non-resource requests; a rule with resource fields (apiGroups, resources, namespaces, names)
 *   matches only resource requests; a rule with neither (only verbs, or empty) matches both.
 */
export function compileKubernetesMatcher(matcher: KubernetesMatcher): CommandMatcher {
  const has = (values: readonly string[] | undefined, value: string): boolean =>
    values === undefined || values.includes('*') || values.includes(value);
  const resourceFields =
    matcher.apiGroups !== undefined || matcher.resources !== undefined || matcher.namespaces !== undefined || matcher.names !== undefined;
  return (command) => {
    if (command.protocol !== 'kubernetes') return undefined;
    if (!has(matcher.verbs, command.verb)) return undefined;
    const verb = matcher.verbs === undefined ? '' : `verb ${command.verb}`;
    if (command.nonResourceURL !== undefined) {
      if (matcher.nonResourceURLs === undefined) return resourceFields ? undefined : joinFacts([verb, 'any non-resource URL']);
      const url = command.nonResourceURL;
      const hit = matcher.nonResourceURLs.find((u) => u === url || (u.endsWith('*') && url.startsWith(u.slice(0, -1))));
      return hit === undefined ? undefined : joinFacts([verb, `URL ${hit}`]);
    }
    if (matcher.nonResourceURLs !== undefined) return undefined;
    if (!has(matcher.apiGroups, command.apiGroup)) return undefined;
    if (matcher.resources !== undefined && !resourceMatches(matcher.resources, command)) return undefined;
    if (matcher.namespaces !== undefined && !namespaceMatches(matcher.namespaces, command.namespace)) return undefined;
    if (matcher.names !== undefined && (command.name === undefined || !matcher.names.includes(command.name))) return undefined;
    return joinFacts([
      verb,
      matcher.resources === undefined ? '' : `resource ${resourceOf(command)}`,
      matcher.namespaces === undefined ? '' : command.namespace ? `namespace ${command.namespace}` : 'cluster scope',
      matcher.names === undefined ? '' : `name ${command.name ?? ''}`,
    ]) || 'any request';
  };
}

function resourceOf(command: KubernetesCommand): string {
  return command.subresource ? `${command.resource}/${command.subresource}` : command.resource;
}

function resourceMatches(resources: readonly string[], command: KubernetesCommand): boolean {
  const combined = resourceOf(command);
  return resources.some(
    (r) => r === '*' || r === combined || (command.subresource !== undefined && command.subresource !== '' && r === `*/${command.subresource}`),
  );
}

function namespaceMatches(namespaces: readonly string[], namespace: string | undefined): boolean {
  if (namespace === undefined || namespace === '') return namespaces.includes('');
  return namespaces.includes('*') || namespaces.includes(namespace);
}

function joinFacts(facts: string[]): string {
  return facts.filter((f) => f.length > 0).join(', ');
}

function describeKubernetes(command: KubernetesCommand): string {
  if (command.nonResourceURL !== undefined) return `${command.verb} ${truncate(command.nonResourceURL, 200)}`;
  const group = command.apiGroup === '' ? '' : `.${command.apiGroup}`;
  const name = command.name === undefined ? '' : ` ${command.name}`;
  const where = command.namespace ? ` in namespace ${command.namespace}` : '';
  return `${command.verb} ${resourceOf(command)}${group}${name}${where}`;
}

// Requests that kubectl makes before anything else; the CRD promises them to every subject.
const DISCOVERY = [/^\/(api|apis|version)\/?$/, /^\/api\/v[0-9a-z]+\/?$/, /^\/apis\/[a-z0-9.-]+(\/[a-z0-9]+)?\/?$/, /^\/openapi\/v[23](\/[A-Za-z0-9._/-]*)?$/];

/** GET of an API discovery document (/api, /apis/<group>/<version>, /version, /openapi/...). */
export function isDiscoveryRequest(command: KubernetesCommand): boolean {
  const url = command.nonResourceURL;
  return command.verb === 'get' && url !== undefined && url.length <= 512 && DISCOVERY.some((re) => re.test(url));
}

// ---------------------------------------------------------------------------------------------
// HTTP

/**
 * Every field that is set must match. Paths are matched after `normalizeHttpPath` (the engine
 * denies paths that do not normalise); hosts without a port in the pattern are compared with the
 * port of the request's Host stripped.
 */
export function compileHttpMatcher(matcher: HttpMatcher): CommandMatcher {
  const methods = matcher.methods === undefined ? undefined : new Set<string>(matcher.methods);
  const paths = matcher.paths?.map((p) => ({ source: p, match: compilePathGlob(p) }));
  const hosts = matcher.hosts?.map((h) => ({ source: h, withPort: h.includes(':'), match: compileHostGlob(h) }));
  return (command) => {
    if (command.protocol !== 'http') return undefined;
    const facts: string[] = [];
    const method = command.method.toUpperCase();
    if (methods !== undefined) {
      if (!methods.has(method)) return undefined;
      facts.push(`method ${method}`);
    }
    if (paths !== undefined) {
      const hit = paths.find((p) => p.match(command.path));
      if (hit === undefined) return undefined;
      facts.push(`path ${hit.source}`);
    }
    if (hosts !== undefined) {
      const bare = stripPort(command.host);
      const hit = hosts.find((h) => h.match(h.withPort ? command.host : bare));
      if (hit === undefined) return undefined;
      facts.push(`host ${hit.source}`);
    }
    return facts.length === 0 ? 'any request' : list(facts);
  };
}

function stripPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

const UNRESERVED = /^[A-Za-z0-9._~-]$/;

/** Why a request path cannot be matched safely, or the path in normal form. */
export type NormalizedPath = { ok: true; path: string } | { ok: false; reason: string };

/**
 * Puts a request path in the form the path globs are matched against: the query and fragment
 * dropped, percent-encoded unreserved characters decoded and other escapes upper-cased
 * (RFC 3986 §6.2.2). Paths a server might resolve to something other than what a glob sees are
 * refused rather than guessed at: dot segments (also encoded), empty segments (`//`), encoded
 * slashes or backslashes, backslashes, control characters.
 */
export function normalizeHttpPath(raw: string): NormalizedPath {
  let path = raw;
  const cut = path.search(/[?#]/);
  if (cut !== -1) path = path.slice(0, cut);
  if (!path.startsWith('/')) return { ok: false, reason: 'the path does not start with /' };
  if (path.length > 8192) return { ok: false, reason: 'the path is longer than 8192 characters' };
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i] as string;
    if (ch === '%') {
      const hex = path.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { ok: false, reason: 'the path has a malformed percent escape' };
      const decoded = String.fromCharCode(Number.parseInt(hex, 16));
      if (decoded === '/' || decoded === '\\') return { ok: false, reason: 'the path has an encoded slash or backslash' };
      out += UNRESERVED.test(decoded) ? decoded : `%${hex.toUpperCase()}`;
      i += 2;
      continue;
    }
    if (ch === '\\') return { ok: false, reason: 'the path has a backslash' };
    if (ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f) return { ok: false, reason: 'the path has a control character' };
    out += ch;
  }
  const segments = out.split('/').slice(1);
  for (const [index, segment] of segments.entries()) {
    if (segment === '.' || segment === '..') return { ok: false, reason: 'the path has a dot segment' };
    if (segment === '' && index < segments.length - 1) return { ok: false, reason: 'the path has an empty segment (//)' };
  }
  return { ok: true, path: out };
}

function describeHttp(command: HttpCommand): string {
  return `${command.method.toUpperCase()} ${truncate(command.host, 253)}${truncate(command.path.split('?')[0] ?? '', 200)}`;
}

// ---------------------------------------------------------------------------------------------

/** A short, secret-free description of a command for reasons and recordings. */
export function describeCommand(command: Command): string {
  switch (command.protocol) {
    case 'postgres':
      return describeSql(command);
    case 'ssh':
      return describeSsh(command);
    case 'kubernetes':
      return describeKubernetes(command);
    case 'http':
      return describeHttp(command);
  }
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
