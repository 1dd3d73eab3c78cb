// KubeApprovals: just-in-time approvals as AccessRequest objects (crds/warden.dev_accessrequests.yaml).
//
// The gateway creates the AccessRequest (spec: who, where, the exact command, the rule, the
// approvers copied from the deciding policy, expiresAt) and watches it. Approvers decide by writing
// the status subresource (`warden approve|deny`, `kubectl warden approve|deny`); the CRD's transition
// rule makes a decision final and the ValidatingAdmissionPolicy in config/default checks who may
// write which decision. The gateway itself only ever writes Expired (its deadline passed) or
// Withdrawn (the client gave up). Every failure to talk to the API server settles the outcome as
// Unavailable, which the gateways treat as a refusal: fail closed.

import { createHash } from 'node:crypto';
import { CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions, Watch } from '@kubernetes/client-node';
import {
  type AccessRequest,
  type AccessRequestSpec,
  type AccessRequestStatus,
  API_VERSION,
  GROUP,
  RESOURCES,
  VERSION,
} from '../api/types.ts';
import { parseGoDuration } from '../policy/duration.ts';
import { statusCode } from '../recorder/session-objects.ts';
import type { ApprovalHandle, ApprovalOutcome, ApprovalRequest, Approvals } from './types.ts';

export const APPROVALS_FIELD_MANAGER = 'warden-sidecar';

/** Labels on every AccessRequest, so gateways and approvers can list them without reading specs. */
export const APPROVAL_LABELS = {
  connection: 'warden.dev/connection',
  /** sha256 of the requester's username, hex, first 40 characters (usernames are not valid label values). */
  requester: 'warden.dev/requester',
  session: 'warden.dev/session',
  kind: 'warden.dev/request-kind',
} as const;

/** The one-line, shortened command `kubectl get accessrequests` shows (printer column Command). */
export const COMMAND_ANNOTATION = 'warden.dev/command';
const COMMAND_SUMMARY_MAX = 60;

/** How long an approved Command request covers a retry of that exact command (HTTP/Kubernetes). */
export const DEFAULT_COMMAND_WINDOW_MS = 5 * 60_000;

export class ApprovalError extends Error {
  readonly code = 'WARDEN_APPROVAL_CREATE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ApprovalError';
  }
}

/** A notification hook: called when a request is created and when its decision is seen. Never awaited by the data path. */
export type ApprovalNotify = (event: ApprovalNotification) => void;

export interface ApprovalNotification {
  readonly type: 'created' | 'decided';
  readonly namespace: string;
  readonly request: AccessRequest;
}

export interface KubeApprovalsOptions {
  readonly namespace: string;
  /** Approved Command requests cover the same command for this long after decidedAt (default 5 min). */
  readonly commandWindowMs?: number;
  readonly fieldManager?: string;
  readonly notify?: ApprovalNotify;
  readonly log?: (message: string, fields?: Record<string, unknown>) => void;
  /** Back-off between watch restarts (default 1 s). */
  readonly retryMs?: number;
  readonly now?: () => number;
}

// ---------------------------------------------------------------------------------------------
// Pure parts

export function requesterLabel(user: string): string {
  return createHash('sha256').update(user, 'utf8').digest('hex').slice(0, 40);
}

/** A label value (≤ 63, alphanumeric at both ends, `-_.` inside) or undefined when `value` is not one. */
export function labelValue(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(value) ? value : undefined;
}

/** generateName prefix: the connection's name (a DNS label), cut so the generated suffix fits. */
export function namePrefix(connection: string): string {
  const base = connection.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+/, '').slice(0, 50).replace(/-+$/, '');
  return `${base || 'request'}-`;
}

