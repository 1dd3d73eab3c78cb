import { describe, expect, it } from 'vitest';
import { API_VERSION, type Session } from '../api/types.ts';
import type { Grants } from './access.ts';
import { decodeCursor, encodeCursor, type FetchPage, listScope, listSessions, matchesFilter, parseFilter } from './listing.ts';

let counter = 0;
function aSession(overrides: { connection?: string; namespace?: string; user?: string; protocol?: Session['spec']['protocol']; startedAt?: string; status?: Session['status'] } = {}): Session {
  counter += 1;
  return {
    apiVersion: API_VERSION,
    kind: 'Session',
    metadata: { name: `s${String(counter).padStart(6, '0')}`, namespace: overrides.namespace ?? 'shop' },
    spec: { connection: overrides.connection ?? 'orders', protocol: overrides.protocol ?? 'postgres', user: overrides.user ?? 'alice@example.com', startedAt: overrides.startedAt ?? '2026-11-22T08:00:00.000Z' },
    status: overrides.status ?? { phase: 'Closed' },
  };
}

const grants = (...keys: string[]): Grants => ({ connections: new Set(keys), policyOf: new Map() });

/** The API server's paging over a fixed list, with its own opaque continue tokens. */
function fakeApi(all: Session[]): { fetch: FetchPage; calls: number } {
  const state = { calls: 0 };
  const fetch: FetchPage = async (scope, limit, token) => {
    state.calls += 1;
    const selected = all.filter((s) => {
      if (scope.namespace && s.metadata.namespace !== scope.namespace) return false;
      const m = /^warden\.dev\/connection(?:=(.+)| in \((.+)\))$/.exec(scope.labelSelector ?? '');
      if (m) return (m[1] ? [m[1]] : (m[2] ?? '').split(',')).includes(s.spec.connection);
      return true;
    });
    const start = token ? Number(token.slice(1)) : 0;
    const items = selected.slice(start, start + limit);
    return { items, ...(start + limit < selected.length ? { continue: `#${start + limit}` } : {}) };
  };
  return {
    fetch,
    get calls() {
      return state.calls;
    },
  };
}

describe('parseFilter', () => {
  it('reads every filter', () => {
    const filter = parseFilter(new URLSearchParams('user=Alice&connection=orders&protocol=ssh&phase=Closed&since=2026-11-22T00:00:00Z&until=2026-11-23&denials=1&approvals=true'));
    expect(filter).toEqual({ user: 'alice', connection: 'orders', protocol: 'ssh', phase: 'Closed', since: Date.parse('2026-11-22T00:00:00Z'), until: Date.parse('2026-11-23'), hadDenials: true, hadApprovals: true });
  });
  it.each(['protocol=telnet', 'phase=Running', 'since=yesterday', 'connection=a%2Cb', 'connection=x)%20or%20(y', 'namespace=A_B'])('refuses %s', (query) => {
    expect(() => parseFilter(new URLSearchParams(query))).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });
});

describe('matchesFilter', () => {
  it.each([
    [{ user: 'ali' }, true],
    [{ user: 'bob' }, false],
    [{ protocol: 'ssh' as const }, false],
    [{ phase: 'Closed' as const }, true],
    [{ since: Date.parse('2026-11-22T08:00:00Z') }, true],
    [{ until: Date.parse('2026-11-22T08:00:00Z') }, false],
    [{ hadDenials: true }, false],
    [{ hadApprovals: true }, true],
  ])('%j → %s', (filter, expected) => {
    expect(matchesFilter(aSession({ status: { phase: 'Closed', approvals: 1 } }), filter)).toBe(expected);
  });
});

