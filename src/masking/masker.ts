// The masking stage shared by the gateways: a Masker compiled from MaskingRules masks SQL cells
// (maskValue), free text such as HTTP bodies (maskText), parsed JSON (maskJson) and terminal
// output arriving in pieces (createStream, terminal.ts).
//
// Which rules apply where (crds/warden.dev_accesspolicies.yaml, masking.rules):
// - columns and jsonPaths choose values; detectors and patterns choose what inside them is masked.
// - A rule with columns applies to SQL cells of matching columns only; with jsonPaths, to the JSON
//   values selected only; with neither, to every cell, every JSON string and number, all text.
// - A selected value is masked whole when the rule has no detectors or patterns, else only the
//   spans they find.
// - Overlapping spans merge; the strictest strategy of the merged spans masks their union
//   (nullify > redact > hash > partial).
import type { MaskingDetector, MaskingRule } from '../api/types.ts';
import { DEFAULTS, MASKING_DETECTORS, MASKING_STRATEGIES } from '../api/types.ts';
import { compileGlob, type GlobMatcher } from '../policy/glob.ts';
import { compileUserPattern, PatternError, type SafePattern } from '../policy/patterns.ts';
import { parseJsonPath, selectJsonPath, valueAt } from './jsonpath.ts';
import {
  applySpans,
  type ColumnPattern,
  type CompiledMaskingRule,
  hitOf,
  type MaskHit,
  type MaskSpan,
  scansContent,
  scanText,
  selectsNothing,
} from './scan.ts';
import { MIN_HASH_KEY_BYTES, replacement, STRATEGY_STRICTNESS } from './strategies.ts';
import { createTerminalStream, type TerminalMaskStream, type TerminalStreamOptions } from './terminal.ts';

export type { ColumnPattern, CompiledMaskingRule, MaskHit, MaskSource, MaskSpan } from './scan.ts';

export class MaskingError extends Error {
  readonly code: 'WARDEN_INVALID_MASKING_RULE' | 'WARDEN_MASKING_KEY';
  constructor(code: MaskingError['code'], message: string) {
    super(message);
    this.name = 'MaskingError';
    this.code = code;
  }
}

/** A problem in one masking rule. */
export interface MaskingProblem {
  rule: string;
  pattern?: string;
  message: string;
}

/** A result column as the SQL gateway knows it. A bare string is the name the client sees. */
export interface ColumnRef {
  /** The name sent to the client (the alias, if any). */
  name: string;
  /** The source table's column name, when the gateway resolved it (RowDescription table OID/attnum). */
  column?: string;
  table?: string;
  schema?: string;
}

// ---------------------------------------------------------------------------------------------
// Compiling rules

export function compileMaskingRules(
  rules: readonly MaskingRule[],
  options: { policy?: string } = {},
): { rules: CompiledMaskingRule[]; problems: MaskingProblem[] } {
  const compiled: CompiledMaskingRule[] = [];
  const problems: MaskingProblem[] = [];
  const names = new Set<string>();
  for (const rule of Array.isArray(rules) ? rules : []) {
    const name = typeof rule?.name === 'string' && rule.name !== '' ? rule.name : '(unnamed)';
    const report = (message: string, pattern?: string): void => {
      problems.push(pattern === undefined ? { rule: name, message } : { rule: name, pattern, message });
    };
    if (rule === null || typeof rule !== 'object') {
      report('the masking rule is not an object');
      continue;
    }
    if (names.has(name)) report('the masking rule name is used twice in the policy');
    names.add(name);
    const strategy = rule.strategy ?? DEFAULTS.maskingStrategy;
    if (!(MASKING_STRATEGIES as readonly string[]).includes(strategy)) {
      report(`strategy ${JSON.stringify(strategy)} is not one of ${MASKING_STRATEGIES.join(', ')}`);
      continue;
    }
    const selectors = [rule.columns, rule.jsonPaths, rule.detectors, rule.patterns].filter((s) => Array.isArray(s) && s.length > 0);
    if (selectors.length === 0) {
      report('a masking rule needs at least one of columns, jsonPaths, detectors or patterns');
      continue;
    }
    const detectors: MaskingDetector[] = [];
    for (const d of rule.detectors ?? []) {
      if ((MASKING_DETECTORS as readonly string[]).includes(d)) detectors.push(d);
      else report(`detector ${JSON.stringify(d)} is not one of ${MASKING_DETECTORS.join(', ')}`);
    }
    const patterns: SafePattern[] = [];
    for (const p of rule.patterns ?? []) {
      try {
        patterns.push(compileUserPattern(p));
      } catch (error) {
        report(error instanceof PatternError ? error.message : `pattern did not compile`, p);
      }
    }
    const columns = rule.columns?.flatMap((c: string) => {
      const pattern = compileColumnPattern(c);
      if (pattern === undefined) report(`column pattern ${JSON.stringify(c)} must be "column", "table.column" or "schema.table.column"`, c);
      return pattern === undefined ? [] : [pattern];
    });
    const jsonPaths = rule.jsonPaths?.flatMap((source: string) => {
      try {
        return [{ source, segments: parseJsonPath(source) }];
      } catch (error) {
        report((error as Error).message, source);
        return [];
      }
    });
    compiled.push({ name, policy: options.policy, strategy, columns, jsonPaths, detectors, patterns });
  }
  return { rules: compiled, problems };
}

