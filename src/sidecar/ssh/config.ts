/**
 * What the SSH gateway needs to run, and the seams through which it asks other parts of Warden:
 * token verification, policy, masking and recording. The controller's rendered sidecar
 * configuration (src/sidecar/config.ts) is mapped onto {@link SshGatewayConfig} by the sidecar
 * entry point; tests build one directly.
 */
import type { Algorithms } from 'ssh2';
import type { RuleEffect, Subject } from '../../api/types.ts';
import type { PolicySubject, SshCommand } from '../../policy/command.ts';
import type { RecordingEvent } from '../../recorder/events.ts';
import type { Identity } from '../auth/oidc.ts';
import type { Approvals } from '../../approvals/types.ts';
import type { SessionApprovalRequirement } from '../session-approval.ts';

/** The algorithms offered to clients: modern only (curve25519, Ed25519, AEAD ciphers). */
export const CLIENT_ALGORITHMS = {
  // RFC 8731. ssh2 adds the strict-KEX marker (kex-strict-s-v00@openssh.com, the Terrapin fix) itself.
  kex: ['curve25519-sha256', 'curve25519-sha256@libssh.org'],
  serverHostKey: ['ssh-ed25519'],
  // AES-GCM runs on Node's native crypto; chacha20-poly1305 works without ssh2's optional native
  // binding (Node's chacha20 cipher + a WASM Poly1305). The *client's* order decides (RFC 4253
  // §7.1), and OpenSSH lists chacha20-poly1305 first, so that is what `ssh` negotiates; measured
  // (README.md, "Performance"), it costs the gateway about 10 % more CPU per MiB than AES-GCM, too
  // little to turn away clients that only have chacha20 (PuTTY 0.68–0.75), so all three stay.
  cipher: ['aes256-gcm@openssh.com', 'aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com'],
  // Unused with AEAD ciphers, but ssh2 needs a non-empty list; ETM only.
  hmac: ['hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256-etm@openssh.com'],
  compress: ['none'],
} as const;

/** {@link CLIENT_ALGORITHMS} as ssh2's Server takes them (fresh, mutable arrays). */
export function clientAlgorithms(): Algorithms {
  return {
    kex: [...CLIENT_ALGORITHMS.kex],
    serverHostKey: [...CLIENT_ALGORITHMS.serverHostKey],
    cipher: [...CLIENT_ALGORITHMS.cipher],
    hmac: [...CLIENT_ALGORITHMS.hmac],
    compress: [...CLIENT_ALGORITHMS.compress],
  };
}

/**
 * Towards the target: still modern-first, but a little broader (ECDH over NIST curves, RSA host keys
 * with SHA-2 signatures, AES-CTR with ETM MACs) because the target is whatever the customer runs.
 * Host key algorithms are narrowed to the pinned key types at connect time.
 */
export const UPSTREAM_ALGORITHMS = {
  kex: [
    'curve25519-sha256',
    'curve25519-sha256@libssh.org',
    'ecdh-sha2-nistp256',
    'ecdh-sha2-nistp384',
    'ecdh-sha2-nistp521',
    'diffie-hellman-group16-sha512',
    'diffie-hellman-group14-sha256',
  ],
  serverHostKey: ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256'],
  cipher: ['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes256-ctr', 'aes128-ctr'],
  hmac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512'],
  compress: ['none'],
} as const;

/** A policy decision as the gateway needs it (src/policy/engine.ts `Decision` fits). */
export interface SshDecision {
  effect: RuleEffect;
  /** One sentence naming policy and rule: shown to the user and recorded. */
  reason: string;
  policy?: string;
  rule?: string;
  /** The rule's own message, when it has one. */
  message?: string;
  /** RequireApproval only: who may approve and how long they have (the engine's Decision carries them). */
  approvers?: Subject[];
  approvalTimeoutMs?: number;
}

/** The policy seam (src/policy/engine.ts `PolicyEngine` fits structurally). */
export interface SshPolicy {
  admission(subject: PolicySubject): { admitted: boolean; reason: string; policies?: string[] };
  decide(subject: PolicySubject, command: SshCommand): SshDecision;
  /** null: no limit. */
  sessionLimits(subject: PolicySubject): { maxDurationMs: number | null; idleTimeoutMs: number | null };
  /** Masking for terminal output of this subject's sessions; absent or `empty`: no masking. */
  masker?(subject: PolicySubject): TerminalMaskerSource;
  /** Session-level JIT: undefined when the subject needs no approved Session request (docs/session-approval.md). */
  sessionApproval?(subject: PolicySubject): SessionApprovalRequirement | undefined;
}

