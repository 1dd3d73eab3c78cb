// The HTTP gateway's configuration and its seams (policy, masking, recording, token checking).
// The seams are small on purpose, as in the PostgreSQL gateway: the sidecar entry point maps the
// rendered sidecar configuration onto this interface, and tests plug in real engines.

import type { RuleEffect, Subject, TlsMode } from '../../api/types.ts';
import type { HttpCommand, KubernetesCommand, PolicySubject } from '../../policy/command.ts';
import type { RecordingEvent } from '../../recorder/events.ts';
import type { Identity } from '../auth/oidc.ts';
import type { Approvals } from '../../approvals/types.ts';
import type { SessionApprovalRequirement } from '../session-approval.ts';
import type { TerminalMaskStream } from '../../masking/terminal.ts';

/** `http`: any HTTP service. `kubernetes`: an API server (request-info parsing, `Status` errors). */
export const HttpFlavour = {
  Http: 'http',
  Kubernetes: 'kubernetes',
} as const;
export type HttpFlavour = (typeof HttpFlavour)[keyof typeof HttpFlavour];

/** What policy says about one request; structurally a subset of the engine's Decision. */
export interface RequestDecision {
  effect: RuleEffect;
  reason: string;
  policy?: string;
  rule?: string;
  /** RequireApproval only: who may approve and how long they have. */
  approvers?: Subject[];
  approvalTimeoutMs?: number;
}

/** What the gateway asks of policy. `PolicyEngine` (src/policy/engine.ts) satisfies it. */
export interface HttpGatewayPolicy {
  admission(subject: PolicySubject): { admitted: boolean; reason: string };
  decide(subject: PolicySubject, command: HttpCommand | KubernetesCommand): RequestDecision;
  /** Session-level JIT: undefined when the subject needs no approved Session request (docs/session-approval.md). */
  sessionApproval?(subject: PolicySubject): SessionApprovalRequirement | undefined;
}

/** Masks response bodies. `Masker` (src/masking/masker.ts) satisfies it. */
export interface BodyMasker {
  /** No rules: bodies pass untouched, whatever their type. */
  readonly empty: boolean;
  maskJson(value: unknown): { value: unknown; hits: readonly unknown[] };
  maskText(text: string): { text: string; hits: readonly unknown[] };
  /**
   * A stream masker for terminal output (Kubernetes exec/attach stdout and stderr). Absent while
   * masking applies: such streams are refused, never relayed unmasked.
   */
  createStream?(): TerminalMaskStream;
}

/**
 * Receives one session's events in order. A throw fails the session closed (the connection is
 * cut). `false` from append asks the gateway to take no new request on this connection until
 * `drain` (the real SessionRecorder in src/recorder/recorder.ts has this shape).
 */
export interface HttpSessionRecorder {
  append(event: RecordingEvent): boolean | void;
  /** The session clock (ms since start) for events' `t`; the gateway keeps its own without it. */
  readonly t?: () => number;
  once?(event: 'drain', listener: () => void): unknown;
  close?(reason: string): unknown;
}

export interface HttpSessionInfo {
  sessionId: string;
  connection: string;
  client: { addr: string; app?: string };
  startedAt: Date;
}

/** One recording session per client connection, opened at its first request. */
export type HttpRecorderFactory = (session: HttpSessionInfo) => HttpSessionRecorder;

export interface TokenVerifierLike {
  verify(token: string | undefined): Promise<Identity>;
}

/** How the gateway authenticates to the target; from the Connection's Secret. Never recorded. */
export type UpstreamCredentials =
  | { kind: 'none' }
  | { kind: 'bearer'; token: string }
  | { kind: 'basic'; username: string; password: string }
  /** Headers set on every upstream request (e.g. `X-API-Key`), replacing any the client sent. */
  | { kind: 'headers'; headers: Record<string, string> };

export interface HttpUpstream {
  /** `http://host:port` or `https://host:port`, optionally with a base path prepended to every request. */
  url: string;
  /** For https: `disable` is not allowed; `require` skips verification, `verify-ca` skips the name check. */
  tls?: { mode: TlsMode; ca?: string; serverName?: string; cert?: string; key?: string };
  credentials?: UpstreamCredentials;
  /** Time to get response headers from the target (default 30 s); bodies may stream longer. */
  responseTimeoutMs?: number;
}

export interface LogFields {
  [key: string]: string | number | boolean | undefined;
}
export type Logger = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: LogFields) => void;

export interface HttpGatewayConfig {
  /** Just-in-time approvals (src/approvals); absent: RequireApproval commands are refused. */
  approvals?: Approvals;
  /**
   * How long a request held for approval waits before the client gets 403 naming the request, to
   * retry once it is approved (default 10 s). Approved within this time: forwarded at once.
   */
  approvalWaitMs?: number;
  /** `namespace/name` of the Connection, for recordings. */
  connection: string;
  flavour: HttpFlavour;
  listen: { host: string; port: number };
  /** Client-facing TLS (PEM). Absent: plain HTTP (only behind something that terminates TLS). */
  tls?: { cert: string; key: string };
  upstream: HttpUpstream;
  verifier: TokenVerifierLike;
  policy: HttpGatewayPolicy;
  /** Masking for a subject; undefined or an empty masker = nothing to mask. */
  masking?: (subject: PolicySubject) => BodyMasker | undefined;
  recorder?: HttpRecorderFactory;
  /**
   * The recorder writes `session.start` itself and `session.end` in `close(reason)` (the real
   * SessionRecorder does); otherwise the gateway appends both (default false, as the PostgreSQL
   * gateway does).
   */
  recorderWritesLifecycle?: boolean;
  /** Bytes of each request and response body stored in the recording (default 64 KiB). */
  maxRecordedBodyBytes?: number;
  /**
   * Largest response body (or, for streamed JSON, line) the gateway buffers to mask (default 8 MiB).
   * Bodies that need masking and are larger are refused with 502: never sent unmasked.
   */
  maxMaskedBodyBytes?: number;
  /**
   * Kubernetes flavour: send `Impersonate-User` / `Impersonate-Group` with the caller's identity,
   * so the cluster's RBAC and audit log see the real caller as well as the gateway (default false;
   * the gateway's credentials then need the `impersonate` verb on users and groups).
   */
  impersonateCaller?: boolean;
  /**
   * Kubernetes exec/attach output that must be masked: idle time after which the output the
   * masker holds back (a secret may continue in the next frame) is let out (default 25 ms, as SSH).
   */
  maskFlushMs?: number;
  /** Record masked response bodies and exec/attach output (default true; RecordingPolicy `storeMasked`). */
  recordMasked?: boolean;
  /** Time to receive the request headers (default 30 s). */
  headersTimeoutMs?: number;
  /** A connection with no traffic either way for this long is closed (default 10 min). */
  idleTimeoutMs?: number;
  logger?: Logger;
}
