// What every gateway says and records about a just-in-time approval (issue 8), so the SSH, HTTP,
// Kubernetes and PostgreSQL gateways word outcomes the same way: the user is told who denied, or
// that the request expired, and the recording holds one `approval` event per state change.

import type { ApprovalOutcome } from '../approvals/types.ts';
import { ApprovalState, type ApprovalEvent, EventKind } from '../recorder/events.ts';

/** `namespace/name` of an AccessRequest in the Connection's namespace (`connection` is `namespace/name`). */
export function qualifiedRequest(connection: string, request: string): string {
  const slash = connection.indexOf('/');
  return slash < 0 ? request : `${connection.slice(0, slash)}/${request}`;
}

/** The Connection's name without its namespace (what AccessRequest.spec.connection holds). */
export function connectionName(connection: string): string {
  const slash = connection.lastIndexOf('/');
  return slash < 0 ? connection : connection.slice(slash + 1);
}

/** The recording event for an outcome (or `pending` when `outcome` is just the request's name). */
export function approvalEvent(connection: string, outcome: ApprovalOutcome | { decision: 'Pending'; request: string; reason?: string }): Omit<ApprovalEvent, 't'> {
  const request = qualifiedRequest(connection, outcome.request ?? '(not created)');
  switch (outcome.decision) {
    case 'Pending':
      return { k: EventKind.Approval, request, state: ApprovalState.Pending, ...(outcome.reason === undefined ? {} : { reason: outcome.reason }) };
    case 'Approved':
    case 'Denied': {
      const state = outcome.decision === 'Approved' ? ApprovalState.Approved : ApprovalState.Denied;
      return { k: EventKind.Approval, request, state, by: outcome.decidedBy, ...(outcome.comment === undefined ? {} : { reason: outcome.comment }) };
    }
    case 'Expired':
      return { k: EventKind.Approval, request, state: ApprovalState.Expired, reason: 'no decision before the request expired' };
    case 'Withdrawn':
      return { k: EventKind.Approval, request, state: ApprovalState.Withdrawn, reason: 'the client gave up waiting' };
    case 'Unavailable':
      return { k: EventKind.Approval, request, state: ApprovalState.Expired, reason: `approvals unavailable: ${outcome.reason}` };
  }
}

/** One sentence for the user about an outcome that did not approve; `what` names the held thing. */
export function refusalText(what: string, outcome: Exclude<ApprovalOutcome, { decision: 'Approved' }>): string {
  switch (outcome.decision) {
    case 'Denied':
      return `${what} was denied by ${outcome.decidedBy} (request ${outcome.request}${outcome.comment ? `: ${oneLine(outcome.comment)}` : ''})`;
    case 'Expired':
      return `${what} was not approved in time: request ${outcome.request} expired`;
    case 'Withdrawn':
      return `${what} was withdrawn (request ${outcome.request})`;
    case 'Unavailable':
      return `${what} needs approval, but approvals are unavailable (${oneLine(outcome.reason)})${outcome.request === undefined ? '' : ` (request ${outcome.request})`}`;
  }
}

/** A comment or reason as one bounded line (it came from the API: no terminal escapes, no newlines). */
export function oneLine(text: string, max = 300): string {
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max)}…`;
}
