/**
 * The Connection reconciler: gather (from the informer caches) → render (pure, render.ts) →
 * diff (the applied-hash annotation of each live object) → apply (server-side apply under the
 * `warden-controller` field manager) → status (server-side apply on /status, only when it
 * changed) → Events for what a human should hear about.
 *
 * Which Connections to reconcile when something else changes is decided from indexes built from
 * the last render of each Connection: the Secrets it refers to (found or not, so creating a
 * missing Secret heals it) and the AccessPolicies that selected it (so a policy that stops
 * selecting a Connection still re-renders it).
 */
import { type AccessPolicy, API_VERSION, type Connection, type RecordingPolicy } from '../api/types.ts';
import { findCondition } from './conditions.ts';
import { isSubset } from './diff.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { Cache, CacheEvent } from './informers.ts';
import type { KubeClient, KubeObject } from './kube.ts';
import type { Logger } from './log.ts';
import { controllerMetrics } from './metrics.ts';
import { ANNOTATIONS, LABELS, gatewayNames } from './names.ts';
import { WorkQueue } from './queue.ts';
import { ConditionType, Reason } from './reasons.ts';
import { type ConnectionRender, type Manifest, type RenderSettings, type SecretSummary, renderConnection, selectAccessPolicies, statusChanged, withApplyFailure } from './render.ts';
import { selectorMatches } from './selectors.ts';

export interface SecretObject extends KubeObject {
  data?: Record<string, string>;
}

export const OWNED_KINDS = ['ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Deployment', 'Service'] as const;
export type OwnedKind = (typeof OWNED_KINDS)[number];

export interface ConnectionCaches {
  connections: Cache<Connection & KubeObject>;
  accessPolicies: Cache<AccessPolicy & KubeObject>;
  recordingPolicies: Cache<RecordingPolicy & KubeObject>;
  secrets: Cache<SecretObject>;
  owned: Record<OwnedKind, Cache<KubeObject>>;
}

export interface ConnectionControllerOptions {
  client: KubeClient;
  caches: ConnectionCaches;
  events: EventRecorder;
  settings: RenderSettings;
  log: Logger;
  now?: () => Date;
}

type DeploymentObject = KubeObject & { spec?: { replicas?: number }; status?: { readyReplicas?: number; replicas?: number } };

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

export class ConnectionController {
  readonly queue = new WorkQueue({ name: 'connection' });
  readonly #o: ConnectionControllerOptions;
  readonly #log: Logger;
  readonly #now: () => Date;
  /** ns/secret → Connections (ns/name) that refer to it. */
  readonly #bySecret = new Map<string, Set<string>>();
  /** ns/policy → Connections it selected at their last render. */
  readonly #byPolicy = new Map<string, Set<string>>();
  /** What each Connection referred to at its last render (to update the indexes). */
  readonly #refs = new Map<string, { secrets: string[]; policies: string[] }>();
  /** Hashes applied but not yet seen back through the owned-object informers. */
  readonly #inFlight = new Map<string, string>();
  /** Connections whose next reconcile applies every object whatever the hashes say (drift repair). */
  readonly #forceApply = new Set<string>();

  constructor(options: ConnectionControllerOptions) {
    this.#o = options;
    this.#log = options.log.child({ controller: 'connection' });
    this.#now = options.now ?? (() => new Date());
  }

