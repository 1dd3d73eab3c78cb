// Session objects (warden.dev/v1alpha1 Session, crds/warden.dev_sessions.yaml): the audit listing of
// `kubectl get sessions`. A gateway creates one when a session starts (spec: who, where, from where,
// immutable) and keeps its status up to date — counts, phase, recording location and head digest —
// in batches: at most one write per interval while the session runs and one at the end, never one
// per event. A failed write is retried at the next interval; the data path never waits for the API.

import { type KubeConfig, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { API_VERSION, GROUP, RESOURCES, type Session, type SessionPhase, type SessionSpec, type SessionStatus, VERSION } from '../api/types.ts';

export const SESSION_FIELD_MANAGER = 'warden-sidecar';
/** Label with the Connection's name, so `kubectl get sessions -l warden.dev/connection=orders-db` works. */
export const CONNECTION_LABEL = 'warden.dev/connection';

/** Session object names are the session ids: DNS-1123 subdomains. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

export function isValidSessionObjectName(name: string): boolean {
  return DNS_SUBDOMAIN.test(name);
}

export interface SessionRef {
  readonly namespace: string;
  readonly name: string;
}

/** The API operations the recorder needs; `KubeSessionObjects` is the real one. */
export interface SessionObjectClient {
  /** Creates the object; an existing one of that name is left alone (a restarted writer). */
  create(ref: SessionRef, spec: SessionSpec): Promise<void>;
  /** JSON merge patch of the status subresource. */
  patchStatus(ref: SessionRef, status: SessionStatus): Promise<void>;
  get(ref: SessionRef): Promise<Session | undefined>;
  /** Sessions of one namespace, or of all when `namespace` is undefined. */
  list(namespace?: string): Promise<Session[]>;
}

export class KubeSessionObjects implements SessionObjectClient {
  readonly #api: CustomObjectsApi;
  readonly #fieldManager: string;

  constructor(config: KubeConfig, fieldManager: string = SESSION_FIELD_MANAGER) {
    this.#api = config.makeApiClient(CustomObjectsApi);
    this.#fieldManager = fieldManager;
  }

  async create(ref: SessionRef, spec: SessionSpec): Promise<void> {
    const body: Session = {
      apiVersion: API_VERSION,
      kind: 'Session',
      metadata: { name: ref.name, namespace: ref.namespace, labels: { [CONNECTION_LABEL]: spec.connection } },
      spec,
    };
    try {
      await this.#api.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ref.namespace,
        plural: RESOURCES.Session.plural,
        body,
        fieldManager: this.#fieldManager,
      });
    } catch (error) {
      if (statusCode(error) !== 409) throw error;
    }
  }

  async patchStatus(ref: SessionRef, status: SessionStatus): Promise<void> {
    await this.#api.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: ref.namespace,
        plural: RESOURCES.Session.plural,
        name: ref.name,
        body: { status },
        fieldManager: this.#fieldManager,
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async get(ref: SessionRef): Promise<Session | undefined> {
    try {
      return (await this.#api.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: ref.namespace,
        plural: RESOURCES.Session.plural,
        name: ref.name,
      })) as Session;
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async list(namespace?: string): Promise<Session[]> {
    const items: Session[] = [];
    let next: string | undefined;
    do {
      const page = (
        namespace === undefined
          ? await this.#api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: RESOURCES.Session.plural, limit: 500, ...(next ? { _continue: next } : {}) })
          : await this.#api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: RESOURCES.Session.plural, limit: 500, ...(next ? { _continue: next } : {}) })
      ) as { items?: Session[]; metadata?: { continue?: string } };
      items.push(...(page.items ?? []));
      next = page.metadata?.continue || undefined;
    } while (next);
    return items;
  }
}

export function statusCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Go-style duration as `kubectl get` shows it: `45s`, `12m30s`, `2h5m0s`. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** Terminal phase for a `session.end` reason: the client or server hung up → Closed; Warden ended it → Terminated. */
export function phaseForEndReason(reason: string): SessionPhase {
  return reason === 'client-closed' || reason === 'server-closed' ? 'Closed' : 'Terminated';
}