function compileColumnPattern(source: string): ColumnPattern | undefined {
  if (typeof source !== 'string') return undefined;
  const parts = source.split('.');
  if (parts.length > 3 || parts.some((p) => p.length === 0)) return undefined;
  const glob = (part: string | undefined): GlobMatcher | undefined => (part === undefined ? undefined : compileGlob(part, { caseInsensitive: true }));
  const column = glob(parts[parts.length - 1]) as GlobMatcher;
  return { source, column, table: glob(parts[parts.length - 2]), schema: glob(parts[parts.length - 3]) };
}

/**
 * Names compare case-insensitively. The column part matches the name the client sees or the source
 * column. A table or schema part matches when the gateway could not tell the table (fail closed:
 * computed or unresolved columns are masked by any rule naming their column).
 */
function columnMatches(pattern: ColumnPattern, ref: ColumnRef): boolean {
  if (!pattern.column(ref.name) && (ref.column === undefined || !pattern.column(ref.column))) return false;
  if (pattern.table !== undefined && ref.table !== undefined && !pattern.table(ref.table)) return false;
  if (pattern.schema !== undefined && ref.schema !== undefined && !pattern.schema(ref.schema)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// The Masker

export interface MaskedValue {
  /** null: the cell becomes SQL NULL (strategy nullify). */
  value: string | null;
  hits: MaskHit[];
}

export interface MaskedText {
  text: string;
  hits: MaskHit[];
}

export interface MaskedJson {
  value: unknown;
  hits: MaskHit[];
}

export interface MaskerOptions {
  /** HMAC key for the hash strategy, at least 16 bytes; required when a rule uses hash. */
  hashKey?: Uint8Array;
}

export interface Masker {
  /** No rules: callers may skip masking entirely. */
  readonly empty: boolean;
  readonly rules: readonly CompiledMaskingRule[];
  /** A SQL result cell (text format). `column` undefined: only content rules apply. */
  maskValue(column: string | ColumnRef | undefined, value: string): MaskedValue;
  /** Free text (HTTP bodies that are not JSON, error messages): content rules without selectors. */
  maskText(text: string): MaskedText;
  /** A parsed JSON document; returns a masked copy (the input is not changed). */
  maskJson(value: unknown): MaskedJson;
  /** Terminal output arriving in chunks (see terminal.ts). */
  createStream(options?: TerminalStreamOptions): TerminalMaskStream;
}

/** Compiles rules and builds a masker; throws MaskingError on any invalid rule. */
export function compileMasker(rules: readonly MaskingRule[], options: MaskerOptions & { policy?: string } = {}): Masker {
  const { rules: compiled, problems } = compileMaskingRules(rules, options.policy === undefined ? {} : { policy: options.policy });
  if (problems.length > 0) {
    const first = problems[0] as MaskingProblem;
    throw new MaskingError('WARDEN_INVALID_MASKING_RULE', `masking rule ${first.rule}: ${first.message}`);
  }
  return createMasker(compiled, options);
}

export function createMasker(rules: readonly CompiledMaskingRule[], options: MaskerOptions = {}): Masker {
  const hashKey = options.hashKey;
  if (rules.some((r) => r.strategy === 'hash') && (hashKey === undefined || hashKey.length < MIN_HASH_KEY_BYTES)) {
    throw new MaskingError('WARDEN_MASKING_KEY', `the hash strategy needs a key of at least ${MIN_HASH_KEY_BYTES} bytes`);
  }
  const textRules = rules.filter((r) => selectsNothing(r) && scansContent(r));
  const jsonRules = rules.filter((r) => r.jsonPaths !== undefined);

  const maskWhole = (value: string, rule: CompiledMaskingRule): string =>
    replacement(value, { strategy: rule.strategy, kind: 'value', label: rule.name, hashKey });

  const masker: Masker = {
    empty: rules.length === 0,
    rules,

    maskValue(column, value) {
      const ref: ColumnRef | undefined = typeof column === 'string' ? { name: column } : column;
      const selected = ref === undefined ? [] : rules.filter((r) => r.columns !== undefined && r.columns.some((c) => columnMatches(c, ref)));
      const whole = selected.filter((r) => !scansContent(r));
      if (whole.length > 0) {
        const rule = whole.reduce((a, b) => (STRATEGY_STRICTNESS[b.strategy] > STRATEGY_STRICTNESS[a.strategy] ? b : a));
        const hits = whole.map((r) => hitOf(r, 'column'));
        return { value: rule.strategy === 'nullify' ? null : maskWhole(value, rule), hits };
      }
      const content = [...selected, ...rules.filter((r) => selectsNothing(r) && scansContent(r))];
      if (content.length === 0) return { value, hits: [] };
      const spans = scanText(value, content);
      if (spans.some((s) => s.rule.strategy === 'nullify')) return { value: null, hits: spans.map(spanHit) };
      return applyToValue(value, spans);
    },

    maskText(text) {
      if (textRules.length === 0) return { text, hits: [] };
      return applySpans(text, scanText(text, textRules), hashKey);
    },

    maskJson(input) {
      if (rules.length === 0) return { value: input, hits: [] };
      const holder = { root: cloneJson(input) };
      const hits: MaskHit[] = [];
      for (const rule of jsonRules) {
        for (const path of rule.jsonPaths ?? []) {
          for (const location of selectJsonPath(holder, path.segments)) {
            const current = valueAt(location);
            const container = location.container as Record<string | number, unknown>;
            if (scansContent(rule)) {
              container[location.key] = maskLeaves(current, [rule], hits);
            } else {
              hits.push(hitOf(rule, 'jsonPath'));
              container[location.key] =
                rule.strategy === 'nullify' ? null : maskWhole(typeof current === 'string' ? current : stringifyForHash(current), rule);
            }
          }
        }
      }
      if (textRules.length > 0) holder.root = maskLeaves(holder.root, textRules, hits);
      return { value: holder.root, hits };
    },

    createStream(streamOptions) {
      return createTerminalStream(textRules, hashKey, streamOptions);
    },
  };

  // Masks every string (and number) leaf under `value` with content rules; iterative.
  function maskLeaves(value: unknown, content: readonly CompiledMaskingRule[], hits: MaskHit[]): unknown {
    const maskLeaf = (leaf: string): string | null => {
      const spans = scanText(leaf, content);
      if (spans.length === 0) return leaf;
      if (spans.some((s) => s.rule.strategy === 'nullify')) {
        hits.push(...spans.map(spanHit));
        return null;
      }
      const masked = applySpans(leaf, spans, hashKey);
      hits.push(...masked.hits);
      return masked.text;
    };
    const leafOf = (v: unknown): unknown => {
      if (typeof v === 'string') return maskLeaf(v);
      if (typeof v === 'number') {
        const masked = maskLeaf(String(v));
        return masked === String(v) ? v : masked;
      }
      return v;
    };
    if (value === null || typeof value !== 'object') return leafOf(value);
    const stack: (Record<string, unknown> | unknown[])[] = [value as Record<string, unknown>];
    while (stack.length > 0) {
      const node = stack.pop() as Record<string | number, unknown>;
      for (const key of Object.keys(node)) {
        const child = node[key];
        if (child !== null && typeof child === 'object') stack.push(child as Record<string, unknown>);
        else node[key] = leafOf(child);
      }
    }
    return value;
  }

  function applyToValue(value: string, spans: MaskSpan[]): MaskedValue {
    const masked = applySpans(value, spans, hashKey);
    return { value: masked.text, hits: masked.hits };
  }

  return masker;
}

const spanHit = (span: MaskSpan): MaskHit => hitOf(span.rule, span.source);

/** Copies a JSON value without recursion (documents may nest deeper than the stack). */
function cloneJson(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  const copy = (v: object): Record<string, unknown> | unknown[] => (Array.isArray(v) ? [...(v as unknown[])] : { ...(v as Record<string, unknown>) });
  const root = copy(value);
  const stack: (Record<string, unknown> | unknown[])[] = [root];
  while (stack.length > 0) {
    const node = stack.pop() as Record<string | number, unknown>;
    for (const key of Object.keys(node)) {
      const child = node[key];
      if (child !== null && typeof child === 'object') {
        const c = copy(child);
        node[key] = c;
        stack.push(c);
      }
    }
  }
  return root;
}

/** The text a whole non-string JSON value is masked as (hash, partial). */
function stringifyForHash(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return '[unserialisable]'; // too deep to stringify: still masked, just not comparable
  }
}
