// Session-level just-in-time access (issue 8 item 5, docs/session-approval.md): a subject whose
// AccessPolicy has `spec.sessionApproval.required` may connect only while an approved AccessRequest
// of kind Session for this Connection exists. Every gateway asks `SessionApprovalGate.admit` right
// after the token and admission checks; a refusal carries a message the gateway sends in its own
// protocol (SSH banner, Kubernetes Status, ErrorResponse), and an admission the time the access
// ends, at which the gateway ends the session.
//
// The gate remembers the requests it created (per user, in this process): connecting again while
// one waits names the same request instead of creating another, and an approval this process saw
// counts at once without another API read. Requests created by another replica are found through
// `Approvals.findApproved`.

import type { ApprovalHandle, ApprovalOutcome, Approvals } from '../approvals/types.ts';
import type { SessionApprovalRequirement } from '../policy/engine.ts';
import type { PolicySubject } from '../policy/command.ts';
import type { ApprovalEvent } from '../recorder/events.ts';
import { approvalEvent, connectionName, oneLine, refusalText } from './approvals.ts';

export type { SessionApprovalRequirement };

export type SessionAdmission =
  | {
      admitted: true;
      /** Absent when no approval was needed. */
      approval?: { request: string; decidedBy: string; expiresAt: Date };
      /** To record (`approval` events). */
      events: Array<Omit<ApprovalEvent, 't'>>;
    }
  | {
      admitted: false;
      /** For the user, in the gateway's protocol: names the request to have approved. */
      message: string;
      request?: string;
      events: Array<Omit<ApprovalEvent, 't'>>;
    };

interface Pending {
  handle: ApprovalHandle;
  settled?: ApprovalOutcome;
}

/** Entries kept at most (one per user with a request in flight or an approval running). */
const MAX_TRACKED = 10_000;

export class SessionApprovalGate {
  readonly #approvals: Approvals | undefined;
  /** `namespace/name` of the Connection. */
  readonly #connection: string;
  readonly #now: () => number;
  readonly #requests = new Map<string, Pending>();

  constructor(options: { approvals: Approvals | undefined; connection: string; now?: () => number }) {
    this.#approvals = options.approvals;
    this.#connection = options.connection;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Decides whether a session of `subject` may start. Never throws: an API failure refuses (fail
   * closed). `session` is the recording's id, stored in a request this call creates.
   */
  async admit(
    subject: PolicySubject,
    requirement: SessionApprovalRequirement | undefined,
    context: { session?: string; reason?: string } = {},
  ): Promise<SessionAdmission> {
    if (requirement === undefined) return { admitted: true, events: [] };
    const connection = connectionName(this.#connection);
    const access = `access to ${connection}`;
    const approvals = this.#approvals;
    if (approvals === undefined) {
      return { admitted: false, message: `${access} needs approval (policy ${requirement.policies.join(', ')}), but approvals are not available on this gateway`, events: [] };
    }
    const key = subject.user;
    const requester = { user: subject.user, groups: [...subject.groups] };
    const mine = this.#requests.get(key);
    const now = this.#now();

    // An approval this process saw.
    if (mine?.settled?.decision === 'Approved') {
      const expiresAt = mine.settled.expiresAt ?? new Date(now + requirement.durationMs);
      if (expiresAt.getTime() > now) return this.#admitted(mine.settled.request, mine.settled.decidedBy, expiresAt);
      this.#requests.delete(key);
    }
    // One approved elsewhere (another replica, an earlier process).
    let found: Awaited<ReturnType<Approvals['findApproved']>>;
    try {
      found = await approvals.findApproved({ requester, connection, kind: 'Session' });
    } catch (error) {
      return { admitted: false, message: `${access} needs approval, and approvals cannot be checked right now (${oneLine((error as Error).message)}); try again shortly`, events: [] };
    }
    if (found !== undefined) {
      // Without an end time from the API, the access lasts the policy's duration from now: never unbounded.
      const expiresAt = found.expiresAt ?? new Date(now + requirement.durationMs);
      if (expiresAt.getTime() > now) return this.#admitted(found.request, found.decidedBy, expiresAt);
    }
    const waiting = (name: string): SessionAdmission => ({
      admitted: false,
      request: name,
      message: `${access} needs approval: request ${name} is waiting for a decision; connect again once it is approved`,
      events: [approvalEvent(this.#connection, { decision: 'Pending', request: name, reason: 'connection refused while the request waits' })],
    });
    // One waiting: name it again instead of creating another.
    if (mine !== undefined && mine.settled === undefined) return waiting(mine.handle.name);
    // One waiting that another replica or an earlier process created (its creator watches it; at
    // its deadline it is no longer waiting, so a request nobody watches any more is not named).
    if (approvals.findWaiting !== undefined) {
      const elsewhere = await approvals.findWaiting({ requester, connection }).catch(() => undefined);
      if (elsewhere !== undefined) return waiting(elsewhere);
    }
    const before = mine?.settled !== undefined && mine.settled.decision !== 'Approved' ? `${refusalText('the previous request', mine.settled)}; ` : '';
    this.#requests.delete(key);

    let handle: ApprovalHandle;
    try {
      handle = await approvals.request({
        requester,
        connection,
        ...(context.session === undefined ? {} : { session: context.session }),
        kind: 'Session',
        policy: requirement.policies.join(','),
        ...(context.reason === undefined ? {} : { reason: context.reason }),
        approvers: requirement.approvers,
        timeoutMs: requirement.timeoutMs,
        durationMs: requirement.durationMs,
      });
    } catch (error) {
      return { admitted: false, message: `${access} needs approval, but the request could not be created (${oneLine((error as Error).message)}); try again shortly`, events: [] };
    }
    const entry: Pending = { handle };
    if (this.#requests.size >= MAX_TRACKED) this.#requests.clear();
    this.#requests.set(key, entry);
    void handle.outcome.then((outcome) => {
      entry.settled = outcome;
      // Forget what cannot admit anyone again, unless a newer request replaced it meanwhile.
      if (outcome.decision === 'Withdrawn' || outcome.decision === 'Unavailable') {
        if (this.#requests.get(key) === entry) this.#requests.delete(key);
      }
    });
    return {
      admitted: false,
      request: handle.name,
      message: `${before}${access} needs approval: request ${handle.name} created; connect again once it is approved`,
      events: [approvalEvent(this.#connection, { decision: 'Pending', request: handle.name, reason: `session access for ${formatDuration(requirement.durationMs)}` })],
    };
  }

  #admitted(request: string, decidedBy: string, expiresAt: Date): SessionAdmission {
    return {
      admitted: true,
      approval: { request, decidedBy, expiresAt },
      events: [approvalEvent(this.#connection, { decision: 'Approved', request, decidedBy })],
    };
  }
}

/** `1h`, `30m`, `45s`, or milliseconds. */
export function formatDuration(ms: number): string {
  if (ms > 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms > 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms > 0 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/**
 * Calls `end` when an approved session access runs out. setTimeout cannot wait longer than ~24.8
 * days; longer waits re-arm. Returns the cancel function.
 */
export function onAccessExpiry(expiresAt: Date, now: () => number, end: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const left = expiresAt.getTime() - now();
    if (left <= 0) {
      timer = undefined;
      end();
      return;
    }
    timer = setTimeout(arm, Math.min(left, 2 ** 31 - 1));
    timer.unref?.();
  };
  arm();
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  };
}
