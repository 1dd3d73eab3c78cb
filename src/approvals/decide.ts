// The approver's side: list AccessRequests, and write a decision (Approved/Denied) into the status
// subresource as the calling user — decidedBy is the caller's username as the API server sees it
// (a SelfSubjectReview, what `kubectl auth whoami` asks), which the admission policy checks.

import { AuthenticationV1Api, CustomObjectsApi, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { type AccessRequest, GROUP, RESOURCES, VERSION } from '../api/types.ts';
import { statusCode } from '../recorder/session-objects.ts';
import { describeApiError, shortCommand } from './kube.ts';

export const DecisionErrorCode = {
  NotFound: 'WARDEN_REQUEST_NOT_FOUND',
  AlreadyDecided: 'WARDEN_REQUEST_ALREADY_DECIDED',
  Forbidden: 'WARDEN_REQUEST_FORBIDDEN',
  Invalid: 'WARDEN_REQUEST_INVALID',
  Api: 'WARDEN_REQUEST_API',
} as const;
export type DecisionErrorCode = (typeof DecisionErrorCode)[keyof typeof DecisionErrorCode];

export class DecisionError extends Error {
  readonly code: DecisionErrorCode;
  constructor(code: DecisionErrorCode, message: string) {
    super(message);
    this.name = 'DecisionError';
    this.code = code;
  }
}

export interface WhoAmI {
  username: string;
  groups: string[];
}

/** The caller as the API server authenticates them (`kubectl auth whoami`). */
export async function whoAmI(config: KubeConfig): Promise<WhoAmI> {
  const api = config.makeApiClient(AuthenticationV1Api);
  try {
    const review = await api.createSelfSubjectReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
    const username = review.status?.userInfo?.username;
    if (!username) throw new DecisionError(DecisionErrorCode.Api, 'the API server did not say who you are (SelfSubjectReview without a username)');
    return { username, groups: review.status?.userInfo?.groups ?? [] };
  } catch (error) {
    if (error instanceof DecisionError) throw error;
    throw new DecisionError(DecisionErrorCode.Api, `cannot ask the API server who you are: ${describeApiError(error)}`);
  }
}

export async function getRequest(config: KubeConfig, namespace: string, name: string): Promise<AccessRequest> {
  const api = config.makeApiClient(CustomObjectsApi);
  try {
    return (await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: RESOURCES.AccessRequest.plural, name })) as AccessRequest;
  } catch (error) {
    throw toDecisionError(error, namespace, name);
  }
}

export async function listRequests(config: KubeConfig, namespace: string | undefined): Promise<AccessRequest[]> {
  const api = config.makeApiClient(CustomObjectsApi);
  const base = { group: GROUP, version: VERSION, plural: RESOURCES.AccessRequest.plural };
  try {
    const list = (namespace === undefined
      ? await api.listClusterCustomObject(base)
      : await api.listNamespacedCustomObject({ ...base, namespace })) as { items?: AccessRequest[] };
    return list.items ?? [];
  } catch (error) {
    throw toDecisionError(error, namespace ?? '', '');
  }
}

export interface DecideOptions {
  namespace: string;
  name: string;
  decision: 'Approved' | 'Denied';
  comment?: string;
  now?: () => number;
}