/** What a masker lets out: the bytes, and what it replaced in them (recorded as `masked`, counted in metrics). */
export interface MaskedOutput {
  bytes: Uint8Array;
  hits?: readonly unknown[];
}

/** Streaming masker for terminal bytes split anywhere (src/masking/terminal.ts fits). */
export interface TerminalMaskStream {
  push(chunk: Uint8Array): MaskedOutput;
  /** Emits what is held; the gateway calls it when output has been idle briefly. */
  flush(): MaskedOutput;
  end(): MaskedOutput;
}

export interface TerminalMaskerSource {
  readonly empty: boolean;
  createStream(): TerminalMaskStream;
}

/** What the SSH gateway records: the shared event model, including `exit`, `command`, `sftp` and `forward`. */
export type SshRecordingEvent = RecordingEvent;

/**
 * The recording seam for one session. `append` returning false means recording can no longer be
 * guaranteed (spool full, bucket gone): the gateway ends the session (fail closed).
 */
export interface SshSessionRecorder {
  append(event: SshRecordingEvent): boolean;
  close(): Promise<void>;
  /**
   * Back-pressure: a promise while the recorder is behind (the gateway pauses reading from the
   * target until it resolves), undefined when it keeps up. Optional for recorders that never lag.
   */
  behind?(): Promise<void> | undefined;
}

export interface SshSessionInfo {
  id: string;
  identity: Identity;
  /** The SSH username: the account asked for on the target. */
  account: string;
  client: { addr: string; app?: string };
  target: string;
  startedAt: Date;
}

/** Opens the recording of a session; rejecting (or throwing) refuses the session (fail closed). */
export type SshRecorderFactory = (session: SshSessionInfo) => SshSessionRecorder | Promise<SshSessionRecorder>;

/** The token check (src/sidecar/auth/oidc.ts `TokenVerifier` fits). */
export interface SshTokenVerifier {
  verify(token: string | undefined): Promise<Identity>;
}

export interface SshUpstreamConfig {
  host: string;
  port: number;
  /**
   * The account the gateway logs in as. Set (from the Secret's `username`): clients must ask for
   * exactly this account. Unset: the client's SSH username is used as the target account.
   */
  user?: string;
  /** OpenSSH/PEM private key from the Connection's Secret. */
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /** Pinned host keys, `type base64` lines (spec.target.hostKeys). */
  hostKeys: readonly string[];
  /** spec.target.insecureSkipHostKeyVerification: accept any host key (logged and recorded). */
  insecureSkipHostKeyVerification?: boolean;
  /** Default 10 s. */
  readyTimeoutMs?: number;
  /** SSH keep-alive towards the target (default 15 s, 3 missed → the session ends). */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
}

export interface SshGatewayLimits {
  /** Connection-level limits; the policy's limits for the subject are merged, the stricter wins. */
  maxDurationMs?: number;
  idleTimeoutMs?: number;
  /** Time a client has to authenticate (default 30 s). */
  authTimeoutMs?: number;
  /** Open connections at once (default 1000); more are refused at accept. */
  maxConnections?: number;
  /** Bytes of terminal data per recorded event before capping (default 65536). */
  maxEventBytes?: number;
  /** Idle time after which held-back terminal output is flushed through the masker (default 25 ms). */
  maskFlushMs?: number;
}

export interface SshGatewayConfig {
  /** Just-in-time approvals (src/approvals); absent: RequireApproval commands are refused. */
  approvals?: Approvals;
  /** `namespace/name` of the Connection, for recordings. */
  connection: string;
  listen: { host?: string; port: number };
  /** The gateway's host private key (PEM/OpenSSH), from a Secret so clients can pin it. */
  hostKey: string;
  upstream: SshUpstreamConfig;
  verifier: SshTokenVerifier;
  policy: SshPolicy;
  recorder: SshRecorderFactory;
  limits?: SshGatewayLimits;
  /** RecordingPolicy `record`: whether client input (keystrokes, stdin) and output are recorded (default both). */
  record?: { input?: boolean; output?: boolean };
  /** Diagnostic log lines (never carries tokens or credentials). */
  log?: (line: string) => void;
  /** Clock (ms) for recordings and limits; default Date.now. */
  now?: () => number;
}
