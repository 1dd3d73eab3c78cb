// Statement classification with the real PostgreSQL parser (libpg-query, WASM), never regexes:
// comments, dollar quoting and multi-statement strings are the parser's job. Each statement of a
// string becomes one SqlCommand for the policy engine.
//
// Conservative by construction: a statement is `read` only when its kind is read-only AND the
// whole tree contains no data-modifying node (CTEs), no SELECT INTO, no row locks, and calls no
// function outside READ_ONLY_FUNCTIONS. Unknown statement kinds are `ddl`. DO blocks are never
// `read`. See docs in README.md next to this file for the list and the known limits.

import { randomBytes } from 'node:crypto';
import { loadModule, parsePlPgSQLSync, parseSync } from 'libpg-query';
import type { SqlStatementClass } from '../../api/types.ts';
import type { SqlCommand } from '../../policy/command.ts';
import { READ_ONLY_FUNCTIONS, SIDE_EFFECT_FUNCTIONS } from './functions.ts';
import { literalKey, singleStatementText } from './literal-key.ts';
import { remember } from '../../bounded.ts';

/** A classified statement, plus what the gateway needs later for masking. */
export interface ClassifiedStatement extends SqlCommand {
  /**
   * For a query that returns rows: per output column, the lower-cased source column names its
   * expression refers to (through aliases, derived tables and CTEs), so masking by column name
   * cannot be evaded with `AS`. Undefined when positions cannot be mapped (`SELECT *`).
   */
  outputSources?: string[][];
  /** Set for `PREPARE name AS …`: the session remembers the class for `EXECUTE name`. */
  prepares?: string;
  /** Set for `DEALLOCATE name` (`''` for DEALLOCATE ALL). */
  deallocates?: string;
}

/** What `EXECUTE name` runs, as remembered from the session's own `PREPARE`. */
export type PreparedLookup = (name: string) => SqlCommand | undefined;

/** Severity order for combining classes: the most dangerous class of the parts wins. */
const SEVERITY: Record<SqlStatementClass, number> = {
  read: 0,
  session: 1,
  transaction: 2,
  utility: 3,
  write: 4,
  ddl: 5,
  privilege: 6,
  unparseable: 7,
};

export function worstClass(a: SqlStatementClass, b: SqlStatementClass): SqlStatementClass {
  return SEVERITY[a] >= SEVERITY[b] ? a : b;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Node kinds by the class they have on their own (before looking inside). */
const KIND_CLASS: Record<string, SqlStatementClass> = {
  SelectStmt: 'read',
  VariableShowStmt: 'read',
  FetchStmt: 'read',
  ExplainStmt: 'read',
  DeclareCursorStmt: 'read',
  InsertStmt: 'write',
  UpdateStmt: 'write',
  DeleteStmt: 'write',
  MergeStmt: 'write',
  TruncateStmt: 'write',
  NotifyStmt: 'write',
  RefreshMatViewStmt: 'write',
  CallStmt: 'write',
  DoStmt: 'write',
  CopyStmt: 'write',
  TransactionStmt: 'transaction',
  VariableSetStmt: 'session',
  DiscardStmt: 'session',
  ListenStmt: 'session',
  UnlistenStmt: 'session',
  DeallocateStmt: 'session',
  ClosePortalStmt: 'session',
  ConstraintsSetStmt: 'transaction',
  PrepareStmt: 'session',
  ExecuteStmt: 'write',
  VacuumStmt: 'utility',
  ClusterStmt: 'utility',
  CheckPointStmt: 'utility',
  ReindexStmt: 'utility',
  LoadStmt: 'privilege',
  LockStmt: 'utility',
  GrantStmt: 'privilege',
  GrantRoleStmt: 'privilege',
  CreateRoleStmt: 'privilege',
  AlterRoleStmt: 'privilege',
  AlterRoleSetStmt: 'privilege',
  DropRoleStmt: 'privilege',
  AlterDefaultPrivilegesStmt: 'privilege',
  AlterOwnerStmt: 'privilege',
  ReassignOwnedStmt: 'privilege',
  DropOwnedStmt: 'privilege',
  SecLabelStmt: 'privilege',
  CreateUserMappingStmt: 'privilege',
  AlterUserMappingStmt: 'privilege',
  DropUserMappingStmt: 'privilege',
  AlterSystemStmt: 'privilege',
  AlterDatabaseSetStmt: 'privilege',
};

const DATA_MODIFYING = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);
const ROLE_SETTINGS = new Set(['role', 'session_authorization']);

