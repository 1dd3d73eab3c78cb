// A literal-insensitive cache key for SQL text, for the classifier's second cache level
// (classify.ts). In simple-query mode every statement carries its values inline
// (`SELECT abalance FROM pgbench_accounts WHERE aid = 48213`), so a cache keyed by exact text
// never hits. This key replaces each numeric and plain string literal by a marker character.
//
// Safety rests on one property: two texts with the same key must lex, in PostgreSQL's scanner
// (src/backend/parser/scan.l), to the same token sequence apart from the values of
// ICONST/FCONST/SCONST tokens, so the parser builds trees that differ only in A_Const values. The
// scanner below therefore only accepts what it lexes with certainty exactly as PostgreSQL does, and
// returns `undefined` ("do not use this level") for everything else. It is deliberately not a
// normalizer: whitespace stays as it is (adjacent strings separated by a newline are one literal
// in PostgreSQL; the same whitespace gives the same result), and anything unusual bails:
//
// - comment starts (`--`, `/*`): comments are the classic way to make a naive normalizer and the
//   parser disagree about where a string or a statement ends;
// - backslashes anywhere: with `standard_conforming_strings = off` the server reads `\'` inside a
//   string differently from the parser;
// - `$` other than a positional parameter `$<digits>` after a non-identifier character, so dollar
//   quoting (`$$…$$`, `$tag$…$tag$`) and `$` inside identifiers bail;
// - double quotes (quoted identifiers, `U&"…"`);
// - a quote after an identifier character or `&`: prefixed strings `E''`, `B''`, `X''`, `N''`,
//   `U&''` (escapes, bit strings, UESCAPE) and typed literals written without a space;
// - numbers other than `digits` (at most 9, always ICONST) and `digits.digits` (FCONST): exponents,
//   `0x…`/`0o…`/`0b…`, `1_000`, trailing identifier characters, `.5`, `1.`, `1..2`, and integers of
//   10 or more digits (which PostgreSQL makes ICONST or FCONST depending on their value);
//   integers and decimals get different markers, because the grammar accepts ICONST in places
//   where it rejects FCONST (`timestamp(3)`);
// - the identifier `float`: `float(p)` is the one place the grammar checks a literal's value
//   (p < 1 or p > 53 is an error), so the same key could parse or not depending on p;
// - the identifier `set_config`: the classifier reads its first argument, a constant
//   (`standard_conforming_strings` and `client_encoding` are privilege);
// - control characters other than tab, newline and carriage return (the markers are control
//   characters, so a key can never be confused with a text), ill-formed UTF-16 (lone surrogates),
//   an unterminated string, and texts longer than LITERAL_KEY_MAX_LENGTH (bounds the cache's memory).
//
// A digit run that follows an identifier character belongs to the identifier (`int4`, `t1`) and is
// kept. Strings follow the standard `''` escape rule.

/** Texts longer than this (UTF-16 code units) get no key. */
export const LITERAL_KEY_MAX_LENGTH = 8192;

/** Markers for the three literal kinds. Control characters: a text containing one gets no key. */
const INTEGER_MARK = '\u0001';
const STRING_MARK = '\u0002';
const DECIMAL_MARK = '\u0003';

/** The longest integer literal that PostgreSQL always lexes as ICONST (fits int32). */
const MAX_INTEGER_DIGITS = 9;

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const DOUBLE_QUOTE = 0x22;
const DOLLAR = 0x24;
const AMPERSAND = 0x26;
const QUOTE = 0x27;
const STAR = 0x2a;
const MINUS = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const BACKSLASH = 0x5c;
const UNDERSCORE = 0x5f;

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** scan.l's ident_start: [A-Za-z\200-\377_] (every non-ASCII character counts). */
const isIdentStart = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === UNDERSCORE || c >= 0x80;

/** scan.l's ident_cont: ident_start, digits and `$`. */
const isIdentChar = (c: number): boolean => isIdentStart(c) || isDigit(c) || c === DOLLAR;

