// The sessions of a local recording store (what `warden dev` records), as Session objects: the
// same shape the API server lists for `warden sessions`, rebuilt from the recordings themselves.
// Each session's chunks are read and checked (signature, chain) on the way, so a listing also
// flags a recording that does not verify. Meant for development-sized stores: it reads every event.

import { API_VERSION, type Session, type SessionPhase } from '../api/types.ts';
import type { VerifyKey } from '../recorder/crypto.ts';
import { Decision, EventKind, type RecordingEvent } from '../recorder/events.ts';
import { readSessionEvents, readSessionManifest } from '../recorder/reader.ts';
import { CHUNK_OBJECT_PREFIX, MANIFEST_OBJECT_NAME } from '../recorder/naming.ts';
import { formatDuration, phaseForEndReason } from '../recorder/session-objects.ts';
import type { RecordingStore } from '../recorder/store.ts';

/** Session folders (keys ending in `/`) holding chunks or a manifest. */
export async function sessionFolders(store: RecordingStore, prefix = ''): Promise<string[]> {
  const folders = new Set<string>();
  for await (const object of store.list(prefix)) {
    const slash = object.key.lastIndexOf('/');
    const name = object.key.slice(slash + 1);
    if (name === MANIFEST_OBJECT_NAME || name.startsWith(CHUNK_OBJECT_PREFIX)) folders.add(object.key.slice(0, slash + 1));
  }
  return [...folders].sort();
}

/** The folder of session `id` in the store (ids are unique; the newest wins should two match). */
export async function findSessionFolder(store: RecordingStore, id: string): Promise<string | undefined> {
  return (await sessionFolders(store)).filter((f) => f.endsWith(`/${id}/`) || f === `${id}/`).at(-1);
}

function counts(event: RecordingEvent, tally: { commands: number; denied: number; approvals: number }): void {
  switch (event.k) {
    case EventKind.SqlQuery:
    case EventKind.Exec:
    case EventKind.Command:
    case EventKind.HttpRequest:
      if (event.decision === Decision.Deny) tally.denied += 1;
      else if (event.decision === Decision.RequireApproval) tally.approvals += 1;
      else tally.commands += 1;
      break;
    case EventKind.Sftp:
    case EventKind.Forward:
      if (event.decision === Decision.Deny) tally.denied += 1;
      break;
    default:
      break;
  }
}

/** One Session per recording in the store, newest first. */
export async function listStoredSessions(store: RecordingStore, trustedKeys: readonly VerifyKey[]): Promise<Session[]> {
  const sessions: Session[] = [];
  for (const folder of await sessionFolders(store)) {
    const id = folder.slice(0, -1).split('/').at(-1) ?? folder;
    const session: Session = {
      apiVersion: API_VERSION,
      kind: 'Session',
      metadata: { name: id, namespace: '' },
      spec: { connection: '', protocol: 'postgres', user: '', startedAt: '' },
      status: { recording: { location: store.url(folder) } },
    } as Session;
    const status = session.status ?? {};
    const tally = { commands: 0, denied: 0, approvals: 0 };
    let lastT = 0;
    let endReason: string | undefined;
    let chunks = 0;
    try {
      for await (const event of readSessionEvents(store, folder, { trustedKeys })) {
        lastT = Math.max(lastT, event.t);
        if (event.k === EventKind.SessionStart) {
          const [namespace, name] = event.connection.includes('/') ? event.connection.split('/', 2) : ['', event.connection];
          session.metadata.namespace = namespace ?? '';
          session.spec.connection = name ?? event.connection;
          session.spec.protocol = event.protocol;
          session.spec.startedAt = event.startedAt;
          if (event.client?.addr) session.spec.clientAddress = event.client.addr;
          if (event.client?.app) session.spec.clientApplication = event.client.app;
        } else if (event.k === EventKind.Auth) {
          if (event.user) session.spec.user = event.user;
          if (event.groups) session.spec.groups = [...event.groups];
        } else if (event.k === EventKind.SessionEnd) endReason = event.reason;
        counts(event, tally);
      }
      const manifest = await readSessionManifest(store, folder, trustedKeys);
      if (manifest) {
        chunks = manifest.totals.chunks;
        status.endedAt = manifest.meta.endedAt;
        endReason = manifest.meta.endReason ?? endReason;
        if (!session.spec.user && manifest.meta.user) session.spec.user = manifest.meta.user;
      }
      const phase: SessionPhase = endReason === undefined ? 'Active' : endReason === 'denied' ? 'Denied' : phaseForEndReason(endReason);
      status.phase = phase;
      if (endReason !== undefined && phase !== 'Closed') status.reason = endReason;
    } catch (error) {
      status.reason = `recording does not verify: ${(error as Error).message}`;
    }
    Object.assign(status, tally);
    status.duration = formatDuration(lastT);
    if (status.recording && chunks > 0) status.recording.chunks = chunks;
    session.status = status;
    sessions.push(session);
  }
  return sessions.sort((a, b) => Date.parse(b.spec.startedAt || '0') - Date.parse(a.spec.startedAt || '0'));
}