/** Whole seconds, as the CRD's duration pattern wants ("90s"). */
export function durationString(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))}s`;
}

export function buildAccessRequest(request: ApprovalRequest, namespace: string, now: number): AccessRequest {
  const spec: AccessRequestSpec = {
    requester: { user: request.requester.user, groups: [...request.requester.groups] },
    connection: request.connection,
    kind: request.kind,
    expiresAt: new Date(now + Math.max(0, request.timeoutMs)).toISOString(),
    approvers: request.approvers.map((s) => ({ kind: s.kind, name: s.name })),
  };
  if (request.session !== undefined) spec.session = request.session;
  if (request.command) {
    spec.command = { protocol: request.command.protocol, text: request.command.text };
    if (request.command.parameters) spec.command.parameters = [...request.command.parameters];
  }
  if (request.policy !== undefined) spec.policy = request.policy;
  if (request.rule !== undefined) spec.rule = request.rule;
  if (request.reason !== undefined) spec.reason = request.reason.slice(0, 1024);
  if (request.kind === 'Session') spec.duration = durationString(request.durationMs ?? 0);
  const labels: Record<string, string> = {
    [APPROVAL_LABELS.connection]: request.connection,
    [APPROVAL_LABELS.requester]: requesterLabel(request.requester.user),
    [APPROVAL_LABELS.kind]: request.kind,
  };
  const session = labelValue(request.session);
  if (session !== undefined) labels[APPROVAL_LABELS.session] = session;
  const summary = request.kind === 'Session' ? `(session access for ${spec.duration ?? '?'})` : shortCommand(request.command?.text, COMMAND_SUMMARY_MAX);
  return {
    apiVersion: API_VERSION,
    kind: 'AccessRequest',
    metadata: { generateName: namePrefix(request.connection), namespace, labels, annotations: { [COMMAND_ANNOTATION]: summary } },
    spec,
  };
}

/** The outcome a decided AccessRequest stands for; undefined while it is pending. */
export function outcomeOf(object: AccessRequest): ApprovalOutcome | undefined {
  const name = object.metadata.name ?? '';
  const status = object.status;
  switch (status?.decision) {
    case 'Approved': {
      const outcome: ApprovalOutcome & { decision: 'Approved' } = { decision: 'Approved', request: name, decidedBy: status.decidedBy ?? '' };
      if (status.comment) outcome.comment = status.comment;
      const end = sessionAccessEnd(object);
      if (end !== undefined) outcome.expiresAt = new Date(end);
      return outcome;
    }
    case 'Denied':
      return status.comment
        ? { decision: 'Denied', request: name, decidedBy: status.decidedBy ?? '', comment: status.comment }
        : { decision: 'Denied', request: name, decidedBy: status.decidedBy ?? '' };
    case 'Expired':
      return { decision: 'Expired', request: name };
    case 'Withdrawn':
      return { decision: 'Withdrawn', request: name };
    default:
      return undefined;
  }
}

/** Session kind: decidedAt + spec.duration (ms since the epoch); undefined otherwise. */
export function sessionAccessEnd(object: AccessRequest): number | undefined {
  if (object.spec.kind !== 'Session' || object.status?.decision !== 'Approved') return undefined;
  const decidedAt = Date.parse(object.status.decidedAt ?? '');
  if (Number.isNaN(decidedAt)) return undefined;
  try {
    return decidedAt + parseGoDuration(object.spec.duration ?? '');
  } catch {
    return undefined; // not a duration (the CRD's pattern admits only valid ones)
  }
}

export type ApprovedQuery = Pick<ApprovalRequest, 'requester' | 'connection' | 'kind' | 'command'>;

/** Whether `object` is an approval, still in force at `now`, of exactly what `query` asks. */
export function coversQuery(object: AccessRequest, query: ApprovedQuery, now: number, commandWindowMs: number): boolean {
  const { spec, status } = object;
  if (status?.decision !== 'Approved') return false;
  // An approval written after the request's deadline (no gateway was there to mark it Expired; the
  // admission policy has no clock to refuse it) covers nothing.
  const deadline = Date.parse(spec.expiresAt);
  const decidedAtMs = Date.parse(status.decidedAt ?? '');
  if (Number.isNaN(deadline) || Number.isNaN(decidedAtMs) || decidedAtMs > deadline) return false;
  if (spec.requester.user !== query.requester.user) return false;
  if (spec.connection !== query.connection) return false;
  if ((spec.kind ?? 'Command') !== query.kind) return false;
  if (query.kind === 'Session') {
    const end = sessionAccessEnd(object);
    return end !== undefined && now < end;
  }
  if (!query.command || !spec.command) return false;
  if (spec.command.protocol !== query.command.protocol || spec.command.text !== query.command.text) return false;
  const a = spec.command.parameters ?? [];
  const b = query.command.parameters ?? [];
  if (a.length !== b.length || a.some((v, i) => v !== b[i])) return false;
  return now >= decidedAtMs - 60_000 && now < decidedAtMs + commandWindowMs;
}

/** Whether `object` is a Session request of this requester for this connection still waiting at `now` (undecided, deadline ahead). */
export function waitsForSession(object: AccessRequest, query: Pick<ApprovalRequest, 'requester' | 'connection'>, now: number): boolean {
  const { spec, status } = object;
  if ((spec.kind ?? 'Command') !== 'Session' || status?.decision !== undefined) return false;
  if (spec.requester.user !== query.requester.user || spec.connection !== query.connection) return false;
  const deadline = Date.parse(spec.expiresAt);
  return !Number.isNaN(deadline) && now < deadline;
}

/** Shortened one-line command text for tables and notices. */
export function shortCommand(text: string | undefined, max = 60): string {
  if (!text) return '';
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

// ---------------------------------------------------------------------------------------------
// The API side

export class KubeApprovals implements Approvals {
  readonly #api: CustomObjectsApi;
  readonly #watch: Watch;
  readonly #o: KubeApprovalsOptions;
  readonly #now: () => number;
  readonly #pending = new Set<PendingRequest>();
  #closed = false;

  constructor(config: KubeConfig, options: KubeApprovalsOptions) {
    this.#api = config.makeApiClient(CustomObjectsApi);
    this.#watch = new Watch(config);
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  get namespace(): string {
    return this.#o.namespace;
  }

  async request(request: ApprovalRequest): Promise<ApprovalHandle> {
    if (this.#closed) throw new ApprovalError('approvals are shut down');
    const body = buildAccessRequest(request, this.#o.namespace, this.#now());
    let created: AccessRequest;
    try {
      created = (await this.#api.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.#o.namespace,
        plural: RESOURCES.AccessRequest.plural,
        body,
        fieldManager: this.#o.fieldManager ?? APPROVALS_FIELD_MANAGER,
      })) as AccessRequest;
    } catch (error) {
      throw new ApprovalError(`cannot create the AccessRequest: ${describeApiError(error)}`, { cause: error });
    }
    this.#notify('created', created);
    const pending = new PendingRequest(this, created);
    this.#pending.add(pending);
    void pending.outcome.then(() => this.#pending.delete(pending));
    pending.start();
    return pending;
  }

  async findApproved(query: ApprovedQuery): Promise<(ApprovalOutcome & { decision: 'Approved' }) | undefined> {
    const items = await this.#listFor(query.requester.user, query.connection, query.kind);
    const now = this.#now();
    const window = this.#o.commandWindowMs ?? DEFAULT_COMMAND_WINDOW_MS;
    const hits = items.filter((item) => coversQuery(item, query, now, window));
    hits.sort((a, b) => Date.parse(b.status?.decidedAt ?? '') - Date.parse(a.status?.decidedAt ?? ''));
    const hit = hits[0];
    if (!hit) return undefined;
    const outcome = outcomeOf(hit);
    return outcome?.decision === 'Approved' ? outcome : undefined;
  }

  async findWaiting(query: Pick<ApprovalRequest, 'requester' | 'connection'>): Promise<string | undefined> {
    const items = await this.#listFor(query.requester.user, query.connection, 'Session');
    const now = this.#now();
    const waiting = items.filter((item) => waitsForSession(item, query, now));
    // The newest, when there are several.
    const created = (r: AccessRequest): number => new Date(r.metadata?.creationTimestamp ?? 0).getTime();
    waiting.sort((a, b) => created(b) - created(a));
    return waiting[0]?.metadata?.name;
  }

  /** This requester's requests of `kind` for `connection` (by label); none when listing fails (fail closed: nothing found). */
  async #listFor(user: string, connection: string, kind: ApprovalRequest['kind']): Promise<AccessRequest[]> {
    const selector = [`${APPROVAL_LABELS.connection}=${connection}`, `${APPROVAL_LABELS.requester}=${requesterLabel(user)}`, `${APPROVAL_LABELS.kind}=${kind}`].join(',');
    try {
      const list = (await this.#api.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: this.#o.namespace,
        plural: RESOURCES.AccessRequest.plural,
        labelSelector: selector,
      })) as { items?: AccessRequest[] };
      return list.items ?? [];
    } catch (error) {
      this.#o.log?.('approvals: listing AccessRequests failed', { error: describeApiError(error) });
      return [];
    }
  }

  /** Withdraws every request still waiting (sidecar shutdown). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#pending].map(async (p) => await p.withdraw()));
  }

  // Used by PendingRequest.

  get retryMs(): number {
    return this.#o.retryMs ?? 1000;
  }

  now(): number {
    return this.#now();
  }

  log(message: string, fields?: Record<string, unknown>): void {
    this.#o.log?.(message, fields);
  }

  #notify(type: ApprovalNotification['type'], request: AccessRequest): void {
    if (!this.#o.notify) return;
    try {
      this.#o.notify({ type, namespace: this.#o.namespace, request });
    } catch (error) {
      this.#o.log?.('approvals: notification hook failed', { error: String(error) });
    }
  }

  notifyDecided(request: AccessRequest): void {
    this.#notify('decided', request);
  }

  async get(name: string): Promise<AccessRequest> {
    return (await this.#api.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.#o.namespace,
      plural: RESOURCES.AccessRequest.plural,
      name,
    })) as AccessRequest;
  }

  async patchStatus(name: string, status: AccessRequestStatus): Promise<AccessRequest> {
    return (await this.#api.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: this.#o.namespace,
        plural: RESOURCES.AccessRequest.plural,
        name,
        body: { status },
        fieldManager: this.#o.fieldManager ?? APPROVALS_FIELD_MANAGER,
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as AccessRequest;
  }

  async watchOne(
    name: string,
    resourceVersion: string | undefined,
    onObject: (object: AccessRequest) => void,
    done: (error: unknown) => void,
  ): Promise<AbortController> {
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(this.#o.namespace)}/${RESOURCES.AccessRequest.plural}`;
    return await this.#watch.watch(
      path,
      { fieldSelector: `metadata.name=${name}`, allowWatchBookmarks: false, ...(resourceVersion ? { resourceVersion } : {}) },
      (phase: string, object: unknown) => {
        if ((phase === 'ADDED' || phase === 'MODIFIED') && isAccessRequest(object)) onObject(object);
      },
      done,
    );
  }
}