/** Writes the decision as the caller. Clear errors: not found, already decided, refused (with the policy's message). */
export async function decide(config: KubeConfig, options: DecideOptions): Promise<AccessRequest> {
  const me = await whoAmI(config);
  const current = await getRequest(config, options.namespace, options.name);
  if (current.status?.decision) {
    throw new DecisionError(DecisionErrorCode.AlreadyDecided, `AccessRequest ${options.name} is already decided: ${decisionText(current)}`);
  }
  const expires = Date.parse(current.spec.expiresAt);
  const now = (options.now ?? Date.now)();
  if (!Number.isNaN(expires) && now >= expires) {
    throw new DecisionError(DecisionErrorCode.AlreadyDecided, `AccessRequest ${options.name} expired at ${current.spec.expiresAt}`);
  }
  const status: Record<string, string> = { decision: options.decision, decidedBy: me.username, decidedAt: new Date(now).toISOString() };
  if (options.comment) status.comment = options.comment;
  const api = config.makeApiClient(CustomObjectsApi);
  try {
    return (await api.patchNamespacedCustomObjectStatus(
      {
        group: GROUP,
        version: VERSION,
        namespace: options.namespace,
        plural: RESOURCES.AccessRequest.plural,
        name: options.name,
        // resourceVersion: a decision written meanwhile makes this a 409, not a silent overwrite.
        body: { metadata: { resourceVersion: current.metadata.resourceVersion }, status },
        fieldManager: 'warden-approve',
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as AccessRequest;
  } catch (error) {
    if (statusCode(error) === 409) {
      const after = await getRequest(config, options.namespace, options.name).catch(() => undefined);
      if (after?.status?.decision) {
        throw new DecisionError(DecisionErrorCode.AlreadyDecided, `AccessRequest ${options.name} was decided meanwhile: ${decisionText(after)}`);
      }
    }
    throw toDecisionError(error, options.namespace, options.name);
  }
}

/** `Approved by alice@example.com` (or just the decision when nobody is named). */
function decisionText(request: AccessRequest): string {
  const by = request.status?.decidedBy ? ` by ${request.status.decidedBy}` : '';
  return `${request.status?.decision ?? ''}${by}`;
}

function apiMessage(error: unknown): string {
  const described = describeApiError(error);
  return described.replace(/^HTTP \d+: /, '');
}

export function toDecisionError(error: unknown, namespace: string, name: string): DecisionError {
  if (error instanceof DecisionError) return error;
  const code = statusCode(error);
  const message = apiMessage(error);
  if (code === 404) return new DecisionError(DecisionErrorCode.NotFound, name ? `AccessRequest ${name} not found in namespace ${namespace}` : `not found: ${message}`);
  if (code === 403) {
    // An admission policy's refusal: "... denied request: <the policy's message>".
    const denied = /denied request: (.*)$/s.exec(message);
    if (denied?.[1]) return new DecisionError(DecisionErrorCode.Forbidden, `refused by the admission policy: ${denied[1].trim()}`);
    return new DecisionError(DecisionErrorCode.Forbidden, `forbidden: ${message}`);
  }
  if (code === 422) {
    if (/is final/.test(message)) return new DecisionError(DecisionErrorCode.AlreadyDecided, `AccessRequest ${name} is already decided`);
    if (/requester cannot decide/.test(message)) return new DecisionError(DecisionErrorCode.Forbidden, 'refused: the requester cannot decide their own AccessRequest');
    return new DecisionError(DecisionErrorCode.Invalid, `invalid: ${message}`);
  }
  return new DecisionError(DecisionErrorCode.Api, `API error: ${describeApiError(error)}`);
}

/** Human age, as kubectl prints it: 45s, 12m, 3h, 2d. */
export function age(fromIso: string | undefined, now: number): string {
  const from = Date.parse(fromIso ?? '');
  return Number.isNaN(from) ? '' : span(now - from);
}

/** A span of milliseconds the way `age` prints it. */
function span(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172_800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export function isPending(request: AccessRequest, now: number): boolean {
  return !request.status?.decision && !(Date.parse(request.spec.expiresAt) <= now);
}

export function requestsTable(requests: readonly AccessRequest[], options: { allNamespaces: boolean; now: number }): string[] {
  const header = [...(options.allNamespaces ? ['NAMESPACE'] : []), 'NAME', 'REQUESTER', 'CONNECTION', 'COMMAND', 'AGE', 'EXPIRES IN', 'DECISION'];
  const rows = [...requests]
    .sort((a, b) => Date.parse(String(a.metadata.creationTimestamp ?? '')) - Date.parse(String(b.metadata.creationTimestamp ?? '')))
    .map((r) => {
      const expires = Date.parse(r.spec.expiresAt) - options.now;
      const what = r.spec.kind === 'Session' ? `(session for ${r.spec.duration ?? '?'})` : shortCommand(r.spec.command?.text, 50);
      return [
        ...(options.allNamespaces ? [r.metadata.namespace ?? ''] : []),
        r.metadata.name ?? '',
        r.spec.requester.user,
        r.spec.connection,
        what,
        age(String(r.metadata.creationTimestamp ?? ''), options.now),
        r.status?.decision ? '' : expires > 0 ? span(expires) : 'expired',
        r.status?.decision ?? 'Pending',
      ];
    });
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('   ').trimEnd());
}
