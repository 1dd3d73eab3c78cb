// Reading the manifests `warden dev -f` is given: files and directories of multi-document YAML
// (or JSON), the same Connection / AccessPolicy / RecordingPolicy / Secret objects a cluster gets.
//
// - Invalid YAML, an unknown kind, or a document the CRD schema rejects is a DevError naming
//   file:line (fatal: nothing runs on a half-read configuration).
// - `${NAME}` and `${NAME:-default}` in string values are replaced from the environment (and
//   the values --postgres-url sets); `$${` is a literal `${`. A value that is exactly one reference
//   takes the type of its expansion outside Secrets ("5432" → 5432, "true" → true), so ports and
//   flags can come from variables too. A Connection or Secret with an unset variable is not fatal:
//   it is set aside with the reason, and the Connections that need it are reported and skipped.

import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { type Document, isMap, isNode, isScalar, isSeq, LineCounter, parseAllDocuments, visit } from 'yaml';
import { type AccessPolicy, API_VERSION, type Connection, type RecordingPolicy } from '../api/types.ts';
import { DevError, DevErrorCode } from './errors.ts';
import { crdSchemas, formatPath, validateAgainstSchema } from './schema.ts';

export const DEFAULT_NAMESPACE = 'default';

export interface SecretManifest {
  namespace: string;
  name: string;
  /** Decoded values by key (stringData wins over data, as in the API server). */
  data: Map<string, Buffer>;
  source: string;
}

/** A Connection or Secret set aside because a `${VAR}` had no value. */
export interface UnavailableDocument {
  kind: 'Connection' | 'Secret';
  namespace: string;
  name: string;
  reason: string;
}

export interface Located<T> {
  object: T;
  /** `file:line` of the document. */
  source: string;
}

export interface LoadedManifests {
  connections: Located<Connection>[];
  accessPolicies: Located<AccessPolicy>[];
  recordingPolicies: Located<RecordingPolicy>[];
  secrets: SecretManifest[];
  unavailable: UnavailableDocument[];
  /** Files read, in order. */
  files: string[];
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
const WARDEN_KINDS = ['Connection', 'AccessPolicy', 'RecordingPolicy'] as const;
const SYSTEM_KINDS = new Set(['Session', 'AccessRequest']);

/** The files under each path: a file as given, a directory's manifests (not recursive, sorted). */
export async function manifestFiles(paths: readonly string[], cwd: string = process.cwd()): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    const abs = join(path.startsWith('/') ? '' : cwd, path);
    let info;
    try {
      info = await stat(abs);
    } catch {
      throw new DevError(DevErrorCode.NoManifests, `${path}: no such file or directory; give -f a manifest file or a directory of them (e.g. -f config/samples/local/)`);
    }
    if (info.isDirectory()) {
      const names = (await readdir(abs)).filter((n) => MANIFEST_EXTENSIONS.has(extname(n).toLowerCase()) && !n.startsWith('.')).sort();
      if (names.length === 0) throw new DevError(DevErrorCode.NoManifests, `${path}: the directory has no .yaml, .yml or .json files`);
      files.push(...names.map((n) => join(abs, n)));
    } else files.push(abs);
  }
  return files;
}

type Vars = Readonly<Record<string, string | undefined>>;

class UnsetVariable extends Error {
  readonly variable: string;
  constructor(variable: string) {
    super(variable);
    this.variable = variable;
  }
}

const REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Expands `${NAME}` / `${NAME:-default}` / `$${`; throws UnsetVariable for an unset one without default. */
export function expandString(text: string, vars: Vars): string {
  return text.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === '$${') return '${';
    const value = vars[name as string];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    throw new UnsetVariable(name as string);
  });
}

function whole(text: string): boolean {
  return /^\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$/.test(text.trim());
}

function display(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel.startsWith('..') ? file : rel;
}

interface RawDocument {
  value: Record<string, unknown>;
  line: number;
  /** Line of the value at a path, for messages. */
  lineOf(path: readonly (string | number)[]): number;
  unset?: { variable: string; line: number };
}

