// Canonical JSON for everything the recorder signs or hashes as JSON (chunk headers, manifests).
// It is RFC 8785 (JSON Canonicalization Scheme) for the values we produce: object keys sorted by
// UTF-16 code units, no whitespace, strings and numbers exactly as ECMAScript JSON.stringify writes
// them. https://www.rfc-editor.org/rfc/rfc8785 — so a reader in another language can use any JCS
// library. The format only stores non-negative integers, so number formatting never hinges on
// the ECMAScript float algorithm in practice.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * Serializes `value` canonically. Object properties whose value is `undefined` are left out (as
 * JSON.stringify does); anything JSON cannot represent (undefined in arrays, NaN, Infinity,
 * functions, bigint) throws a TypeError — that is a bug in the caller, never data.
 */
export function canonicalJson(value: unknown): string {
  return write(value);
}

function write(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value))
        throw new TypeError(`canonicalJson: ${value} is not representable in JSON`);
      return JSON.stringify(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        return `[${value
          .map((item) => {
            if (item === undefined) throw new TypeError('canonicalJson: undefined inside an array');
            return write(item);
          })
          .join(',')}]`;
      }
      if (ArrayBuffer.isView(value))
        throw new TypeError('canonicalJson: binary values must be encoded first');
      const record = value as Record<string, unknown>;
      // Array.prototype.sort without a comparator orders by UTF-16 code units, as RFC 8785 §3.2.3 asks.
      const keys = Object.keys(record)
        .filter((key) => record[key] !== undefined)
        .sort();
      return `{${keys.map((key) => `${JSON.stringify(key)}:${write(record[key])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: a ${typeof value} is not representable in JSON`);
  }
}