describe('listScope', () => {
  it('narrows to one namespace and a label selector of the granted connections', () => {
    expect(listScope(grants('shop/orders', 'shop/billing'), {})).toEqual({ namespace: 'shop', labelSelector: 'warden.dev/connection in (billing,orders)', empty: false });
    expect(listScope(grants('shop/orders', 'ops/box'), { connection: 'box' })).toEqual({ namespace: 'ops', labelSelector: 'warden.dev/connection=box', empty: false });
    expect(listScope(grants('shop/orders', 'ops/box'), {})).toEqual({ labelSelector: 'warden.dev/connection in (box,orders)', empty: false });
  });
  it('asks nothing when the viewer may see nothing the filter names', () => {
    expect(listScope(grants(), {}).empty).toBe(true);
    expect(listScope(grants('shop/orders'), { connection: 'billing' }).empty).toBe(true);
  });
});

describe('listSessions', () => {
  it('pages through matching rows with continue tokens, never returning a row twice or skipping one', async () => {
    const all = Array.from({ length: 1_000 }, (_, i) => aSession({ user: i % 3 === 0 ? 'bob' : 'alice', connection: i % 5 === 0 ? 'secret' : 'orders' }));
    const api = fakeApi(all);
    const seen: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await listSessions(api.fetch, { filter: { user: 'bob' }, grants: grants('shop/orders'), limit: 37, apiPageSize: 100, ...(token ? { continueToken: token } : {}) });
      expect(page.items.length).toBeLessThanOrEqual(37);
      seen.push(...page.items.map((s) => s.name));
      token = page.continue;
      pages += 1;
    } while (token);
    const expected = all.filter((s) => s.spec.user === 'bob' && s.spec.connection === 'orders').map((s) => s.metadata.name ?? '');
    expect(seen.sort()).toEqual(expected.sort());
    expect(pages).toBe(Math.ceil(expected.length / 37));
  });

  it('never returns sessions of connections outside the grants, even when the selector is not used', async () => {
    const all = [aSession({ connection: 'orders' }), aSession({ connection: 'billing' }), aSession({ connection: 'orders', namespace: 'other' })];
    const result = await listSessions(fakeApi(all).fetch, { filter: {}, grants: grants('shop/orders', 'ops/box'), limit: 50 });
    expect(result.items.map((s) => `${s.namespace}/${s.connection}`)).toEqual(['shop/orders']);
  });

  it('bounds the objects read per request with a selective filter and hands back a token to go on', async () => {
    const all = Array.from({ length: 20_000 }, () => aSession({ user: 'alice' }));
    const result = await listSessions(fakeApi(all).fetch, { filter: { user: 'nobody' }, grants: grants('shop/orders'), limit: 50, maxScan: 5_000 });
    expect(result.items).toEqual([]);
    expect(result.scanned).toBe(5_000);
    expect(result.continue).toBeDefined();
  });

  it('sorts each page newest first', async () => {
    const all = [aSession({ startedAt: '2026-01-01T00:00:00Z' }), aSession({ startedAt: '2026-03-01T00:00:00Z' }), aSession({ startedAt: '2026-02-01T00:00:00Z' })];
    const result = await listSessions(fakeApi(all).fetch, { filter: {}, grants: grants('shop/orders'), limit: 50 });
    expect(result.items.map((s) => s.startedAt.slice(0, 7))).toEqual(['2026-03', '2026-02', '2026-01']);
  });

  it('returns no row twice when a later request asks for a different limit', async () => {
    const all = Array.from({ length: 300 }, () => aSession());
    const api = fakeApi(all);
    const seen: string[] = [];
    let token: string | undefined;
    let limit = 90;
    do {
      const page = await listSessions(api.fetch, { filter: {}, grants: grants('shop/orders'), limit, ...(token ? { continueToken: token } : {}) });
      seen.push(...page.items.map((s) => s.name));
      token = page.continue;
      limit = limit === 90 ? 7 : 90;
    } while (token);
    expect(seen.sort()).toEqual(all.map((s) => s.metadata.name).sort());
  });

  it('refuses a continue token it did not issue', async () => {
    await expect(listSessions(fakeApi([]).fetch, { filter: {}, grants: grants('shop/orders'), limit: 5, continueToken: 'garbage' })).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(decodeCursor(encodeCursor({ c: 'abc', s: 3, p: 100 }))).toEqual({ c: 'abc', s: 3, p: 100 });
  });
});
