/**
 * Condition types and reasons the controller writes, in one place (Kubernetes API conventions:
 * reasons are CamelCase, stable, and machine-readable; the message is for humans).
 * https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#typical-status-properties
 */

export const ConditionType = {
  /** Clients can connect: configuration rendered, recording ready, a gateway pod ready. */
  Ready: 'Ready',
  /** The gateway configuration was rendered and written. */
  ConfigRendered: 'ConfigRendered',
  /** A RecordingPolicy applies and its bucket is ready. */
  RecordingReady: 'RecordingReady',
  /** Running, but not as asked (stale configuration, fewer replicas). */
  Degraded: 'Degraded',
} as const;
export type ConditionTypeName = (typeof ConditionType)[keyof typeof ConditionType];

export const Reason = {
  // ConfigRendered
  Rendered: 'Rendered',
  SecretNotFound: 'SecretNotFound',
  SecretKeyMissing: 'SecretKeyMissing',
  InvalidPolicy: 'InvalidPolicy',
  InvalidConfig: 'InvalidConfig',
  NameConflict: 'NameConflict',
  // RecordingReady
  RecordingConfigured: 'RecordingConfigured',
  NoRecordingPolicy: 'NoRecordingPolicy',
  RecordingPolicyNotFound: 'RecordingPolicyNotFound',
  RecordingPolicyConflict: 'RecordingPolicyConflict',
  RecordingPolicyNotReady: 'RecordingPolicyNotReady',
  RecordingSecretInvalid: 'RecordingSecretInvalid',
  // Ready
  GatewayReady: 'GatewayReady',
  GatewayNotReady: 'GatewayNotReady',
  ConfigNotRendered: 'ConfigNotRendered',
  RecordingNotReady: 'RecordingNotReady',
  // Degraded
  AsExpected: 'AsExpected',
  StaleConfig: 'StaleConfig',
  ReplicasUnavailable: 'ReplicasUnavailable',
  // AccessPolicy Ready
  PolicyValid: 'PolicyValid',
  // RecordingPolicy Ready
  BucketReady: 'BucketReady',
  BucketUnreachable: 'BucketUnreachable',
  AccessDenied: 'AccessDenied',
  BucketCreateFailed: 'BucketCreateFailed',
  ObjectLockUnavailable: 'ObjectLockUnavailable',
  RetentionFailed: 'RetentionFailed',
  SigningKeyInvalid: 'SigningKeyInvalid',
  // Session housekeeping (Session.status.reason)
  GatewayPodGone: 'GatewayPodGone',
  // Events only
  Applied: 'Applied',
  ApplyFailed: 'ApplyFailed',
  ConfigUpdated: 'ConfigUpdated',
  BucketCreated: 'BucketCreated',
  SigningKeyGenerated: 'SigningKeyGenerated',
  SessionTerminated: 'SessionTerminated',
  LeaderElected: 'LeaderElected',
} as const;
export type ReasonName = (typeof Reason)[keyof typeof Reason];