export interface StatusReporterOptions {
  /** Least time between two status writes while the session runs (default 5 s). */
  readonly intervalMs?: number;
  /** Attempts for the final write (default 5, with the interval's back-off in between). */
  readonly finalAttempts?: number;
  readonly log?: (message: string) => void;
}

/**
 * Keeps one Session object's status in step with the session, in batches. `update` only records
 * the new values; a timer writes them at most once per interval. `finish` writes the final status
 * (phase, endedAt, counts, digest) right away and retries it a few times.
 */
export class SessionStatusReporter {
  readonly ref: SessionRef;
  readonly #client: SessionObjectClient;
  readonly #intervalMs: number;
  readonly #finalAttempts: number;
  readonly #log: (message: string) => void;
  #desired: SessionStatus = {};
  #written = '';
  #spec: SessionSpec | undefined;
  #snapshot: (() => SessionStatus) | undefined;
  #created = false;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #finished = false;
  #writes = 0;

  constructor(client: SessionObjectClient, ref: SessionRef, options: StatusReporterOptions = {}) {
    this.#client = client;
    this.ref = ref;
    this.#intervalMs = options.intervalMs ?? 5_000;
    this.#finalAttempts = options.finalAttempts ?? 5;
    this.#log = options.log ?? (() => undefined);
  }

  /** Status writes that reached the API server (for tests of the batching). */
  get writes(): number {
    return this.#writes;
  }

  /** Creates the object and writes the first status; returns at once. */
  start(spec: SessionSpec, status: SessionStatus): void {
    this.#spec = spec;
    this.#desired = mergeStatus(this.#desired, status);
    void this.#enqueueWrite();
  }

  /** Adopts an existing object (recovery after a restart): no create. */
  adopt(): void {
    this.#created = true;
  }

  /** Where the running counts come from; read at each write, so recording an event costs nothing here. */
  setSnapshot(snapshot: () => SessionStatus): void {
    this.#snapshot = snapshot;
  }

  /** Notes that the snapshot changed; the next write happens within the interval. */
  touch(): void {
    if (this.#finished || this.#timer !== undefined) return;
    this.update({});
  }

  update(status: SessionStatus): void {
    if (this.#finished) return;
    this.#desired = mergeStatus(this.#desired, status);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.#enqueueWrite();
      }, this.#intervalMs);
      this.#timer.unref();
    }
  }

  /** Writes the final status now; resolves true once the API server has it. */
  async finish(status: SessionStatus): Promise<boolean> {
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#snapshot) this.#desired = mergeStatus(this.#desired, this.#snapshot());
    this.#snapshot = undefined;
    this.#desired = mergeStatus(this.#desired, status);
    for (let attempt = 0; attempt < this.#finalAttempts; attempt++) {
      if (await this.#enqueueWrite()) return true;
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.#intervalMs, 200 * 2 ** attempt)).unref());
    }
    return false;
  }

  /** Serializes writes; resolves true when the desired status is on the server. */
  #enqueueWrite(): Promise<boolean> {
    const result = this.#chain.then(() => this.#write());
    this.#chain = result.then(() => undefined);
    return result;
  }

  async #write(): Promise<boolean> {
    if (!this.#created) {
      if (this.#spec === undefined) return false;
      try {
        await this.#client.create(this.ref, this.#spec);
        this.#created = true;
      } catch (error) {
        this.#log(`creating Session ${this.ref.namespace}/${this.ref.name} failed: ${(error as Error).message}`);
        if (!this.#finished && this.#timer === undefined) this.update({});
        return false;
      }
    }
    if (this.#snapshot) this.#desired = mergeStatus(this.#desired, this.#snapshot());
    const body = JSON.stringify(this.#desired);
    if (body === this.#written) return true;
    try {
      await this.#client.patchStatus(this.ref, this.#desired);
      this.#written = body;
      this.#writes += 1;
      return true;
    } catch (error) {
      this.#log(`updating Session ${this.ref.namespace}/${this.ref.name} failed: ${(error as Error).message}`);
      if (!this.#finished && this.#timer === undefined) this.update({});
      return false;
    }
  }
}

function mergeStatus(a: SessionStatus, b: SessionStatus): SessionStatus {
  const merged: SessionStatus = { ...a, ...b };
  if (a.recording || b.recording) merged.recording = { ...a.recording, ...b.recording };
  return merged;
}
