/**
 * The CRDs in crds/ against a real kube-apiserver: they install and become Established, the
 * samples apply, every CEL rule rejects what it should with its own message, the transition rules
 * (immutable specs, final decisions) hold through the status subresource, and kubectl shows the
 * printer columns and the `warden` category.
 *
 * Everything this file creates lives in its own namespace and is deleted afterwards. The plane
 * runs no controller-manager, so the namespace itself only reaches Terminating; its objects are
 * deleted explicitly first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import {
  type AccessPolicy,
  type AccessRequest,
  API_VERSION,
  type Connection,
  GROUP,
  KINDS,
  type Kind,
  RESOURCES,
  type RecordingPolicy,
  type Session,
} from '../src/api/types.ts';
import { type KubectlResult, kubectl, kubectlOk } from './plane/kubectl.ts';

const kube = inject('plane').kube;
const namespace = `crds-test-${process.pid}-${Date.now().toString(36)}`;

const CRD_DIR = new URL('../crds/', import.meta.url);
const SAMPLES_DIR = new URL('../config/samples/', import.meta.url);

// ---------------------------------------------------------------------------------------------
// The CEL rules of the CRDs, looked up by a fragment of their message. Every lookup is recorded,
// so the last test can check that each rule of each CRD is exercised here.

interface Validation {
  rule: string;
  message: string;
}

const validations = new Map<Kind, Validation[]>();
for (const file of readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'))) {
  const crd = parse(readFileSync(new URL(file, CRD_DIR), 'utf8')) as {
    spec: { names: { kind: Kind }; versions: Array<{ schema: { openAPIV3Schema: unknown } }> };
  };
  const found: Validation[] = [];
  const collect = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(collect);
    else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'x-kubernetes-validations') found.push(...(value as Validation[]));
        else collect(value);
      }
    }
  };
  collect(crd.spec.versions[0]?.schema.openAPIV3Schema);
  validations.set(crd.spec.names.kind, found);
}

const exercised = new Set<string>();

/** The full message of the one CEL rule of `kind` whose message contains `fragment`. */
function cel(kind: Kind, fragment: string): string {
  const matches = (validations.get(kind) ?? []).filter((v) => v.message.includes(fragment));
  if (matches.length !== 1) {
    throw new Error(`${kind}: ${matches.length} CEL rules have a message containing "${fragment}"`);
  }
  const message = matches[0]!.message;
  exercised.add(`${kind}: ${message}`);
  return message;
}

// ---------------------------------------------------------------------------------------------
// Valid objects to start from; each invalid case breaks one of them in one place.

const SSH_HOST_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtVCsYxOfN4Qb2PV0lEA98Re3FMAVtAubBucDI+roOx';

const meta = (name: string): { name: string; namespace: string } => ({ name, namespace });

const postgresConnection = (name = 'pg'): Connection => ({
  apiVersion: API_VERSION,
  kind: 'Connection',
  metadata: meta(name),
  spec: {
    protocol: 'postgres',
    target: { host: 'db.example.internal', port: 5432, database: 'orders' },
    credentialsRef: { name: 'pg-credentials' },
  },
});

const sshConnection = (name = 'ssh'): Connection => ({
  apiVersion: API_VERSION,
  kind: 'Connection',
  metadata: meta(name),
  spec: {
    protocol: 'ssh',
    target: { host: 'host.example.internal', port: 22, hostKeys: [SSH_HOST_KEY] },
    credentialsRef: { name: 'ssh-credentials' },
  },
});

const httpConnection = (name = 'web'): Connection => ({
  apiVersion: API_VERSION,
  kind: 'Connection',
  metadata: meta(name),
  spec: { protocol: 'http', target: { url: 'http://web.example.internal:8080' } },
});

const accessPolicy = (name = 'readers'): AccessPolicy => ({
  apiVersion: API_VERSION,
  kind: 'AccessPolicy',
  metadata: meta(name),
  spec: {
    connections: ['pg'],
    subjects: [{ kind: 'Group', name: 'readers' }],
    rules: [{ name: 'read', effect: 'Allow', sql: { statementClasses: ['read'] } }],
    masking: { rules: [{ name: 'emails', detectors: ['email'] }] },
  },
});