/**
 * Settings that change how PostgreSQL reads SQL text, with the values Warden's parser assumes:
 * with `standard_conforming_strings = off` the server reads `\'` inside a plain string as a quote,
 * and a client encoding such as SJIS or GBK can hide a backslash in the second byte of a
 * character. Either makes the server see other statements than the ones classified, so changing
 * them to anything else is `privilege`. The session also watches what the server reports
 * (session.ts, ParameterStatus) in case a setting arrives another way.
 */
export const LEXER_SETTINGS: Readonly<Record<string, ReadonlySet<string>>> = {
  standard_conforming_strings: new Set(['on', 'true', 'yes', '1']),
  client_encoding: new Set(['utf8', 'utf-8', 'unicode']),
};

function constantText(node: unknown): string | undefined {
  const c = isObject(node) && isObject(node.A_Const) ? node.A_Const : undefined;
  if (!c) return undefined;
  if (isObject(c.sval) && typeof c.sval.sval === 'string') return c.sval.sval;
  if (isObject(c.ival)) return String(typeof c.ival.ival === 'number' ? c.ival.ival : 0);
  return undefined;
}

interface Facts {
  cls: SqlStatementClass;
  flags: Set<string>;
  tables: Set<string>;
  cteNames: Set<string>;
  /** Alias name → names it was computed from (for masking). */
  aliases: Map<string, Set<string>>;
}

export interface ClassifierOptions {
  /** Entries kept in the exact-text cache (default 2000; 0 disables both cache levels). */
  cacheSize?: number;
  /** Entries kept in the literal-insensitive cache (default 2000; 0 disables it). */
  literalCacheSize?: number;
}

/**
 * Statement kinds whose classification never reads a literal's value: classifyNode, inspect, walk
 * and outputSources look at node kinds, relation, function, column and alias names and at whether
 * a clause is present, never at an A_Const. (Not DO, COPY, SET, PREPARE, EXPLAIN, EXECUTE: their
 * constants or session state matter.)
 */
const LITERAL_CACHE_KINDS = new Set(['SelectStmt', 'InsertStmt', 'UpdateStmt', 'DeleteStmt']);

/**
 * Turns SQL text into SqlCommands. Create once per process with {@link SqlClassifier.create}
 * (loads the WASM parser); `classify` is synchronous and never throws: text the parser rejects
 * is one `unparseable` command, which a restrictive policy denies.
 */
export class SqlClassifier {
  readonly #cache = new Map<string, readonly ClassifiedStatement[]>();
  readonly #cacheSize: number;
  /** Literal key (literal-key.ts) → the one statement of a text with that key. Never mutated. */
  readonly #literalCache = new Map<string, ClassifiedStatement>();
  readonly #literalCacheSize: number;

  private constructor(options: ClassifierOptions) {
    this.#cacheSize = options.cacheSize ?? 2000;
    this.#literalCacheSize = this.#cacheSize > 0 ? (options.literalCacheSize ?? 2000) : 0;
  }

  static async create(options: ClassifierOptions = {}): Promise<SqlClassifier> {
    await loadModule();
    return new SqlClassifier(options);
  }

