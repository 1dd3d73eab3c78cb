/**
 * Kubernetes Events (events.k8s.io/v1) about the objects the controller reconciles: one per
 * change worth telling a human (a condition turning False, a configuration update, a bucket
 * created). The same reason and note on the same object are not repeated within `dedupMs`, so a
 * failing reconcile retried with back-off does not flood the namespace.
 */
import { randomBytes } from 'node:crypto';
import type { KubeClient } from './kube.ts';
import type { Logger } from './log.ts';
import type { ReasonName } from './reasons.ts';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
}

export type EventType = 'Normal' | 'Warning';

export const REPORTING_CONTROLLER = 'warden.dev/controller';

export class EventRecorder {
  readonly #client: KubeClient;
  readonly #instance: string;
  readonly #log: Logger;
  readonly #dedupMs: number;
  readonly #recent = new Map<string, number>();

  constructor(client: KubeClient, instance: string, log: Logger, dedupMs = 10 * 60_000) {
    this.#client = client;
    this.#instance = instance;
    this.#log = log;
    this.#dedupMs = dedupMs;
  }

  /** Records the event; never throws (an Event is best effort, the status is the record). */
  async record(target: EventTarget, type: EventType, reason: ReasonName, note: string, action = 'Reconcile'): Promise<void> {
    const key = `${target.kind}/${target.namespace}/${target.name}/${target.uid ?? ''}|${type}|${reason}|${note}`;
    const now = Date.now();
    const last = this.#recent.get(key);
    if (last !== undefined && now - last < this.#dedupMs) return;
    this.#recent.set(key, now);
    if (this.#recent.size > 10_000) {
      for (const [k, at] of this.#recent) if (now - at >= this.#dedupMs) this.#recent.delete(k);
    }
    const time = new Date(now).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    try {
      await this.#client.create('Event', target.namespace, {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name: `${target.name}.${now.toString(16)}${randomBytes(3).toString('hex')}`, namespace: target.namespace },
        eventTime: time,
        reportingController: REPORTING_CONTROLLER,
        reportingInstance: this.#instance.slice(0, 128),
        action,
        reason,
        note: note.slice(0, 1024),
        type,
        regarding: {
          apiVersion: target.apiVersion,
          kind: target.kind,
          namespace: target.namespace,
          name: target.name,
          ...(target.uid ? { uid: target.uid } : {}),
        },
      });
    } catch (error) {
      this.#log.warn('could not record an event', { error, reason, object: `${target.namespace}/${target.name}` });
    }
  }
}
