/* eslint-disable @typescript-eslint/no-explicit-any -- the tests reach into rendered JSON and break documents on purpose */
import { describe, expect, it } from 'vitest';
import type { Connection, ConnectionSpec, Protocol } from '../api/types.ts';
import { validateSidecarConfig } from '../sidecar/config.ts';
import { findCondition } from './conditions.ts';
import { ANNOTATIONS } from './names.ts';
import { type ConnectionInputs, type Manifest, renderConnection, type SecretSummary, withApplyFailure } from './render.ts';
import { aConnection, anAccessPolicy, aRecordingPolicy, secretSummaries } from './test-support.ts';

const NOW = new Date('2026-11-22T10:00:00Z');

type TestInputs = ConnectionInputs & { secrets: Map<string, SecretSummary> };

function inputs(connection: Connection, overrides: Partial<TestInputs> = {}): TestInputs {
  return {
    connection,
    accessPolicies: [],
    recordingPolicies: [aRecordingPolicy('minio')],
    secrets: secretSummaries({
      [`${connection.metadata.name}-credentials`]: ['username', 'password', 'privateKey', 'token', 'tls.crt', 'tls.key'],
      minio: ['accessKeyId', 'secretAccessKey'],
      'minio-signing': ['signing.pem'],
      ca: ['ca.crt'],
      'listener-tls': ['tls.crt', 'tls.key'],
      'host-key': ['ssh-privatekey'],
    }),
    deployment: undefined,
    configMapExists: false,
    settings: { image: 'ghcr.io/warden/warden:test', healthPort: 9090, oidc: { issuer: 'https://idp.example.com', audience: 'warden' } },
    now: NOW,
    ...overrides,
  };
}

const condition = (result: ReturnType<typeof renderConnection>, type: string) => findCondition(result.status.conditions, type);
const object = (result: ReturnType<typeof renderConnection>, kind: string): Manifest => {
  const found = result.objects.find((o) => o.kind === kind);
  if (!found) throw new Error(`no ${kind} rendered`);
  return found;
};

const PROTOCOL_CASES: Array<[Protocol, Partial<ConnectionSpec>, { port: number; containerPort: number; credentials: string[]; targetTls: boolean }]> = [
  ['postgres', {}, { port: 5432, containerPort: 5432, credentials: ['password', 'username'], targetTls: true }],
  [
    'ssh',
    { target: { host: 'ops', port: 22, hostKeys: ['ssh-ed25519 AAAAC3Nz'] }, listener: { hostKeySecretRef: { name: 'host-key' } } },
    { port: 2222, containerPort: 2222, credentials: ['privateKey', 'username'], targetTls: false },
  ],
  [
    'kubernetes',
    { target: { url: 'https://kubernetes.default.svc', tls: { caSecretRef: { name: 'ca' } } }, listener: { tlsSecretRef: { name: 'listener-tls' } } },
    { port: 443, containerPort: 8443, credentials: ['token'], targetTls: true },
  ],
  ['http', { target: { url: 'http://billing:8080' }, credentialsRef: undefined }, { port: 80, containerPort: 8080, credentials: [], targetTls: false }],
];