const recordingPolicy = (name = 'recordings'): RecordingPolicy => ({
  apiVersion: API_VERSION,
  kind: 'RecordingPolicy',
  metadata: meta(name),
  spec: {
    connectionSelector: {},
    storage: {
      s3: {
        endpoint: 'http://minio.example.internal:9000',
        bucket: 'recordings',
        credentialsSecretRef: { name: 's3' },
      },
    },
    retention: { days: 30, objectLock: { mode: 'GOVERNANCE' } },
  },
});

const session = (name = 'session-1'): Session => ({
  apiVersion: API_VERSION,
  kind: 'Session',
  metadata: meta(name),
  spec: {
    connection: 'pg',
    protocol: 'postgres',
    user: 'alice@example.com',
    groups: ['readers'],
    clientAddress: '10.0.0.7:51234',
    clientApplication: 'psql',
    startedAt: '2026-11-22T10:00:00Z',
  },
});

const accessRequest = (name = 'request-1'): AccessRequest => ({
  apiVersion: API_VERSION,
  kind: 'AccessRequest',
  metadata: meta(name),
  spec: {
    requester: { user: 'bob@example.com', groups: ['ai-agents'] },
    connection: 'pg',
    session: 'session-1',
    command: { protocol: 'postgres', text: "UPDATE orders SET state = 'shipped' WHERE id = 42" },
    policy: 'ai-agents-orders',
    rule: 'writes-need-approval',
    reason: 'Writes by agents need approval.',
    expiresAt: '2030-01-01T00:00:00Z',
  },
});

/** A copy of `base` renamed and changed by `change` (which may break the types on purpose). */
function edit<T extends { metadata: { name?: string } }>(base: T, name: string, change: (o: T) => void): T {
  const copy = structuredClone(base);
  copy.metadata.name = name;
  change(copy);
  return copy;
}

const apply = async (object: unknown): Promise<KubectlResult> =>
  await kubectl(kube, ['apply', '--filename=-'], { input: JSON.stringify(object) });

const patchStatus = async (resource: string, name: string, status: object): Promise<KubectlResult> =>
  await kubectl(
    kube,
    [
      'patch',
      resource,
      name,
      '--subresource=status',
      '--type=merge',
      `--patch=${JSON.stringify({ status })}`,
    ],
    { namespace },
  );

const CRD_NAMES = KINDS.map((kind) => `${RESOURCES[kind].plural}.${GROUP}`);

