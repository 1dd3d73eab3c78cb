// One session: metadata, server-side verification, downloads, and the replay for its protocol.
// A live session (phase Active) is followed by polling for events in newly sealed chunks.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, getJson, sessionPath } from './api.ts';
import { HttpRequests } from './http.tsx';
import { SqlTimeline } from './sql.tsx';
import { TerminalReplay } from './terminal.tsx';
import { type EventsResult, formatOffset, payloadText, type RecEvent, type SessionSummary, type VerifyReport } from './types.ts';

const POLL_MS = 3_000;

function Verification({ base }: { base: string }) {
  const [report, setReport] = useState<VerifyReport | undefined>();
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    getJson<VerifyReport>(`${base}/verify`).then(setReport, (e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  }, [base]);
  if (error) return <div class="verify bad" data-testid="verification">Could not verify: {error}</div>;
  if (!report) return <div class="verify pending" data-testid="verification">Verifying chain and signatures…</div>;
  if (report.ok) {
    return (
      <div class="verify ok" data-testid="verification">
        ✔ Verified: {report.objects} chunk{report.objects === 1 ? '' : 's'}, {report.events} events, hash chain intact, every signature valid
        {report.closed ? ', manifest checked' : ' (session still open: no manifest yet)'}
        {report.bodiesChecked ? '' : '; encrypted bodies not decoded (no key)'}.
      </div>
    );
  }
  return (
    <div class="verify bad" data-testid="verification">
      ✘ Verification failed: {report.problems.length} problem{report.problems.length === 1 ? '' : 's'}
      <ul>
        {report.problems.map((p, i) => (
          <li key={i}>
            <code>{p.code}</code> {p.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Highlights({ events }: { events: RecEvent[] }) {
  const notable = events.filter((e) => e.k === 'deny' || e.k === 'approval' || ('decision' in e && e.decision !== 'allow' && e.decision !== undefined));
  if (notable.length === 0) return null;
  return (
    <section class="highlights" data-testid="highlights">
      <h3>Denials and approvals</h3>
      <ul>
        {notable.map((e) => (
          <li key={e.n} class={e.k === 'approval' ? 'approval' : 'deny'}>
            <span class="t">{formatOffset(e.t)}</span> <strong>{e.k}</strong>{' '}
            {e.k === 'deny'
              ? `${String(e.reason ?? '')}${e.what ? ` — ${payloadText(e.what)}` : ''}`
              : e.k === 'approval'
                ? `${String(e.request ?? '')} ${String(e.state ?? '')}${e.by ? ` by ${String(e.by)}` : ''}`
                : `${String(e.decision)} ${e.rule ? `(${String(e.rule)})` : ''}`}
          </li>
        ))}
      </ul>
    </section>
  );
}

export function SessionPage({ namespace, name }: { namespace: string; name: string }) {
  const base = sessionPath(namespace, name);
  const [session, setSession] = useState<SessionSummary | undefined>();
  const [events, setEvents] = useState<RecEvent[]>([]);
  const [live, setLive] = useState(false);
  const [revision, setRevision] = useState(0);
  const [error, setError] = useState<{ status: number; message: string } | undefined>();

  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    let next = 0;
    const fail = (e: unknown): void => setError(e instanceof ApiError ? { status: e.status, message: e.message } : { status: 0, message: String(e) });
    const poll = async (): Promise<void> => {
      try {
        const { session: s } = await getJson<{ session: SessionSummary }>(base);
        if (stopped) return;
        setSession(s);
        // Terminal bytes reach the page through the asciicast; the rest (commands, denials) as events.
        const result = await getJson<EventsResult>(`${base}/events?after=${next}${s.protocol === 'ssh' ? '&terminal=0' : ''}`);
        if (stopped) return;
        // New events after the first load (a live session): the player reloads its asciicast.
        const grewLater = next > 0 && result.next > next;
        next = result.next;
        if (result.events.length > 0) setEvents((previous) => [...previous, ...result.events]);
        if (grewLater) setRevision((r) => r + 1);
        setLive(result.live);
        if (result.more) timer = window.setTimeout(() => void poll(), 0);
        else if (result.live) timer = window.setTimeout(() => void poll(), POLL_MS);
      } catch (e) {
        if (!stopped) fail(e);
      }
    };
    void poll();
    return () => {
      stopped = true;
      if (timer !== undefined) window.clearTimeout(timer);
    };
  }, [base]);

  if (error) {
    return (
      <section class={`error-page status-${error.status}`} role="alert" data-testid="session-error">
        <h2>{error.status === 403 ? 'Access denied' : error.status === 404 ? 'Not found' : 'Cannot show this session'}</h2>
        <p>{error.message}</p>
      </section>
    );
  }
  if (!session) return <p class="loading">Loading…</p>;
  // Who the recording says authenticated (a gateway may create the Session object before that).
  const auth = events.find((e) => e.k === 'auth' && e.ok === true && typeof e.user === 'string');
  const user = auth && session.user === 'unauthenticated' ? String(auth.user) : session.user;
  return (
    <article class="session" data-testid="session-page" data-protocol={session.protocol}>
      <h2>
        {user} → {session.namespace}/{session.connection} <span class="proto">{session.protocol}</span>{' '}
        <span class={`phase phase-${session.phase}`}>{live ? 'live' : session.phase}</span>
      </h2>
      <dl class="meta">
        <dt>Session</dt>
        <dd>
          <code>{session.name}</code>
        </dd>
        <dt>Started</dt>
        <dd>{new Date(session.startedAt).toLocaleString()}</dd>
        {session.endedAt ? (
          <>
            <dt>Ended</dt>
            <dd>
              {new Date(session.endedAt).toLocaleString()} ({session.duration}){session.reason ? `, ${session.reason}` : ''}
            </dd>
          </>
        ) : null}
        <dt>Groups</dt>
        <dd>{session.groups.join(', ') || '—'}</dd>
        <dt>Client</dt>
        <dd>
          {session.clientAddress ?? '—'} {session.clientApplication ? `(${session.clientApplication})` : ''}
        </dd>
        <dt>Counts</dt>
        <dd>
          {session.commands} commands, <span class={session.denied > 0 ? 'deny' : ''}>{session.denied} denied</span>,{' '}
          <span class={session.approvals > 0 ? 'approval' : ''}>{session.approvals} approvals</span>, {session.bytesIn} B in, {session.bytesOut} B out
        </dd>
        <dt>Recording</dt>
        <dd>
          <code>{session.location ?? 'not shipped yet'}</code> ({session.chunks} chunks)
        </dd>
      </dl>
      <Verification base={base} />
      <p class="downloads">
        Download: {session.protocol === 'ssh' ? <a href={`${base}/asciicast?download=1`}>asciicast</a> : null}{' '}
        <a href={`${base}/export.jsonl`}>JSONL</a> {session.protocol === 'postgres' ? <a href={`${base}/statements.csv`}>statements CSV</a> : null}
      </p>
      <Highlights events={events} />
      {session.protocol === 'ssh' ? (
        <TerminalReplay src={`${base}/asciicast`} events={events} revision={revision} />
      ) : session.protocol === 'postgres' ? (
        <SqlTimeline events={events} />
      ) : (
        <HttpRequests events={events} />
      )}
    </article>
  );
}
