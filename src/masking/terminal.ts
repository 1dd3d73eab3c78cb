// Masking terminal output that arrives in chunks split anywhere (SSH channel data, kubectl exec
// streams).
//
// Bytes: output is decoded as UTF-8 with undecodable bytes kept as lone surrogates U+DC80–U+DCFF
// (Python's "surrogateescape"), and encoded back the same way, so every byte that is not masked
// leaves exactly as it came, binary output included. A multi-byte character split across chunks
// waits (at most 3 bytes) for its end.
//
// ANSI escape sequences (ECMA-48 CSI, OSC/DCS/SOS/PM/APC strings, short escapes) are invisible to
// the detectors: they run on the visible text, so a key coloured in the middle is still one key,
// and a mask never cuts through an escape sequence (the sequences inside a masked span are kept,
// so colours and cursor state survive). Text inside OSC strings (window titles, hyperlink targets)
// is not scanned.
//
// Split secrets: each push masks and emits everything except the last `holdBack` visible
// characters (default 4096), and never emits a part of a match that could still grow. A secret is
// caught whatever the split as long as its match is at most `holdBack` characters long and no
// flush() falls inside it: then the streamed output equals masking the whole text at once
// (terminal.test.ts checks this property). The gateway calls flush() when the target has been quiet
// for a moment (interactive echo must not wait for 4096 more characters); a secret whose chunks
// are further apart than that may escape in part. Private key blocks are longer than the hold-back:
// from its BEGIN line a block is held until its END line, up to `maxHeld` characters (default
// 65536); beyond that, or at a flush, what is held is masked and the stream stays "inside the
// block", masking everything up to the END line. Other matches longer than `maxHeld` are masked
// only in the part that was held.
import { type CompiledMaskingRule, type MaskHit, type MaskSpan, replacementsFor, scanText } from './scan.ts';

export interface TerminalStreamOptions {
  /** Visible characters held back after each push; the longest secret guaranteed to be caught across a split. */
  holdBack?: number;
  /** Most visible characters held while a match is open (a private key block without END). */
  maxHeld?: number;
  /** Treat ANSI escape sequences as invisible (default true). */
  ansi?: boolean;
}

export interface MaskedBytes {
  bytes: Uint8Array;
  hits: MaskHit[];
}

export interface TerminalMaskStream {
  /** Masks what can be decided so far and returns it; the rest is held. */
  push(chunk: Uint8Array): MaskedBytes;
  /** Emits everything held (except an incomplete UTF-8 character): call when the output has been idle. */
  flush(): MaskedBytes;
  /** Emits everything; the stream must not be used afterwards. */
  end(): MaskedBytes;
}

export const DEFAULT_HOLD_BACK = 4096;
export const DEFAULT_MAX_HELD = 65_536;
/** Smallest hold-back accepted: covers a private key BEGIN line and a labelled AWS secret key. */
export const MIN_HOLD_BACK = 128;

// ---------------------------------------------------------------------------------------------
// UTF-8 with surrogate escapes

