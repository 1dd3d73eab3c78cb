// Built-in detectors of sensitive values: pure functions from a string to match ranges.
//
// Each detector finds candidates with a regular expression written here (never a user's) and
// confirms them in code (Luhn, mod-97, checksums, decoding). Every expression is linear by
// construction: quantifiers are bounded, none is nested inside another quantified group except
// where the group begins with a character its predecessor cannot match (so iterations split one
// way only), and each candidate's start is pinned by a one-character lookbehind. So the work per
// start position is bounded by a constant (the product of the small bounds written next to the
// expression), and a scan is linear in the input. detectors.test.ts runs each one against
// adversarial inputs with a time limit.
//
// All built-in detectors look at ASCII only; any other character (multi-byte text, undecodable
// bytes) separates candidates.
import type { MaskingDetector } from '../api/types.ts';

export interface DetectorMatch {
  /** UTF-16 offsets, end exclusive. */
  start: number;
  end: number;
  detector: MaskingDetector;
  /** privateKey only: the block has no END line in the text (masked to the end of the text). */
  open?: boolean;
  /** privateKey only: the match continues a block begun before the text (DetectOptions.insidePrivateKey). */
  continued?: boolean;
  /** privateKey only: the BEGIN label ("RSA PRIVATE KEY"), which the END line repeats. */
  label?: string;
  /**
   * Where the text that makes this a match begins, when before `start` (a label such as
   * "aws_secret_access_key=" that stays visible): streaming must not emit it apart from the value.
   */
  contextStart?: number;
}

export interface DetectOptions {
  /**
   * privateKey only: the text starts inside a private key block with this BEGIN label (streaming
   * continues a block whose start was already masked). Everything up to the matching END line is
   * part of the block.
   */
  insidePrivateKey?: string;
  /**
   * Where matches may start (default 0): the text before it is context for lookbehinds only, as
   * if the match search had begun there (the streaming masker passes the character before what it
   * holds). Not combined with insidePrivateKey.
   */
  from?: number;
}

export type Detector = (text: string, options?: DetectOptions) => DetectorMatch[];

/**
 * Longest match of each detector in characters, for the streaming masker's hold-back bound.
 * privateKey blocks are handled by state instead (see terminal.ts).
 */
export const DETECTOR_MAX_LENGTH: Record<MaskingDetector, number> = {
  email: 64 + 1 + 8 * 64 + 24,
  creditCard: 19 + 18,
  iban: 34 + 8,
  phone: 24,
  nationalId: 13,
  jwt: 1024 + 1 + 8192 + 1 + 1024, // a token with a signature of up to 1024 characters; longer ones and back-to-back tokens are longer
  cloudKey: 40 + 64 + 256,
  privateKey: Number.POSITIVE_INFINITY,
};

function* execAll(re: RegExp, text: string, from = 0): Generator<RegExpExecArray> {
  re.lastIndex = from;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    yield m;
    if (m[0].length === 0) re.lastIndex++;
  }
}

// ---------------------------------------------------------------------------------------------
// email: local part 1–64 of the usual characters, 1–8 labels (without dots) each followed by a
// dot, an alphabetic TLD of 2–24. Label iterations split only at dots. Per start: ≤ 64 + 8×(63+24).

const EMAIL = /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])/g;

export const detectEmail: Detector = (text, options = {}) =>
  [...execAll(EMAIL, text, options.from)].map((m) => ({ start: m.index, end: m.index + m[0].length, detector: 'email' }));

// ---------------------------------------------------------------------------------------------
// creditCard: 13–19 digits starting 2–6 (Visa, Mastercard, Amex, Discover, JCB, Diners,
// UnionPay, Maestro; not 0/1/7/8/9, which keeps timestamps and most ids out), single spaces or
// dashes between digits allowed, Luhn-valid. Each group iteration is one optional separator and a
// digit (disjoint classes), so the only choice is the count (≤ 18).

const CARD = /(?<![0-9])[2-6](?:[ -]?[0-9]){12,18}(?![0-9])/g;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

