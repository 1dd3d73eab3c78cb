// The session list: filters (kept in the URL), server-side paging with the API's continue token.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getJson } from './api.ts';
import { navigate } from './nav.ts';
import type { ListResult, SessionSummary } from './types.ts';

const FILTER_KEYS = ['user', 'connection', 'namespace', 'protocol', 'phase', 'since', 'until', 'denials', 'approvals'] as const;
type Filters = Partial<Record<(typeof FILTER_KEYS)[number], string>>;

function filtersFrom(search: string): Filters {
  const params = new URLSearchParams(search);
  const filters: Filters = {};
  for (const key of FILTER_KEYS) {
    const value = params.get(key);
    if (value) filters[key] = value;
  }
  return filters;
}

function query(filters: Filters): URLSearchParams {
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) {
    const value = filters[key];
    if (!value) continue;
    // datetime-local has no zone: it is the browser's local time.
    params.set(key, (key === 'since' || key === 'until') && !/Z|[+-]\d\d:\d\d$/.test(value) ? new Date(value).toISOString() : value);
  }
  return params;
}

export function SessionList({ search }: { search: string }) {
  const [filters, setFilters] = useState<Filters>(() => filtersFrom(search));
  const [applied, setApplied] = useState<Filters>(() => filtersFrom(search));
  const [rows, setRows] = useState<SessionSummary[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [loading, setLoading] = useState(false);

  const load = async (from: string | undefined): Promise<void> => {
    setLoading(true);
    setError(undefined);
    try {
      const params = query(applied);
      params.set('limit', '50');
      if (from) params.set('continue', from);
      const result = await getJson<ListResult>(`/api/sessions?${params.toString()}`);
      setRows((previous) => (from ? [...previous, ...result.items] : result.items));
      setNext(result.continue);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    void load(undefined);
  }, [JSON.stringify(applied)]);

  const set = (key: keyof Filters) => (e: Event) => {
    const target = e.currentTarget as HTMLInputElement;
    setFilters({ ...filters, [key]: target.type === 'checkbox' ? (target.checked ? '1' : '') : target.value });
  };
  const apply = (e: Event): void => {
    e.preventDefault();
    const params = new URLSearchParams();
    for (const key of FILTER_KEYS) if (filters[key]) params.set(key, filters[key] as string);
    window.history.replaceState(null, '', params.size > 0 ? `/?${params.toString()}` : '/');
    setApplied({ ...filters });
  };

  return (
    <section>
      <form class="filters" onSubmit={apply} data-testid="filters">
        <label>
          User <input name="user" value={filters.user ?? ''} onInput={set('user')} placeholder="contains…" />
        </label>
        <label>
          Connection <input name="connection" value={filters.connection ?? ''} onInput={set('connection')} placeholder="name" />
        </label>
        <label>
          Protocol
          <select name="protocol" value={filters.protocol ?? ''} onChange={set('protocol')}>
            <option value="">any</option>
            <option value="ssh">ssh</option>
            <option value="postgres">postgres</option>
            <option value="kubernetes">kubernetes</option>
            <option value="http">http</option>
          </select>
        </label>
        <label>
          Phase
          <select name="phase" value={filters.phase ?? ''} onChange={set('phase')}>
            <option value="">any</option>
            <option>Active</option>
            <option>Closed</option>
            <option>Terminated</option>
            <option>Denied</option>
          </select>
        </label>
        <label>
          From <input name="since" type="datetime-local" value={filters.since ?? ''} onInput={set('since')} />
        </label>
        <label>
          To <input name="until" type="datetime-local" value={filters.until ?? ''} onInput={set('until')} />
        </label>
        <label class="check">
          <input name="denials" type="checkbox" checked={filters.denials === '1'} onChange={set('denials')} /> had denials
        </label>
        <label class="check">
          <input name="approvals" type="checkbox" checked={filters.approvals === '1'} onChange={set('approvals')} /> had approvals
        </label>
        <button type="submit">Apply</button>
      </form>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <table class="sessions" data-testid="session-table">
        <thead>
          <tr>
            <th>Started</th>
            <th>User</th>
            <th>Connection</th>
            <th>Protocol</th>
            <th>Phase</th>
            <th>Duration</th>
            <th>Commands</th>
            <th>Denied</th>
            <th>Approvals</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((s) => (
            <tr
              key={`${s.namespace}/${s.name}`}
              class={s.denied > 0 ? 'had-denials' : s.approvals > 0 ? 'had-approvals' : ''}
              data-session={s.name}
              data-protocol={s.protocol}
            >
              <td>
                <a
                  href={`/sessions/${s.namespace}/${s.name}`}
                  onClick={(e) => {
                    e.preventDefault();
                    navigate(`/sessions/${s.namespace}/${s.name}`);
                  }}
                >
                  {new Date(s.startedAt).toLocaleString()}
                </a>
              </td>
              <td>{s.user}</td>
              <td>
                {s.namespace}/{s.connection}
              </td>
              <td>{s.protocol}</td>
              <td>
                <span class={`phase phase-${s.phase}`}>{s.phase}</span>
              </td>
              <td>{s.duration ?? (s.phase === 'Active' ? 'live' : '')}</td>
              <td>{s.commands}</td>
              <td class={s.denied > 0 ? 'deny' : ''}>{s.denied}</td>
              <td class={s.approvals > 0 ? 'approval' : ''}>{s.approvals}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length === 0 && !loading && !error ? <p class="empty">No sessions you may view match these filters.</p> : null}
      {next ? (
        <button type="button" disabled={loading} onClick={() => void load(next)}>
          Load more
        </button>
      ) : null}
      {loading ? <p class="loading">Loading…</p> : null}
    </section>
  );
}