  /**
   * Classifies every statement of `text`. Results are cached by exact text (not by fingerprint:
   * fingerprints drop constants, and constants matter here — a DO block's body, a COPY file
   * name, the statement offsets the recorded texts are cut at). Results that depend on session
   * state (EXECUTE) are not cached.
   *
   * A second level serves texts that differ from a known one only in literal values (simple-query
   * clients inline them): keyed by {@link literalKey}, which bails on anything it cannot lex
   * exactly as PostgreSQL does, and filled only from a single SELECT/INSERT/UPDATE/DELETE, whose
   * classification never depends on a literal's value. A hit is the cached statement with this
   * text; the cached objects themselves are shared and never mutated.
   */
  classify(text: string, prepared?: PreparedLookup): readonly ClassifiedStatement[] {
    const cached = this.#cache.get(text);
    if (cached) return cached;
    const key = this.#literalCacheSize > 0 ? literalKey(text) : undefined;
    if (key !== undefined) {
      const template = this.#literalCache.get(key);
      if (template) {
        // Kept by exact text too, as a parse would be: a repeated text gets the same answer.
        const statements = [{ ...template, text: singleStatementText(text) }];
        if (this.#cacheSize > 0) remember(this.#cache, this.#cacheSize, text, statements);
        return statements;
      }
    }
    const { statements, cacheable, kinds } = classifyText(text, prepared);
    if (cacheable && this.#cacheSize > 0) remember(this.#cache, this.#cacheSize, text, statements);
    if (key !== undefined) {
      const only = statements.length === 1 && kinds.length === 1 ? statements[0] : undefined;
      if (
        only &&
        cacheable &&
        LITERAL_CACHE_KINDS.has(kinds[0]!) &&
        only.statementClass !== 'unparseable' &&
        only.text === singleStatementText(text)
      ) {
        remember(this.#literalCache, this.#literalCacheSize, key, only);
      }
    }
    return statements;
  }
}


function unparseable(text: string, reason: string): ClassifiedStatement {
  return { protocol: 'postgres', text, statementClass: 'unparseable', tables: [], flags: [`parseError:${reason}`] };
}

/** `kinds`: the top-level node kind of every statement the parser found (empty if it failed). */
function classifyText(text: string, prepared?: PreparedLookup): { statements: ClassifiedStatement[]; cacheable: boolean; kinds: string[] } {
  let tree: { stmts?: Array<{ stmt?: Json; stmt_location?: number; stmt_len?: number }> };
  try {
    tree = parseSync(text) as typeof tree;
  } catch (error) {
    // Only comments and semicolons: PostgreSQL answers EmptyQueryResponse, there is no statement.
    if ((error as Error).message === 'Query cannot be empty') return { statements: [], cacheable: true, kinds: [] };
    return { statements: [unparseable(text, (error as Error).message)], cacheable: true, kinds: [] };
  }
  const bytes = Buffer.from(text, 'utf8');
  const statements: ClassifiedStatement[] = [];
  const kinds: string[] = [];
  let cacheable = true;
  for (const raw of tree.stmts ?? []) {
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
    const stmtText = bytes.toString('utf8', start, end).trim();
    if (!raw.stmt) continue;
    const kind = Object.keys(raw.stmt)[0] ?? '';
    kinds.push(kind);
    if (kind === 'ExecuteStmt') cacheable = false;
    try {
      statements.push(classifyStatement(raw.stmt, stmtText, prepared));
    } catch (error) {
      // Defensive: a tree shape we did not foresee must not let the statement through.
      statements.push(unparseable(stmtText, (error as Error).message));
    }
  }
  return { statements, cacheable, kinds };
}

function classifyStatement(stmt: Json, text: string, prepared?: PreparedLookup): ClassifiedStatement {
  const facts: Facts = { cls: 'read', flags: new Set(), tables: new Set(), cteNames: new Set(), aliases: new Map() };
  const extra: Partial<ClassifiedStatement> = {};
  classifyNode(stmt, facts, prepared, extra);
  const tables = [...facts.tables].filter((t) => !facts.cteNames.has(t));
  // Writing pg_settings calls set_config for each row (a rule): a setting change, as SET is.
  if (facts.cls !== 'read' && tables.some((t) => t === 'pg_settings' || t === 'pg_catalog.pg_settings')) {
    facts.cls = worstClass(facts.cls, 'privilege');
    facts.flags.add('settingsWrite');
  }
  const result: ClassifiedStatement = {
    protocol: 'postgres',
    text,
    statementClass: facts.cls,
    tables,
    flags: [...facts.flags],
    ...extra,
  };
  const select = stmt.SelectStmt;
  if (isObject(select)) {
    const sources = outputSources(select, facts.aliases);
    if (sources) result.outputSources = sources;
  }
  return result;
}

/** Applies the node kind's own class, then the facts found anywhere inside it. */
function classifyNode(stmt: Json, facts: Facts, prepared: PreparedLookup | undefined, extra: Partial<ClassifiedStatement>): void {
  const kind = Object.keys(stmt)[0] ?? '';
  const node = stmt[kind];
  if (!isObject(node)) {
    facts.cls = worstClass(facts.cls, 'ddl');
    return;
  }
  const raise = (cls: SqlStatementClass, flag?: string): void => {
    facts.cls = worstClass(facts.cls, cls);
    if (flag) facts.flags.add(flag);
  };
  raise(KIND_CLASS[kind] ?? 'ddl');

  if (kind === 'SelectStmt') inspect(kind, node, facts, false);
  switch (kind) {
    case 'UpdateStmt':
      if (!node.whereClause) facts.flags.add('updateWithoutWhere');
      break;
    case 'DeleteStmt':
      if (!node.whereClause) facts.flags.add('deleteWithoutWhere');
      break;
    case 'ExplainStmt': {
      const options = Array.isArray(node.options) ? node.options : [];
      const analyze = options.some((o) => isObject(o) && isObject(o.DefElem) && o.DefElem.defname === 'analyze');
      if (analyze) facts.flags.add('explainAnalyze');
      if (isObject(node.query)) {
        // EXPLAIN without ANALYZE plans but does not run its statement: only tables count.
        const inner: Facts = { ...facts, cls: 'read', flags: new Set() };
        classifyNode(node.query, inner, prepared, {});
        // Without ANALYZE only functions count: the planner may run (mislabelled) immutable ones.
        const callsFunctions = [...inner.flags].some((f) => f.startsWith('function:') || f.startsWith('unknownFunction:'));
        if (analyze || callsFunctions) {
          raise(inner.cls);
          for (const f of inner.flags) facts.flags.add(f);
        }
      }
      walk(node, facts, { skipTopFacts: true });
      return;
    }
    case 'CopyStmt':
      if (node.is_program) facts.flags.add('copyProgram');
      if (node.is_from) facts.flags.add('copyFrom');
      else if (node.filename !== undefined && !node.is_program) facts.flags.add('copyToFile');
      if (!node.is_from && !node.is_program && node.filename === undefined) {
        // COPY … TO STDOUT is a read of its table or query.
        facts.cls = 'read';
      }
      break;
    case 'VariableSetStmt': {
      const setting = typeof node.name === 'string' ? node.name.toLowerCase() : '';
      const safe = LEXER_SETTINGS[setting];
      if (safe) {
        const args = Array.isArray(node.args) ? node.args : [];
        const value = node.kind === 'VAR_SET_VALUE' && args.length === 1 ? constantText(args[0])?.toLowerCase() : undefined;
        // RESET / DEFAULT of client_encoding go back to the UTF8 the gateway connected with.
        const reset = setting === 'client_encoding' && (node.kind === 'VAR_RESET' || node.kind === 'VAR_SET_DEFAULT');
        if (!reset && (value === undefined || !safe.has(value))) raise('privilege', `lexerSetting:${setting}`);
      }
      if (ROLE_SETTINGS.has(setting)) raise('privilege', 'setRole');
      if (node.kind === 'VAR_RESET_ALL') raise('privilege', 'setRole');
      if (node.name === 'search_path') facts.flags.add('searchPath');
      break;
    }
    case 'DoStmt':
      facts.flags.add('doBlock');
      inspectDoBlock(node, facts);
      return;
    case 'PrepareStmt': {
      if (isObject(node.query)) {
        // PREPARE runs nothing itself; it takes the class of what it prepares, so a read-only
        // policy refuses to prepare a write and EXECUTE of a read-only statement stays a read.
        const inner: Facts = { ...facts, cls: 'read' };
        classifyNode(node.query, inner, prepared, {});
        facts.cls = inner.cls;
      }
      if (typeof node.name === 'string') extra.prepares = node.name;
      return;
    }
    case 'ExecuteStmt': {
      const name = typeof node.name === 'string' ? node.name : '';
      const known = prepared?.(name);
      if (known) {
        facts.cls = known.statementClass;
        for (const f of known.flags) facts.flags.add(f);
        for (const t of known.tables) facts.tables.add(t);
      } else {
        facts.flags.add('unknownPrepared');
      }
      walk(node, facts, {});
      return;
    }
    case 'DeallocateStmt':
      extra.deallocates = typeof node.name === 'string' ? node.name : '';
      break;
    case 'DropStmt':
      if (node.removeType === 'OBJECT_TABLE' && Array.isArray(node.objects)) {
        for (const o of node.objects) {
          const items = isObject(o) && isObject(o.List) && Array.isArray(o.List.items) ? o.List.items : [];
          const names = items.map((i) => (isObject(i) && isObject(i.String) ? String(i.String.sval) : ''));
          if (names.length > 0) facts.tables.add(names.join('.'));
        }
      }
      break;
  }
  walk(node, facts, {});
}

/** Looks everywhere below a node for facts that make a statement more than it seems. */
function walk(node: unknown, facts: Facts, options: { skipTopFacts?: boolean }): void {
  const tablesOnly = options.skipTopFacts === true;
  const visit = (value: object, depth: number): void => {
    if (depth > 2000) throw new Error('statement nests too deeply to classify');
    if (Array.isArray(value)) {
      for (const v of value) if (typeof v === 'object' && v !== null) visit(v as object, depth + 1);
      return;
    }
    const record = value as Json;
    // Typed fields (InsertStmt.relation…) hold a RangeVar without its {"RangeVar": …} wrapper.
    if (typeof record.relname === 'string') addTable(record, facts);
    for (const key in record) {
      const child = record[key];
      if (typeof child !== 'object' || child === null) continue;
      if (!Array.isArray(child)) inspect(key, child as Json, facts, tablesOnly);
      visit(child, depth + 1);
    }
  };
  if (typeof node !== 'object' || node === null) return;
  visit(node, 0);
}

function raiseFact(facts: Facts, tablesOnly: boolean, cls: SqlStatementClass, flag: string): void {
  if (tablesOnly) return;
  facts.cls = worstClass(facts.cls, cls);
  facts.flags.add(flag);
}

function inspect(kind: string, node: Json, facts: Facts, tablesOnly: boolean): void {
  switch (kind) {
    case 'RangeVar':
      addTable(node, facts);
      break;
    case 'CommonTableExpr':
      if (typeof node.ctename === 'string') facts.cteNames.add(node.ctename);
      break;
    case 'ResTarget':
      if (typeof node.name === 'string' && node.val !== undefined) {
        const sources = columnRefs(node.val);
        if (sources.size > 0) {
          const known = facts.aliases.get(node.name.toLowerCase()) ?? new Set();
          for (const s of sources) known.add(s);
          facts.aliases.set(node.name.toLowerCase(), known);
        }
      }
      break;
    case 'SelectStmt':
      if (node.intoClause) raiseFact(facts, tablesOnly, 'ddl', 'selectInto');
      if (Array.isArray(node.lockingClause) && node.lockingClause.length > 0) raiseFact(facts, tablesOnly, 'write', 'rowLock');
      break;
    case 'FuncCall': {
      const parts = (Array.isArray(node.funcname) ? node.funcname : []).map((p) =>
        isObject(p) && isObject(p.String) ? String(p.String.sval).toLowerCase() : '',
      );
      const name = parts[parts.length - 1] ?? '';
      const schema = parts.length > 1 ? parts[parts.length - 2] : undefined;
      const builtin = schema === undefined || schema === 'pg_catalog';
      const known = builtin ? SIDE_EFFECT_FUNCTIONS.get(name) : undefined;
      if (known) raiseFact(facts, tablesOnly, known, `function:${name}`);
      else if (!builtin || !READ_ONLY_FUNCTIONS.has(name)) raiseFact(facts, tablesOnly, 'write', `unknownFunction:${parts.join('.')}`);
      if (builtin && name === 'set_config') {
        // set_config(name, value, is_local): a setting that changes how SQL is read, or one that
        // cannot be told before it runs, is privilege (literal-key.ts keeps these texts out of
        // the literal-insensitive cache, as this reads a constant).
        const args = Array.isArray(node.args) ? node.args : [];
        const setting = constantText(args[0])?.trim().toLowerCase();
        if (setting === undefined) raiseFact(facts, tablesOnly, 'privilege', 'setConfigDynamic');
        else if (LEXER_SETTINGS[setting]) raiseFact(facts, tablesOnly, 'privilege', `lexerSetting:${setting}`);
      }
      break;
    }
    default:
      if (DATA_MODIFYING.has(kind)) {
        if (tablesOnly) return;
        raiseFact(facts, tablesOnly, 'write', 'dataModifying');
        if (kind === 'UpdateStmt' && !node.whereClause) facts.flags.add('updateWithoutWhere');
        if (kind === 'DeleteStmt' && !node.whereClause) facts.flags.add('deleteWithoutWhere');
      } else if (kind.endsWith('Stmt') && /^[A-Z]\w*Stmt$/.test(kind) && kind !== 'SelectStmt' && !tablesOnly) {
        // A statement nested where we did not expect one (e.g. inside a rule): judge it on its own.
        facts.cls = worstClass(facts.cls, KIND_CLASS[kind] ?? 'ddl');
      }
  }
}

function addTable(node: Json, facts: Facts): void {
  const name = [node.catalogname, node.schemaname, node.relname].filter((p) => typeof p === 'string').join('.');
  if (name) facts.tables.add(name);
}

/** Lower-cased last names of every column reference under a node. */
function columnRefs(node: unknown): Set<string> {
  const out = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const v of value) visit(v);
      return;
    }
    if (!isObject(value)) return;
    for (const [key, child] of Object.entries(value)) {
      if (key === 'ColumnRef' && isObject(child) && Array.isArray(child.fields)) {
        const last = child.fields[child.fields.length - 1];
        if (isObject(last) && isObject(last.String)) out.add(String(last.String.sval).toLowerCase());
      }
      visit(child);
    }
  };
  visit(node);
  return out;
}