describe('renderConnection', () => {
  it.each(PROTOCOL_CASES)('renders a %s Connection into a valid configuration and six objects', (protocol, spec, expected) => {
    const connection = aConnection('target', { protocol, ...spec });
    const result = renderConnection(inputs(connection));
    expect(condition(result, 'ConfigRendered')).toMatchObject({ status: 'True', reason: 'Rendered' });
    const config = validateSidecarConfig(result.config);
    expect(config.protocol).toBe(protocol);
    expect(config.listener.port).toBe(expected.containerPort);
    expect(Object.keys(config.credentials).sort()).toEqual(expected.credentials);
    expect(config.target.tls !== undefined).toBe(expected.targetTls);
    expect(result.objects.map((o) => o.kind)).toEqual(['ServiceAccount', 'Role', 'RoleBinding', 'ConfigMap', 'Deployment', 'Service']);
    for (const manifest of result.objects) {
      expect(manifest.metadata.ownerReferences).toEqual([
        { apiVersion: 'warden.dev/v1alpha1', kind: 'Connection', name: 'target', uid: connection.metadata.uid, controller: true, blockOwnerDeletion: true },
      ]);
      expect(manifest.metadata.annotations[ANNOTATIONS.appliedHash]).toMatch(/^[0-9a-f]{32}$/);
    }
    expect(object(result, 'Service').spec).toMatchObject({ ports: [{ port: expected.port, targetPort: 'listener' }] });
    expect(result.status.endpoint).toBe(`target.payments.svc:${expected.port}`);
    // Postgres gateways run Node with the SQL parser's flags (node-flags.ts); the others as `warden`.
    const container = (object(result, 'Deployment').spec as any).template.spec.containers[0];
    expect(container.command).toEqual(protocol === 'postgres' ? ['node', '--liftoff-only', '/app/bin/warden.js'] : ['warden']);
    expect(container.args.slice(0, 1)).toEqual(['sidecar']);
  });

  it("sizes the gateway container from the defaults, each entry replaced by the Connection's own", () => {
    const containerOf = (result: ReturnType<typeof renderConnection>): any => (object(result, 'Deployment').spec as any).template.spec.containers[0];
    expect(containerOf(renderConnection(inputs(aConnection('orders-db')))).resources).toEqual({ requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '512Mi' } });
    const sized = renderConnection(inputs(aConnection('orders-db', { resources: { requests: { memory: '256Mi' }, limits: { memory: '1Gi', cpu: '2' } } })));
    expect(containerOf(sized).resources).toEqual({ requests: { cpu: '50m', memory: '256Mi' }, limits: { memory: '1Gi', cpu: '2' } });
  });

  it('never puts a credential value into the ConfigMap, only file paths', () => {
    const result = renderConnection(inputs(aConnection('orders-db')));
    const data = (object(result, 'ConfigMap').data as Record<string, string>)['sidecar-config.json'] ?? '';
    expect(JSON.parse(data).credentials.password).toEqual({
      secret: 'orders-db-credentials',
      key: 'password',
      file: '/etc/warden/secrets/orders-db-credentials/password',
    });
  });

  it('mounts every referenced Secret and grants the gateway get on exactly those', () => {
    const result = renderConnection(inputs(aConnection('orders-db', { target: { host: 'db', port: 5432, tls: { mode: 'verify-ca', caSecretRef: { name: 'ca' } } } })));
    const template = (object(result, 'Deployment').spec as any).template.spec;
    expect(template.volumes.filter((v: any) => v.secret).map((v: any) => v.secret.secretName)).toEqual(['ca', 'minio', 'minio-signing', 'orders-db-credentials']);
    const rules = object(result, 'Role').rules as Array<{ resources: string[]; resourceNames?: string[] }>;
    expect(rules.find((r) => r.resources.includes('secrets'))?.resourceNames).toEqual(['ca', 'minio', 'minio-signing', 'orders-db-credentials']);
    expect(rules.find((r) => r.resources.includes('configmaps'))?.resourceNames).toEqual(['orders-db-gateway-config']);
  });

  it('takes the approval webhook and the trace exporter settings from named keys of optional Secrets, never a whole Secret as environment', () => {
    const result = renderConnection(inputs(aConnection('orders-db')));
    const container = (object(result, 'Deployment').spec as any).template.spec.containers[0];
    expect(container.envFrom).toBeUndefined();
    const fromSecret = container.env.filter((e: any) => e.valueFrom?.secretKeyRef);
    expect(fromSecret).toEqual([
      { name: 'WARDEN_APPROVAL_WEBHOOK_URL', valueFrom: { secretKeyRef: { name: 'warden-approval-webhook', key: 'WARDEN_APPROVAL_WEBHOOK_URL', optional: true } } },
      { name: 'WARDEN_APPROVAL_WEBHOOK_SECRET', valueFrom: { secretKeyRef: { name: 'warden-approval-webhook', key: 'WARDEN_APPROVAL_WEBHOOK_SECRET', optional: true } } },
      // Traces: the OTLP exporter's standard variables, each from the optional Secret warden-telemetry.
      ...['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'].map((key) => ({
        name: key,
        valueFrom: { secretKeyRef: { name: 'warden-telemetry', key, optional: true } },
      })),
    ]);
  });

  it('keeps the pod template unchanged when only policies change (no restart of gateways)', () => {
    const connection = aConnection('orders-db', {}, { team: 'payments' });
    const a = renderConnection(inputs(connection, { accessPolicies: [anAccessPolicy('p', { connections: ['orders-db'] })] }));
    const b = renderConnection(inputs(connection, { accessPolicies: [anAccessPolicy('p', { connections: ['orders-db'], rules: [{ name: 'x', effect: 'Deny' }] })] }));
    expect(a.config?.hash).not.toBe(b.config?.hash);
    expect(object(a, 'Deployment')).toEqual(object(b, 'Deployment'));
    expect(object(a, 'ConfigMap')).not.toEqual(object(b, 'ConfigMap'));
  });

  it('changes the configuration, not the pod template, when a Secret rotates', () => {
    const connection = aConnection('orders-db');
    const before = inputs(connection);
    const rotated = new Map(before.secrets);
    rotated.set('orders-db-credentials', { name: 'orders-db-credentials', resourceVersion: '2', keys: ['username', 'password'] });
    const a = renderConnection(before);
    const b = renderConnection({ ...before, secrets: rotated });
    expect(b.config?.secretVersions['orders-db-credentials']).toBe('2');
    expect(object(a, 'Deployment')).toEqual(object(b, 'Deployment'));
    expect(a.config?.hash).not.toBe(b.config?.hash);
  });

  describe('selects AccessPolicies', () => {
    const connection = aConnection('orders-db', {}, { team: 'payments', tier: 'prod' });
    const cases: Array<[string, Parameters<typeof anAccessPolicy>[1], boolean]> = [
      ['by name', { connections: ['orders-db'] }, true],
      ['not by another name', { connections: ['other'] }, false],
      ['by matchLabels', { connectionSelector: { matchLabels: { team: 'payments' } } }, true],
      ['not by a label value that differs', { connectionSelector: { matchLabels: { team: 'billing' } } }, false],
      ['by an empty selector (all)', { connectionSelector: {} }, true],
      ['by In', { connectionSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['prod', 'staging'] }] } }, true],
      ['not by NotIn', { connectionSelector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['prod'] }] } }, false],
      ['by Exists', { connectionSelector: { matchExpressions: [{ key: 'team', operator: 'Exists' }] } }, true],
      ['not by DoesNotExist', { connectionSelector: { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] } }, false],
      ['by name when the selector does not match', { connections: ['orders-db'], connectionSelector: { matchLabels: { team: 'x' } } }, true],
    ];
    it.each(cases)('%s', (_what, spec, selected) => {
      const result = renderConnection(inputs(connection, { accessPolicies: [anAccessPolicy('policy', spec)] }));
      expect(result.policies).toEqual(selected ? ['policy'] : []);
      expect(result.config?.policies.map((p) => p.name)).toEqual(selected ? ['policy'] : []);
    });

    it('ignores policies of other namespaces and orders the rest by name', () => {
      const result = renderConnection(
        inputs(connection, {
          accessPolicies: [
            anAccessPolicy('zeta', { connectionSelector: {} }),
            anAccessPolicy('alpha', { connections: ['orders-db'] }),
            anAccessPolicy('elsewhere', { connectionSelector: {} }, 'billing'),
          ],
        }),
      );
      expect(result.status.policies).toEqual(['alpha', 'zeta']);
    });
  });

  describe('reports bad input as conditions, never by throwing', () => {
    const cases: Array<[string, Partial<TestInputs>, Connection, { reason: string; message: string }]> = [
      ['a missing Secret', { secrets: secretSummaries({ minio: ['accessKeyId', 'secretAccessKey'], 'minio-signing': ['signing.pem'] }) }, aConnection('orders-db', { credentialsRef: { name: 'orders-db-gateway' } }), { reason: 'SecretNotFound', message: 'Secret payments/orders-db-gateway not found' }],
      [
        'a missing key',
        { secrets: secretSummaries({ 'orders-db-gateway': ['username'], minio: ['accessKeyId', 'secretAccessKey'], 'minio-signing': ['signing.pem'] }) },
        aConnection('orders-db', { credentialsRef: { name: 'orders-db-gateway' } }),
        { reason: 'SecretKeyMissing', message: "Secret payments/orders-db-gateway has no key 'password'" },
      ],
      [
        'a missing custom key',
        {},
        aConnection('orders-db', { credentialsRef: { name: 'orders-db-credentials', keys: { password: 'pw' } } }),
        { reason: 'SecretKeyMissing', message: "Secret payments/orders-db-credentials has no key 'pw'" },
      ],
      [
        'a missing CA key',
        {},
        aConnection('orders-db', { target: { host: 'db', port: 5432, tls: { mode: 'verify-ca', caSecretRef: { name: 'ca', key: 'bundle.pem' } } } }),
        { reason: 'SecretKeyMissing', message: "Secret payments/ca has no key 'bundle.pem'" },
      ],
    ];
    it.each(cases)('%s', (_what, overrides, connection, expected) => {
      const base = inputs(connection);
      const secrets = overrides.secrets ?? new Map([...base.secrets, ['ops-credentials', { name: 'ops-credentials', resourceVersion: '1', keys: ['username', 'privateKey'] }]]);
      const result = renderConnection({ ...base, ...overrides, secrets });
      expect(condition(result, 'ConfigRendered')).toMatchObject({ status: 'False', reason: expected.reason });
      expect(condition(result, 'ConfigRendered')?.message).toContain(expected.message);
      expect(condition(result, 'Ready')).toMatchObject({ status: 'False', reason: 'ConfigNotRendered' });
      expect(result.objects).toEqual([]);
      expect(result.config).toBeUndefined();
    });

    it('says the gateways run on a stale configuration when one exists', () => {
      const result = renderConnection({ ...inputs(aConnection('orders-db', { credentialsRef: { name: 'gone' } })), configMapExists: true });
      expect(condition(result, 'Degraded')).toMatchObject({ status: 'True', reason: 'StaleConfig' });
    });

    it('needs OIDC settings from the Connection or the controller', () => {
      const base = inputs(aConnection('orders-db'));
      const result = renderConnection({ ...base, settings: { ...base.settings, oidc: undefined } });
      expect(condition(result, 'ConfigRendered')).toMatchObject({ status: 'False', reason: 'InvalidConfig' });
      const own = renderConnection({ ...base, connection: aConnection('orders-db', { oidc: { issuer: 'https://own', audience: 'a' } }), settings: { ...base.settings, oidc: undefined } });
      expect(own.config?.oidc).toEqual({ issuer: 'https://own', audience: 'a', usernameClaim: 'email', groupsClaim: 'groups' });
    });
  });

  describe('renders a broken AccessPolicy fail-closed, naming policy and rule', () => {
    const cases: Array<[string, Connection, ReturnType<typeof anAccessPolicy>, string]> = [
      [
        'an invalid ssh exec pattern',
        aConnection('ops', { protocol: 'ssh', target: { host: 'ops', port: 22, insecureSkipHostKeyVerification: true }, credentialsRef: { name: 'ops-credentials' } }),
        anAccessPolicy('sre', { connections: ['ops'], rules: [{ name: 'status', effect: 'Allow', ssh: { exec: ['(a)\\1'] } }] }),
        'AccessPolicy payments/sre rule "status": pattern "(a)',
      ],
      [
        'an invalid masking pattern',
        aConnection('orders-db'),
        anAccessPolicy('mask', { connections: ['orders-db'], masking: { rules: [{ name: 'ids', patterns: ['(?<=x)y'] }] } }),
        'AccessPolicy payments/mask rule "ids": pattern "(?<=x)y" is not allowed',
      ],
      [
        'a bad session limit',
        aConnection('orders-db'),
        anAccessPolicy('limits', { connections: ['orders-db'], sessionLimits: { maxDuration: 'forever' } }),
        'AccessPolicy payments/limits',
      ],
    ];
    it.each(cases)('%s', (_what, connection, policy, message) => {
      const base = inputs(connection);
      const secrets = new Map([...base.secrets, ['ops-credentials', { name: 'ops-credentials', resourceVersion: '1', keys: ['username', 'privateKey'] }]]);
      const good = anAccessPolicy('fine', { connectionSelector: {} });
      const result = renderConnection({ ...base, secrets, accessPolicies: [policy, good] });
      // Rendered all the same: other policies keep working, and changes keep flowing.
      expect(condition(result, 'ConfigRendered')?.status).toBe('True');
      expect(condition(result, 'Degraded')).toMatchObject({ status: 'True', reason: 'InvalidPolicy' });
      expect(condition(result, 'Degraded')?.message).toContain(message);
      const broken = result.config?.policies.find((p) => p.name === policy.metadata.name);
      expect(broken?.problems.length).toBeGreaterThan(0);
      expect(result.config?.policies.find((p) => p.name === 'fine')?.problems).toEqual([]);
      expect(validateSidecarConfig(result.config).policies).toHaveLength(2);
    });
  });

  describe('recording', () => {
    const cases: Array<[string, Partial<TestInputs>, Partial<ConnectionSpec>, { status: string; reason: string; message?: string }]> = [
      ['one selecting policy that is ready', {}, {}, { status: 'True', reason: 'RecordingConfigured' }],
      ['no policy', { recordingPolicies: [] }, {}, { status: 'False', reason: 'NoRecordingPolicy' }],
      [
        'two selecting policies',
        { recordingPolicies: [aRecordingPolicy('b'), aRecordingPolicy('a')] },
        {},
        { status: 'False', reason: 'RecordingPolicyConflict', message: 'selected by 2 RecordingPolicies (a, b); name one in spec.recordingPolicyRef' },
      ],
      ['two policies, one named', { recordingPolicies: [aRecordingPolicy('b'), aRecordingPolicy('minio')] }, { recordingPolicyRef: { name: 'minio' } }, { status: 'True', reason: 'RecordingConfigured' }],
      ['a named policy that does not exist', {}, { recordingPolicyRef: { name: 'nope' } }, { status: 'False', reason: 'RecordingPolicyNotFound' }],
      ['a policy that is not ready', { recordingPolicies: [aRecordingPolicy('minio', {}, { ready: false })] }, {}, { status: 'False', reason: 'RecordingPolicyNotReady', message: 'The access key is not valid' }],
      [
        'a policy whose credentials Secret lacks a key',
        { recordingPolicies: [aRecordingPolicy('minio', { storage: { s3: { endpoint: 'http://m', bucket: 'rec', credentialsSecretRef: { name: 'minio', secretAccessKeyKey: 'sk' } } } })] },
        {},
        { status: 'False', reason: 'RecordingSecretInvalid', message: "Secret payments/minio has no key 'sk'" },
      ],
    ];
    it.each(cases)('%s', (_what, overrides, spec, expected) => {
      const result = renderConnection(inputs(aConnection('orders-db', spec), overrides));
      expect(condition(result, 'RecordingReady')).toMatchObject({ status: expected.status, reason: expected.reason });
      if (expected.message) expect(condition(result, 'RecordingReady')?.message).toContain(expected.message);
      // The configuration is still rendered: policy changes keep flowing; without recording the gateway admits nobody.
      expect(condition(result, 'ConfigRendered')?.status).toBe('True');
      expect(result.config?.recording === null).toBe(expected.status !== 'True' && expected.reason !== 'RecordingPolicyNotReady');
      if (expected.status !== 'True') expect(condition(result, 'Ready')).toMatchObject({ status: 'False', reason: 'RecordingNotReady' });
    });

    it('puts bucket, prefix and retention into the configuration and status', () => {
      const policy = aRecordingPolicy('minio', {
        storage: { s3: { endpoint: 'http://minio:9000', bucket: 'rec', prefix: 'prod/', credentialsSecretRef: { name: 'minio' } } },
        retention: { days: 30, objectLock: { mode: 'GOVERNANCE' } },
      });
      const result = renderConnection(inputs(aConnection('orders-db'), { recordingPolicies: [policy] }));
      expect(result.config?.recording).toMatchObject({ s3: { bucket: 'rec', prefix: 'prod/payments/orders-db/' }, objectLock: { mode: 'GOVERNANCE', days: 30 } });
      expect(result.status.recording).toEqual({ policy: 'minio', endpoint: 'http://minio:9000', bucket: 'rec', prefix: 'prod/payments/orders-db/' });
    });
  });

  describe('readiness', () => {
    const cases: Array<[string, number | undefined, number, { ready: string; reason: string; degraded: string }]> = [
      ['no Deployment yet', undefined, 1, { ready: 'False', reason: 'GatewayNotReady', degraded: 'False' }],
      ['no ready pod', 0, 2, { ready: 'False', reason: 'GatewayNotReady', degraded: 'False' }],
      ['some ready pods', 1, 2, { ready: 'True', reason: 'GatewayReady', degraded: 'True' }],
      ['all ready pods', 2, 2, { ready: 'True', reason: 'GatewayReady', degraded: 'False' }],
    ];
    it.each(cases)('%s', (_what, readyReplicas, replicas, expected) => {
      const deployment = readyReplicas === undefined ? undefined : { replicas, readyReplicas };
      const result = renderConnection(inputs(aConnection('orders-db', { replicas }), { deployment }));
      expect(condition(result, 'Ready')).toMatchObject({ status: expected.ready, reason: expected.reason });
      expect(condition(result, 'Degraded')?.status).toBe(expected.degraded);
      expect(result.status.readyReplicas).toBe(readyReplicas ?? 0);
    });
  });

  it('moves lastTransitionTime only when a status flips', () => {
    const connection = aConnection('orders-db');
    const first = renderConnection(inputs(connection));
    const later = new Date(NOW.getTime() + 60_000);
    const again = renderConnection(inputs({ ...connection, status: first.status }, { now: later, deployment: { readyReplicas: 0 } }));
    expect(condition(again, 'ConfigRendered')?.lastTransitionTime).toBe('2026-11-22T10:00:00Z');
    const flipped = renderConnection(inputs({ ...connection, status: again.status }, { now: later, deployment: { readyReplicas: 1 } }));
    expect(condition(flipped, 'Ready')).toMatchObject({ status: 'True', lastTransitionTime: '2026-11-22T10:01:00Z' });
    expect(condition(flipped, 'ConfigRendered')?.lastTransitionTime).toBe('2026-11-22T10:00:00Z');
  });

  it('reports a failed apply as Ready=False with the API server\'s words', () => {
    const connection = aConnection('orders-db');
    const result = withApplyFailure(renderConnection(inputs(connection)), connection, 'failed to allocate a serviceIP: range is full', NOW);
    expect(condition(result, 'Ready')).toMatchObject({ status: 'False', reason: 'ApplyFailed', message: 'failed to allocate a serviceIP: range is full' });
    expect(condition(result, 'ConfigRendered')?.status).toBe('True');
  });

  it('is deterministic: the same inputs give byte-identical objects', () => {
    const connection = aConnection('orders-db');
    const a = renderConnection(inputs(connection));
    const b = renderConnection(inputs(structuredClone(connection)));
    expect(JSON.stringify(b.objects)).toBe(JSON.stringify(a.objects));
  });
});
