/**
 * Fixture builders of Kubernetes objects for the controller's tests (unit and integration).
 * Each returns a complete, valid object; tests override what they are about.
 */
import { type AccessPolicy, API_VERSION, type Connection, type ConnectionSpec, type RecordingPolicy, type RecordingPolicySpec } from '../api/types.ts';
import type { SecretSummary } from './render.ts';

let uid = 0;
const nextUid = (): string => `00000000-0000-4000-8000-${(++uid).toString(16).padStart(12, '0')}`;

export function aConnection(name: string, spec: Partial<ConnectionSpec> = {}, labels: Record<string, string> = {}, namespace = 'payments'): Connection {
  return {
    apiVersion: API_VERSION,
    kind: 'Connection',
    metadata: { name, namespace, uid: nextUid(), generation: 1, labels },
    spec: {
      protocol: 'postgres',
      target: { host: 'db.internal', port: 5432 },
      credentialsRef: { name: `${name}-credentials` },
      ...spec,
    },
  };
}

export function anAccessPolicy(name: string, spec: Partial<AccessPolicy['spec']> = {}, namespace = 'payments'): AccessPolicy {
  return {
    apiVersion: API_VERSION,
    kind: 'AccessPolicy',
    metadata: { name, namespace, uid: nextUid(), generation: 1 },
    spec: { subjects: [{ kind: 'Group', name: 'developers' }], rules: [{ name: 'read', effect: 'Allow' }], ...spec },
  };
}

export function aRecordingPolicy(
  name: string,
  spec: Partial<RecordingPolicySpec> = {},
  options: { ready?: boolean; namespace?: string } = {},
): RecordingPolicy {
  const ready = options.ready ?? true;
  return {
    apiVersion: API_VERSION,
    kind: 'RecordingPolicy',
    metadata: { name, namespace: options.namespace ?? 'payments', uid: nextUid(), generation: 1 },
    spec: {
      connectionSelector: {},
      storage: { s3: { endpoint: 'http://minio:9000', bucket: 'recordings', credentialsSecretRef: { name: 'minio' } } },
      ...spec,
    },
    status: {
      observedGeneration: 1,
      conditions: [
        {
          type: 'Ready',
          status: ready ? 'True' : 'False',
          lastTransitionTime: '2026-01-01T00:00:00Z',
          reason: ready ? 'BucketReady' : 'AccessDenied',
          message: ready ? 'bucket recordings is ready' : 'The access key is not valid',
        },
      ],
    },
  };
}

export function secretSummaries(entries: Record<string, string[]>): Map<string, SecretSummary> {
  return new Map(Object.entries(entries).map(([name, keys]) => [name, { name, resourceVersion: '1', keys }]));
}
