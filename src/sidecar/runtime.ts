// What `warden sidecar` runs: the SidecarConfig (src/sidecar/config.ts) mapped onto one protocol
// gateway, plus the pieces every gateway shares — a policy engine that can be swapped under running
// gateways, the recorder with its fail-open/fail-closed wrapper, files read from mounted Secrets.
//
// Hot reload: gateways hold `config.policy` by reference and call it per statement / request /
// command, and ask for a masker when a session starts. `SwappablePolicyEngine` is that reference;
// `swap()` changes what new statements and new sessions see without touching open sessions.
// Everything else in the document (listener, target, credentials, OIDC, recording) is bound when
// the gateway starts: a change there is reported by `restartRequired` and needs a new pod (the
// controller's Deployment rollout, or the operator deleting the pod).

import { readFile } from 'node:fs/promises';
import type { Logger } from '../controller/log.ts';
import type { Masker } from '../masking/masker.ts';
import type { Command, PolicySubject } from '../policy/command.ts';
import { POLICY_BUNDLE_VERSION } from '../policy/compile.ts';
import { type Admission, compilePolicies, type Decision, type EffectiveSessionLimits, type PolicyEngine, type SessionApprovalRequirement } from '../policy/engine.ts';
import type { PolicyProblem } from '../policy/errors.ts';
import type { Recorder, SessionRecorder as CoreSessionRecorder, SessionStartInfo } from '../recorder/recorder.ts';
import { TokenVerifier } from './auth/oidc.ts';
import { resolveSidecarPath, type SecretFile, type SidecarConfig } from './config.ts';
import type { RecordingEvent } from '../recorder/events.ts';

/** Stable codes of start-up failures (each is one log line and exit code 1). */
export const SidecarErrorCode = {
  SecretUnreadable: 'WARDEN_SIDECAR_SECRET_UNREADABLE',
  CredentialMissing: 'WARDEN_SIDECAR_CREDENTIAL_MISSING',
  ProtocolUnsupported: 'WARDEN_SIDECAR_PROTOCOL_UNSUPPORTED',
  GatewayConfigInvalid: 'WARDEN_SIDECAR_GATEWAY_CONFIG_INVALID',
} as const;
export type SidecarErrorCode = (typeof SidecarErrorCode)[keyof typeof SidecarErrorCode];

export class SidecarStartError extends Error {
  readonly code: SidecarErrorCode;
  constructor(code: SidecarErrorCode, message: string) {
    super(message);
    this.name = 'SidecarStartError';
    this.code = code;
  }
}

// ---------------------------------------------------------------------------------------------
// Policy

/** The engine the document's policies compile to (connection limits included). */
export function buildPolicyEngine(config: SidecarConfig): PolicyEngine {
  return compilePolicies({
    version: POLICY_BUNDLE_VERSION,
    connection: { name: config.connection.name, protocol: config.protocol, sessionLimits: config.sessionLimits },
    policies: config.policies,
  });
}

const NO_LIMITS: EffectiveSessionLimits = { maxDurationMs: null, idleTimeoutMs: null };

/**
 * A PolicyEngine whose inner engine can be replaced while gateways hold this object. Each call
 * reads the current engine, so a swap applies to the next statement of every session, and to the
 * masking and limits of sessions that start after it. With `refuse` set (no recording
 * configured) nobody is admitted and every command is denied: fail closed.
 */
export class SwappablePolicyEngine implements PolicyEngine {
  #engine: PolicyEngine;
  #refuse: string | undefined;

  constructor(engine: PolicyEngine, refuse?: string) {
    this.#engine = engine;
    this.#refuse = refuse;
  }

  swap(engine: PolicyEngine, refuse?: string): void {
    this.#engine = engine;
    this.#refuse = refuse;
  }

  get current(): PolicyEngine {
    return this.#engine;
  }

  get problems(): readonly PolicyProblem[] {
    return this.#engine.problems;
  }

  get policies(): readonly string[] {
    return this.#engine.policies;
  }

  admits(subject: PolicySubject): boolean {
    return this.#refuse === undefined && this.#engine.admits(subject);
  }