/** Parses one file into documents, expanding variables; YAML errors are fatal. */
function parseFile(text: string, file: string, vars: Vars, cwd: string): RawDocument[] {
  const counter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: counter, uniqueKeys: true });
  const where = display(file, cwd);
  if (!Array.isArray(docs)) return [];
  const out: RawDocument[] = [];
  for (const doc of docs as Document.Parsed[]) {
    const error = doc.errors[0];
    if (error) {
      const line = error.linePos?.[0]?.line ?? 1;
      const what = error.message.split(/ at line \d+/)[0]?.split('\n')[0] ?? error.message;
      throw new DevError(DevErrorCode.YamlInvalid, `${where}:${line}: invalid YAML: ${what}; fix the file (check indentation and quoting)`);
    }
    if (doc.contents === null) continue;
    const start = counter.linePos(doc.contents.range?.[0] ?? 0).line;
    const kindNode = doc.get('kind');
    const isSecret = kindNode === 'Secret';
    let unset: RawDocument['unset'];
    visit(doc, {
      Scalar(_key, node) {
        if (unset || typeof node.value !== 'string' || !node.value.includes('$')) return;
        const original = node.value;
        try {
          const expanded = expandString(original, vars);
          if (!isSecret && whole(original)) {
            if (/^-?\d+$/.test(expanded)) node.value = Number(expanded);
            else if (expanded === 'true' || expanded === 'false') node.value = expanded === 'true';
            else node.value = expanded;
          } else node.value = expanded;
        } catch (error) {
          if (!(error instanceof UnsetVariable)) throw error;
          unset = { variable: error.variable, line: counter.linePos(node.range?.[0] ?? 0).line };
        }
      },
    });
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new DevError(DevErrorCode.SchemaInvalid, `${where}:${start}: a manifest must be a mapping with apiVersion, kind, metadata and spec`);
    }
    out.push({
      value: value as Record<string, unknown>,
      line: start,
      lineOf: (path) => {
        // The line of the key (or list item) the path ends at; else of its closest parent.
        for (let n = path.length; n > 0; n--) {
          const parent = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
          const last = path[n - 1];
          if (isMap(parent)) {
            const pair = parent.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === last);
            const node = pair && isNode(pair.key) ? pair.key : undefined;
            if (node?.range) return counter.linePos(node.range[0]).line;
          } else if (isSeq(parent) && typeof last === 'number') {
            const node = parent.items[last];
            if (isNode(node) && node.range) return counter.linePos(node.range[0]).line;
          }
        }
        return start;
      },
      ...(unset ? { unset } : {}),
    });
  }
  return out;
}

function metadataOf(doc: RawDocument, where: string): { name: string; namespace: string } {
  const meta = doc.value.metadata as Record<string, unknown> | undefined;
  const name = meta?.name;
  if (typeof name !== 'string' || name === '') {
    throw new DevError(DevErrorCode.SchemaInvalid, `${where}:${doc.line}: ${String(doc.value.kind)} has no metadata.name; give every object a name`);
  }
  const namespace = meta?.namespace;
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace === '')) {
    throw new DevError(DevErrorCode.SchemaInvalid, `${where}:${doc.lineOf(['metadata', 'namespace'])}: metadata.namespace must be a non-empty string`);
  }
  return { name, namespace: (namespace as string | undefined) ?? DEFAULT_NAMESPACE };
}

function decodeSecret(doc: RawDocument, where: string): Map<string, Buffer> {
  const data = new Map<string, Buffer>();
  const check = (field: 'data' | 'stringData'): Record<string, unknown> => {
    const v = doc.value[field];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw new DevError(DevErrorCode.SchemaInvalid, `${where}:${doc.lineOf([field])}: Secret ${field} must be a mapping of key: value`);
    return v as Record<string, unknown>;
  };
  for (const [key, value] of Object.entries(check('data'))) {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/=\s]*$/.test(value)) {
      throw new DevError(DevErrorCode.SchemaInvalid, `${where}:${doc.lineOf(['data', key])}: Secret data.${key} must be base64; put plain text under stringData instead`);
    }
    data.set(key, Buffer.from(value, 'base64'));
  }
  for (const [key, value] of Object.entries(check('stringData'))) {
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new DevError(DevErrorCode.SchemaInvalid, `${where}:${doc.lineOf(['stringData', key])}: Secret stringData.${key} must be a string`);
    }
    data.set(key, Buffer.from(String(value), 'utf8'));
  }
  for (const key of data.keys()) {
    if (!/^[-._a-zA-Z0-9]+$/.test(key)) throw new DevError(DevErrorCode.SchemaInvalid, `${where}:${doc.line}: Secret key ${JSON.stringify(key)} is not a valid key (letters, digits, '-', '_', '.')`);
  }
  return data;
}