function isAccessRequest(value: unknown): value is AccessRequest {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'AccessRequest';
}

/** One waiting request: watch for a decision; at the deadline write Expired; withdraw on demand. */
class PendingRequest implements ApprovalHandle {
  readonly name: string;
  readonly outcome: Promise<ApprovalOutcome>;
  readonly #owner: KubeApprovals;
  readonly #deadline: number;
  #resolve!: (outcome: ApprovalOutcome) => void;
  #settled = false;
  #resourceVersion: string | undefined;
  #abort: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #withdrawing: Promise<void> | undefined;

  constructor(owner: KubeApprovals, created: AccessRequest) {
    this.#owner = owner;
    this.name = created.metadata.name ?? '';
    this.#resourceVersion = created.metadata.resourceVersion;
    this.#deadline = Date.parse(created.spec.expiresAt);
    this.outcome = new Promise<ApprovalOutcome>((resolve) => {
      this.#resolve = resolve;
    });
  }

  start(): void {
    const delay = Math.max(0, this.#deadline - this.#owner.now());
    this.#timer = setTimeout(() => void this.#expire(), Math.min(delay, 2_147_000_000));
    this.#timer.unref?.();
    void this.#startWatch();
  }

  async #startWatch(): Promise<void> {
    if (this.#settled) return;
    try {
      this.#abort = await this.#owner.watchOne(
        this.name,
        this.#resourceVersion,
        (object) => this.#seen(object),
        (error: unknown) => {
          this.#abort = undefined;
          if (this.#settled) return;
          if (error) this.#owner.log('approvals: watch ended', { request: this.name, error: describeApiError(error) });
          this.#scheduleResync();
        },
      );
      if (this.#settled) this.#abort.abort();
    } catch (error) {
      this.#owner.log('approvals: watch failed', { request: this.name, error: describeApiError(error) });
      this.#scheduleResync();
    }
  }

  /** After a watch ends: read the object (a decision may have come meanwhile), then watch again from there. */
  #scheduleResync(): void {
    if (this.#settled || this.#retry) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.#resync();
    }, this.#owner.retryMs);
    this.#retry.unref?.();
  }

  async #resync(): Promise<void> {
    if (this.#settled) return;
    try {
      const object = await this.#owner.get(this.name);
      this.#seen(object);
      this.#resourceVersion = object.metadata.resourceVersion;
    } catch (error) {
      if (statusCode(error) === 404) {
        this.#settle({ decision: 'Unavailable', request: this.name, reason: 'the AccessRequest was deleted' });
        return;
      }
      this.#owner.log('approvals: reading the AccessRequest failed', { request: this.name, error: describeApiError(error) });
      this.#scheduleResync();
      return;
    }
    await this.#startWatch();
  }

  #seen(object: AccessRequest): void {
    if (object.metadata.resourceVersion) this.#resourceVersion = object.metadata.resourceVersion;
    const outcome = outcomeOf(object);
    if (!outcome || this.#settled) return;
    this.#owner.notifyDecided(object);
    this.#settle(outcome);
  }

  #settle(outcome: ApprovalOutcome): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#retry);
    this.#abort?.abort();
    this.#abort = undefined;
    this.#resolve(outcome);
  }