function containsKey(node: unknown, wanted: string): boolean {
  if (Array.isArray(node)) return node.some((n) => containsKey(n, wanted));
  if (!isObject(node)) return false;
  for (const key in node) if (key === wanted || containsKey(node[key], wanted)) return true;
  return false;
}

function outputSources(select: Json, aliases: Map<string, Set<string>>): string[][] | undefined {
  let top = select;
  while (isObject(top.larg) && (!Array.isArray(top.targetList) || top.targetList.length === 0)) top = top.larg;
  const targets = Array.isArray(top.targetList) ? top.targetList : [];
  if (targets.length === 0) return undefined;
  const result: string[][] = [];
  for (const t of targets) {
    const target = isObject(t) && isObject(t.ResTarget) ? t.ResTarget : undefined;
    if (!target) return undefined;
    if (containsKey(target.val, 'A_Star')) return undefined;
    // Follow aliases to a fixed point: `SELECT e FROM (SELECT email AS e …)` refers to email.
    const names = new Set<string>(columnRefs(target.val));
    if (typeof target.name === 'string') names.add(target.name.toLowerCase());
    let grew = true;
    while (grew) {
      grew = false;
      for (const n of [...names]) {
        for (const s of aliases.get(n) ?? []) {
          if (!names.has(s)) {
            names.add(s);
            grew = true;
          }
        }
      }
    }
    result.push([...names]);
  }
  return result;
}