/** The samples as users apply them, moved into this file's namespace. */
function samplesInNamespace(): string {
  const files = readdirSync(SAMPLES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  const objects = files.flatMap((file) =>
    parseAllDocuments(readFileSync(new URL(file, SAMPLES_DIR), 'utf8')).map(
      (doc) => doc.toJS() as { kind: string; metadata: { namespace?: string } },
    ),
  );
  return objects
    .filter((object) => object.kind !== 'Namespace')
    .map((object) => stringify({ ...object, metadata: { ...object.metadata, namespace } }))
    .join('---\n');
}

// ---------------------------------------------------------------------------------------------

let crdApply: KubectlResult;
let samplesApply: KubectlResult;

beforeAll(async () => {
  // Server-side, like a GitOps tool; --force-conflicts because other test files install the same
  // CRDs into the shared plane.
  crdApply = await kubectl(kube, [
    'apply',
    '--server-side',
    '--force-conflicts',
    '--field-manager=warden-crds-test',
    `--filename=${new URL(CRD_DIR).pathname}`,
  ]);
  if (crdApply.code === 0) {
    await kubectlOk(kube, [
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      ...CRD_NAMES.map((n) => `crd/${n}`),
    ]);
  }
  await kubectlOk(kube, ['create', 'namespace', namespace]);
  samplesApply = await kubectl(kube, ['apply', '--filename=-'], { input: samplesInNamespace() });
});

afterAll(async () => {
  await kubectl(kube, ['delete', 'warden,secrets', '--all', '--wait=false'], { namespace });
  await kubectl(kube, ['delete', 'namespace', namespace, '--wait=false']);
});

describe('the CRDs on a real API server', () => {
  it('install with server-side apply and become Established', async () => {
    expect(crdApply.stderr).toBe('');
    expect(crdApply.code).toBe(0);
    for (const name of CRD_NAMES) {
      const established = await kubectlOk(kube, [
        'get',
        `crd/${name}`,
        '--output=jsonpath={.status.conditions[?(@.type=="Established")].status}',
      ]);
      expect(established, name).toBe('True');
    }
  });

  it('accept every sample in config/samples/', () => {
    expect(samplesApply.stderr).toBe('');
    expect(samplesApply.code).toBe(0);
    for (const created of [
      'connection.warden.dev/orders-db created',
      'connection.warden.dev/ops-host created',
      'connection.warden.dev/platform-cluster created',
      'connection.warden.dev/billing-api created',
      'recordingpolicy.warden.dev/minio-compliance created',
      'accesspolicy.warden.dev/ai-agents-orders created',
      'accesspolicy.warden.dev/sre-ops-host created',
      'accesspolicy.warden.dev/developers-cluster-readonly created',
    ]) {
      expect(samplesApply.stdout).toContain(created);
    }
  });

  it.each<[string, { metadata: { name?: string } }]>([
    ['a postgres Connection', postgresConnection()],
    ['an ssh Connection', sshConnection()],
    ['an http Connection', httpConnection()],
    ['an AccessPolicy', accessPolicy()],
    ['a RecordingPolicy', recordingPolicy()],
    ['a Session', session()],
    ['an AccessRequest', accessRequest()],
  ])('accept %s built from src/api/types.ts', async (_, object) => {
    const result = await apply(object);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('apply the schema defaults', async () => {
    const read = JSON.parse(
      await kubectlOk(kube, ['get', 'connection', 'pg', '--output=json'], { namespace }),
    ) as Connection;
    expect(read.spec.replicas).toBe(1);
    expect(read.spec.listener).toEqual({ serviceType: 'ClusterIP' });
    const recording = JSON.parse(
      await kubectlOk(kube, ['get', 'recordingpolicy', 'recordings', '--output=json'], { namespace }),
    ) as RecordingPolicy;
    expect(recording.spec).toMatchObject({
      record: { input: true, output: true, maxEventBytes: 65536, maxResultRows: 1000 },
      storeMasked: true,
      onStorageFailure: 'FailClosed',
      storage: { s3: { region: 'us-east-1', pathStyle: true, sse: 'none' } },
    });
  });

  // Each case: an object broken in one place, and what kubectl must print. The object names are
  // fresh, so every case is a create.
  it.each<[string, object, string]>([
    // Connection: schema
    [
      'a Connection without target',
      edit(postgresConnection(), 'c-1', (c) => Reflect.deleteProperty(c.spec, 'target')),
      'spec.target: Required value',
    ],
    [
      'a Connection with an unknown protocol',
      edit(postgresConnection(), 'c-2', (c) => Object.assign(c.spec, { protocol: 'mysql' })),
      'spec.protocol: Unsupported value: "mysql"',
    ],
    [
      'a Connection with a misspelt field',
      edit(postgresConnection(), 'c-3', (c) => Object.assign(c.spec, { replica: 2 })),
      'unknown field "spec.replica"',
    ],
    [
      'a Connection with a duration that is not a Go duration',
      edit(postgresConnection(), 'c-4', (c) =>
        Object.assign(c.spec, { sessionLimits: { maxDuration: '10 minutes' } }),
      ),
      'spec.sessionLimits.maxDuration: Invalid value: "10 minutes"',
    ],
    [
      'a Connection with a port out of range',
      edit(postgresConnection(), 'c-5', (c) => Object.assign(c.spec.target, { port: 70000 })),
      'spec.target.port: Invalid value: 70000',
    ],
    // Connection: CEL
    [
      'an ssh Connection without host keys',
      edit(sshConnection(), 'c-10', (c) => Reflect.deleteProperty(c.spec.target, 'hostKeys')),
      cel('Connection', 'ssh connections need spec.target.hostKeys'),
    ],
    [
      'a postgres Connection without port',
      edit(postgresConnection(), 'c-11', (c) => Reflect.deleteProperty(c.spec.target, 'port')),
      cel('Connection', 'need spec.target.host and spec.target.port'),
    ],
    [
      'an http Connection without url',
      edit(httpConnection(), 'c-12', (c) => Reflect.deleteProperty(c.spec.target, 'url')),
      cel('Connection', 'kubernetes and http connections need spec.target.url'),
    ],
    [
      'a postgres Connection with a url',
      edit(postgresConnection(), 'c-13', (c) =>
        Object.assign(c.spec.target, { url: 'https://db.example.internal' }),
      ),
      cel('Connection', 'spec.target.url is only for'),
    ],
    [
      'an http Connection with host and port',
      edit(httpConnection(), 'c-14', (c) => Object.assign(c.spec.target, { host: 'web', port: 80 })),
      cel('Connection', 'host and spec.target.port are only for'),
    ],
    [
      'an ssh Connection with a database',
      edit(sshConnection(), 'c-15', (c) => Object.assign(c.spec.target, { database: 'orders' })),
      cel('Connection', 'spec.target.database is only for postgres'),
    ],
    [
      'a postgres Connection with host keys',
      edit(postgresConnection(), 'c-16', (c) => Object.assign(c.spec.target, { hostKeys: [SSH_HOST_KEY] })),
      cel('Connection', 'insecureSkipHostKeyVerification are only for ssh'),
    ],
    [
      'an ssh Connection with target TLS',
      edit(sshConnection(), 'c-17', (c) => Object.assign(c.spec.target, { tls: { mode: 'require' } })),
      cel('Connection', 'spec.target.tls does not apply to ssh'),
    ],
    [
      'a postgres Connection without credentials',
      edit(postgresConnection(), 'c-18', (c) => Reflect.deleteProperty(c.spec, 'credentialsRef')),
      cel('Connection', 'postgres and ssh connections need spec.credentialsRef'),
    ],
    [
      'a postgres Connection with a listener host key',
      edit(postgresConnection(), 'c-19', (c) =>
        Object.assign(c.spec, { listener: { hostKeySecretRef: { name: 'k' } } }),
      ),
      cel('Connection', 'hostKeySecretRef is only for ssh'),
    ],
    [
      'an ssh Connection with a listener TLS certificate',
      edit(sshConnection(), 'c-20', (c) =>
        Object.assign(c.spec, { listener: { tlsSecretRef: { name: 't' } } }),
      ),
      cel('Connection', 'tlsSecretRef does not apply to ssh'),
    ],
    [
      'a Connection with a CA but TLS disabled',
      edit(postgresConnection(), 'c-21', (c) =>
        Object.assign(c.spec.target, { tls: { mode: 'disable', caSecretRef: { name: 'ca' } } }),
      ),
      cel('Connection', 'caSecretRef has no effect with mode disable'),
    ],
    [
      'a Connection whose idle timeout exceeds its maximum duration',
      edit(postgresConnection(), 'c-22', (c) =>
        Object.assign(c.spec, { sessionLimits: { maxDuration: '1h', idleTimeout: '90m' } }),
      ),
      cel('Connection', 'idleTimeout must not be longer than maxDuration'),
    ],
    [
      'a Connection asking for more memory than the default limit',
      edit(postgresConnection(), 'c-23', (c) => Object.assign(c.spec, { resources: { requests: { memory: '1Gi' } } })),
      cel('Connection', 'the memory request is larger than the memory limit'),
    ],
    [
      'a Connection whose cpu request is over its cpu limit',
      edit(postgresConnection(), 'c-24', (c) => Object.assign(c.spec, { resources: { requests: { cpu: '2' }, limits: { cpu: '500m' } } })),
      cel('Connection', 'the cpu request is larger than the cpu limit'),
    ],
    [
      'a Connection with a memory limit that is not a Kubernetes quantity',
      edit(postgresConnection(), 'c-25', (c) => Object.assign(c.spec, { resources: { limits: { memory: '1GB' } } })),
      'spec.resources.limits.memory in body should match',
    ],
    [
      'a Connection whose name cannot name a Service',
      edit(postgresConnection(), '1-orders', () => {}),
      cel('Connection', 'must be a DNS-1035 label'),
    ],
    // AccessPolicy
    [
      'an AccessPolicy without subjects',
      edit(accessPolicy(), 'ap-1', (p) => Object.assign(p.spec, { subjects: [] })),
      'spec.subjects: Invalid value: 0: spec.subjects in body should have at least 1 items',
    ],
    [
      'an AccessPolicy with two rules of one name',
      edit(accessPolicy(), 'ap-2', (p) => p.spec.rules?.push({ name: 'read', effect: 'Deny' })),
      'spec.rules[1]: Duplicate value',
    ],
    [
      'an AccessPolicy with an unknown masking strategy',
      edit(accessPolicy(), 'ap-3', (p) =>
        Object.assign(p.spec, {
          masking: { rules: [{ name: 'm', detectors: ['email'], strategy: 'scramble' }] },
        }),
      ),
      'spec.masking.rules[0].strategy: Unsupported value: "scramble"',
    ],
    [
      'an AccessPolicy selecting no Connections',
      edit(accessPolicy(), 'ap-10', (p) => Reflect.deleteProperty(p.spec, 'connections')),
      cel('AccessPolicy', 'a policy must say which Connections'),
    ],
    [
      'an AccessPolicy that requires approval without approvers',
      edit(accessPolicy(), 'ap-11', (p) =>
        p.spec.rules?.push({
          name: 'writes',
          effect: 'RequireApproval',
          sql: { statementClasses: ['write'] },
        }),
      ),
      cel('AccessPolicy', 'RequireApproval need spec.approvers'),
    ],
    [
      'an AccessPolicy rule with two protocol matchers',
      edit(accessPolicy(), 'ap-12', (p) =>
        p.spec.rules?.push({ name: 'both', effect: 'Deny', sql: {}, ssh: { shell: true } }),
      ),
      cel('AccessPolicy', 'at most one protocol matcher'),
    ],
    [
      'an AccessPolicy masking rule that selects nothing',
      edit(accessPolicy(), 'ap-13', (p) =>
        Object.assign(p.spec, { masking: { rules: [{ name: 'nothing', strategy: 'hash' }] } }),
      ),
      cel('AccessPolicy', 'a masking rule needs at least one of'),
    ],
    [
      'an AccessPolicy whose idle timeout exceeds its maximum duration',
      edit(accessPolicy(), 'ap-14', (p) =>
        Object.assign(p.spec, { sessionLimits: { maxDuration: '30m', idleTimeout: '1h' } }),
      ),
      cel('AccessPolicy', 'idleTimeout must not be longer than maxDuration'),
    ],
    [
      'an AccessPolicy that requires session approval without approvers',
      edit(accessPolicy(), 'ap-15', (p) => Object.assign(p.spec, { sessionApproval: { required: true, maxDuration: '30m' } })),
      cel('AccessPolicy', 'sessionApproval.required needs spec.approvers'),
    ],
    [
      'an AccessPolicy whose session approval lasts 0s',
      edit(accessPolicy(), 'ap-16', (p) =>
        Object.assign(p.spec, { approvers: [{ kind: 'User', name: 'boss' }], sessionApproval: { required: true, maxDuration: '0s' } }),
      ),
      cel('AccessPolicy', 'sessionApproval.maxDuration must be longer than 0s'),
    ],
    // RecordingPolicy
    [
      'a RecordingPolicy without bucket',
      edit(recordingPolicy(), 'rp-1', (r) => Reflect.deleteProperty(r.spec.storage.s3, 'bucket')),
      'spec.storage.s3.bucket: Required value',
    ],
    [
      'a RecordingPolicy with an object lock mode S3 does not have',
      edit(recordingPolicy(), 'rp-2', (r) =>
        Object.assign(r.spec, { retention: { days: 30, objectLock: { mode: 'LEGAL_HOLD' } } }),
      ),
      'spec.retention.objectLock.mode: Unsupported value: "LEGAL_HOLD"',
    ],
    [
      'a RecordingPolicy with object lock but no retention days',
      edit(recordingPolicy(), 'rp-10', (r) =>
        Object.assign(r.spec, { retention: { objectLock: { mode: 'COMPLIANCE' } } }),
      ),
      cel('RecordingPolicy', 'objectLock needs retention.days greater than 0'),
    ],
    [
      'a RecordingPolicy with a KMS key but no SSE-KMS',
      edit(recordingPolicy(), 'rp-11', (r) =>
        Object.assign(r.spec.storage.s3, { kmsKeyId: 'alias/recordings' }),
      ),
      cel('RecordingPolicy', 'kmsKeyId is only used with sse: KMS'),
    ],
    [
      'a RecordingPolicy that records neither input nor output',
      edit(recordingPolicy(), 'rp-12', (r) =>
        Object.assign(r.spec, { record: { input: false, output: false } }),
      ),
      cel('RecordingPolicy', 'record at least input or output'),
    ],
    // Session
    [
      'a Session with an unknown protocol',
      edit(session(), 'session-x', (s) => Object.assign(s.spec, { protocol: 'mysql' })),
      'spec.protocol: Unsupported value: "mysql"',
    ],
    // AccessRequest
    [
      'an AccessRequest for a command without the command',
      edit(accessRequest(), 'ar-10', (r) => Reflect.deleteProperty(r.spec, 'command')),
      cel('AccessRequest', 'of kind Command needs spec.command'),
    ],
    [
      'an AccessRequest for a session without duration',
      edit(accessRequest(), 'ar-11', (r) => Object.assign(r.spec, { kind: 'Session' })),
      cel('AccessRequest', 'of kind Session needs spec.duration'),
    ],
    [
      'an AccessRequest for a command with a duration',
      edit(accessRequest(), 'ar-12', (r) => Object.assign(r.spec, { duration: '1h' })),
      cel('AccessRequest', 'spec.duration is only for AccessRequests of kind Session'),
    ],
  ])('reject %s', async (_, object, message) => {
    const result = await apply(object);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(message);
  });

  it('keep spec.protocol of a Connection immutable', async () => {
    const result = await apply(
      edit(httpConnection(), 'web', (c) => Object.assign(c.spec, { protocol: 'kubernetes' })),
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(cel('Connection', 'spec.protocol is immutable'));
  });

  it('let a Session end once and never change how it started', async () => {
    const name = 'session-1';
    expect((await patchStatus('session', name, { phase: 'Active', commands: 3 })).code).toBe(0);

    const withoutEnd = await patchStatus('session', name, { phase: 'Closed' });
    expect(withoutEnd.code).not.toBe(0);
    expect(withoutEnd.stderr).toContain(cel('Session', 'status.endedAt is required'));

    const closed = await patchStatus('session', name, {
      phase: 'Closed',
      endedAt: '2026-11-22T10:12:30Z',
      duration: '12m30s',
    });
    expect(closed.stderr).toBe('');

    const reopened = await patchStatus('session', name, { phase: 'Active' });
    expect(reopened.code).not.toBe(0);
    expect(reopened.stderr).toContain(cel('Session', 'cannot change phase'));

    const rewritten = await apply(
      edit(session(), name, (s) => Object.assign(s.spec, { user: 'mallory@example.com' })),
    );
    expect(rewritten.code).not.toBe(0);
    expect(rewritten.stderr).toContain(cel('Session', 'it records how the session started'));
  });

  it('let an AccessRequest be decided once, by someone other than the requester', async () => {
    const name = 'request-1';
    const decidedAt = '2026-11-22T10:05:00Z';

    const byRequester = await patchStatus('accessrequest', name, {
      decision: 'Approved',
      decidedBy: 'bob@example.com',
      decidedAt,
    });
    expect(byRequester.code).not.toBe(0);
    expect(byRequester.stderr).toContain(cel('AccessRequest', 'the requester cannot decide their own'));

    const anonymous = await patchStatus('accessrequest', name, { decision: 'Approved' });
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toContain(cel('AccessRequest', 'needs status.decidedBy and status.decidedAt'));

    const approved = await patchStatus('accessrequest', name, {
      decision: 'Approved',
      decidedBy: 'carol@example.com',
      decidedAt,
      comment: 'ok for order 42',
    });
    expect(approved.stderr).toBe('');
    expect(approved.code).toBe(0);

    const final = cel('AccessRequest', 'status.decision is final');
    const reversed = await patchStatus('accessrequest', name, { decision: 'Denied' });
    expect(reversed.code).not.toBe(0);
    expect(reversed.stderr).toContain(final);
    const recommented = await patchStatus('accessrequest', name, { comment: 'changed my mind' });
    expect(recommented.code).not.toBe(0);
    expect(recommented.stderr).toContain(final);

    const rewritten = await apply(
      edit(accessRequest(), name, (r) =>
        Object.assign(r.spec, { command: { protocol: 'postgres', text: 'DROP TABLE orders' } }),
      ),
    );
    expect(rewritten.code).not.toBe(0);
    expect(rewritten.stderr).toContain(cel('AccessRequest', 'approvers decide what the requester asked for'));

    const read = JSON.parse(
      await kubectlOk(kube, ['get', 'accessrequest', name, '--output=json'], { namespace }),
    ) as AccessRequest;
    expect(read.status).toEqual({
      decision: 'Approved',
      decidedBy: 'carol@example.com',
      decidedAt,
      comment: 'ok for order 42',
    });
  });

  it('show protocol, endpoint and readiness in `kubectl get connections`', async () => {
    const ready = await patchStatus('connection', 'orders-db', {
      observedGeneration: 1,
      endpoint: `orders-db.${namespace}.svc:5432`,
      readyReplicas: 2,
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          observedGeneration: 1,
          lastTransitionTime: '2026-11-22T10:00:00Z',
          reason: 'GatewayAvailable',
          message: '',
        },
      ],
    });
    expect(ready.stderr).toBe('');

    const table = await kubectlOk(kube, ['get', 'connections'], { namespace });
    const [header, ...rows] = table.trim().split('\n');
    expect(header?.split(/\s+/)).toEqual(['NAME', 'PROTOCOL', 'ENDPOINT', 'READY', 'AGE']);
    const row = (name: string): string[] | undefined =>
      rows.map((r) => r.split(/\s+/)).find((cells) => cells[0] === name);
    expect(row('orders-db')?.slice(0, 4)).toEqual([
      'orders-db',
      'postgres',
      `orders-db.${namespace}.svc:5432`,
      'True',
    ]);
    expect(row('ops-host')?.[1]).toBe('ssh');
  });

  it.each<[string, string[]]>([
    [
      'sessions',
      ['NAME', 'USER', 'CONNECTION', 'PROTOCOL', 'PHASE', 'COMMANDS', 'STARTED', 'DURATION', 'AGE'],
    ],
    ['accessrequests', ['NAME', 'REQUESTER', 'CONNECTION', 'COMMAND', 'DECISION', 'AGE']],
    ['accesspolicies', ['NAME', 'CONNECTIONS', 'READY', 'AGE']],
    ['recordingpolicies', ['NAME', 'BUCKET', 'LOCK', 'DAYS', 'READY', 'AGE']],
  ])('show printer columns in `kubectl get %s`', async (resource, columns) => {
    const table = await kubectlOk(kube, ['get', resource], { namespace });
    expect(table.split('\n')[0]?.trim().split(/\s+/)).toEqual(columns);
  });

  it('list every kind under `kubectl get warden` and answer to the short names', async () => {
    const listed = await kubectlOk(kube, ['get', 'warden', '--output=name'], { namespace });
    for (const object of [
      'connection.warden.dev/orders-db',
      'accesspolicy.warden.dev/ai-agents-orders',
      'recordingpolicy.warden.dev/minio-compliance',
      'session.warden.dev/session-1',
      'accessrequest.warden.dev/request-1',
    ]) {
      expect(listed).toContain(object);
    }
    const shortNames = KINDS.flatMap((kind) => RESOURCES[kind].shortNames).join(',');
    const byShortName = await kubectlOk(kube, ['get', shortNames, '--output=name'], { namespace });
    expect(new Set(byShortName.trim().split('\n'))).toEqual(new Set(listed.trim().split('\n')));
  });
});

describe('this file', () => {
  it('exercises every CEL rule of the CRDs', () => {
    const all = KINDS.flatMap((kind) => (validations.get(kind) ?? []).map((v) => `${kind}: ${v.message}`));
    expect(all.filter((message) => !exercised.has(message))).toEqual([]);
  });
});
