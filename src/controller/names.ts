/**
 * Names, labels and annotations of what the controller creates. Everything a Connection owns is
 * named after it, so `kubectl get all -l warden.dev/connection=<name>` lists it.
 */
export const FIELD_MANAGER = 'warden-controller';
export const MANAGED_BY = 'warden-controller';

export const LABELS = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  partOf: 'app.kubernetes.io/part-of',
  /** Name of the Connection an object belongs to. */
  connection: 'warden.dev/connection',
  /** Name of the RecordingPolicy an object belongs to (generated signing Secrets). */
  recordingPolicy: 'warden.dev/recording-policy',
  /**
   * Set by the gateway on each Session it creates: the pod serving the session. Session
   * housekeeping marks Active sessions whose pod is gone as Terminated.
   */
  pod: 'warden.dev/pod',
} as const;

export const ANNOTATIONS = {
  /** SHA-256 of the manifest the controller last applied; equal hash means nothing to write. */
  appliedHash: 'warden.dev/applied-hash',
  /** Hash of the sidecar configuration in a ConfigMap (for humans and the e2e runner). */
  configHash: 'warden.dev/config-hash',
} as const;

/** Label selector that finds everything this controller created. */
export const MANAGED_SELECTOR = `${LABELS.managedBy}=${MANAGED_BY}`;

export const gatewayNames = (connection: string) =>
  ({
    service: connection,
    deployment: `${connection}-gateway`,
    configMap: `${connection}-gateway-config`,
    serviceAccount: `${connection}-gateway`,
    role: `${connection}-gateway`,
    roleBinding: `${connection}-gateway`,
  }) as const;

/** The Secret the controller generates when a RecordingPolicy names no signing key. */
export function signingSecretName(recordingPolicy: string): string {
  return `${recordingPolicy}-signing`.slice(0, 253);
}