  admission(subject: PolicySubject): Admission {
    if (this.#refuse !== undefined) return { admitted: false, policies: [], reason: this.#refuse };
    return this.#engine.admission(subject);
  }

  decide(subject: PolicySubject, command: Command): Decision {
    if (this.#refuse !== undefined) return { effect: 'Deny', reason: `denied: ${this.#refuse}`, check: 'subjectAdmitted' };
    return this.#engine.decide(subject, command);
  }

  sessionLimits(subject: PolicySubject): EffectiveSessionLimits {
    return this.#refuse !== undefined ? NO_LIMITS : this.#engine.sessionLimits(subject);
  }

  masker(subject: PolicySubject): Masker {
    return this.#engine.masker(subject);
  }

  sessionApproval(subject: PolicySubject): SessionApprovalRequirement | undefined {
    return this.#engine.sessionApproval(subject);
  }
}

export const NO_RECORDING_REASON =
  'no RecordingPolicy applies to this Connection, and Warden admits no session it cannot record';

// ---------------------------------------------------------------------------------------------
// Files

/** Reads a mounted Secret file (under WARDEN_FS_ROOT when set). Errors name Secret and key only. */
export async function readSecretFile(ref: SecretFile, what: string): Promise<Buffer> {
  try {
    return await readFile(resolveSidecarPath(ref.file));
  } catch (error) {
    throw new SidecarStartError(
      SidecarErrorCode.SecretUnreadable,
      `cannot read the ${what} (key ${ref.key} of Secret ${ref.secret}): ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

export async function readSecretText(ref: SecretFile, what: string): Promise<string> {
  return (await readSecretFile(ref, what)).toString('utf8');
}

/** A credential of the document, trimmed (Secrets written by hand often end with a newline). */
export async function requiredCredential(config: SidecarConfig, name: keyof SidecarConfig['credentials'], what: string): Promise<string> {
  const ref = config.credentials[name];
  if (!ref) {
    throw new SidecarStartError(SidecarErrorCode.CredentialMissing, `the Connection's credentials have no ${name} (${what}); the ${config.protocol} gateway needs it`);
  }
  return (await readSecretText(ref, what)).trim();
}

/** The gateway's verifier; its issuer's keys are fetched at once, in the background (prefetch). */
export function tokenVerifier(config: SidecarConfig): TokenVerifier {
  const verifier = new TokenVerifier({
    issuer: config.oidc.issuer,
    audience: config.oidc.audience,
    usernameClaim: config.oidc.usernameClaim,
    groupsClaim: config.oidc.groupsClaim,
    ...(config.oidc.jwksUri ? { jwksUri: config.oidc.jwksUri } : {}),
  });
  void verifier.prefetch();
  return verifier;
}

// ---------------------------------------------------------------------------------------------
// Recording

/** What the PostgreSQL, HTTP and SSH gateways' recorder seams all accept. */
export interface GatewaySessionRecorder {
  append(event: RecordingEvent): boolean;
  once(event: 'drain', listener: () => void): unknown;
  close(reason: string, options?: Parameters<CoreSessionRecorder['close']>[1]): Promise<unknown>;
  onFailure(callback: (error: Error) => void): void;
  readonly t: () => number;
}

/**
 * The recorder as a gateway's per-session factory. FailClosed: the core's failure callback
 * reaches the gateway, which ends the session. FailOpen: the failure is logged and the session
 * goes on unrecorded from there.
 */
export function sessionRecorderFactory(
  recorder: Recorder,
  mode: 'FailClosed' | 'FailOpen',
  log: Logger,
): (info: SessionStartInfo) => GatewaySessionRecorder {
  return (info) => {
    const core: CoreSessionRecorder = recorder.startSession(info);
    if (mode === 'FailClosed') return core;
    return {
      append: (event) => core.append(event),
      once: (event, listener) => core.once(event, listener),
      close: async (reason, options) => await core.close(reason, options),
      onFailure: () => core.onFailure((error) => log.warn('recording failed; the session continues unrecorded (onStorageFailure: FailOpen)', { session: info.sessionId, error })),
      t: () => core.t(),
    };
  };
}

// ---------------------------------------------------------------------------------------------
// Reload

/**
 * The parts of a new document the running process cannot take without a restart, as JSON paths.
 * Policies and session limits are applied live; `secretVersions` alone (a rotation) is reported
 * too, because credentials are read at start.
 */
export function restartRequired(running: SidecarConfig, next: SidecarConfig): string[] {
  const changed: string[] = [];
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  if (running.protocol !== next.protocol) changed.push('$.protocol');
  if (!same(running.connection.uid, next.connection.uid)) changed.push('$.connection');
  if (!same(running.listener, next.listener)) changed.push('$.listener');
  if (!same(running.target, next.target)) changed.push('$.target');
  if (!same(running.credentials, next.credentials)) changed.push('$.credentials');
  if (!same(running.oidc, next.oidc)) changed.push('$.oidc');
  if (!same(running.recording, next.recording)) changed.push('$.recording');
  if (!same(running.secretVersions, next.secretVersions)) changed.push('$.secretVersions');
  return changed;
}