export const detectCreditCard: Detector = (text, options = {}) => {
  const found: DetectorMatch[] = [];
  CARD.lastIndex = options.from ?? 0;
  for (let m = CARD.exec(text); m !== null; m = CARD.exec(text)) {
    const candidate = m[0];
    // The longest run may be a card followed by more digits ("4111 1111 1111 1111 2024"): try
    // it, then each shorter prefix that ends before a separator.
    let end = -1;
    for (let length = candidate.length; length > 0; length--) {
      if (length < candidate.length && !/[ -]/.test(candidate[length] ?? '')) continue;
      const digits = candidate.slice(0, length).replace(/[ -]/g, '');
      if (digits.length < 13) break;
      if (digits.length <= 19 && luhnValid(digits)) {
        end = length;
        break;
      }
    }
    if (end === -1) {
      CARD.lastIndex = m.index + 1; // a card may start inside the rejected run
      continue;
    }
    found.push({ start: m.index, end: m.index + end, detector: 'creditCard' });
    CARD.lastIndex = m.index + end;
  }
  return found;
};

// ---------------------------------------------------------------------------------------------
// iban: country code, two check digits, then exactly the country's length of upper-case letters
// and digits, optionally in groups separated by single spaces; mod-97 must give 1 (ISO 13616).

/** IBAN lengths per country (SWIFT IBAN registry). Countries not listed are not detected. */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28,
  CH: 21, CR: 22, CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18,
  FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HR: 21, HU: 28, IE: 22,
  IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20, LU: 20,
  LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28, NL: 18,
  NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24, SC: 31,
  SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29,
  VA: 22, VG: 24, XK: 20, YE: 30,
};

const IBAN_START = /(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}/g;
const ALNUM_UPPER = /^[A-Z0-9]$/;
const ALNUM = /^[A-Za-z0-9]$/;

export function ibanValid(iban: string): boolean {
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    const value = code >= 65 ? code - 55 : code - 48;
    remainder = (value > 9 ? remainder * 100 + value : remainder * 10 + value) % 97;
  }
  return remainder === 1;
}

export const detectIban: Detector = (text, options = {}) => {
  const found: DetectorMatch[] = [];
  IBAN_START.lastIndex = options.from ?? 0;
  for (let m = IBAN_START.exec(text); m !== null; m = IBAN_START.exec(text)) {
    const expected = IBAN_LENGTHS[m[0].slice(0, 2)];
    if (expected === undefined) continue;
    let compact = m[0];
    let at = m.index + 4;
    while (compact.length < expected && at < text.length) {
      const ch = text[at] as string;
      if (ALNUM_UPPER.test(ch)) {
        compact += ch;
        at++;
      } else if (ch === ' ' && ALNUM_UPPER.test(text[at + 1] ?? '')) {
        at++;
      } else break;
    }
    if (compact.length !== expected || ALNUM.test(text[at] ?? '') || !ibanValid(compact)) {
      IBAN_START.lastIndex = m.index + 1;
      continue;
    }
    found.push({ start: m.index, end: at, detector: 'iban' });
    IBAN_START.lastIndex = at;
  }
  return found;
};

// ---------------------------------------------------------------------------------------------
// phone: deliberately conservative, because bare digit runs are everywhere (ids, amounts, dates):
// - international numbers written with a leading "+": 8–15 digits (E.164), single spaces, dots or
//   dashes between groups, at most one pair of parentheses around a group of 1–4 digits;
// - North American numbers with a separator: "(415) 555-2671", "415-555-2671", "415.555.2671".
// Not detected: national formats without "+" other than North American, numbers written without
// any separator, "415 555 2671" (too like other numbers).