/** Decodes UTF-8; invalid bytes become U+DC80–U+DCFF. Without `final`, an incomplete last character is returned as `rest`. */
export function decodeUtf8Escaped(bytes: Uint8Array, final: boolean): { text: string; rest: Uint8Array } {
  const units: number[] = [];
  const parts: string[] = [];
  const n = bytes.length;
  let i = 0;
  const spill = (): void => {
    parts.push(String.fromCharCode(...units));
    units.length = 0;
  };
  while (i < n) {
    if (units.length >= 8192) spill();
    const b = bytes[i] as number;
    if (b < 0x80) {
      units.push(b);
      i++;
      continue;
    }
    let need: number;
    let cp: number;
    let min = 0x80;
    let max = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      cp = b & 0x0f;
      if (b === 0xe0) min = 0xa0;
      if (b === 0xed) max = 0x9f; // no UTF-16 surrogates encoded in UTF-8
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      cp = b & 0x07;
      if (b === 0xf0) min = 0x90;
      if (b === 0xf4) max = 0x8f;
    } else {
      units.push(0xdc00 + b);
      i++;
      continue;
    }
    let valid = true;
    for (let j = 1; j <= need; j++) {
      if (i + j >= n) {
        if (!final) {
          spill();
          return { text: parts.join(''), rest: bytes.slice(i) };
        }
        valid = false;
        break;
      }
      const c = bytes[i + j] as number;
      if (c < (j === 1 ? min : 0x80) || c > (j === 1 ? max : 0xbf)) {
        valid = false;
        break;
      }
      cp = (cp << 6) | (c & 0x3f);
    }
    if (!valid) {
      units.push(0xdc00 + b);
      i++;
      continue;
    }
    if (cp > 0xffff) {
      cp -= 0x10000;
      units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else units.push(cp);
    i += need + 1;
  }
  spill();
  return { text: parts.join(''), rest: new Uint8Array(0) };
}

const ESCAPED_BYTE = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/g;

