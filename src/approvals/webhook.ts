// Approval notifications: an optional webhook called when an AccessRequest is created and when it
// is decided, so teams can relay requests to Slack, Teams or a pager (docs/approvals.md).
//
// The body is JSON; `X-Warden-Signature: sha256=<hex>` is HMAC-SHA256 with the shared secret over
// `<timestamp>.<body>`, and `X-Warden-Timestamp` is that timestamp (Unix seconds), so a receiver
// can refuse replays older than a few minutes (`verifyWebhookSignature`). Delivery never holds up
// a gateway: it runs in the background, with a timeout and a few retries, and failures are logged.

import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { AccessRequest } from '../api/types.ts';
import type { ApprovalNotification, ApprovalNotify } from './kube.ts';

export const SIGNATURE_HEADER = 'x-warden-signature';
export const TIMESTAMP_HEADER = 'x-warden-timestamp';
export const DELIVERY_HEADER = 'x-warden-delivery';
/** Receivers should refuse deliveries whose timestamp is further than this from their clock. */
export const DEFAULT_TOLERANCE_S = 300;

export interface WebhookPayload {
  /** `accessrequest.created` or `accessrequest.decided`. */
  type: 'accessrequest.created' | 'accessrequest.decided';
  namespace: string;
  name: string;
  requester: string;
  connection: string;
  kind: 'Command' | 'Session';
  command?: { protocol: string; text: string; parameters?: string[] };
  duration?: string;
  policy?: string;
  rule?: string;
  reason?: string;
  approvers: Array<{ kind: string; name: string }>;
  expiresAt: string;
  decision?: string;
  decidedBy?: string;
  decidedAt?: string;
  comment?: string;
  /** One line for chat: what to run to decide, or what was decided. */
  text: string;
}

const TEXT_MAX = 2000;