  /** Registers the informer handlers that enqueue Connections. */
  wire(): void {
    const { caches } = this.#o;
    caches.connections.on((_event, c) => this.queue.add(key(c.metadata?.namespace ?? '', c.metadata?.name ?? '')));
    caches.accessPolicies.on((_event, p) => this.#onAccessPolicy(p));
    caches.recordingPolicies.on((_event, p) => {
      // Rare: every Connection of the namespace may be selected or named.
      for (const c of caches.connections.list(p.metadata?.namespace)) this.queue.add(key(c.metadata?.namespace ?? '', c.metadata?.name ?? ''));
    });
    caches.secrets.on((_event, s) => {
      for (const c of this.#bySecret.get(key(s.metadata?.namespace ?? '', s.metadata?.name ?? '')) ?? []) this.queue.add(c);
    });
    for (const kind of OWNED_KINDS) caches.owned[kind].on((event, o) => this.#onOwned(kind, event, o));
  }

  /** Enqueues every Connection (resync); with `repair`, the next reconciles re-apply everything. */
  resync(repair = false): void {
    for (const c of this.#o.caches.connections.list()) {
      const k = key(c.metadata?.namespace ?? '', c.metadata?.name ?? '');
      if (repair) this.#forceApply.add(k);
      this.queue.add(k);
    }
  }

  #onAccessPolicy(policy: AccessPolicy & KubeObject): void {
    const namespace = policy.metadata?.namespace ?? '';
    const affected = new Set(this.#byPolicy.get(key(namespace, policy.metadata?.name ?? '')) ?? []);
    for (const c of this.#o.caches.connections.list(namespace)) {
      const selected =
        (policy.spec.connections ?? []).includes(c.metadata?.name ?? '') ||
        (policy.spec.connectionSelector !== undefined && selectorMatches(policy.spec.connectionSelector, c.metadata?.labels));
      if (selected) affected.add(key(namespace, c.metadata?.name ?? ''));
    }
    for (const k of affected) this.queue.add(k);
  }

  #onOwned(kind: OwnedKind, _event: CacheEvent, obj: KubeObject): void {
    const namespace = obj.metadata?.namespace ?? '';
    const objKey = `${kind}/${namespace}/${obj.metadata?.name ?? ''}`;
    if (this.#inFlight.get(objKey) === obj.metadata?.annotations?.[ANNOTATIONS.appliedHash]) this.#inFlight.delete(objKey);
    const owner = obj.metadata?.labels?.[LABELS.connection];
    if (owner !== undefined) this.queue.add(key(namespace, owner));
  }

  async reconcile(k: string): Promise<void> {
    const began = performance.now();
    const [namespace = '', name = ''] = k.split('/');
    const log = this.#log.child({ connection: k });
    let result = 'ok';
    try {
      const connection = this.#o.caches.connections.get(namespace, name);
      if (!connection || connection.metadata?.deletionTimestamp) {
        // Owned objects go with it (ownerReferences → garbage collector).
        this.#setRefs(k, { secrets: [], policies: [] });
        this.#forceApply.delete(k);
        for (const kind of OWNED_KINDS) this.#inFlight.delete(`${kind}/${namespace}/${objectNameFor(kind, name)}`);
        return;
      }
      const rendered = this.#render(connection, await this.#foreignService(connection));
      this.#setRefs(k, { secrets: rendered.secrets, policies: rendered.policies });
      try {
        await this.#apply(connection, rendered, log);
      } catch (error) {
        const failed = withApplyFailure(rendered, connection, (error as Error).message.slice(0, 1024), this.#now());
        await this.#report(connection, failed, log).catch((e: unknown) => log.warn('could not write status', { error: String(e) }));
        throw error;
      }
      await this.#report(connection, rendered, log);
    } catch (error) {
      result = 'error';
      controllerMetrics.reconcileErrors.add(1, { controller: 'connection' });
      throw error;
    } finally {
      controllerMetrics.reconciles.add(1, { controller: 'connection', result });
      controllerMetrics.reconcileDuration.record((performance.now() - began) / 1000, { controller: 'connection' });
    }
  }

  /**
   * The Service is named after the Connection, so it may collide with a Service someone else
   * made; the owned-object cache (label-filtered) cannot show that, so look once before creating.
   */
  async #foreignService(connection: Connection & KubeObject): Promise<KubeObject | undefined> {
    const namespace = connection.metadata.namespace ?? '';
    const name = gatewayNames(connection.metadata.name ?? '').service;
    if (this.#o.caches.owned.Service.get(namespace, name)) return undefined;
    const live = await this.#o.client.find('Service', namespace, name);
    return live && !isOurs(live, connection) ? live : undefined;
  }

  /** Gather from the caches and render. */
  #render(connection: Connection & KubeObject, foreignService: KubeObject | undefined): ConnectionRender {
    const { caches } = this.#o;
    const namespace = connection.metadata.namespace ?? '';
    const name = connection.metadata.name ?? '';
    const names = gatewayNames(name);
    const ownedBy = (o: KubeObject | undefined): boolean => o !== undefined && isOurs(o, connection);
    const deployment = caches.owned.Deployment.get(namespace, names.deployment) as DeploymentObject | undefined;
    const configMap = caches.owned.ConfigMap.get(namespace, names.configMap);
    const conflicts: string[] = [];
    if (foreignService) conflicts.push(`Service ${namespace}/${names.service} exists and was not made for this Connection; delete or rename it`);
    for (const kind of OWNED_KINDS) {
      const objectName = objectNameFor(kind, name);
      const live = caches.owned[kind].get(namespace, objectName);
      if (live && !ownedBy(live)) conflicts.push(`${kind} ${namespace}/${objectName} exists and belongs to another owner; delete or rename it`);
    }
    const secrets = {
      get: (secretName: string): SecretSummary | undefined => {
        const s = caches.secrets.get(namespace, secretName);
        return s ? { name: secretName, resourceVersion: s.metadata?.resourceVersion ?? '', keys: Object.keys(s.data ?? {}) } : undefined;
      },
    };
    return renderConnection({
      connection,
      accessPolicies: caches.accessPolicies.list(namespace),
      recordingPolicies: caches.recordingPolicies.list(namespace),
      secrets,
      deployment: ownedBy(deployment) ? { replicas: deployment?.spec?.replicas, readyReplicas: deployment?.status?.readyReplicas } : undefined,
      configMapExists: ownedBy(configMap),
      conflicts,
      settings: this.#o.settings,
      now: this.#now(),
    });
  }

  /** Diff and apply: only objects whose applied hash differs from the live one are written. */
  async #apply(connection: Connection & KubeObject, rendered: ConnectionRender, log: Logger): Promise<void> {
    const namespace = connection.metadata.namespace ?? '';
    const k = key(namespace, connection.metadata.name ?? '');
    const force = this.#forceApply.delete(k);
    for (const manifest of rendered.objects) {
      const kind = manifest.kind as OwnedKind;
      const objKey = `${kind}/${namespace}/${manifest.metadata.name}`;
      const hash = manifest.metadata.annotations[ANNOTATIONS.appliedHash];
      const live = this.#o.caches.owned[kind].get(namespace, manifest.metadata.name);
      const liveHash = live?.metadata?.annotations?.[ANNOTATIONS.appliedHash];
      const upToDate = live !== undefined && ((liveHash === hash && isSubset(manifest, live)) || this.#inFlight.get(objKey) === hash);
      if (!force && upToDate) {
        controllerMetrics.writesSkipped.add(1, { kind });
        continue;
      }
      try {
        await this.#o.client.apply(manifest);
      } catch (error) {
        await this.#o.events.record(target(connection), 'Warning', Reason.ApplyFailed, `could not apply ${kind} ${manifest.metadata.name}: ${(error as Error).message}`);
        throw error;
      }
      this.#inFlight.set(objKey, hash ?? '');
      controllerMetrics.writes.add(1, { kind });
      log.info('applied', { kind, name: manifest.metadata.name, created: live === undefined });
      if (kind === 'ConfigMap') await this.#configEvent(connection, manifest, live, rendered);
    }
  }

  async #configEvent(connection: Connection & KubeObject, manifest: Manifest, live: KubeObject | undefined, rendered: ConnectionRender): Promise<void> {
    const previous = live?.metadata?.annotations?.[ANNOTATIONS.configHash];
    const next = manifest.metadata.annotations[ANNOTATIONS.configHash];
    if (previous === next) return;
    const policies = rendered.policies.length > 0 ? rendered.policies.join(', ') : 'none';
    const note = previous === undefined
      ? `gateway configuration created (${next}; access policies: ${policies})`
      : `gateway configuration updated (${next}; access policies: ${policies})`;
    await this.#o.events.record(target(connection), 'Normal', Reason.ConfigUpdated, note);
  }

  /** Status (only when changed) and Events for condition changes. */
  async #report(connection: Connection & KubeObject, rendered: ConnectionRender, log: Logger): Promise<void> {
    const before = connection.status?.conditions;
    for (const condition of rendered.conditions) {
      const previous = findCondition(before, condition.type);
      const changed = previous?.status !== condition.status || previous.reason !== condition.reason || previous.message !== condition.message;
      if (!changed) continue;
      if (condition.type === ConditionType.Degraded) {
        if (condition.status === 'True') await this.#o.events.record(target(connection), 'Warning', condition.reason, condition.message);
      } else if (condition.status === 'False' && condition.type !== ConditionType.Ready) {
        await this.#o.events.record(target(connection), 'Warning', condition.reason, condition.message);
      } else if (condition.type === ConditionType.Ready && condition.status === 'True' && previous?.status !== 'True') {
        await this.#o.events.record(target(connection), 'Normal', condition.reason, condition.message);
      }
    }
    if (!statusChanged(connection.status, rendered.status)) return;
    await this.#o.client.apply(
      { apiVersion: API_VERSION, kind: 'Connection', metadata: { name: connection.metadata.name ?? '', namespace: connection.metadata.namespace ?? '' }, status: rendered.status } as KubeObject & {
        kind: string;
        metadata: { name: string; namespace: string };
      },
      'status',
    );
    controllerMetrics.writes.add(1, { kind: 'Connection/status' });
    log.debug('status written', { ready: findCondition(rendered.status.conditions, ConditionType.Ready)?.status });
  }

