// The contract between the gateways and just-in-time approvals (issue 8).
//
// A gateway whose policy decision is RequireApproval asks `Approvals.request` to hold the
// command: an AccessRequest is created (Kubernetes-native: `KubeApprovals`), approvers decide by
// writing its status, and the gateway waits on `ApprovalHandle.outcome`. Without an `Approvals`
// (no API access, e.g. a gateway run outside a cluster), gateways refuse RequireApproval
// commands as before: fail closed.

import type { Subject } from '../api/types.ts';
import type { Protocol } from '../api/types.ts';

/** What a gateway asks to hold. Everything here ends up in the AccessRequest's spec. */
export interface ApprovalRequest {
  requester: { user: string; groups: string[] };
  /** The Connection's name (same namespace as the gateway). */
  connection: string;
  /** The recording's session id, so approvers and auditors can find the session. */
  session?: string;
  /** `Command` holds one command; `Session` asks for access to the whole connection for `durationMs`. */
  kind: 'Command' | 'Session';
  /** The exact command: SQL (with parameters), SSH command line, Kubernetes or HTTP request line. */
  command?: { protocol: Protocol; text: string; parameters?: string[] };
  /** The policy and rule that required approval. */
  policy?: string;
  rule?: string;
  /** Why the requester wants it, when the client could say. */
  reason?: string;
  /** Who may decide: the deciding policy's approvers. */
  approvers: Subject[];
  /** How long approvers have before the request expires. */
  timeoutMs: number;
  /** Session requests only: how long the access lasts once approved. */
  durationMs?: number;
}

export type ApprovalOutcome =
  | { decision: 'Approved'; request: string; decidedBy: string; comment?: string; /** Session kind: access ends then. */ expiresAt?: Date }
  | { decision: 'Denied'; request: string; decidedBy: string; comment?: string }
  | { decision: 'Expired'; request: string }
  | { decision: 'Withdrawn'; request: string }
  /** The request could not be created or watched (API down, RBAC): the command is refused. */
  | { decision: 'Unavailable'; request?: string; reason: string };

export interface ApprovalHandle {
  /** The AccessRequest's name, to show the client ("waiting for approval: <name>"). */
  readonly name: string;
  /** Settles exactly once; never rejects. */
  readonly outcome: Promise<ApprovalOutcome>;
  /** The client gave up (cancel, disconnect): marks the request Withdrawn. Idempotent. */
  withdraw(): Promise<void>;
}

export interface Approvals {
  /**
   * Creates the AccessRequest. Resolves once it exists (so the gateway can tell the client its
   * name); rejects with an ApprovalError when it cannot be created.
   */
  request(request: ApprovalRequest): Promise<ApprovalHandle>;
  /**
   * An approved, unexpired request of this requester for exactly this command (Command kind) or
   * for this connection (Session kind), if one exists: the HTTP/Kubernetes gateways answer 403
   * with the request name after a bounded wait, and the client's retry is covered by the
   * approval for a short window; Session access is checked at connect.
   */
  findApproved(query: Pick<ApprovalRequest, 'requester' | 'connection' | 'kind' | 'command'>): Promise<ApprovalOutcome & { decision: 'Approved' } | undefined>;
  /**
   * The name of a Session request of this requester for this connection that still waits for a
   * decision (none yet, its deadline ahead): one another replica or an earlier process created, so
   * that a reconnect names it instead of creating a second one. Optional: without it, each gateway
   * process remembers only its own.
   */
  findWaiting?(query: Pick<ApprovalRequest, 'requester' | 'connection'>): Promise<string | undefined>;
}
