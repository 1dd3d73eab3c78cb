// The gateway Deployment the controller renders tells Prometheus where /metrics is: the
// conventional prometheus.io annotations on the pod template, naming the container's health port.

import { describe, expect, it } from 'vitest';
import { renderConnection } from '../controller/render.ts';
import { aConnection, aRecordingPolicy, secretSummaries } from '../controller/test-support.ts';

describe('rendered gateway Deployment', () => {
  it.each([9090, 9100])('carries prometheus.io annotations for /metrics on the health port %i', (healthPort) => {
    const connection = aConnection('orders-db');
    const result = renderConnection({
      connection,
      accessPolicies: [],
      recordingPolicies: [aRecordingPolicy('minio')],
      secrets: secretSummaries({ 'orders-db-credentials': ['username', 'password'], minio: ['accessKeyId', 'secretAccessKey'], 'minio-signing': ['signing.pem'] }),
      deployment: undefined,
      configMapExists: false,
      settings: { image: 'warden:test', healthPort, oidc: { issuer: 'https://idp.example.com', audience: 'warden' } },
      now: new Date('2026-11-22T10:00:00Z'),
    } as Parameters<typeof renderConnection>[0]);
    const deployment = result.objects.find((o) => o.kind === 'Deployment') as unknown as {
      spec: { template: { metadata: { annotations: Record<string, string> }; spec: { containers: Array<{ ports: Array<{ name: string; containerPort: number }> }> } } };
    };
    const template = deployment.spec.template;
    const health = template.spec.containers[0]?.ports.find((p) => p.name === 'health');
    expect(health?.containerPort).toBe(healthPort);
    expect(template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(healthPort), 'prometheus.io/path': '/metrics' });
  });
});