/** Encodes text as UTF-8, turning escaped bytes (lone U+DC80–U+DCFF) back into the bytes. */
export function encodeUtf8Escaped(text: string): Uint8Array {
  const parts: Buffer[] = [];
  let at = 0;
  ESCAPED_BYTE.lastIndex = 0;
  for (let m = ESCAPED_BYTE.exec(text); m !== null; m = ESCAPED_BYTE.exec(text)) {
    if (m.index > at) parts.push(Buffer.from(text.slice(at, m.index), 'utf8'));
    parts.push(Buffer.of(text.charCodeAt(m.index) - 0xdc00));
    at = m.index + 1;
  }
  if (at === 0) return Buffer.from(text, 'utf8');
  if (at < text.length) parts.push(Buffer.from(text.slice(at), 'utf8'));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// ANSI escape sequences

const ESC = 0x1b;
const MAX_CSI = 256;
const MAX_STRING = 4096;
const MAX_SHORT = 16;

/**
 * End (exclusive) of the escape sequence starting at `i` (raw[i] is ESC), or -1 when the text ends
 * before the sequence does. Malformed sequences end where they stop making sense; over-long ones at
 * their length cap.
 */
export function escapeEnd(raw: string, i: number, final: boolean): number {
  const n = raw.length;
  const incomplete = (j: number): number => (final ? j : -1);
  if (i + 1 >= n) return incomplete(n);
  const c = raw[i + 1];
  if (c === '[') {
    for (let j = i + 2; j < n; j++) {
      if (j - i >= MAX_CSI) return j;
      const x = raw.charCodeAt(j);
      if (x >= 0x40 && x <= 0x7e) return j + 1;
      if (x < 0x20 || x > 0x3f) return j;
    }
    return incomplete(n);
  }
  if (c === ']' || c === 'P' || c === 'X' || c === '^' || c === '_') {
    for (let j = i + 2; j < n; j++) {
      if (j - i >= MAX_STRING) return j;
      const x = raw.charCodeAt(j);
      if (x === 0x07) return j + 1;
      if (x === ESC) {
        if (j + 1 >= n) return incomplete(n);
        return raw[j + 1] === '\\' ? j + 2 : j;
      }
    }
    return incomplete(n);
  }
  for (let j = i + 1; j < n; j++) {
    if (j - i >= MAX_SHORT) return j;
    const x = raw.charCodeAt(j);
    if (x >= 0x20 && x <= 0x2f) continue;
    return x >= 0x30 && x <= 0x7e ? j + 1 : j;
  }
  return incomplete(n);
}

/** Raw text split into visible text and escape sequences. */
export interface Projection {
  visible: string;
  /** Text tokens: raw start, raw end, visible start. Escapes are the gaps between them. */
  texts: { raw: number; rawEnd: number; vis: number }[];
  /** Raw offset of an incomplete escape at the end, or raw.length. */
  complete: number;
}

export function project(raw: string, ansi: boolean, final: boolean): Projection {
  if (!ansi || raw.indexOf('\u001b') === -1) {
    return { visible: raw, texts: raw.length === 0 ? [] : [{ raw: 0, rawEnd: raw.length, vis: 0 }], complete: raw.length };
  }
  const texts: Projection['texts'] = [];
  const visible: string[] = [];
  let vis = 0;
  let at = 0;
  while (at < raw.length) {
    const esc = raw.indexOf('\u001b', at);
    const textEnd = esc === -1 ? raw.length : esc;
    if (textEnd > at) {
      texts.push({ raw: at, rawEnd: textEnd, vis });
      visible.push(raw.slice(at, textEnd));
      vis += textEnd - at;
    }
    if (esc === -1) break;
    const end = escapeEnd(raw, esc, final);
    if (end === -1) return { visible: visible.join(''), texts, complete: esc };
    at = end;
  }
  return { visible: visible.join(''), texts, complete: raw.length };
}

/** Raw offset of visible offset `v` (escapes before the character belong to what precedes it). */
function rawOffset(p: Projection, v: number): number {
  for (const t of p.texts) {
    if (v < t.vis + (t.rawEnd - t.raw)) return t.raw + (v - t.vis);
  }
  return p.complete;
}

/** Renders raw[0, rawEnd) with the spans (visible coordinates) replaced. */
function render(raw: string, p: Projection, rawEnd: number, spans: readonly MaskSpan[], replacements: readonly string[]): string {
  const out: string[] = [];
  let at = 0; // raw offset written so far
  let s = 0; // next span
  for (const t of p.texts) {
    if (t.raw >= rawEnd) break;
    if (t.raw > at) out.push(raw.slice(at, t.raw)); // escapes
    const end = Math.min(t.rawEnd, rawEnd);
    let r = t.raw;
    while (r < end) {
      const v = t.vis + (r - t.raw);
      while (s < spans.length && (spans[s] as MaskSpan).end <= v) s++;
      const span = spans[s];
      if (span === undefined || span.start >= t.vis + (end - t.raw)) {
        out.push(raw.slice(r, end));
        r = end;
        break;
      }
      if (span.start > v) {
        out.push(raw.slice(r, r + (span.start - v)));
        r += span.start - v;
        continue;
      }
      if (span.start === v || r === t.raw) {
        // The replacement goes where the span's first visible character was.
        if (span.start === v) out.push(replacements[s] as string);
      }
      const skip = Math.min(span.end - v, end - r);
      r += skip;
    }
    at = end;
  }
  if (rawEnd > at) out.push(raw.slice(at, rawEnd));
  return out.join('');
}

// ---------------------------------------------------------------------------------------------
// The stream

export function createTerminalStream(
  rules: readonly CompiledMaskingRule[],
  hashKey: Uint8Array | undefined,
  options: TerminalStreamOptions = {},
): TerminalMaskStream {
  const holdBack = Math.max(MIN_HOLD_BACK, options.holdBack ?? DEFAULT_HOLD_BACK);
  const maxHeld = Math.max(holdBack + 1, options.maxHeld ?? DEFAULT_MAX_HELD);
  const ansi = options.ansi ?? true;
  let pending: Uint8Array = new Uint8Array(0); // incomplete UTF-8 character
  let held = ''; // decoded, not yet emitted
  let before = ''; // the visible character before `held`, for one-character lookbehinds
  let insideKey: string | undefined; // BEGIN label of a private key block being masked
  let ended = false;

  const none = (): MaskedBytes => ({ bytes: new Uint8Array(0), hits: [] });

  // Spans of the held visible text. The character before it is scanned too, for the detectors'
  // one-character lookbehinds; a span starting on that character is a phantom (its own lookbehind
  // could not see what precedes it, and a real one would have kept the cut before it), so it is
  // dropped. Inside a private key block nothing before matters.
  function scan(visible: string): MaskSpan[] {
    if (insideKey !== undefined) return scanText(visible, rules, { insidePrivateKey: insideKey });
    const offset = before.length;
    const spans: MaskSpan[] = [];
    // Matches start at `offset` at the earliest: the character before is lookbehind context only.
    // (Dropping a match that started on it afterwards is not the same: it may have consumed text a
    // real match needed.)
    for (const span of scanText(before + visible, rules, offset > 0 ? { from: offset } : {})) {
      if (span.start < offset) continue;
      const shifted: MaskSpan = { ...span, start: span.start - offset, end: span.end - offset };
      if (span.contextStart !== undefined) shifted.contextStart = Math.max(span.contextStart, offset) - offset;
      spans.push(shifted);
    }
    return spans;
  }

  function emit(mode: 'push' | 'flush' | 'end'): MaskedBytes {
    if (held.length === 0) return none();
    const final = mode !== 'push';
    const p = project(held, ansi, final);
    const found = scan(p.visible);
    let cut = p.visible.length;
    let forced = final;
    if (!final) {
      cut = p.visible.length - holdBack;
      // Move the cut before every match it would cut through; moving it may make it cut through
      // an earlier one, so repeat until it stays (each round moves it left, spans are few).
      for (let moved = true; moved; ) {
        moved = false;
        for (const span of found) {
          const from = span.contextStart ?? span.start;
          if (from < cut && (span.end > cut || span.open === true)) {
            cut = from;
            moved = true;
          }
        }
      }
      if (p.visible.length - Math.max(cut, 0) > maxHeld) {
        cut = p.visible.length - holdBack;
        forced = true;
      }
      // Never between the two halves of a surrogate pair (an emoji would be encoded broken).
      const previous = p.visible.charCodeAt(cut - 1);
      if (cut > 0 && previous >= 0xd800 && previous <= 0xdbff) cut--;
      if (cut <= 0) return none();
    }
    // Spans reaching past the cut (or open) are emitted only when forced, clipped to the cut; a
    // private key block clipped this way is continued in the next emission.
    const spans: MaskSpan[] = [];
    let nextInside: string | undefined;
    for (const span of found) {
      if (span.start >= cut) break;
      if (span.end > cut || span.open === true) {
        if (!forced) break;
        spans.push({ ...span, end: Math.min(span.end, cut) });
        if (span.kind === 'privateKey' && span.keyLabel !== undefined) nextInside = span.keyLabel;
      } else spans.push(span);
    }
    const { replacements, hits } = replacementsFor(p.visible, spans, hashKey);
    const rawEnd = cut >= p.visible.length ? (final ? held.length : p.complete) : rawOffset(p, cut);
    const text = render(held, p, rawEnd, spans, replacements);
    insideKey = nextInside;
    if (cut > 0) before = p.visible.slice(cut - 1, cut);
    held = held.slice(rawEnd);
    return { bytes: encodeUtf8Escaped(text), hits };
  }

  return {
    push(chunk) {
      if (ended) throw new Error('terminal mask stream used after end()');
      let bytes = chunk;
      if (pending.length > 0) {
        const joined = new Uint8Array(pending.length + chunk.length);
        joined.set(pending, 0);
        joined.set(chunk, pending.length);
        bytes = joined;
      }
      const decoded = decodeUtf8Escaped(bytes, false);
      pending = decoded.rest;
      held += decoded.text;
      return emit('push');
    },
    flush() {
      if (ended) throw new Error('terminal mask stream used after end()');
      return emit('flush');
    },
    end() {
      if (ended) throw new Error('terminal mask stream used after end()');
      if (pending.length > 0) {
        held += decodeUtf8Escaped(pending, true).text;
        pending = new Uint8Array(0);
      }
      const out = emit('end');
      ended = true;
      return out;
    },
  };
}
