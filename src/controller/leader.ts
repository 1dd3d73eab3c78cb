/**
 * Leader election on a coordination.k8s.io/v1 Lease, the same protocol as client-go's
 * leaderelection package (which client-node lacks), so `kubectl get lease` reads the same:
 *
 * - A candidate reads the Lease. It may take it when nobody holds it, or when the holder has not
 *   renewed for leaseDuration — measured on the candidate's own clock from when it last saw the
 *   record change, so clock skew between machines does not matter.
 * - Every write is an optimistic-concurrency update (the resourceVersion read is sent back);
 *   a 409 Conflict means another candidate won the race, and this one tries again later.
 * - The leader renews every retryPeriod; if it cannot renew within renewDeadline it stops leading
 *   (before anyone else can take over: renewDeadline < leaseDuration).
 * - On a graceful stop the leader releases the Lease (empty holder), so a successor takes over at
 *   once instead of waiting out the lease.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isConflict, isNotFound, KubeApiError, type KubeClient, type KubeObject } from './kube.ts';
import type { Logger } from './log.ts';
import { controllerMetrics } from './metrics.ts';

export interface LeaderElectionOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  /** Unique per process: hostname + pid + random. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log: Logger;
  onStartedLeading: () => void;
  /** Called when leadership is lost (not on a graceful stop). */
  onStoppedLeading: () => void;
}

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectionOptions, 'log' | 'onStartedLeading' | 'onStoppedLeading' | 'client'>>;
  readonly #client: KubeClient;
  readonly #log: Logger;
  readonly #onStarted: () => void;
  readonly #onStopped: () => void;
  #leading = false;
  #stopped = false;
  #abort = new AbortController();
  #observed: { key: string; at: number } | undefined;
  #running: Promise<void> | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#client = options.client;
    this.#log = options.log.child({ component: 'leader-election', lease: `${options.namespace}/${options.name}` });
    this.#onStarted = options.onStartedLeading;
    this.#onStopped = options.onStoppedLeading;
    this.#o = {
      namespace: options.namespace,
      name: options.name,
      identity: options.identity,
      leaseDurationMs: options.leaseDurationMs ?? 15_000,
      renewDeadlineMs: options.renewDeadlineMs ?? 10_000,
      retryPeriodMs: options.retryPeriodMs ?? 2_000,
    };
    if (this.#o.renewDeadlineMs >= this.#o.leaseDurationMs) throw new Error('renewDeadline must be shorter than leaseDuration');
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  get identity(): string {
    return this.#o.identity;
  }

  /** Starts campaigning in the background. */
  start(): void {
    this.#running ??= this.#loop();
  }

  /** Stops campaigning; a leader releases the Lease. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    await this.#running?.catch(() => {});
    if (this.#leading) {
      this.#setLeading(false, false);
      try {
        await this.#release();
      } catch (error) {
        this.#log.warn('could not release the lease', { error });
      }
    }
  }

  async #loop(): Promise<void> {
    let lastRenew = 0;
    while (!this.#stopped) {
      let ok = false;
      try {
        ok = await this.#tryAcquireOrRenew();
      } catch (error) {
        if (!this.#stopped) this.#log.warn('lease request failed', { error });
      }
      if (this.#stopped) return;
      const now = Date.now();
      if (ok) {
        lastRenew = now;
        if (!this.#leading) this.#setLeading(true, true);
      } else if (this.#leading && now - lastRenew > this.#o.renewDeadlineMs) {
        this.#log.error('could not renew the lease within the renew deadline; stepping down');
        this.#setLeading(false, true);
      }
      try {
        await sleep(this.#jitter(), undefined, { signal: this.#abort.signal });
      } catch {
        return;
      }
    }
  }

  #jitter(): number {
    // Followers retry with up to 20 % jitter so that candidates do not hit the Lease in lockstep.
    return this.#leading ? this.#o.retryPeriodMs : this.#o.retryPeriodMs * (1 + Math.random() * 0.2);
  }

  #setLeading(leading: boolean, notify: boolean): void {
    if (this.#leading === leading) return;
    this.#leading = leading;
    controllerMetrics.isLeader.add(leading ? 1 : -1);
    this.#log.info(leading ? 'became the leader' : 'stopped leading', { identity: this.#o.identity });
    if (notify) (leading ? this.#onStarted : this.#onStopped)();
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    const now = new Date();
    const leaseDurationSeconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    let lease: Lease | undefined;
    try {
      lease = await this.#client.get<Lease>('Lease', namespace, name);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    if (lease === undefined) {
      try {
        await this.#client.create('Lease', namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 409) return false;
        throw error;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    // Track when we last saw the record change, on our own clock.
    const key = `${holder}|${spec.renewTime ?? ''}|${spec.leaseDurationSeconds ?? ''}`;
    if (this.#observed?.key !== key) this.#observed = { key, at: Date.now() };
    const heldByOther = holder !== '' && holder !== identity;
    const durationMs = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (heldByOther && this.#observed.at + durationMs > Date.now()) return false;

    const takingOver = holder !== identity;
    const next: Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...lease.metadata },
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds,
        acquireTime: takingOver ? microTime(now) : (spec.acquireTime ?? microTime(now)),
        renewTime: microTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver && holder !== '' ? 1 : 0),
      },
    };
    try {
      // PUT with the resourceVersion we read: the API server refuses it if anyone wrote since.
      const written = await this.#client.replace<Lease>('Lease', namespace, name, next);
      this.#observed = { key: `${identity}|${written.spec?.renewTime ?? ''}|${leaseDurationSeconds}`, at: Date.now() };
      if (takingOver) this.#log.info('acquired the lease', { previousHolder: holder || undefined });
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  async #release(): Promise<void> {
    const { namespace, name, identity } = this.#o;
    const lease = await this.#client.get<Lease>('Lease', namespace, name);
    if (lease.spec?.holderIdentity !== identity) return;
    await this.#client.replace('Lease', namespace, name, {
      ...lease,
      spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
    });
    this.#log.info('released the lease');
  }
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
