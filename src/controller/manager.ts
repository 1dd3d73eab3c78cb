/**
 * Runs the controller: health endpoints at once, then (when leading, or always without leader
 * election) the informers, and once they have synced the workers of each reconciler. Losing the
 * lease stops the reconcilers before anyone else can take over; the CLI then exits so that the
 * Deployment restarts the pod as a fresh candidate (what client-go based controllers do).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import type { AccessPolicy, Connection, RecordingPolicy, Session } from '../api/types.ts';
import { AccessPolicyController } from './accesspolicy-controller.ts';
import { ConnectionController, type ConnectionCaches, OWNED_KINDS, type OwnedKind, type SecretObject } from './connection-controller.ts';
import { EventRecorder } from './events.ts';
import { Cache, stripSecretValues } from './informers.ts';
import { KubeClient, type KubeObject } from './kube.ts';
import { LeaderElector } from './leader.ts';
import { type Logger, createLogger } from './log.ts';
import { controllerMetrics } from './metrics.ts';
import { MANAGED_SELECTOR } from './names.ts';
import { type WorkQueue, runWorkers } from './queue.ts';
import { RecordingPolicyController } from './recording-controller.ts';
import type { RenderSettings } from './render.ts';
import { SessionHousekeeper } from './sessions.ts';

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** Watch and manage one namespace; all namespaces when undefined. */
  namespace?: string;
  settings: RenderSettings;
  leaderElection?: {
    namespace: string;
    name?: string;
    identity?: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
  /** Port of /healthz and /readyz; 0 picks a free one; undefined serves none. */
  healthPort?: number;
  healthHost?: string;
  /** Answers GET /metrics on the health port (src/observability/telemetry.ts); without it: 404. */
  metrics?: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  /** Workers per reconciler (default 4). */
  workers?: number;
  /** How often every object is reconciled again regardless of events (default 10 min). */
  resyncMs?: number;
  /** How often Sessions are checked for housekeeping (default 1 min). */
  sessionSweepMs?: number;
  log?: Logger;
  /** Called when leadership is lost (after the reconcilers stopped). */
  onLostLeadership?: () => void;
}

export interface RunningController {
  readonly identity: string;
  readonly client: KubeClient;
  readonly connections: ConnectionController;
  readonly recordingPolicies: RecordingPolicyController;
  readonly sessions: SessionHousekeeper;
  /** Port the health server listens on, when one was asked for. */
  readonly healthPort: number | undefined;
  isLeader(): boolean;
  /** True when the informers have synced and workers run. */
  isActive(): boolean;
  /** Resolves when this instance has become active (leading, caches synced). */
  active(): Promise<void>;
  stop(): Promise<void>;
}