const PHONE_INTERNATIONAL = /(?<![0-9A-Za-z+])\+[1-9][0-9 ().-]{6,22}[0-9](?![0-9])/g;
const PHONE_NANP = /(?<![0-9A-Za-z+(.-])(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[-.])[2-9][0-9]{2}[-.][0-9]{4}(?![0-9A-Za-z-])/g;

function internationalPhoneValid(candidate: string): boolean {
  const digits = candidate.replace(/[^0-9]/g, '').length;
  if (digits < 8 || digits > 15) return false;
  if (/[ .-]{2}|[ .-]\)|\([ .-]/.test(candidate)) return false;
  const open = candidate.indexOf('(');
  const close = candidate.indexOf(')');
  if (open === -1 && close === -1) return true;
  if (open === -1 || close < open || candidate.indexOf('(', open + 1) !== -1 || candidate.indexOf(')', close + 1) !== -1) return false;
  return /^[0-9]{1,4}$/.test(candidate.slice(open + 1, close));
}

export const detectPhone: Detector = (text, options = {}) => {
  const found: DetectorMatch[] = [];
  PHONE_INTERNATIONAL.lastIndex = options.from ?? 0;
  for (let m = PHONE_INTERNATIONAL.exec(text); m !== null; m = PHONE_INTERNATIONAL.exec(text)) {
    if (internationalPhoneValid(m[0])) found.push({ start: m.index, end: m.index + m[0].length, detector: 'phone' });
    else PHONE_INTERNATIONAL.lastIndex = m.index + 1;
  }
  const international = found.length;
  let next = 0; // international matches are in order; walk them alongside
  for (const m of execAll(PHONE_NANP, text, options.from)) {
    const start = m.index;
    const end = start + m[0].length;
    while (next < international && (found[next] as DetectorMatch).end <= start) next++;
    // "+1 (415) 555-2671" holds a North American number too: keep the international match.
    const other = found[next];
    if (next < international && other !== undefined && other.start < end) continue;
    found.push({ start, end, detector: 'phone' });
  }
  return found.sort((a, b) => a.start - b.start);
};

// ---------------------------------------------------------------------------------------------
// nationalId:
// - US Social Security numbers "123-45-6789" (dashes required), without the ranges never issued
//   (area 000, 666, 900–999; group 00; serial 0000) and two numbers published in advertising;
// - UK National Insurance numbers "AB 12 34 56 C" (spaces optional, upper case), without the
//   prefixes never issued (first letter D F I Q U V, second D F I O Q U V, BG GB KN NK NT TN ZZ);
// - German tax identification numbers (Steuer-IdNr): 11 digits not starting with 0, ISO 7064
//   MOD 11,10 check digit, and the digit-frequency rule of the first ten digits.

const SSN = /(?<![0-9-])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![0-9-])/g;
const NINO = /(?<![A-Za-z0-9])([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?![A-Za-z0-9])/g;
const NINO_EXCLUDED = new Set(['BG', 'GB', 'KN', 'NK', 'NT', 'TN', 'ZZ']);
const DE_TAX_ID = /(?<![0-9])[1-9][0-9]{10}(?![0-9])/g;

export function ssnValid(area: string, group: string, serial: string): boolean {
  if (area === '000' || area === '666' || area.startsWith('9')) return false;
  if (group === '00' || serial === '0000') return false;
  const whole = `${area}-${group}-${serial}`;
  return whole !== '078-05-1120' && whole !== '219-09-9999';
}

export function germanTaxIdValid(id: string): boolean {
  if (!/^[1-9][0-9]{10}$/.test(id)) return false;
  const counts = new Array<number>(10).fill(0);
  for (const ch of id.slice(0, 10)) counts[ch.charCodeAt(0) - 48]! += 1;
  const repeated = counts.filter((c) => c > 1);
  if (repeated.length !== 1 || (repeated[0] as number) > 3) return false;
  if (/(.)\1\1/.test(id.slice(0, 10))) return false; // a digit three times must not be in a row
  let product = 10;
  for (const ch of id.slice(0, 10)) {
    let sum = (ch.charCodeAt(0) - 48 + product) % 10;
    if (sum === 0) sum = 10;
    product = (sum * 2) % 11;
  }
  const check = (11 - product) % 10;
  return check === id.charCodeAt(10) - 48;
}

export const detectNationalId: Detector = (text, options = {}) => {
  const found: DetectorMatch[] = [];
  for (const m of execAll(SSN, text, options.from)) {
    if (ssnValid(m[1] as string, m[2] as string, m[3] as string)) found.push({ start: m.index, end: m.index + 11, detector: 'nationalId' });
  }
  for (const m of execAll(NINO, text, options.from)) {
    if (!NINO_EXCLUDED.has(m[1] as string)) found.push({ start: m.index, end: m.index + m[0].length, detector: 'nationalId' });
  }
  for (const m of execAll(DE_TAX_ID, text, options.from)) {
    if (germanTaxIdValid(m[0])) found.push({ start: m.index, end: m.index + 11, detector: 'nationalId' });
  }
  return found.sort((a, b) => a.start - b.start);
};

// ---------------------------------------------------------------------------------------------
// jwt: three base64url segments (header ≤ 1024, payload ≤ 8192; the signature may be empty for
// alg "none"); the header must decode to a JSON object with a string "alg". Segments cannot
// contain the dot that separates them. The last segment runs to the end of the base64 run, however
// long (a 4096-bit RSA signature is 683 characters, and back to back it also holds the next
// token's header): a bound there would make a long one match nothing at all.

const JWT = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,1021}\.[A-Za-z0-9_-]{2,8192}\.[A-Za-z0-9_-]*/g;