  #setRefs(k: string, refs: { secrets: string[]; policies: string[] }): void {
    const namespace = k.split('/')[0] ?? '';
    const old = this.#refs.get(k);
    for (const s of old?.secrets ?? []) this.#bySecret.get(key(namespace, s))?.delete(k);
    for (const p of old?.policies ?? []) this.#byPolicy.get(key(namespace, p))?.delete(k);
    if (refs.secrets.length === 0 && refs.policies.length === 0) {
      this.#refs.delete(k);
      return;
    }
    this.#refs.set(k, refs);
    for (const s of refs.secrets) getOrAdd(this.#bySecret, key(namespace, s)).add(k);
    for (const p of refs.policies) getOrAdd(this.#byPolicy, key(namespace, p)).add(k);
  }
}

/**
 * Whether an object belongs to this Connection: controlled by a Connection of this name. A
 * different uid means an earlier Connection of the same name whose objects the garbage collector
 * has not removed yet; adopting them is right (apply rewrites the owner reference).
 */
function isOurs(obj: KubeObject, connection: Connection & KubeObject): boolean {
  return (
    obj.metadata?.ownerReferences?.some(
      (r) => r.controller === true && r.kind === 'Connection' && r.apiVersion.startsWith('warden.dev/') && r.name === connection.metadata.name,
    ) ?? false
  );
}

function objectNameFor(kind: OwnedKind, connection: string): string {
  const names = gatewayNames(connection);
  const byKind: Record<OwnedKind, string> = {
    ServiceAccount: names.serviceAccount,
    Role: names.role,
    RoleBinding: names.roleBinding,
    ConfigMap: names.configMap,
    Deployment: names.deployment,
    Service: names.service,
  };
  return byKind[kind];
}

function target(connection: Connection & KubeObject): EventTarget {
  return {
    apiVersion: API_VERSION,
    kind: 'Connection',
    namespace: connection.metadata.namespace ?? '',
    name: connection.metadata.name ?? '',
    uid: connection.metadata.uid,
  };
}

function getOrAdd<K, V>(map: Map<K, Set<V>>, k: K): Set<V> {
  let set = map.get(k);
  if (!set) {
    set = new Set();
    map.set(k, set);
  }
  return set;
}

/** Which Connections an AccessPolicy selects now (exported for the AccessPolicy status, later). */
export function connectionsSelectedBy(policy: AccessPolicy, connections: readonly Connection[]): string[] {
  return connections.filter((c) => selectAccessPolicies(c, [policy]).length > 0).map((c) => c.metadata.name ?? '');
}
