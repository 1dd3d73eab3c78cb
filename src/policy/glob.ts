// Glob patterns of AccessPolicy matchers (table names, hosts, HTTP paths). They are matched by
// simulating the pattern as a non-deterministic automaton, one input character at a time, so a
// match costs at most O(input length × pattern length) whatever the pattern: no regular
// expression, no backtracking.
//
// Syntax: `*` matches any run of characters, except the separator when one is given (HTTP paths:
// `/`); with `doubleStar`, `**` matches any run including separators. Every other character,
// `?` and `[` included, stands for itself.

export interface GlobOptions {
  /** A character `*` does not cross (`**` does, when enabled). */
  separator?: string;
  /** Treat `**` as "any run including separators". */
  doubleStar?: boolean;
  /** Compare after lower-casing both sides (ASCII and Unicode simple lower case). */
  caseInsensitive?: boolean;
}

export type GlobMatcher = (input: string) => boolean;

const LIT = 0;
const STAR = 1; // any run without separator
const ANY = 2; // any run

interface Token {
  kind: typeof LIT | typeof STAR | typeof ANY;
  ch: string;
}

export function compileGlob(pattern: string, options: GlobOptions = {}): GlobMatcher {
  const fold = options.caseInsensitive === true;
  const source = fold ? pattern.toLowerCase() : pattern;
  const tokens: Token[] = [];
  for (let i = 0; i < source.length; i++) {
    const ch = source[i] as string;
    if (ch !== '*') {
      tokens.push({ kind: LIT, ch });
      continue;
    }
    let kind: Token['kind'] = options.separator === undefined ? ANY : STAR;
    if (options.doubleStar === true && source[i + 1] === '*') {
      kind = ANY;
      i++;
    }
    const previous = tokens[tokens.length - 1];
    // Runs of stars collapse: `***` is `**`, `*` after `**` adds nothing.
    if (previous !== undefined && previous.kind !== LIT) {
      if (kind === ANY) previous.kind = ANY;
      continue;
    }
    tokens.push({ kind, ch: '' });
  }
  if (!tokens.some((t) => t.kind !== LIT)) {
    const literal = source;
    return (input) => (fold ? input.toLowerCase() : input) === literal;
  }
  const separator = options.separator;
  const size = tokens.length + 1;
  return (raw) => {
    const input = fold ? raw.toLowerCase() : raw;
    let current = new Uint8Array(size);
    let next = new Uint8Array(size);
    current[0] = 1;
    closeOverStars(tokens, current);
    for (const ch of input) {
      next.fill(0);
      let alive = false;
      for (let state = 0; state < tokens.length; state++) {
        if (current[state] === 0) continue;
        const token = tokens[state] as Token;
        if (token.kind === LIT) {
          if (token.ch === ch) {
            next[state + 1] = 1;
            alive = true;
          }
        } else if (token.kind === ANY || ch !== separator) {
          next[state] = 1;
          alive = true;
        }
      }
      if (!alive) return false;
      closeOverStars(tokens, next);
      [current, next] = [next, current];
    }
    return current[tokens.length] === 1;
  };
}

// A star may match the empty run: a state before a star also reaches the state after it.
function closeOverStars(tokens: Token[], states: Uint8Array): void {
  for (let state = 0; state < tokens.length; state++) {
    if (states[state] === 1 && (tokens[state] as Token).kind !== LIT) states[state + 1] = 1;
  }
}

/**
 * HTTP path globs: `*` within one segment, `**` across segments; a trailing `/**` also matches
 * the path without it (`/admin/**` matches `/admin`, `/admin/` and `/admin/users/1`).
 */
export function compilePathGlob(pattern: string): GlobMatcher {
  const glob = compileGlob(pattern, { separator: '/', doubleStar: true });
  if (!pattern.endsWith('/**') || pattern.length <= 3) return glob;
  const base = compileGlob(pattern.slice(0, -3), { separator: '/', doubleStar: true });
  return (input) => glob(input) || base(input);
}

/** Host globs: `*` matches any run (dots included), compared case-insensitively. */
export function compileHostGlob(pattern: string): GlobMatcher {
  return compileGlob(pattern, { caseInsensitive: true });
}