function jwtHeaderValid(segment: string): boolean {
  try {
    const header: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return header !== null && typeof header === 'object' && typeof (header as { alg?: unknown }).alg === 'string';
  } catch {
    return false;
  }
}

const JWT_CHAIN_CANDIDATES = 16;

/** A token starting exactly at lastIndex, e.g. inside the previous token's last segment. */
const JWT_AT = /eyJ[A-Za-z0-9_-]{5,1021}\.[A-Za-z0-9_-]{2,8192}\.[A-Za-z0-9_-]*/y;

/**
 * Tokens written back to back (`<jwt><jwt>`, no separator): the first token's last segment runs
 * on into the next token's header, up to its first dot, so the next token alone never matches.
 * Looks for a valid token starting inside the last segment and extends the span over it, for as
 * many tokens as are chained.
 */
function chainedJwtEnd(text: string, segmentStart: number, end: number): number {
  while (text.charCodeAt(end) === 0x2e /* . */) {
    let next = -1;
    // The next token's header ends at the dot at `end` (segments hold no dots): only its start is
    // open. The header is checked first, and at most JWT_CHAIN_CANDIDATES starts are tried per
    // segment, so a segment crafted full of "eyJ" cannot make this quadratic (a random signature
    // holds "eyJ" about once in 4,000 tokens).
    let tries = 0;
    for (let at = text.indexOf('eyJ', segmentStart); at !== -1 && at < end && tries < JWT_CHAIN_CANDIDATES; at = text.indexOf('eyJ', at + 1)) {
      tries++;
      if (end - at < 8 || !jwtHeaderValid(text.slice(at, end))) continue;
      JWT_AT.lastIndex = at;
      const m = JWT_AT.exec(text);
      if (m !== null) {
        next = at;
        segmentStart = at + m[0].lastIndexOf('.') + 1;
        end = at + m[0].length;
        break;
      }
    }
    if (next === -1) break;
  }
  return end;
}

export const detectJwt: Detector = (text, options = {}) => {
  const found: DetectorMatch[] = [];
  for (const m of execAll(JWT, text, options.from)) {
    if (!jwtHeaderValid(m[0].slice(0, m[0].indexOf('.')))) continue;
    const end = chainedJwtEnd(text, m.index + m[0].lastIndexOf('.') + 1, m.index + m[0].length);
    found.push({ start: m.index, end, detector: 'jwt' });
    JWT.lastIndex = end;
  }
  return found;
};

// ---------------------------------------------------------------------------------------------
// cloudKey: AWS access key ids (AKIA long-term, ASIA temporary, ABIA/ACCA), AWS secret access keys
// where a label names them (aws_secret_access_key=, "SecretAccessKey": ...; only the key is
// masked), GCP API keys (AIza...), GitHub tokens (ghp_ gho_ ghu_ ghs_ ghr_, github_pat_), GitLab
// personal access tokens (glpat-), Slack tokens (xoxb- xoxp- xoxa- xoxo- xoxs- xoxr-), Stripe live
// secret keys (sk_live_, rk_live_) and Azure storage account keys (AccountKey=...).

interface KeyPattern {
  re: RegExp;
  /** Mask only the first capture group (the label stays visible). */
  group?: boolean;
}