export async function startController(options: ControllerOptions): Promise<RunningController> {
  const identity = options.leaderElection?.identity ?? `${hostname()}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const log = (options.log ?? createLogger()).child({ component: 'controller', identity });
  const client = new KubeClient(options.kubeConfig);
  client.onRequest = (verb, status) => controllerMetrics.apiRequests.add(1, { verb, code: String(status) });
  const events = new EventRecorder(client, identity, log);
  const ns = options.namespace;

  const cacheOf = <T extends KubeObject>(kind: string, extra: { labelSelector?: string; transform?: (o: T) => void } = {}): Cache<T> =>
    new Cache<T>(client, { kind, namespace: ns, log, ...extra });
  const caches: ConnectionCaches & { sessions: Cache<Session & KubeObject> } = {
    connections: cacheOf<Connection & KubeObject>('Connection'),
    accessPolicies: cacheOf<AccessPolicy & KubeObject>('AccessPolicy'),
    recordingPolicies: cacheOf<RecordingPolicy & KubeObject>('RecordingPolicy'),
    // Key names only: values never stay in the controller's memory (see stripSecretValues).
    secrets: cacheOf<SecretObject>('Secret', { transform: stripSecretValues }),
    owned: Object.fromEntries(OWNED_KINDS.map((kind) => [kind, cacheOf<KubeObject>(kind, { labelSelector: MANAGED_SELECTOR })])) as Record<OwnedKind, Cache<KubeObject>>,
    sessions: cacheOf<Session & KubeObject>('Session'),
  };
  const allCaches: Array<Cache<KubeObject>> = [
    caches.connections,
    caches.accessPolicies,
    caches.recordingPolicies,
    caches.secrets,
    ...Object.values(caches.owned),
    caches.sessions,
  ] as Array<Cache<KubeObject>>;

  const connections = new ConnectionController({ client, caches, events, settings: options.settings, log });
  const recordingPolicies = new RecordingPolicyController({ client, caches, events, log });
  const sessions = new SessionHousekeeper({ client, caches, events, log });
  const accessPolicies = new AccessPolicyController({ client, caches, log });
  connections.wire();
  accessPolicies.wire();
  recordingPolicies.wire();
  sessions.wire();
  const queues: Array<[WorkQueue, (key: string) => Promise<{ requeueAfterMs?: number } | void>]> = [
    [connections.queue, (k) => connections.reconcile(k)],
    [recordingPolicies.queue, (k) => recordingPolicies.reconcile(k)],
    [sessions.queue, (k) => sessions.reconcile(k)],
    [accessPolicies.queue, (k) => accessPolicies.reconcile(k)],
  ];

  let active = false;
  let stopping = false;
  let workers: Promise<unknown> | undefined;
  let resyncTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  const activeWaiters: Array<() => void> = [];

  const activate = async (): Promise<void> => {
    log.info('starting informers', { namespace: ns ?? '(all)' });
    const began = Date.now();
    await Promise.all(allCaches.map((c) => c.start()));
    if (stopping) return;
    log.info('informers synced; starting workers', { ms: Date.now() - began });
    const n = options.workers ?? 4;
    workers = Promise.all(
      queues.map(([queue, handler]) =>
        runWorkers(queue, n, handler, (key, error, retryInMs) =>
          log.warn('reconcile failed; retrying', { queue: queue.name, key, error: error instanceof Error ? error : String(error), retryInMs }),
        ),
      ),
    );
    const resyncMs = options.resyncMs ?? 600_000;
    let resyncs = 0;
    resyncTimer = setInterval(() => {
      // Every sixth resync also re-applies every object (repairs drift in fields a person edited).
      resyncs++;
      connections.resync(resyncs % 6 === 0);
      recordingPolicies.resync();
      accessPolicies.resync();
    }, resyncMs);
    resyncTimer.unref();
    sweepTimer = setInterval(() => sessions.sweep(), options.sessionSweepMs ?? 60_000);
    sweepTimer.unref();
    sessions.sweep();
    active = true;
    for (const waiter of activeWaiters.splice(0)) waiter();
  };

  const deactivate = async (): Promise<void> => {
    active = false;
    if (resyncTimer) clearInterval(resyncTimer);
    if (sweepTimer) clearInterval(sweepTimer);
    for (const [queue] of queues) queue.shutDown();
    await Promise.all(allCaches.map((c) => c.stop()));
    await workers;
  };

  let elector: LeaderElector | undefined;
  if (options.leaderElection) {
    const le = options.leaderElection;
    elector = new LeaderElector({
      client,
      namespace: le.namespace,
      name: le.name ?? 'warden-controller',
      identity,
      leaseDurationMs: le.leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
      log,
      onStartedLeading: () => {
        activate().catch((error: unknown) => log.error('could not start reconciling', { error: String(error) }));
      },
      onStoppedLeading: () => {
        deactivate()
          .catch((error: unknown) => log.error('could not stop cleanly', { error: String(error) }))
          .finally(() => options.onLostLeadership?.());
      },
    });
    elector.start();
  } else {
    void activate().catch((error: unknown) => log.error('could not start reconciling', { error: String(error) }));
  }

  let server: http.Server | undefined;
  let healthPort: number | undefined;
  if (options.healthPort !== undefined) {
    server = http.createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path === '/healthz' || path === '/livez') {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        // A standby (not leading) is ready: it is doing its job, which is to wait.
        const ready = stopping ? false : elector && !elector.isLeader ? true : active;
        res.writeHead(ready ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ready ? 'ok\n' : 'not ready\n');
      } else if (path === '/metrics' && options.metrics) {
        options.metrics(req, res);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject);
      server?.listen(options.healthPort, options.healthHost ?? '0.0.0.0', () => resolve());
    });
    const address = server.address();
    healthPort = address && typeof address === 'object' ? address.port : undefined;
    log.info('health endpoints listening', { port: healthPort });
  }

  return {
    identity,
    client,
    connections,
    recordingPolicies,
    sessions,
    healthPort,
    isLeader: () => elector?.isLeader ?? true,
    isActive: () => active,
    active: () => (active ? Promise.resolve() : new Promise((resolve) => activeWaiters.push(resolve))),
    async stop() {
      if (stopping) return;
      stopping = true;
      log.info('stopping');
      // Finish the reconciles in flight, then give up the lease so a successor starts at once.
      await deactivate();
      await elector?.stop();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      client.close();
      log.info('stopped');
    },
  };
}
