// Public API of the SSH gateway: what the sidecar entry point and tests import.
export {
  DENIED_EXIT_STATUS,
  UPSTREAM_FAILED_EXIT_STATUS,
} from './channels.ts';
export {
  CLIENT_ALGORITHMS,
  type SshDecision,
  type SshGatewayConfig,
  type SshGatewayLimits,
  type SshPolicy,
  type SshRecorderFactory,
  type SshRecordingEvent,
  type SshSessionInfo,
  type SshSessionRecorder,
  type SshTokenVerifier,
  type SshUpstreamConfig,
  type TerminalMaskerSource,
  type TerminalMaskStream,
  UPSTREAM_ALGORITHMS,
} from './config.ts';
export { SshGatewayError, SshGatewayErrorCode } from './errors.ts';
export { generateHostKey, MAX_AUTH_ATTEMPTS, SshGateway, type SshGatewayAddress } from './gateway.ts';
export { checkHostKey, fingerprint, generateEd25519HostKey, parsePinnedHostKey, type PinnedHostKey } from './host-keys.ts';
export { toAsciicast } from './recording.ts';
export { TypedCommandDetector, type TypedLine } from './typed-commands.ts';
