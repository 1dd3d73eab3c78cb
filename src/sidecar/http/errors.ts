// The HTTP gateway's refusals, each with a stable code and a status. They encode themselves on the
// wire as a small JSON object for plain HTTP targets and as a `Status` object
// (https://kubernetes.io/docs/reference/using-api/api-concepts/#response-status-kind) for API
// servers, so kubectl prints the message as it prints its own errors.

import type { HttpFlavour } from './config.ts';

export const HttpGatewayErrorCode = {
  /** No bearer token, or one that does not verify (401). */
  Unauthenticated: 'WARDEN_HTTP_UNAUTHENTICATED',
  /** No AccessPolicy admits the caller (403). */
  NotAdmitted: 'WARDEN_HTTP_NOT_ADMITTED',
  /** Policy denies the request (403). */
  Denied: 'WARDEN_HTTP_DENIED',
  /** A RequireApproval rule matched and approvals are not configured or not reachable (403). */
  ApprovalUnavailable: 'WARDEN_HTTP_APPROVAL_UNAVAILABLE',
  /** Held for approval and not decided within the wait: retry once the named request is approved (403). */
  ApprovalPending: 'WARDEN_HTTP_APPROVAL_PENDING',
  /** The approval request was denied, expired or withdrawn (403). */
  ApprovalDenied: 'WARDEN_HTTP_APPROVAL_DENIED',
  /** Session-level JIT: no approved Session request for this connection (403). */
  SessionApprovalRequired: 'WARDEN_HTTP_SESSION_APPROVAL_REQUIRED',
  /** Ambiguous framing or path, impersonation headers (400 / 403). */
  BadRequest: 'WARDEN_HTTP_BAD_REQUEST',
  /** The target could not be reached or broke off (502). */
  UpstreamFailed: 'WARDEN_HTTP_UPSTREAM_FAILED',
  /** The target did not answer in time (504). */
  UpstreamTimeout: 'WARDEN_HTTP_UPSTREAM_TIMEOUT',
  /** A response that must be masked cannot be (too large, unreadable type or encoding) (502). */
  CannotMask: 'WARDEN_HTTP_CANNOT_MASK',
  /** Recording cannot be guaranteed (503). */
  RecordingUnavailable: 'WARDEN_HTTP_RECORDING_UNAVAILABLE',
} as const;
export type HttpGatewayErrorCode = (typeof HttpGatewayErrorCode)[keyof typeof HttpGatewayErrorCode];

export class HttpGatewayError extends Error {
  readonly code: HttpGatewayErrorCode;
  readonly status: number;
  constructor(code: HttpGatewayErrorCode, status: number, message: string) {
    super(message);
    this.name = 'HttpGatewayError';
    this.code = code;
    this.status = status;
  }
}

/** Kubernetes StatusReason per HTTP status (k8s.io/apimachinery/pkg/apis/meta/v1 types.go). */
const STATUS_REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  502: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

/** The response body and headers for an error. */
export function errorResponse(
  flavour: HttpFlavour,
  error: HttpGatewayError,
): { status: number; headers: Record<string, string>; body: string } {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'cache-control': 'no-store' };
  if (error.status === 401) {
    // RFC 6750 §3: tell the client which scheme to use; the description carries no token material.
    headers['www-authenticate'] = `Bearer realm="warden", error="invalid_token", error_description="${error.message.replace(/["\\\r\n]/g, "'")}"`;
  }
  const body =
    flavour === 'kubernetes'
      ? {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: error.message,
          reason: STATUS_REASONS[error.status] ?? 'InternalError',
          details: { causes: [{ reason: error.code, message: error.message }] },
          code: error.status,
        }
      : { error: { code: error.code, message: error.message } };
  return { status: error.status, headers, body: `${JSON.stringify(body)}\n` };
}
