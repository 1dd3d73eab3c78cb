// The JSONPath subset masking rules use to select values in JSON bodies (RFC 9535 syntax, a subset):
//   $                 the whole document
//   .name  ['name']   a member (["name"] too; in the bracket form any characters, \' and \\ escaped)
//   [0]               an array element (non-negative index)
//   .*  [*]           every member or element
//   ..name  ..*       the member `name` at any depth / every descendant
// Filters, slices, unions and negative indices are not supported and are reported when compiling.

export type JsonPathSegment =
  | { kind: 'member'; name: string }
  | { kind: 'index'; index: number }
  | { kind: 'wildcard' }
  | { kind: 'descendant'; name: string | undefined };

export class JsonPathError extends Error {
  readonly code = 'WARDEN_INVALID_JSONPATH';
  constructor(path: string, reason: string) {
    super(`JSONPath ${JSON.stringify(path.slice(0, 100))} is not supported: ${reason}`);
    this.name = 'JsonPathError';
  }
}

const NAME = /[A-Za-z_$\u0080-\uFFFF][A-Za-z0-9_$\-\u0080-\uFFFF]*/y;
const INDEX = /[0-9]{1,9}\]/y;

export function parseJsonPath(path: string): JsonPathSegment[] {
  if (!path.startsWith('$')) throw new JsonPathError(path, 'it must start with $');
  const segments: JsonPathSegment[] = [];
  let at = 1;
  const name = (): string | undefined => {
    NAME.lastIndex = at;
    const m = NAME.exec(path);
    if (m === null) return undefined;
    at = NAME.lastIndex;
    return m[0];
  };
  while (at < path.length) {
    if (path.startsWith('..', at)) {
      at += 2;
      if (path[at] === '*') {
        at++;
        segments.push({ kind: 'descendant', name: undefined });
        continue;
      }
      if (path[at] === '[') {
        const member = bracket();
        if (member === undefined || typeof member !== 'string') throw new JsonPathError(path, `expected a name after .. at ${at}`);
        segments.push({ kind: 'descendant', name: member });
        continue;
      }
      const n = name();
      if (n === undefined) throw new JsonPathError(path, `expected a name after .. at ${at}`);
      segments.push({ kind: 'descendant', name: n });
    } else if (path[at] === '.') {
      at++;
      if (path[at] === '*') {
        at++;
        segments.push({ kind: 'wildcard' });
        continue;
      }
      const n = name();
      if (n === undefined) throw new JsonPathError(path, `expected a name after . at ${at}`);
      segments.push({ kind: 'member', name: n });
    } else if (path[at] === '[') {
      const inner = bracket();
      if (inner === undefined) throw new JsonPathError(path, `unsupported bracket expression at ${at}`);
      segments.push(inner === '*' ? { kind: 'wildcard' } : typeof inner === 'number' ? { kind: 'index', index: inner } : { kind: 'member', name: inner.name });
    } else {
      throw new JsonPathError(path, `unexpected ${JSON.stringify(path[at])} at ${at}`);
    }
  }
  return segments;

  // Returns '*', an index, {name} for a quoted member, or undefined.
  function bracket(): '*' | number | { name: string } | undefined {
    at++; // [
    if (path.startsWith('*]', at)) {
      at += 2;
      return '*';
    }
    INDEX.lastIndex = at;
    const index = INDEX.exec(path);
    if (index !== null) {
      at = INDEX.lastIndex;
      return Number(index[0].slice(0, -1));
    }
    const quote = path[at];
    if (quote !== "'" && quote !== '"') return undefined;
    let out = '';
    for (at++; at < path.length; at++) {
      const ch = path[at] as string;
      if (ch === '\\') {
        const next = path[at + 1];
        if (next !== quote && next !== '\\') return undefined;
        out += next;
        at++;
      } else if (ch === quote) {
        if (path[at + 1] !== ']') return undefined;
        at += 2;
        return { name: out };
      } else out += ch;
    }
    return undefined;
  }
}

/** A place in a JSON document: the container and the key or index of the value. */
export interface JsonLocation {
  container: Record<string, unknown> | unknown[];
  key: string | number;
}

/** Most locations one path may select in one document; beyond it the rest are not visited. */
export const MAX_JSON_LOCATIONS = 100_000;

/**
 * The locations a path selects under `holder.root` (the root itself is `{container: holder, key:
 * 'root'}`). Iterative, so deeply nested documents cannot exhaust the stack.
 */
export function selectJsonPath(holder: { root: unknown }, segments: readonly JsonPathSegment[]): JsonLocation[] {
  let current: JsonLocation[] = [{ container: holder as Record<string, unknown>, key: 'root' }];
  for (const segment of segments) {
    const next: JsonLocation[] = [];
    const push = (location: JsonLocation): void => {
      if (next.length < MAX_JSON_LOCATIONS) next.push(location);
    };
    for (const location of current) {
      const value = valueAt(location);
      switch (segment.kind) {
        case 'member':
          if (isObject(value) && Object.hasOwn(value, segment.name)) push({ container: value, key: segment.name });
          break;
        case 'index':
          if (Array.isArray(value) && segment.index < value.length) push({ container: value, key: segment.index });
          break;
        case 'wildcard':
          for (const child of children(value)) push(child);
          break;
        case 'descendant': {
          const stack: unknown[] = [value];
          while (stack.length > 0 && next.length < MAX_JSON_LOCATIONS) {
            const node = stack.pop();
            for (const child of children(node)) {
              if (segment.name === undefined || child.key === segment.name) push(child);
              stack.push(valueAt(child));
            }
          }
          break;
        }
      }
    }
    current = next;
  }
  return current;
}

export function valueAt(location: JsonLocation): unknown {
  return (location.container as Record<string | number, unknown>)[location.key];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function children(value: unknown): JsonLocation[] {
  if (Array.isArray(value)) return value.map((_, index) => ({ container: value, key: index }));
  if (isObject(value)) return Object.keys(value).map((key) => ({ container: value, key }));
  return [];
}
