// Go duration strings as the CRDs carry them ("30s", "1h30m", "500ms", "1.5h"), parsed the way
// Go's time.ParseDuration does (https://pkg.go.dev/time#ParseDuration), minus negative values:
// every duration in Warden is a limit or a timeout, so a sign is rejected rather than guessed at.

const UNIT_MS = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign, as Go accepts
  'μs': 1e-3, // U+03BC Greek mu, as Go accepts
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
} as const;

// One "<number><unit>" element; the number is digits with an optional fraction (".5" and "5."
// are accepted, like Go). Sticky, no nested quantifiers.
const ELEMENT = /([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)/y;

/** Longest duration accepted: 100 years, far beyond any sensible limit, well inside float precision. */
export const MAX_DURATION_MS = 100 * 365 * 24 * 3_600_000;

export class DurationError extends Error {
  readonly code = 'WARDEN_INVALID_DURATION';
  constructor(input: string, reason: string) {
    super(`duration ${JSON.stringify(input.slice(0, 40))} is not valid: ${reason}; write a Go duration such as "30s", "15m" or "1h30m"`);
    this.name = 'DurationError';
  }
}

/** Parses a Go duration string into milliseconds (possibly fractional, e.g. "1us" is 0.001). */
export function parseGoDuration(input: string): number {
  if (input === '0') return 0; // Go accepts a bare zero without unit
  if (input.length === 0) throw new DurationError(input, 'it is empty');
  if (input.length > 64) throw new DurationError(input, 'it is longer than 64 characters');
  if (input.startsWith('-') || input.startsWith('+')) throw new DurationError(input, 'it has a sign');
  let total = 0;
  let at = 0;
  while (at < input.length) {
    ELEMENT.lastIndex = at;
    const m = ELEMENT.exec(input);
    if (!m) throw new DurationError(input, `unexpected ${JSON.stringify(input.slice(at, at + 8))}`);
    const whole = m[1] ?? '';
    const fraction = m[2] ?? '';
    if (whole === '' && fraction === '') throw new DurationError(input, 'a unit without a number');
    const value = Number(`${whole || '0'}.${fraction || '0'}`);
    total += value * UNIT_MS[m[3] as keyof typeof UNIT_MS];
    at = ELEMENT.lastIndex;
  }
  if (!Number.isFinite(total) || total > MAX_DURATION_MS) {
    throw new DurationError(input, 'it is longer than 100 years');
  }
  return total;
}

/**
 * Formats milliseconds the way Go's Duration.String does for non-negative values: "0s", "500ms",
 * "1.5s", "12m30s", "1h0m0s". Sub-millisecond parts are rounded to whole microseconds.
 */
export function formatGoDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`not a non-negative duration: ${ms}`);
  const us = Math.round(ms * 1000);
  if (us === 0) return '0s';
  if (us < 1000) return `${us}µs`;
  if (us < 1_000_000) return `${trimFraction(us / 1000)}ms`;
  const hours = Math.floor(us / 3_600_000_000);
  const minutes = Math.floor((us % 3_600_000_000) / 60_000_000);
  const seconds = (us % 60_000_000) / 1_000_000;
  if (hours > 0) return `${hours}h${minutes}m${trimFraction(seconds)}s`;
  if (minutes > 0) return `${minutes}m${trimFraction(seconds)}s`;
  return `${trimFraction(seconds)}s`;
}

function trimFraction(value: number): string {
  return value.toFixed(6).replace(/\.?0+$/, '');
}
