// Finding and replacing the spans of text that masking rules mask; shared by the Masker (cells,
// text, JSON leaves) and the terminal stream.
import type { MaskingDetector, MaskingStrategy } from '../api/types.ts';
import type { GlobMatcher } from '../policy/glob.ts';
import type { SafePattern } from '../policy/patterns.ts';
import { DETECTORS, type DetectOptions, type DetectorMatch } from './detectors.ts';
import type { JsonPathSegment } from './jsonpath.ts';
import { type MaskKind, replacement, STRATEGY_STRICTNESS } from './strategies.ts';

/** Where a hit came from: a detector, a custom pattern, or a whole selected value. */
export type MaskSource = MaskingDetector | 'pattern' | 'column' | 'jsonPath';

/** One masked value or span. Never carries the value itself. */
export interface MaskHit {
  rule: string;
  policy?: string;
  source: MaskSource;
  strategy: MaskingStrategy;
}

export interface ColumnPattern {
  source: string;
  /** schema, table, column globs; undefined parts are not constrained. */
  schema: GlobMatcher | undefined;
  table: GlobMatcher | undefined;
  column: GlobMatcher;
}

export interface CompiledMaskingRule {
  name: string;
  policy: string | undefined;
  strategy: MaskingStrategy;
  columns: ColumnPattern[] | undefined;
  jsonPaths: { source: string; segments: JsonPathSegment[] }[] | undefined;
  detectors: MaskingDetector[];
  patterns: SafePattern[];
}

/** A span to mask, in the coordinates of the scanned text. */
export interface MaskSpan {
  start: number;
  end: number;
  rule: CompiledMaskingRule;
  kind: MaskKind;
  label: string;
  source: MaskSource;
  /** privateKey: the block may go on past the end of the text. */
  open?: boolean;
  /** privateKey: continues a block masked before this text; replaced by nothing. */
  continued?: boolean;
  /** privateKey: the BEGIN label, needed to find the END line when a block is continued. */
  keyLabel?: string;
  /** Start of the text the match depends on, when before `start` (DetectorMatch.contextStart). */
  contextStart?: number;
}

export const scansContent = (rule: CompiledMaskingRule): boolean => rule.detectors.length > 0 || rule.patterns.length > 0;
export const selectsNothing = (rule: CompiledMaskingRule): boolean => rule.columns === undefined && rule.jsonPaths === undefined;

/** Finds the spans the rules' detectors and patterns mask, merged and sorted. */
export function scanText(text: string, rules: readonly CompiledMaskingRule[], options: DetectOptions = {}): MaskSpan[] {
  const spans: MaskSpan[] = [];
  const byDetector = new Map<MaskingDetector, DetectorMatch[]>();
  for (const rule of rules) {
    for (const detector of rule.detectors) {
      let found = byDetector.get(detector);
      if (found === undefined) {
        found = DETECTORS[detector](text, options);
        byDetector.set(detector, found);
      }
      for (const m of found) {
        const span: MaskSpan = { start: m.start, end: m.end, rule, kind: detector, label: detector, source: detector };
        if (m.open === true) span.open = true;
        if (m.continued === true) span.continued = true;
        if (m.label !== undefined) span.keyLabel = m.label;
        if (m.contextStart !== undefined) span.contextStart = m.contextStart;
        spans.push(span);
      }
    }
    for (const pattern of rule.patterns) {
      for (const m of pattern.matches(text)) {
        spans.push({ start: m.index, end: m.index + m.text.length, rule, kind: 'value', label: rule.name, source: 'pattern' });
      }
    }
  }
  return mergeSpans(spans);
}

/**
 * Sorts spans and merges overlapping ones: the union is masked with the strictest strategy among
 * them; a private key block keeps its identity (its open/continued state drives streaming).
 */
export function mergeSpans(spans: MaskSpan[]): MaskSpan[] {
  spans.sort((a, b) => a.start - b.start || STRATEGY_STRICTNESS[b.rule.strategy] - STRATEGY_STRICTNESS[a.rule.strategy]);
  const merged: MaskSpan[] = [];
  for (const span of spans) {
    const last = merged[merged.length - 1];
    if (last === undefined || span.start >= last.end) {
      merged.push({ ...span });
      continue;
    }
    const key = last.kind === 'privateKey' ? last : span.kind === 'privateKey' ? span : undefined;
    const strict = STRATEGY_STRICTNESS[span.rule.strategy] > STRATEGY_STRICTNESS[last.rule.strategy] ? span : last;
    const union: MaskSpan = { ...(key ?? strict), rule: strict.rule, start: last.start, end: Math.max(last.end, span.end) };
    const context = Math.min(last.contextStart ?? last.start, span.contextStart ?? span.start);
    if (context < union.start) union.contextStart = context;
    else delete union.contextStart;
    if (key !== undefined) {
      union.open = last.end >= span.end ? last.open : span.open;
      if (union.open !== true) delete union.open;
    }
    merged[merged.length - 1] = union;
  }
  return merged;
}

export function hitOf(rule: CompiledMaskingRule, source: MaskSource): MaskHit {
  const hit: MaskHit = { rule: rule.name, source, strategy: rule.strategy };
  if (rule.policy !== undefined) hit.policy = rule.policy;
  return hit;
}

/** The replacement of each span (continued private key blocks: nothing) and its hits. */
export function replacementsFor(
  text: string,
  spans: readonly MaskSpan[],
  hashKey: Uint8Array | undefined,
): { replacements: string[]; hits: MaskHit[] } {
  const replacements: string[] = [];
  const hits: MaskHit[] = [];
  for (const span of spans) {
    if (span.continued === true) {
      replacements.push('');
      continue;
    }
    const value = text.slice(span.start, span.end);
    replacements.push(replacement(value, { strategy: span.rule.strategy, kind: span.kind, label: span.label, hashKey }));
    hits.push(hitOf(span.rule, span.source));
  }
  return { replacements, hits };
}

/** Replaces merged spans in text; nullify redacts (text has no null). */
export function applySpans(text: string, spans: readonly MaskSpan[], hashKey: Uint8Array | undefined): { text: string; hits: MaskHit[] } {
  if (spans.length === 0) return { text, hits: [] };
  const { replacements, hits } = replacementsFor(text, spans, hashKey);
  const parts: string[] = [];
  let at = 0;
  spans.forEach((span, i) => {
    parts.push(text.slice(at, span.start), replacements[i] as string);
    at = span.end;
  });
  parts.push(text.slice(at));
  return { text: parts.join(''), hits };
}
