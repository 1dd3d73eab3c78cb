import v8 from 'node:v8';
import { RE2JS } from 're2js';

// User-supplied patterns must run in linear time (docs/adr/0003-safe-regular-expressions.md).
// V8 falls back to its non-backtracking engine when a match backtracks excessively; the flag has
// to be set before any pattern is compiled, so importing this module sets it. Measured on Node 24:
// the fallback engine takes no `i`, `u` or `v` flag (with those a catastrophic pattern still
// hangs), so case-insensitive patterns run on re2js (pure-JS RE2, linear, slower) instead.
v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

/** A user pattern that was rejected, with the reason to show the author of the policy. */
export class PatternError extends Error {
  readonly code = 'WARDEN_INVALID_PATTERN';
  readonly pattern: string;
  constructor(pattern: string, reason: string) {
    super(`pattern ${JSON.stringify(pattern)} is not allowed: ${reason}`);
    this.name = 'PatternError';
    this.pattern = pattern;
  }
}

/** Longest pattern a policy may carry; keeps compilation cost and policy size bounded. */
export const MAX_PATTERN_LENGTH = 1024;

export interface PatternOptions {
  caseInsensitive?: boolean;
  /** `^`/`$` match at line boundaries. */
  multiline?: boolean;
  /** `.` matches newlines too. */
  dotAll?: boolean;
}

export interface PatternMatch {
  /** Offset in UTF-16 code units, as String.prototype.slice counts. */
  index: number;
  text: string;
}

/** A compiled user pattern that runs in time linear in its input. */
export interface SafePattern {
  readonly source: string;
  test(input: string): boolean;
  /** Non-overlapping matches left to right (empty matches are skipped). */
  matches(input: string): Iterable<PatternMatch>;
}

/**
 * Compiles a user-supplied pattern after checking it is in the common subset of RE2 and
 * JavaScript syntax: RE2 rules out backreferences and lookaround (which have no linear-time
 * algorithm), JavaScript rules out RE2-only syntax such as a leading `(?i)`.
 */
export function compileUserPattern(pattern: string, options: PatternOptions = {}): SafePattern {
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new PatternError(pattern.slice(0, 40), `longer than ${MAX_PATTERN_LENGTH} characters`);
  }
  let re2: RE2JS;
  try {
    const flags =
      (options.caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0) |
      (options.multiline ? RE2JS.MULTILINE : 0) |
      (options.dotAll ? RE2JS.DOTALL : 0);
    re2 = RE2JS.compile(pattern, flags);
  } catch (error) {
    throw new PatternError(pattern, `not valid RE2 syntax (${(error as Error).message})`);
  }
  let v8re: RegExp;
  try {
    v8re = new RegExp(pattern, `g${options.multiline ? 'm' : ''}${options.dotAll ? 's' : ''}`);
  } catch (error) {
    throw new PatternError(pattern, `not valid JavaScript syntax for a regular expression (${(error as Error).message})`);
  }
  return options.caseInsensitive ? re2Pattern(pattern, re2) : v8Pattern(pattern, v8re);
}

function v8Pattern(source: string, re: RegExp): SafePattern {
  return {
    source,
    test(input) {
      re.lastIndex = 0;
      return re.test(input);
    },
    *matches(input) {
      for (const m of input.matchAll(re)) {
        if (m[0].length > 0) yield { index: m.index, text: m[0] };
      }
    },
  };
}

function re2Pattern(source: string, re: RE2JS): SafePattern {
  return {
    source,
    test(input) {
      return re.matcher(input).find();
    },
    *matches(input) {
      const m = re.matcher(input);
      while (m.find()) {
        const text = m.group() ?? '';
        if (text.length > 0) yield { index: m.start(), text };
      }
    },
  };
}
