/**
 * Errors of the SSH gateway, each with a stable code. Messages are written for the person at the
 * `ssh` client (they reach it as stderr text or a disconnect description) and never carry tokens
 * or target credentials.
 */
export const SshGatewayErrorCode = {
  /** A pinned host key line in the configuration is malformed. */
  HostKeyInvalid: 'WARDEN_SSH_HOST_KEY_INVALID',
  /** The target presented a host key that is not pinned. */
  HostKeyMismatch: 'WARDEN_SSH_HOST_KEY_MISMATCH',
  /** The target could not be reached or refused the gateway's credentials. */
  UpstreamFailed: 'WARDEN_SSH_UPSTREAM_FAILED',
  /** The gateway configuration is unusable (no credentials, bad host key…). */
  ConfigInvalid: 'WARDEN_SSH_CONFIG_INVALID',
  /** Policy refused a request. */
  Denied: 'WARDEN_SSH_DENIED',
  /** An SFTP packet could not be parsed. */
  SftpMalformed: 'WARDEN_SSH_SFTP_MALFORMED',
  /** The session reached its maximum duration. */
  MaxDuration: 'WARDEN_SSH_MAX_DURATION',
  /** The session was idle for too long. */
  IdleTimeout: 'WARDEN_SSH_IDLE_TIMEOUT',
  /** A bug in the gateway; the connection is closed, the process keeps running. */
  Internal: 'WARDEN_SSH_INTERNAL',
  /** Recording could not be guaranteed; fail closed. */
  RecordingUnavailable: 'WARDEN_SSH_RECORDING_UNAVAILABLE',
} as const;
export type SshGatewayErrorCode = (typeof SshGatewayErrorCode)[keyof typeof SshGatewayErrorCode];

export class SshGatewayError extends Error {
  readonly code: SshGatewayErrorCode;
  constructor(code: SshGatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SshGatewayError';
    this.code = code;
  }
}