export function webhookPayload(event: ApprovalNotification): WebhookPayload {
  const r: AccessRequest = event.request;
  const name = r.metadata.name ?? '';
  const what = r.spec.kind === 'Session' ? `access to ${r.spec.connection} for ${r.spec.duration ?? '?'}` : clip(r.spec.command?.text ?? '', 300);
  const text =
    event.type === 'created'
      ? `${r.spec.requester.user} asks to run on ${r.spec.connection}: ${what} — approve with: kubectl warden approve ${name} -n ${event.namespace}`
      : `AccessRequest ${event.namespace}/${name} (${r.spec.requester.user} on ${r.spec.connection}): ${r.status?.decision ?? '?'}${r.status?.decidedBy ? ` by ${r.status.decidedBy}` : ''}${r.status?.comment ? ` — ${clip(r.status.comment, 300)}` : ''}`;
  const payload: WebhookPayload = {
    type: event.type === 'created' ? 'accessrequest.created' : 'accessrequest.decided',
    namespace: event.namespace,
    name,
    requester: r.spec.requester.user,
    connection: r.spec.connection,
    kind: r.spec.kind ?? 'Command',
    approvers: r.spec.approvers ?? [],
    expiresAt: r.spec.expiresAt,
    text: clip(text, TEXT_MAX),
  };
  if (r.spec.command) payload.command = r.spec.command;
  if (r.spec.duration) payload.duration = r.spec.duration;
  if (r.spec.policy) payload.policy = r.spec.policy;
  if (r.spec.rule) payload.rule = r.spec.rule;
  if (r.spec.reason) payload.reason = r.spec.reason;
  if (r.status?.decision) payload.decision = r.status.decision;
  if (r.status?.decidedBy) payload.decidedBy = r.status.decidedBy;
  if (r.status?.decidedAt) payload.decidedAt = r.status.decidedAt;
  if (r.status?.comment) payload.comment = r.status.comment;
  return payload;
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * For receivers: true when `signature` is the HMAC of `<timestamp>.<body>` with `secret` and the
 * timestamp is within `toleranceS` of `nowS` (replay protection).
 */
export function verifyWebhookSignature(
  secret: string,
  headers: { signature: string | undefined; timestamp: string | undefined },
  body: string,
  nowS: number = Math.floor(Date.now() / 1000),
  toleranceS: number = DEFAULT_TOLERANCE_S,
): boolean {
  if (!headers.signature || !headers.timestamp || !/^\d{1,12}$/.test(headers.timestamp)) return false;
  const timestamp = Number(headers.timestamp);
  if (Math.abs(nowS - timestamp) > toleranceS) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(headers.signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface WebhookOptions {
  url: string;
  secret: string;
  timeoutMs?: number;
  attempts?: number;
  retryMs?: number;
  log?: (message: string, fields?: Record<string, unknown>) => void;
  now?: () => number;
}

export class WebhookError extends Error {
  readonly code = 'WARDEN_WEBHOOK_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'WebhookError';
  }
}

/** Sends notifications to one webhook. `notify` is the hook KubeApprovals takes. */
export class ApprovalWebhook {
  readonly #o: Required<Omit<WebhookOptions, 'log'>> & Pick<WebhookOptions, 'log'>;
  readonly #inflight = new Set<Promise<void>>();

  constructor(options: WebhookOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new WebhookError('the approval webhook URL is not a valid URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new WebhookError('the approval webhook URL must be http(s)');
    if (options.secret.length < 16) throw new WebhookError('the approval webhook secret must be at least 16 characters');
    this.#o = { timeoutMs: 5000, attempts: 3, retryMs: 1000, now: Date.now, ...options };
  }

  readonly notify: ApprovalNotify = (event) => {
    const delivery = this.#deliver(webhookPayload(event));
    this.#inflight.add(delivery);
    void delivery.finally(() => this.#inflight.delete(delivery));
  };

  /** Resolves when every delivery started so far has finished (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  async #deliver(payload: WebhookPayload): Promise<void> {
    const body = JSON.stringify(payload);
    const id = randomUUID();
    for (let attempt = 1; attempt <= this.#o.attempts; attempt++) {
      const timestamp = Math.floor(this.#o.now() / 1000);
      try {
        const response = await fetch(this.#o.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'user-agent': 'warden-approvals',
            [SIGNATURE_HEADER]: signWebhook(this.#o.secret, timestamp, body),
            [TIMESTAMP_HEADER]: String(timestamp),
            [DELIVERY_HEADER]: id,
          },
          body,
          signal: AbortSignal.timeout(this.#o.timeoutMs),
          redirect: 'error',
        });
        await response.body?.cancel();
        if (response.ok) return;
        // 4xx other than 408/429: the receiver refuses this payload; retrying will not help.
        if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
          this.#o.log?.('approval webhook refused the notification', { status: response.status, type: payload.type, request: payload.name });
          return;
        }
        this.#o.log?.('approval webhook failed', { status: response.status, attempt, type: payload.type, request: payload.name });
      } catch (error) {
        // The URL may carry a token (Slack-style): never log it.
        this.#o.log?.('approval webhook unreachable', { attempt, error: (error as Error).name, type: payload.type, request: payload.name });
      }
      if (attempt < this.#o.attempts) await new Promise((resolve) => setTimeout(resolve, this.#o.retryMs * attempt).unref());
    }
  }
}

/**
 * The sidecar's webhook from its environment: WARDEN_APPROVAL_WEBHOOK_URL and
 * WARDEN_APPROVAL_WEBHOOK_SECRET (both from named keys of the optional Secret `warden-approval-webhook`, src/controller/render.ts), or none.
 */
export function webhookFromEnv(env: NodeJS.ProcessEnv, log?: WebhookOptions['log']): ApprovalWebhook | undefined {
  const url = env.WARDEN_APPROVAL_WEBHOOK_URL;
  const secret = env.WARDEN_APPROVAL_WEBHOOK_SECRET;
  if (!url && !secret) return undefined;
  if (!url || !secret) throw new WebhookError('set both WARDEN_APPROVAL_WEBHOOK_URL and WARDEN_APPROVAL_WEBHOOK_SECRET, or neither');
  return new ApprovalWebhook({ url, secret, ...(log ? { log } : {}) });
}
