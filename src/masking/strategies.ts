// How a masked value is replaced (MaskingRule.strategy):
// - redact:  "[REDACTED:<what>]" where <what> is the detector (email, creditCard, …) or the masking
//            rule's name for columns, JSON paths and custom patterns. Not length-preserving, so the
//            placeholder does not leak the length; it names what was found so a user understands
//            the output. (The CRD description says "(****)"; this is the placeholder chosen.)
// - partial: keeps what identifies a value to a person without disclosing it: the last four
//            digits of cards, phones, IBANs and national ids (separators kept, other digits "*"),
//            the first character and the domain of an email ("a***@example.com"), "****" and the
//            last four characters of anything else of twelve characters or more, "****" for shorter
//            values; a private key is redacted.
// - hash:    "hash:" + the first 16 hex digits (64 bits) of HMAC-SHA256(key, value), so equal values
//            stay equal (joins, counting) and a guessed value cannot be checked without the key.
// - nullify: the caller's null (SQL NULL, JSON null); in free text there is no null, so it redacts.
import { createHmac } from 'node:crypto';
import type { MaskingDetector, MaskingStrategy } from '../api/types.ts';

export const HASH_PREFIX = 'hash:';
export const HASH_HEX_DIGITS = 16;
export const MIN_HASH_KEY_BYTES = 16;

/** What was found, for choosing a partial form: a detector, or a whole value / custom pattern. */
export type MaskKind = MaskingDetector | 'value';

export function redacted(label: string): string {
  return `[REDACTED:${label}]`;
}

export function hashed(key: Uint8Array, value: string): string {
  const digest = createHmac('sha256', key).update(value, 'utf8').digest('hex');
  return `${HASH_PREFIX}${digest.slice(0, HASH_HEX_DIGITS)}`;
}

const EMAIL_SHAPE = /^([^@\s]{1,64})@([A-Za-z0-9.-]{1,253})$/;
const DIGIT_SHAPE = /^\+?[0-9 ().-]{4,64}$/;

export function partial(value: string, kind: MaskKind, label: string): string {
  if (kind === 'privateKey') return redacted(label);
  if (kind === 'email' || (kind === 'value' && EMAIL_SHAPE.test(value))) {
    const m = EMAIL_SHAPE.exec(value);
    if (m !== null) return `${(m[1] as string).slice(0, 1)}***@${m[2] as string}`;
  }
  const structured = kind === 'creditCard' || kind === 'phone' || kind === 'iban' || kind === 'nationalId';
  if (structured || (kind === 'value' && DIGIT_SHAPE.test(value) && /[0-9]{4}$/.test(value))) {
    return keepLastAlnum(value, 4);
  }
  return value.length >= 12 ? `****${value.slice(-4)}` : '****';
}

/** Replaces every letter and digit but the last `keep` with "*", keeping separators and "+". */
function keepLastAlnum(value: string, keep: number): string {
  let kept = 0;
  const out: string[] = [];
  for (let i = value.length - 1; i >= 0; i--) {
    const ch = value[i] as string;
    if (/[0-9A-Za-z]/.test(ch)) {
      out.push(kept < keep ? ch : '*');
      kept++;
    } else out.push(ch);
  }
  return out.reverse().join('');
}

export interface ReplaceContext {
  strategy: MaskingStrategy;
  kind: MaskKind;
  /** Detector name or masking rule name, shown by redact. */
  label: string;
  hashKey: Uint8Array | undefined;
}

/**
 * The replacement text for a masked value in text (free text, terminal output, a span inside a
 * cell): nullify redacts here; callers that can represent null check for nullify themselves.
 */
export function replacement(value: string, ctx: ReplaceContext): string {
  switch (ctx.strategy) {
    case 'partial':
      return partial(value, ctx.kind, ctx.label);
    case 'hash':
      // A masker without a key cannot hash; never fall back to the clear value.
      return ctx.hashKey === undefined ? redacted(ctx.label) : hashed(ctx.hashKey, value);
    case 'redact':
    case 'nullify':
      return redacted(ctx.label);
  }
}

/** Strictest first: when masked spans overlap, the strictest strategy masks their union. */
export const STRATEGY_STRICTNESS: Readonly<Record<MaskingStrategy, number>> = { nullify: 3, redact: 2, hash: 1, partial: 0 };
