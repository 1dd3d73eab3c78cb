/**
 * Session housekeeping. Gateways create and update Session objects; two things they cannot do
 * themselves are done here:
 *
 * - A gateway that died leaves its Sessions Active. Each Session carries the label
 *   `warden.dev/pod` (the pod that served it); once that pod no longer exists, the Session is
 *   marked Terminated with reason GatewayPodGone. A Session without the label is left alone:
 *   nothing says which process to ask about.
 * - Ended Sessions older than the sessionRetention of the Connection's RecordingPolicy (default
 *   720h) are deleted. Their recordings stay in the bucket under its own retention.
 */
import { API_VERSION, type Connection, DEFAULTS, type RecordingPolicy, type Session } from '../api/types.ts';
import { formatGoDuration, parseGoDuration } from '../policy/duration.ts';
import { toRfc3339 } from './conditions.ts';
import type { EventRecorder } from './events.ts';
import type { Cache } from './informers.ts';
import { isNotFound, type KubeClient, type KubeObject } from './kube.ts';
import type { Logger } from './log.ts';
import { controllerMetrics } from './metrics.ts';
import { LABELS } from './names.ts';
import { WorkQueue } from './queue.ts';
import { Reason } from './reasons.ts';
import { selectRecordingPolicy } from './render.ts';

export interface SessionCaches {
  sessions: Cache<Session & KubeObject>;
  connections: Cache<Connection & KubeObject>;
  recordingPolicies: Cache<RecordingPolicy & KubeObject>;
}

export interface SessionHousekeeperOptions {
  client: KubeClient;
  caches: SessionCaches;
  events: EventRecorder;
  log: Logger;
  now?: () => Date;
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

export class SessionHousekeeper {
  readonly queue = new WorkQueue({ name: 'session', baseDelayMs: 1000 });
  readonly #o: SessionHousekeeperOptions;
  readonly #log: Logger;
  readonly #now: () => Date;

  constructor(options: SessionHousekeeperOptions) {
    this.#o = options;
    this.#log = options.log.child({ controller: 'session' });
    this.#now = options.now ?? (() => new Date());
  }

  wire(): void {
    // Gateways update Active Sessions often (counters); those are looked at by the periodic
    // sweep only, so a busy session does not cost a Pod lookup per update. New Sessions and
    // Sessions that ended are looked at right away (the latter to schedule their pruning).
    this.#o.caches.sessions.on((event, s) => {
      if (event === 'delete') return;
      if (event === 'add' || (s.status?.phase ?? 'Active') !== 'Active') this.queue.add(key(s.metadata?.namespace ?? '', s.metadata?.name ?? ''));
    });
  }

  /** Looks at every Session again (pods die without telling us: there is no pod informer). */
  sweep(): void {
    for (const s of this.#o.caches.sessions.list()) this.queue.add(key(s.metadata?.namespace ?? '', s.metadata?.name ?? ''));
  }

  async reconcile(k: string): Promise<{ requeueAfterMs: number } | void> {
    const [namespace = '', name = ''] = k.split('/');
    const session = this.#o.caches.sessions.get(namespace, name);
    if (!session || session.metadata.deletionTimestamp) return;
    const phase = session.status?.phase ?? 'Active';
    if (phase === 'Active') {
      await this.#terminateOrphan(session);
      return;
    }
    return await this.#pruneIfExpired(session);
  }

  async #terminateOrphan(session: Session & KubeObject): Promise<void> {
    const namespace = session.metadata.namespace ?? '';
    const pod = session.metadata.labels?.[LABELS.pod];
    if (pod === undefined) return;
    try {
      await this.#o.client.get('Pod', namespace, pod);
      return; // still there
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    const now = this.#now();
    const started = Date.parse(session.spec.startedAt);
    const reason = `${Reason.GatewayPodGone}: gateway pod ${pod} no longer exists; the session ended without a clean close`;
    await this.#o.client.mergePatch(
      'Session',
      namespace,
      session.metadata.name ?? '',
      {
        metadata: { resourceVersion: session.metadata.resourceVersion },
        status: {
          phase: 'Terminated',
          endedAt: toRfc3339(now),
          reason,
          ...(Number.isFinite(started) ? { duration: formatGoDuration(Math.max(0, Math.round((now.getTime() - started) / 1000) * 1000)) } : {}),
        },
      },
      'status',
    );
    controllerMetrics.writes.add(1, { kind: 'Session/status' });
    this.#log.info('terminated orphaned session', { session: `${namespace}/${session.metadata.name}`, pod });
    await this.#o.events.record(
      { apiVersion: API_VERSION, kind: 'Session', namespace, name: session.metadata.name ?? '', uid: session.metadata.uid },
      'Warning',
      Reason.SessionTerminated,
      reason,
    );
  }

  async #pruneIfExpired(session: Session & KubeObject): Promise<{ requeueAfterMs: number } | void> {
    const namespace = session.metadata.namespace ?? '';
    const ended = Date.parse(session.status?.endedAt ?? session.metadata.creationTimestamp ?? '');
    if (!Number.isFinite(ended)) return;
    const retentionMs = this.#retentionMs(session);
    const left = ended + retentionMs - this.#now().getTime();
    if (left > 0) return { requeueAfterMs: Math.min(left + 1000, 6 * 3_600_000) };
    try {
      await this.#o.client.delete('Session', namespace, session.metadata.name ?? '', { uid: session.metadata.uid });
      controllerMetrics.writes.add(1, { kind: 'Session/delete' });
      this.#log.info('pruned session', { session: `${namespace}/${session.metadata.name}`, retention: formatGoDuration(retentionMs) });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  /** sessionRetention of the RecordingPolicy that applies to the Session's Connection. */
  #retentionMs(session: Session & KubeObject): number {
    const namespace = session.metadata.namespace ?? '';
    const connection = this.#o.caches.connections.get(namespace, session.spec.connection);
    const policy = connection ? selectRecordingPolicy(connection, this.#o.caches.recordingPolicies.list(namespace)).policy : undefined;
    try {
      return parseGoDuration(policy?.spec.sessionRetention ?? DEFAULTS.sessionRetention);
    } catch {
      return parseGoDuration(DEFAULTS.sessionRetention);
    }
  }
}