  /** Writes a gateway decision; when the API refuses because a decision exists, reads and reports that one. */
  async #finish(decision: 'Expired' | 'Withdrawn'): Promise<void> {
    if (this.#settled) return;
    try {
      const updated = await this.#owner.patchStatus(this.name, { decision, decidedAt: new Date(this.#owner.now()).toISOString() });
      this.#seen(updated);
      this.#settle({ decision, request: this.name });
      return;
    } catch (error) {
      this.#owner.log(`approvals: writing ${decision} failed`, { request: this.name, error: describeApiError(error) });
    }
    try {
      const object = await this.#owner.get(this.name);
      this.#seen(object); // decided meanwhile (the CRD's transition rule refused our write)
    } catch {
      // fall through
    }
    if (decision === 'Withdrawn') this.#settle({ decision: 'Withdrawn', request: this.name });
    else this.#settle({ decision: 'Unavailable', request: this.name, reason: 'the request expired and its status could not be written' });
  }

  async #expire(): Promise<void> {
    if (this.#settled) return;
    const left = this.#deadline - this.#owner.now();
    if (left > 0) {
      this.#timer = setTimeout(() => void this.#expire(), Math.min(left, 2_147_000_000));
      this.#timer.unref?.();
      return;
    }
    await this.#finish('Expired');
  }

  async withdraw(): Promise<void> {
    this.#withdrawing ??= this.#finish('Withdrawn');
    await this.#withdrawing;
  }
}

/** An API error as one line, without bodies that could carry anything sensitive. */
export function describeApiError(error: unknown): string {
  const code = statusCode(error);
  const body = (error as { body?: unknown } | undefined)?.body;
  let message: string | undefined;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // not JSON
    }
  } else if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') {
    message = (body as { message: string }).message;
  }
  if (code !== undefined) return `HTTP ${code}${message ? `: ${message}` : ''}`;
  return error instanceof Error ? error.message : String(error);
}