/** A control character the key cannot carry (everything below space but tab, LF, CR). */
const isForbiddenControl = (c: number): boolean => c < SPACE && c !== TAB && c !== LF && c !== CR;

/**
 * The key of `text` with every literal replaced by a marker, or `undefined` when the text holds
 * anything this scanner cannot lex exactly as PostgreSQL does (see the list at the top).
 */
export function literalKey(text: string): string | undefined {
  const n = text.length;
  if (n > LITERAL_KEY_MAX_LENGTH || !text.isWellFormed()) return undefined;
  let key = '';
  let copied = 0; // text[copied, i) is still to be copied verbatim
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (isForbiddenControl(c) || c === DOUBLE_QUOTE || c === BACKSLASH) return undefined;
    if (c === QUOTE) {
      const before = i > 0 ? text.charCodeAt(i - 1) : SPACE;
      if (isIdentChar(before) || before === AMPERSAND) return undefined;
      let j = i + 1;
      for (;;) {
        if (j >= n) return undefined; // unterminated
        const s = text.charCodeAt(j);
        if (s === QUOTE) {
          if (text.charCodeAt(j + 1) !== QUOTE) break;
          j += 2;
          continue;
        }
        if (s === BACKSLASH || isForbiddenControl(s)) return undefined;
        j++;
      }
      key += text.slice(copied, i) + STRING_MARK;
      i = j + 1;
      copied = i;
      continue;
    }
    if (isDigit(c)) {
      const before = i > 0 ? text.charCodeAt(i - 1) : SPACE;
      // `.5` is a decimal in PostgreSQL; identifier characters were consumed with their identifier.
      if (before === DOT || isIdentChar(before)) return undefined;
      let j = i + 1;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      let mark = INTEGER_MARK;
      if (text.charCodeAt(j) === DOT) {
        if (!isDigit(text.charCodeAt(j + 1))) return undefined; // `1.`, `1..2`
        j += 2;
        while (j < n && isDigit(text.charCodeAt(j))) j++;
        mark = DECIMAL_MARK;
      } else if (j - i > MAX_INTEGER_DIGITS) {
        return undefined;
      }
      if (j < n) {
        const after = text.charCodeAt(j);
        // Exponents, 0x/0o/0b, underscores, trailing junk, `1.5.3`.
        if (isIdentChar(after) || after === DOT) return undefined;
      }
      key += text.slice(copied, i) + mark;
      i = j;
      copied = i;
      continue;
    }
    if (isIdentStart(c)) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d === DOLLAR) return undefined;
        if (!isIdentChar(d)) break;
        j++;
      }
      if (j - i === 5 && text.slice(i, j).toLowerCase() === 'float') return undefined;
      // classify.ts reads set_config's first argument (a setting that changes how SQL is read).
      if (j - i === 10 && text.slice(i, j).toLowerCase() === 'set_config') return undefined;
      i = j;
      continue;
    }
    if (c === DOLLAR) {
      // A positional parameter: `$` and digits, after a non-identifier character (identifier
      // characters were consumed above), not followed by an identifier character.
      let j = i + 1;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      if (j === i + 1 || (j < n && isIdentChar(text.charCodeAt(j)))) return undefined;
      i = j;
      continue;
    }
    if (c === MINUS && text.charCodeAt(i + 1) === MINUS) return undefined;
    if (c === SLASH && text.charCodeAt(i + 1) === STAR) return undefined;
    i++;
  }
  return copied === 0 ? text : key + text.slice(copied);
}

/**
 * The statement text the classifier reports for a single-statement `text`: without surrounding
 * whitespace and trailing semicolons. The classifier stores under a literal key only when the
 * parser's own cut of the statement equals this, so a cache hit reports the same text a parse would.
 */
export function singleStatementText(text: string): string {
  let end = text.length;
  for (;;) {
    const c = text.charCodeAt(end - 1);
    if (c === 0x3b /* ; */ || c === SPACE || c === TAB || c === LF || c === CR) end--;
    else break;
  }
  return text.slice(0, end).trim();
}