/** Reads, expands and validates every manifest under `paths`. */
export async function loadManifests(paths: readonly string[], options: { vars: Vars; cwd?: string }): Promise<LoadedManifests> {
  const cwd = options.cwd ?? process.cwd();
  const files = await manifestFiles(paths, cwd);
  const loaded: LoadedManifests = { connections: [], accessPolicies: [], recordingPolicies: [], secrets: [], unavailable: [], files };
  const schemas = crdSchemas();
  const seen = new Map<string, string>();
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new DevError(DevErrorCode.NoManifests, `${display(file, cwd)}: cannot read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    const where = display(file, cwd);
    for (const doc of parseFile(text, file, options.vars, cwd)) {
      const { apiVersion, kind } = doc.value;
      const source = `${where}:${doc.line}`;
      if (typeof kind !== 'string' || typeof apiVersion !== 'string') {
        throw new DevError(DevErrorCode.KindUnknown, `${source}: the document has no apiVersion and kind; warden dev reads ${API_VERSION} ${WARDEN_KINDS.join(', ')} and v1 Secret`);
      }
      if (apiVersion === 'v1' && (kind === 'Namespace' || kind === 'ConfigMap')) continue;
      if (SYSTEM_KINDS.has(kind) && apiVersion === API_VERSION) continue;
      const known = (apiVersion === 'v1' && kind === 'Secret') || (apiVersion === API_VERSION && (WARDEN_KINDS as readonly string[]).includes(kind));
      if (!known) {
        const hint = (WARDEN_KINDS as readonly string[]).includes(kind) ? ` (the apiVersion of ${kind} is ${API_VERSION})` : '';
        throw new DevError(DevErrorCode.KindUnknown, `${source}: unknown kind ${apiVersion} ${kind}${hint}; warden dev reads ${API_VERSION} ${WARDEN_KINDS.join(', ')} and v1 Secret`);
      }
      const { name, namespace } = metadataOf(doc, where);
      const id = `${kind} ${namespace}/${name}`;
      if (seen.has(id)) throw new DevError(DevErrorCode.SchemaInvalid, `${source}: ${id} is defined twice (also at ${seen.get(id)}); names must be unique per kind and namespace`);
      seen.set(id, source);
      if (doc.unset) {
        const reason = `${where}:${doc.unset.line}: \${${doc.unset.variable}} is not set; export ${doc.unset.variable} (or give it a default: \${${doc.unset.variable}:-value})`;
        if (kind === 'Connection' || kind === 'Secret') {
          loaded.unavailable.push({ kind, namespace, name, reason });
          continue;
        }
        throw new DevError(DevErrorCode.VariableUnset, reason);
      }
      if (kind === 'Secret') {
        loaded.secrets.push({ namespace, name, data: decodeSecret(doc, where), source });
        continue;
      }
      const schema = schemas.get(kind);
      if (schema) {
        const issues = validateAgainstSchema(schema, doc.value);
        const first = issues[0];
        if (first) {
          const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
          throw new DevError(DevErrorCode.SchemaInvalid, `${where}:${doc.lineOf(first.path)}: ${kind} ${name}: ${formatPath(first.path)} ${first.message}${more}; see crds/ for the schema`);
        }
      }
      const object = doc.value as unknown as { metadata: Record<string, unknown> };
      // What the API server would fill in: namespace, uid, generation.
      object.metadata = { ...object.metadata, namespace, uid: `dev-${kind.toLowerCase()}-${namespace}-${name}`, generation: 1 };
      if (kind === 'Connection') loaded.connections.push({ object: doc.value as unknown as Connection, source });
      else if (kind === 'AccessPolicy') loaded.accessPolicies.push({ object: doc.value as unknown as AccessPolicy, source });
      else loaded.recordingPolicies.push({ object: doc.value as unknown as RecordingPolicy, source });
    }
  }
  if (loaded.connections.length === 0 && loaded.unavailable.every((u) => u.kind !== 'Connection')) {
    throw new DevError(DevErrorCode.NoManifests, `no Connection in ${paths.join(', ')}; add one (see config/samples/local/)`);
  }
  return loaded;
}

/**
 * The variables a `postgres://user:password@host:port/database?sslmode=…` URL stands for, under
 * libpq's names: PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE.
 */
export function postgresUrlVars(url: string): Record<string, string> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DevError(DevErrorCode.OptionInvalid, `--postgres-url is not a URL; write it as postgres://user:password@host:5432/database`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new DevError(DevErrorCode.OptionInvalid, `--postgres-url must start with postgres:// (got ${parsed.protocol}//)`);
  }
  if (parsed.hostname === '') throw new DevError(DevErrorCode.OptionInvalid, '--postgres-url has no host; write it as postgres://user:password@host:5432/database');
  const vars: Record<string, string> = {
    PGHOST: decodeURIComponent(parsed.hostname.replace(/^\[|\]$/g, '')),
    PGPORT: parsed.port === '' ? '5432' : parsed.port,
  };
  if (parsed.username) vars.PGUSER = decodeURIComponent(parsed.username);
  if (parsed.password) vars.PGPASSWORD = decodeURIComponent(parsed.password);
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (database) vars.PGDATABASE = database;
  const sslmode = parsed.searchParams.get('sslmode');
  if (sslmode) vars.PGSSLMODE = sslmode;
  return vars;
}