const CLOUD_KEYS: KeyPattern[] = [
  { re: /(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])/g },
  {
    re: /(?<![A-Za-z0-9])(?:aws_?secret_?(?:access_?)?key|secret_?access_?key)["']?[ \t]{0,8}[:=][ \t]{0,8}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/dgi,
    group: true,
  },
  { re: /(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])/g },
  { re: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,244})(?![A-Za-z0-9_])/g },
  { re: /(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,64}(?![A-Za-z0-9_-])/g },
  { re: /(?<![A-Za-z0-9-])xox[abposr]-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])/g },
  { re: /(?<![A-Za-z0-9_])[rs]k_live_[A-Za-z0-9]{24,247}(?![A-Za-z0-9_])/g },
  { re: /AccountKey=([A-Za-z0-9+/]{86}==)/dg, group: true },
];

export const detectCloudKey: Detector = (text, options = {}) => {
  const found: DetectorMatch[] = [];
  for (const { re, group } of CLOUD_KEYS) {
    for (const m of execAll(re, text, options.from)) {
      const span = group ? m.indices?.[1] : undefined;
      if (span !== undefined) found.push({ start: span[0], end: span[1], detector: 'cloudKey', contextStart: m.index });
      else found.push({ start: m.index, end: m.index + m[0].length, detector: 'cloudKey' });
    }
  }
  return found.sort((a, b) => a.start - b.start);
};

// ---------------------------------------------------------------------------------------------
// privateKey: PEM and OpenSSH private key blocks ("-----BEGIN RSA PRIVATE KEY-----",
// "-----BEGIN OPENSSH PRIVATE KEY-----", "-----BEGIN ENCRYPTED PRIVATE KEY-----", PGP "PRIVATE
// KEY BLOCK") through the matching END line. The block goes on while its lines look like a key
// body (base64 and the "Proc-Type:"/"DEK-Info:" headers); a line with any other character ends it
// early (a truncated key, `head id_rsa`), so it never swallows the rest of the output. A block
// whose last line reaches the end of the text may go on: it is marked open. One pass, linear.

const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?)-----/y;
const BEGIN_MARK = '-----BEGIN ';
const BODY = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=:,- \t') BODY[ch.charCodeAt(0)] = 1;

/** From `at` (inside a block with this label), where the block ends and whether it may go on. */
function privateKeyBlockEnd(text: string, at: number, label: string): { end: number; open: boolean } {
  const endMark = `-----END ${label}-----`;
  const n = text.length;
  let i = at;
  let lastBody = at;
  for (;;) {
    while (i < n && (text[i] === '\n' || text[i] === '\r')) i++;
    if (i >= n) return { end: n, open: true };
    if (text.startsWith(endMark, i)) return { end: i + endMark.length, open: false };
    let j = i;
    while (j < n && BODY[text.charCodeAt(j)] === 1) j++;
    if (j >= n) return { end: n, open: true };
    const ch = text[j];
    if (ch !== '\n' && ch !== '\r') return { end: i === at ? at : lastBody, open: false };
    lastBody = j;
    i = j;
  }
}

export const detectPrivateKey: Detector = (text, options = {}) => {
  const found: DetectorMatch[] = [];
  let from = options.from ?? 0;
  if (options.insidePrivateKey !== undefined) {
    const label = options.insidePrivateKey;
    const block = privateKeyBlockEnd(text, 0, label);
    if (block.end > 0 || block.open) found.push({ start: 0, end: block.end, detector: 'privateKey', open: block.open, continued: true, label });
    if (block.open) return found;
    from = block.end;
  }
  for (let begin = text.indexOf(BEGIN_MARK, from); begin !== -1; begin = text.indexOf(BEGIN_MARK, from)) {
    PEM_BEGIN.lastIndex = begin;
    const m = PEM_BEGIN.exec(text);
    if (m === null) {
      from = begin + 1;
      continue;
    }
    const label = m[1] as string;
    const block = privateKeyBlockEnd(text, begin + m[0].length, label);
    found.push({ start: begin, end: Math.max(block.end, begin + m[0].length), detector: 'privateKey', open: block.open, label });
    if (block.open) break;
    from = Math.max(block.end, begin + m[0].length);
  }
  return found;
};

export const DETECTORS: Readonly<Record<MaskingDetector, Detector>> = {
  email: detectEmail,
  creditCard: detectCreditCard,
  iban: detectIban,
  phone: detectPhone,
  nationalId: detectNationalId,
  jwt: detectJwt,
  cloudKey: detectCloudKey,
  privateKey: detectPrivateKey,
};