/**
 * DO blocks run procedural code: never `read`. Their SQL is looked at to name the tables and to
 * raise the class to DDL/privilege when the body does that; dynamic EXECUTE is flagged.
 */
function inspectDoBlock(node: Json, facts: Facts): void {
  const args = Array.isArray(node.args) ? node.args : [];
  let body: string | undefined;
  let language = 'plpgsql';
  for (const a of args) {
    const def = isObject(a) && isObject(a.DefElem) ? a.DefElem : undefined;
    const value = def && isObject(def.arg) && isObject(def.arg.String) ? String(def.arg.String.sval) : undefined;
    if (def?.defname === 'as') body = value;
    if (def?.defname === 'language' && value) language = value.toLowerCase();
  }
  if (language !== 'plpgsql') {
    facts.cls = worstClass(facts.cls, 'privilege');
    facts.flags.add(`doLanguage:${language}`);
    return;
  }
  if (body === undefined) return;
  const tag = `warden_${randomBytes(6).toString('hex')}`;
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(`CREATE FUNCTION warden_do() RETURNS void LANGUAGE plpgsql AS $${tag}$${body}$${tag}$`);
  } catch {
    facts.flags.add('doBodyUnparseable');
    return;
  }
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const v of value) visit(v);
      return;
    }
    if (!isObject(value)) return;
    for (const [key, child] of Object.entries(value)) {
      if (key === 'PLpgSQL_stmt_dynexecute' || key === 'PLpgSQL_stmt_dynfors') facts.flags.add('dynamicSql');
      if (isObject(child) && (key === 'PLpgSQL_stmt_open' || key === 'PLpgSQL_stmt_return_query') && child.dynquery) {
        facts.flags.add('dynamicSql');
      }
      if (key === 'PLpgSQL_expr' && isObject(child) && typeof child.query === 'string') {
        // parseMode 0: a whole statement; 2: an expression; 3–5: an assignment `target := expr`.
        const mode = typeof child.parseMode === 'number' ? child.parseMode : 0;
        const expr = mode >= 3 ? child.query.replace(/^[^:=]*:?=/, '') : child.query;
        const sql = mode === 0 ? child.query : `SELECT ${expr}`;
        for (const inner of classifyText(sql).statements) {
          facts.cls = worstClass(facts.cls, inner.statementClass === 'unparseable' ? 'write' : inner.statementClass);
          for (const t of inner.tables) facts.tables.add(t);
          for (const f of inner.flags) if (!f.startsWith('parseError')) facts.flags.add(f);
        }
      }
      visit(child);
    }
  };
  visit(tree);
}
