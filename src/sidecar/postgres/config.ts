// The gateway's configuration and the seams where the policy engine, the masking engine and the
// recorder plug in. The seams are small on purpose: the controller renders the sidecar
// configuration and the sidecar entry point maps it onto this interface.

import type { RuleEffect, Subject, TlsMode } from '../../api/types.ts';
import type { PolicySubject, SqlCommand } from '../../policy/command.ts';
import type { RecordingEvent } from '../../recorder/events.ts';
import type { Identity } from '../auth/oidc.ts';
import type { Approvals } from '../../approvals/types.ts';
import type { SessionApprovalRequirement } from '../../policy/engine.ts';

/** What policy says about one statement; structurally a subset of the engine's Decision. */
export interface StatementDecision {
  effect: RuleEffect;
  /** One sentence naming policy and rule; shown to the user and recorded. */
  reason: string;
  policy?: string;
  rule?: string;
  /** RequireApproval only: who may approve (the deciding policy's approvers) and how long to wait. */
  approvers?: Subject[];
  approvalTimeoutMs?: number;
}

/** What the gateway asks of policy. `PolicyEngine` (src/policy/engine.ts) satisfies it. */
export interface GatewayPolicy {
  admission(subject: PolicySubject): { admitted: boolean; reason: string };
  decide(subject: PolicySubject, command: SqlCommand): StatementDecision;
  /** Effective limits for the subject, null = none; the gateway's own limits apply too. */
  sessionLimits?(subject: PolicySubject): { maxDurationMs: number | null; idleTimeoutMs: number | null };
  /** Session-level JIT: present when the subject may connect only with an approved Session request. */
  sessionApproval?(subject: PolicySubject): SessionApprovalRequirement | undefined;
}

/**
 * Masks result values. `names` are the lower-cased names a result column goes by: its name in
 * the RowDescription (the alias, if any) and the source columns its expression refers to.
 */
export interface CellMasker {
  /** True when a rule masks this column whatever its value (column-name rules). */
  masksColumn(names: readonly string[]): boolean;
  /** The value to send instead: unchanged when no rule applies, null for the nullify strategy. */
  mask(names: readonly string[], value: string): string | null;
}

/**
 * Receives a session's events in order; a throw or a reported failure ends the session (fail
 * closed). The recorder core's SessionRecorder (src/recorder/recorder.ts) satisfies it, so
 * `recorder: (info) => core.startSession(info)` wires it in.
 */
export interface SessionRecorder {
  /**
   * Records an event. `false` asks the gateway to stop reading its sockets until the recorder
   * emits 'drain' (honoured when `once` exists).
   */
  append(event: RecordingEvent): unknown;
  once?(event: 'drain', listener: () => void): unknown;
  /** Ends the recording and writes `session.end` (without `close`, the gateway appends it). */
  close?(reason: string, options?: { phase?: 'Closed' | 'Terminated' | 'Denied'; message?: string }): unknown;
  /** Called when recording can no longer be guaranteed (spool full, bucket gone). */
  onFailure?(callback: (error: Error) => void): void;
  /** The recorder's session clock (ms since start); the gateway's own otherwise. */
  readonly t?: () => number;
}

/**
 * What the gateway knows when a session starts (shaped like the recorder core's SessionStartInfo).
 * The factory writes the `session.start` event.
 */
export interface SessionInfo {
  sessionId: string;
  protocol: 'postgres';
  connection: string;
  clientAddress?: string;
  clientApplication?: string;
  /** host:port/database of the upstream, never credentials. */
  target?: string;
}

export type RecorderFactory = (session: SessionInfo) => SessionRecorder;

export interface TokenVerifierLike {
  verify(token: string | undefined): Promise<Identity>;
}

export interface UpstreamConfig {
  host: string;
  port: number;
  database: string;
  /** Credentials from the Connection's Secret; never sent to clients, logged or recorded. */
  user: string;
  password: string;
  tls: { mode: TlsMode; ca?: string; serverName?: string };
  connectTimeoutMs?: number;
}

export interface LogFields {
  [key: string]: string | number | boolean | undefined;
}
export type Logger = (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: LogFields) => void;

export interface PostgresGatewayConfig {
  /** Just-in-time approvals (src/approvals); absent: RequireApproval commands are refused. */
  approvals?: Approvals;
  /** `namespace/name` of the Connection, for recordings. */
  connection: string;
  listen: { host: string; port: number };
  /**
   * Client-facing TLS certificate and key (PEM). Without them no client can authenticate:
   * the token travels as a cleartext password, which Warden accepts only over TLS.
   */
  tls?: { cert: string; key: string };
  upstream: UpstreamConfig;
  verifier: TokenVerifierLike;
  policy: GatewayPolicy;
  /** Masking for a subject; undefined = nothing to mask. */
  masking?: (subject: PolicySubject) => CellMasker | undefined;
  recorder?: RecorderFactory;
  limits?: { maxDurationMs?: number; idleTimeoutMs?: number };
  /** Result rows stored per statement in the recording (default 1000). */
  maxRecordedRows?: number;
  /** Largest recorded text/parameter in bytes (default 65536). */
  maxEventBytes?: number;
  /** Largest client message accepted (default 64 MiB). */
  maxMessageBytes?: number;
  logger?: Logger;
}
