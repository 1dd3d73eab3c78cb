// The web viewer's API against real parts: `warden ui` as a subprocess over the plane's API
// server and MinIO, recordings from the real SSH gateway and the real Recorder, tokens from the
// plane's OIDC issuer. What is checked: who may list and open which sessions, that tokens are
// verified, that replays are audited, and what the downloads contain.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitUntil } from '../plane/proc.ts';
import { mintToken, REJECTED_TOKEN_VARIANTS } from '../plane/tokens.ts';
import { capPayload, Decision, EventKind } from '../../src/recorder/events.ts';
import { startViewerWorld, type ViewerWorld } from './fixture.ts';

const plane = inject('plane');

/**
 * Waits until the viewer's log file holds a line matching `pattern`: the test process writes the
 * child's output to the file asynchronously, so a line logged before the response may land after it.
 */
async function logged(pattern: RegExp): Promise<void> {
  await waitUntil(`a log line matching ${pattern}`, async () => readFileSync(world.logFile, 'utf8').split('\n').some((line) => pattern.test(line)), { timeoutMs: 5_000, intervalMs: 20 });
}
let world: ViewerWorld;

const get = async (path: string, token?: string): Promise<Response> =>
  await fetch(`${world.url}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
const json = async <T>(path: string, token: string): Promise<{ status: number; body: T }> => {
  const response = await get(path, token);
  return { status: response.status, body: (await response.json()) as T };
};
const sessionPath = (s: { metadata: { namespace?: string; name?: string } }): string => `/api/sessions/${s.metadata.namespace}/${s.metadata.name}`;

interface ListBody {
  items: Array<{ name: string; connection: string; protocol: string; user: string; denied: number }>;
  continue?: string;
}

beforeAll(async () => {
  world = await startViewerWorld(plane, 'api');
}, 120_000);

afterAll(async () => {
  await world?.stop();
});

describe('warden ui API: authentication', () => {
  it('refuses a request without a token with 401 and says where to log in', async () => {
    const response = await get('/api/sessions');
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: 'UNAUTHENTICATED' }, login: '/auth/login' });
  });

  it.each(REJECTED_TOKEN_VARIANTS)('refuses a %s token', async (variant) => {
    const token = await mintToken(plane.oidc, { user: 'vera' }, variant);
    const response = await get('/api/sessions', token);
    expect(response.status).toBe(401);
  });

  it('starts the authorization code flow with PKCE at the issuer', async () => {
    const response = await fetch(`${world.url}/auth/login?returnTo=/sessions/x/y`, { redirect: 'manual' });
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get('location') ?? '');
    expect(`${location.origin}${location.pathname}`).toBe(`${plane.oidc.issuer}/authorize`);
    expect(location.searchParams.get('code_challenge_method')).toBe('S256');
    expect(location.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(location.searchParams.get('redirect_uri')).toBe(`${world.url}/auth/callback`);
    expect(response.headers.get('set-cookie')).toMatch(/^warden_ui_login=[^;]+; Path=\/; HttpOnly; SameSite=Lax/);
  });

  it('completes a login (code + PKCE), serves the API on the session cookie, refuses a replayed callback, and logs out', async () => {
    const start = await fetch(`${world.url}/auth/login?returnTo=/sessions`, { redirect: 'manual' });
    const loginCookie = (start.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const authorize = new URL(start.headers.get('location') ?? '');
    const form = new URLSearchParams(authorize.searchParams);
    form.set('username', 'vera');
    const issued = await fetch(`${plane.oidc.issuer}/authorize`, { method: 'POST', body: form, redirect: 'manual' });
    const callback = issued.headers.get('location') ?? '';
    expect(callback.startsWith(`${world.url}/auth/callback?`)).toBe(true);

    const done = await fetch(callback, { headers: { cookie: loginCookie }, redirect: 'manual' });
    expect(done.status).toBe(302);
    expect(done.headers.get('location')).toBe('/sessions');
    const session = done.headers.getSetCookie().find((c) => c.startsWith('warden_ui='));
    expect(session).toMatch(/^warden_ui=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    const cookie = (session ?? '').split(';')[0] ?? '';
    const me = await fetch(`${world.url}/api/me`, { headers: { cookie } });
    expect(await me.json()).toMatchObject({ user: 'vera', connections: expect.arrayContaining([`${world.namespace}/box`]) });

    expect((await fetch(callback, { headers: { cookie: loginCookie }, redirect: 'manual' })).status).toBe(401);
    await fetch(`${world.url}/auth/logout`, { headers: { cookie }, redirect: 'manual' });
    expect((await fetch(`${world.url}/api/me`, { headers: { cookie } })).status).toBe(401);
  });

  it('refuses a callback whose state this browser did not start', async () => {
    const response = await fetch(`${world.url}/auth/callback?code=abc&state=forged`, { redirect: 'manual' });
    expect(response.status).toBe(401);
  });
});

describe('warden ui API: only the RecordingPolicy viewers see sessions', () => {
  it('lists the sessions of the connections a group viewer may see, and no others', async () => {
    const { status, body } = await json<ListBody>(`/api/sessions?namespace=${world.namespace}`, await world.token('dana', ['auditors']));
    expect(status).toBe(200);
    expect(body.items.map((s) => s.connection).sort()).toEqual(['box', 'orders-api', 'orders-db']);
  });

  it('lets a user viewer of the other policy see only its connection', async () => {
    const { body } = await json<ListBody>(`/api/sessions?namespace=${world.namespace}`, await world.token('root-auditor'));
    expect(body.items.map((s) => s.connection)).toEqual(['vault-db']);
  });

  it('lists nothing for someone in no viewers list, and refuses to open a session with 403', async () => {
    const token = await world.token('erin', ['ops', 'developers']);
    const { body } = await json<ListBody>(`/api/sessions?namespace=${world.namespace}`, token);
    expect(body.items).toEqual([]);
    for (const suffix of ['', '/events', '/asciicast', '/export.jsonl', '/verify']) {
      const response = await get(`${sessionPath(world.ssh)}${suffix}`, token);
      expect({ suffix, status: response.status }).toEqual({ suffix, status: 403 });
    }
    await logged(/"msg":"recording access refused".*"user":"erin"/);
    expect(readFileSync(world.logFile, 'utf8')).toMatch(/"msg":"recording access refused".*"user":"erin"/);
  });

  it("refuses a viewer of one policy the other policy's session", async () => {
    const response = await get(sessionPath(world.vault), await world.token('vera'));
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ error: { code: 'FORBIDDEN' } });
  });

  it('filters by protocol, user and denials, and pages with continue tokens', async () => {
    const token = await world.token('vera');
    const ns = `namespace=${world.namespace}`;
    expect((await json<ListBody>(`/api/sessions?${ns}&protocol=ssh`, token)).body.items.map((s) => s.connection)).toEqual(['box']);
    expect((await json<ListBody>(`/api/sessions?${ns}&user=CAR`, token)).body.items.map((s) => s.user)).toEqual(['carl']);
    expect((await json<ListBody>(`/api/sessions?${ns}&denials=1`, token)).body.items.map((s) => s.connection).sort()).toEqual(['orders-api', 'orders-db']);
    expect((await json<ListBody>(`/api/sessions?${ns}&connection=orders-api`, token)).body.items.map((s) => s.user)).toEqual(['carl']);
    const first = await json<ListBody>(`/api/sessions?${ns}&limit=1`, token);
    expect(first.body.items).toHaveLength(1);
    expect(first.body.continue).toBeDefined();
    const second = await json<ListBody>(`/api/sessions?${ns}&limit=1&continue=${encodeURIComponent(first.body.continue ?? '')}`, token);
    expect(second.body.items).toHaveLength(1);
    expect(second.body.items[0]?.name).not.toBe(first.body.items[0]?.name);
    expect((await get(`/api/sessions?${ns}&phase=Sleeping`, token)).status).toBe(400);
  });
});

describe('warden ui API: a viewer opens recordings', () => {
  it('verifies the SSH recording server-side (chain, signatures, manifest)', async () => {
    const { status, body } = await json<{ ok: boolean; closed: boolean; problems: unknown[] }>(`${sessionPath(world.ssh)}/verify`, await world.token('dana', ['auditors']));
    expect(status).toBe(200);
    expect(body).toMatchObject({ ok: true, closed: true, problems: [] });
  });

  it('serves the SSH session as an asciicast with the typed output, and audits the replay', async () => {
    const response = await get(`${sessionPath(world.ssh)}/asciicast`, await world.token('dana', ['auditors']));
    expect(response.status).toBe(200);
    const lines = (await response.text()).trim().split('\n');
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ version: 2 });
    expect(lines.slice(1).some((line) => line.includes('hello-from-warden-42'))).toBe(true);
    await logged(/"msg":"recording viewed".*"what":"replay"/);
    const audit = readFileSync(world.logFile, 'utf8').split('\n').filter((l) => l.includes('"msg":"recording viewed"'));
    expect(audit.some((l) => l.includes('"user":"dana"') && l.includes(`"session":"${world.namespace}/${world.ssh.metadata.name}"`) && l.includes('"what":"replay"'))).toBe(true);
  });

  it('gives the SQL session as events with the masked values as stored, and as CSV of statements', async () => {
    const token = await world.token('vera');
    const { body } = await json<{ events: Array<{ k: string; rows?: string[][] }> }>(`${sessionPath(world.sql)}/events`, token);
    const result = body.events.find((e) => e.k === 'sql.result');
    expect(result?.rows).toEqual([
      ['1', expect.stringMatching(/^\[REDACTED:/)],
      ['2', expect.stringMatching(/^\[REDACTED:/)],
    ]);
    expect(JSON.stringify(body.events)).not.toContain('@example.com');
    const csv = await (await get(`${sessionPath(world.sql)}/statements.csv`, token)).text();
    expect(csv.split('\n')[0]).toBe('t,time,id,decision,rule,class,statement,rows,tag,duration_ms,masked,error');
    expect(csv).toMatch(/,allow,[^,]*read[^,]*,[^,]*,"SELECT id, email FROM customers ORDER BY id",2,SELECT 2,[\d.]+,yes,/);
    expect(csv).toMatch(/,deny,[^,]*no-ddl[^,]*,[^,]*,DROP TABLE customers,/);
    const jsonl = (await (await get(`${sessionPath(world.sql)}/export.jsonl`, token)).text()).trim().split('\n');
    expect(JSON.parse(jsonl[0] ?? '{}')).toMatchObject({ k: 'session.start', protocol: 'postgres' });
  });

  it('follows a live session: events of newly sealed chunks arrive after the last one seen', async () => {
    const token = await world.token('vera');
    const { rec } = await world.openSqlSession();
    const path = `/api/sessions/${world.namespace}/${rec.sessionId}`;
    const shipped = async (): Promise<void> => {
      const done = new Promise<void>((resolve) => rec.once('shipped', () => resolve()));
      rec.flush();
      await done;
    };
    rec.append({ t: rec.t(), k: EventKind.SqlQuery, id: 1, text: capPayload('SELECT 1', 100), decision: Decision.Allow });
    await shipped();
    type Events = { events: Array<{ k: string; n: number }>; next: number; live: boolean };
    let first: Events | undefined;
    await waitUntil('the live session readable', async () => {
      const response = await json<Events>(`${path}/events`, token);
      first = response.body;
      return response.status === 200 && first.events.some((e) => e.k === 'sql.query');
    }, { timeoutMs: 15_000, intervalMs: 250 });
    expect(first?.live).toBe(true);
    const verify = await json<{ ok: boolean; closed: boolean; live: boolean }>(`${path}/verify`, token);
    expect(verify.body).toMatchObject({ ok: true, closed: false, live: true });

    rec.append({ t: rec.t(), k: EventKind.SqlQuery, id: 2, text: capPayload('SELECT 2', 100), decision: Decision.Allow });
    await shipped();
    // Following resumes at the chunk after the last one read: the first chunk is not fetched (or
    // checked) again. Shown by deleting it from the bucket: the follow-up still answers.
    await world.removeRecordingObject(rec.sessionId, 'chunk-00000000');
    const tail = await json<Events>(`${path}/events?after=${first?.next}`, token);
    expect(tail.status).toBe(200);
    expect(tail.body.events.map((e) => e.k)).toEqual(['sql.query']);
    expect(tail.body.events[0]?.n).toBe((first?.next ?? 0) + 1);
    // Reading from the start does need it, and says so.
    expect((await json<{ error?: { message?: string } }>(`${path}/events`, token)).status).not.toBe(200);
    await rec.close('client-closed');
  });

  it('never puts a token into its log', async () => {
    const token = await world.token('vera');
    await get('/api/me', token);
    expect(readFileSync(world.logFile, 'utf8')).not.toContain(token.split('.')[2]);
  });
});
