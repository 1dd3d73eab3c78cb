/**
 * Keeps src/api/types.ts and the CRDs in crds/ in step, and holds the CRDs to the house rules
 * (descriptions everywhere, printer columns, status subresource, category, bounded sizes).
 *
 * How the drift check works: for every spec and status type there is a shape table below, typed
 * `ShapeOf<T>`. The type forces the table to list exactly the fields of T (a missing field or an
 * extra one fails `npm run typecheck`), marks optional fields with `?`/'optional' exactly where T
 * has them, and uses the enum lists T's unions derive from. The test then walks table and schema
 * together and reports every field, enum value, type or required flag that differs. So adding a
 * field to an interface without the schema (or the other way round) fails either the typecheck
 * or this test.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import {
  ACCESS_REQUEST_DECISIONS,
  ACCESS_REQUEST_KINDS,
  type AccessPolicySpec,
  type AccessPolicyStatus,
  type AccessRequestSpec,
  type AccessRequestStatus,
  API_VERSION,
  CATEGORY,
  CONDITION_STATUSES,
  type Condition,
  type ConnectionSpec,
  type ConnectionStatus,
  DEFAULTS,
  GROUP,
  HTTP_METHODS,
  KINDS,
  type Kind,
  LABEL_SELECTOR_OPERATORS,
  type LabelSelector,
  type LocalObjectReference,
  MASKING_DETECTORS,
  MASKING_STRATEGIES,
  OBJECT_LOCK_MODES,
  PROTOCOLS,
  RESOURCES,
  type RecordingPolicySpec,
  type RecordingPolicyStatus,
  RULE_EFFECTS,
  SERVICE_TYPES,
  SESSION_PHASES,
  type SecretKeyReference,
  type SessionLimits,
  type SessionSpec,
  type SessionStatus,
  SFTP_MODES,
  SQL_STATEMENT_CLASSES,
  SSE_MODES,
  STORAGE_FAILURE_MODES,
  SUBJECT_KINDS,
  type Subject,
  TLS_MODES,
  VERSION,
} from './types.ts';

// ---------------------------------------------------------------------------------------------
// Shapes: a type-checked copy of the structure of each TypeScript type.

type Leaf = 'string' | 'integer' | 'boolean';

/** Optional leaves are written 'string?'; optional compound fields ['optional', shape]. */
type Optional<S> = S extends Leaf ? `${S}?` : readonly ['optional', S];

type ShapeOf<V> = [V] extends [boolean]
  ? 'boolean'
  : [V] extends [number]
    ? 'integer'
    : [V] extends [string]
      ? string extends V
        ? 'string'
        : readonly ['enum', readonly V[]]
      : [V] extends [readonly (infer E)[]]
        ? readonly ['list', ShapeOf<E>]
        : [V] extends [object]
          ? string extends keyof V
            ? readonly ['map', ShapeOf<V[keyof V]>]
            : {
                readonly [K in keyof V]-?: undefined extends V[K]
                  ? Optional<ShapeOf<Exclude<V[K], undefined>>>
                  : ShapeOf<V[K]>;
              }
          : never;

const condition: ShapeOf<Condition[]> = [
  'list',
  {
    type: 'string',
    status: ['enum', CONDITION_STATUSES],
    observedGeneration: 'integer?',
    lastTransitionTime: 'string',
    reason: 'string',
    message: 'string',
  },
];
const secretKeyRef: ShapeOf<SecretKeyReference> = { name: 'string', key: 'string?' };
const localRef: ShapeOf<LocalObjectReference> = { name: 'string' };
const subject: ShapeOf<Subject> = { kind: ['enum', SUBJECT_KINDS], name: 'string' };
const labelSelector: ShapeOf<LabelSelector> = {
  matchLabels: ['optional', ['map', 'string']],
  matchExpressions: [
    'optional',
    [
      'list',
      {
        key: 'string',
        operator: ['enum', LABEL_SELECTOR_OPERATORS],
        values: ['optional', ['list', 'string']],
      },
    ],
  ],
};
const sessionLimits: ShapeOf<SessionLimits> = { maxDuration: 'string?', idleTimeout: 'string?' };
/** An optional list of strings. */
const strings: Optional<ShapeOf<string[]>> = ['optional', ['list', 'string']];

const connectionSpec: ShapeOf<ConnectionSpec> = {
  protocol: ['enum', PROTOCOLS],
  target: {
    host: 'string?',
    port: 'integer?',
    database: 'string?',
    url: 'string?',
    tls: [
      'optional',
      {
        mode: ['optional', ['enum', TLS_MODES]],
        caSecretRef: ['optional', secretKeyRef],
        serverName: 'string?',
      },
    ],
    hostKeys: strings,
    insecureSkipHostKeyVerification: 'boolean?',
  },
  credentialsRef: [
    'optional',
    {
      name: 'string',
      keys: [
        'optional',
        {
          username: 'string?',
          password: 'string?',
          privateKey: 'string?',
          passphrase: 'string?',
          token: 'string?',
          clientCertificate: 'string?',
          clientKey: 'string?',
        },
      ],
    },
  ],
  listener: [
    'optional',
    {
      port: 'integer?',
      tlsSecretRef: ['optional', localRef],
      hostKeySecretRef: ['optional', secretKeyRef],
      serviceType: ['optional', ['enum', SERVICE_TYPES]],
    },
  ],
  replicas: 'integer?',
  resources: [
    'optional',
    { requests: ['optional', { cpu: 'string?', memory: 'string?' }], limits: ['optional', { cpu: 'string?', memory: 'string?' }] },
  ],
  recordingPolicyRef: ['optional', localRef],
  sessionLimits: ['optional', sessionLimits],
  oidc: [
    'optional',
    { issuer: 'string', audience: 'string', usernameClaim: 'string?', groupsClaim: 'string?' },
  ],
};

const connectionStatus: ShapeOf<ConnectionStatus> = {
  observedGeneration: 'integer?',
  conditions: ['optional', condition],
  endpoint: 'string?',
  readyReplicas: 'integer?',
  recording: ['optional', { policy: 'string?', endpoint: 'string?', bucket: 'string?', prefix: 'string?' }],
  policies: strings,
};

const accessPolicySpec: ShapeOf<AccessPolicySpec> = {
  connectionSelector: ['optional', labelSelector],
  connections: strings,
  subjects: ['list', subject],
  rules: [
    'optional',
    [
      'list',
      {
        name: 'string',
        effect: ['enum', RULE_EFFECTS],
        message: 'string?',
        when: 'string?',
        sql: [
          'optional',
          { statementClasses: ['optional', ['list', ['enum', SQL_STATEMENT_CLASSES]]], tables: strings },
        ],
        ssh: [
          'optional',
          {
            shell: 'boolean?',
            exec: strings,
            sftp: ['optional', ['enum', SFTP_MODES]],
            portForwarding: ['optional', ['list', { host: 'string', port: 'integer?' }]],
          },
        ],
        kubernetes: [
          'optional',
          {
            verbs: strings,
            apiGroups: strings,
            resources: strings,
            namespaces: strings,
            names: strings,
            nonResourceURLs: strings,
          },
        ],
        http: [
          'optional',
          { methods: ['optional', ['list', ['enum', HTTP_METHODS]]], paths: strings, hosts: strings },
        ],
      },
    ],
  ],
  approvers: ['optional', ['list', subject]],
  approvalTimeout: 'string?',
  masking: [
    'optional',
    {
      rules: [
        'optional',
        [
          'list',
          {
            name: 'string',
            columns: strings,
            jsonPaths: strings,
            detectors: ['optional', ['list', ['enum', MASKING_DETECTORS]]],
            patterns: strings,
            strategy: ['optional', ['enum', MASKING_STRATEGIES]],
          },
        ],
      ],
    },
  ],
  sessionLimits: ['optional', sessionLimits],
  sessionApproval: ['optional', { required: 'boolean', maxDuration: 'string?' }],
};

const accessPolicyStatus: ShapeOf<AccessPolicyStatus> = {
  observedGeneration: 'integer?',
  conditions: ['optional', condition],
  connections: strings,
};

const recordingPolicySpec: ShapeOf<RecordingPolicySpec> = {
  connectionSelector: ['optional', labelSelector],
  storage: {
    s3: {
      endpoint: 'string',
      bucket: 'string',
      region: 'string?',
      pathStyle: 'boolean?',
      prefix: 'string?',
      credentialsSecretRef: { name: 'string', accessKeyIdKey: 'string?', secretAccessKeyKey: 'string?' },
      caSecretRef: ['optional', secretKeyRef],
      sse: ['optional', ['enum', SSE_MODES]],
      kmsKeyId: 'string?',
    },
  },
  record: [
    'optional',
    { input: 'boolean?', output: 'boolean?', maxEventBytes: 'integer?', maxResultRows: 'integer?' },
  ],
  retention: [
    'optional',
    { days: 'integer?', objectLock: ['optional', { mode: ['enum', OBJECT_LOCK_MODES] }] },
  ],
  encryption: ['optional', { keySecretRef: secretKeyRef }],
  signing: ['optional', { keySecretRef: secretKeyRef }],
  storeMasked: 'boolean?',
  viewers: ['optional', ['list', subject]],
  onStorageFailure: ['optional', ['enum', STORAGE_FAILURE_MODES]],
  sessionRetention: 'string?',
};

const recordingPolicyStatus: ShapeOf<RecordingPolicyStatus> = {
  observedGeneration: 'integer?',
  conditions: ['optional', condition],
  bucket: [
    'optional',
    { endpoint: 'string?', name: 'string?', region: 'string?', objectLockEnabled: 'boolean?' },
  ],
  signing: ['optional', { keyId: 'string?', publicKey: 'string?' }],
  connections: strings,
};

const sessionSpec: ShapeOf<SessionSpec> = {
  connection: 'string',
  protocol: ['enum', PROTOCOLS],
  user: 'string',
  groups: strings,
  clientAddress: 'string?',
  clientApplication: 'string?',
  startedAt: 'string',
};

const sessionStatus: ShapeOf<SessionStatus> = {
  phase: ['optional', ['enum', SESSION_PHASES]],
  endedAt: 'string?',
  duration: 'string?',
  reason: 'string?',
  commands: 'integer?',
  denied: 'integer?',
  approvals: 'integer?',
  bytesIn: 'integer?',
  bytesOut: 'integer?',
  recording: ['optional', { location: 'string?', chunks: 'integer?', headDigest: 'string?' }],
};

const accessRequestSpec: ShapeOf<AccessRequestSpec> = {
  requester: { user: 'string', groups: strings },
  connection: 'string',
  session: 'string?',
  kind: ['optional', ['enum', ACCESS_REQUEST_KINDS]],
  command: ['optional', { protocol: ['enum', PROTOCOLS], text: 'string', parameters: strings }],
  policy: 'string?',
  rule: 'string?',
  reason: 'string?',
  expiresAt: 'string',
  duration: 'string?',
  approvers: ['optional', ['list', subject]],
};

const accessRequestStatus: ShapeOf<AccessRequestStatus> = {
  decision: ['optional', ['enum', ACCESS_REQUEST_DECISIONS]],
  decidedBy: 'string?',
  decidedAt: 'string?',
  comment: 'string?',
};

/** spec is required on every kind; status is always optional (written through the subresource). */
const SHAPES: Record<Kind, { spec: unknown; status: unknown }> = {
  Connection: { spec: connectionSpec, status: connectionStatus },
  AccessPolicy: { spec: accessPolicySpec, status: accessPolicyStatus },
  RecordingPolicy: { spec: recordingPolicySpec, status: recordingPolicyStatus },
  Session: { spec: sessionSpec, status: sessionStatus },
  AccessRequest: { spec: accessRequestSpec, status: accessRequestStatus },
};

// ---------------------------------------------------------------------------------------------
// Walking a shape and a schema together.

interface JsonSchema {
  type?: string;
  description?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  format?: string;
  maxLength?: number;
  maxItems?: number;
  maxProperties?: number;
  'x-kubernetes-validations'?: Array<{ rule: string; message?: string }>;
}

function unwrap(shape: unknown): { optional: boolean; inner: unknown } {
  if (typeof shape === 'string' && shape.endsWith('?')) return { optional: true, inner: shape.slice(0, -1) };
  if (Array.isArray(shape) && shape[0] === 'optional') return { optional: true, inner: shape[1] };
  return { optional: false, inner: shape };
}

/** Every difference between a shape table and a schema, as "path: what differs". */
function shapeDifferences(shape: unknown, schema: JsonSchema | undefined, path: string): string[] {
  if (schema === undefined) return [`${path}: missing in the schema`];
  if (typeof shape === 'string') {
    const problems =
      schema.type === shape ? [] : [`${path}: ${shape} in types.ts, ${schema.type} in the schema`];
    if (schema.enum !== undefined) problems.push(`${path}: enum in the schema, plain ${shape} in types.ts`);
    return problems;
  }
  if (Array.isArray(shape)) {
    const [tag, inner] = shape as [string, unknown];
    switch (tag) {
      case 'enum': {
        if (schema.type !== 'string') return [`${path}: enum in types.ts, ${schema.type} in the schema`];
        return isDeepStrictEqual(schema.enum, [...(inner as string[])])
          ? []
          : [
              `${path}: enum ${JSON.stringify(inner)} in types.ts, ${JSON.stringify(schema.enum)} in the schema`,
            ];
      }
      case 'list':
        if (schema.type !== 'array') return [`${path}: list in types.ts, ${schema.type} in the schema`];
        return shapeDifferences(inner, schema.items, `${path}[]`);
      case 'map':
        if (
          schema.type !== 'object' ||
          typeof schema.additionalProperties !== 'object' ||
          schema.properties
        ) {
          return [`${path}: map in types.ts, not a map in the schema`];
        }
        return shapeDifferences(inner, schema.additionalProperties, `${path}{}`);
      default:
        throw new Error(`${path}: unknown shape tag ${tag}`);
    }
  }
  const fields = shape as Record<string, unknown>;
  if (schema.type !== 'object' || schema.properties === undefined) {
    return [`${path}: object in types.ts, ${schema.type} without properties in the schema`];
  }
  const problems: string[] = [];
  const required = new Set(schema.required ?? []);
  for (const key of Object.keys(schema.properties)) {
    if (!(key in fields)) problems.push(`${path}.${key}: in the schema, not in types.ts`);
  }
  for (const [key, fieldShape] of Object.entries(fields)) {
    const field = schema.properties[key];
    if (field === undefined) {
      problems.push(`${path}.${key}: in types.ts, not in the schema`);
      continue;
    }
    const { optional, inner } = unwrap(fieldShape);
    if (optional === required.has(key)) {
      problems.push(
        `${path}.${key}: ${optional ? 'optional' : 'required'} in types.ts, ${required.has(key) ? 'required' : 'optional'} in the schema`,
      );
    }
    problems.push(...shapeDifferences(inner, field, `${path}.${key}`));
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Loading the CRDs.

interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
}

interface Crd {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    group: string;
    scope: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames?: string[];
      categories?: string[];
    };
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      subresources?: { status?: object };
      additionalPrinterColumns?: PrinterColumn[];
      schema: { openAPIV3Schema: JsonSchema };
    }>;
  };
}

const CRD_DIR = new URL('../../crds/', import.meta.url);
const SAMPLES_DIR = new URL('../../config/samples/', import.meta.url);

function loadCrds(): Map<Kind, Crd> {
  const crds = new Map<Kind, Crd>();
  for (const file of readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'))) {
    const crd = parse(readFileSync(new URL(file, CRD_DIR), 'utf8')) as Crd;
    const kind = crd.spec.names.kind as Kind;
    expect(file, 'one file per kind, named <group>_<plural>.yaml').toBe(
      `${GROUP}_${crd.spec.names.plural}.yaml`,
    );
    crds.set(kind, crd);
  }
  return crds;
}

const crds = loadCrds();

function crdOf(kind: Kind): Crd {
  const crd = crds.get(kind);
  if (crd === undefined) throw new Error(`no CRD for ${kind} in crds/`);
  return crd;
}

function versionOf(kind: Kind): Crd['spec']['versions'][number] {
  const version = crdOf(kind).spec.versions[0];
  if (version === undefined) throw new Error(`${kind}: no versions`);
  return version;
}

function rootSchema(kind: Kind): JsonSchema {
  return versionOf(kind).schema.openAPIV3Schema;
}

/** Calls visit for every node of a schema, with a readable path. */
function walk(schema: JsonSchema, path: string, visit: (node: JsonSchema, path: string) => void): void {
  visit(schema, path);
  for (const [key, child] of Object.entries(schema.properties ?? {})) walk(child, `${path}.${key}`, visit);
  if (schema.items) walk(schema.items, `${path}[]`, visit);
  if (typeof schema.additionalProperties === 'object') walk(schema.additionalProperties, `${path}{}`, visit);
}

// ---------------------------------------------------------------------------------------------

describe('the CRDs in crds/', () => {
  it('define exactly the kinds of src/api/types.ts', () => {
    expect([...crds.keys()].sort()).toEqual([...KINDS].sort());
  });

  describe.each(KINDS)('%s', (kind) => {
    const crd = crdOf(kind);
    const version = versionOf(kind);

    it('is namespaced in group warden.dev, served and stored at v1alpha1 only', () => {
      expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
      expect(crd.spec.group).toBe(GROUP);
      expect(crd.spec.scope).toBe('Namespaced');
      expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([[VERSION, true, true]]);
      expect(`${crd.spec.group}/${version.name}`).toBe(API_VERSION);
    });

    it('registers the names of RESOURCES and the warden category', () => {
      const names = RESOURCES[kind];
      expect(crd.metadata.name).toBe(`${names.plural}.${GROUP}`);
      expect(crd.spec.names).toEqual({
        kind,
        listKind: `${kind}List`,
        plural: names.plural,
        singular: names.singular,
        shortNames: [...names.shortNames],
        categories: [CATEGORY],
      });
    });

    it('has a status subresource', () => {
      expect(version.subresources).toEqual({ status: {} });
    });

    it('has described printer columns ending with Age', () => {
      const columns = version.additionalPrinterColumns ?? [];
      expect(columns.length).toBeGreaterThan(1);
      for (const column of columns) expect(column.description, column.name).toMatch(/\S/);
      expect(columns.at(-1)).toMatchObject({ name: 'Age', jsonPath: '.metadata.creationTimestamp' });
    });

    it('describes every field', () => {
      const undocumented: string[] = [];
      walk(rootSchema(kind), kind, (node, path) => {
        // The API server rejects anything but `type: object` on the root metadata.
        if (path === `${kind}.metadata`) return;
        const needed = !path.endsWith('[]') || node.type === 'object';
        if (needed && !node.description?.trim()) undocumented.push(path);
      });
      expect(undocumented).toEqual([]);
    });

    it('bounds every list, map and free-form string, so CEL cost estimates stay low', () => {
      const unbounded: string[] = [];
      walk(rootSchema(kind), kind, (node, path) => {
        if (path === `${kind}.apiVersion` || path === `${kind}.kind`) return;
        if (node.type === 'array' && node.maxItems === undefined) unbounded.push(`${path} (maxItems)`);
        if (typeof node.additionalProperties === 'object' && node.maxProperties === undefined) {
          unbounded.push(`${path} (maxProperties)`);
        }
        const freeForm = node.type === 'string' && node.enum === undefined && node.format !== 'date-time';
        if (freeForm && node.maxLength === undefined) unbounded.push(`${path} (maxLength)`);
      });
      expect(unbounded).toEqual([]);
    });

    it('gives every CEL rule a message', () => {
      const silent: string[] = [];
      walk(rootSchema(kind), kind, (node, path) => {
        for (const rule of node['x-kubernetes-validations'] ?? []) {
          if (!rule.message?.trim()) silent.push(`${path}: ${rule.rule}`);
        }
      });
      expect(silent).toEqual([]);
    });

    it('matches the spec and status types of src/api/types.ts', () => {
      const root = rootSchema(kind);
      expect(Object.keys(root.properties ?? {}).sort()).toEqual([
        'apiVersion',
        'kind',
        'metadata',
        'spec',
        'status',
      ]);
      expect(root.required).toEqual(['spec']);
      const shape = SHAPES[kind];
      expect(shapeDifferences(shape.spec, root.properties?.spec, `${kind}.spec`)).toEqual([]);
      expect(shapeDifferences(shape.status, root.properties?.status, `${kind}.status`)).toEqual([]);
    });
  });

  it('declare exactly the defaults DEFAULTS lists', () => {
    const declared: Record<string, unknown> = {};
    for (const kind of KINDS) {
      walk(rootSchema(kind), kind, (node, path) => {
        if (node.default !== undefined) declared[path] = node.default;
      });
    }
    expect(declared).toEqual({
      'Connection.spec.target.tls.mode': DEFAULTS.tlsMode,
      'Connection.spec.target.tls.caSecretRef.key': DEFAULTS.caKey,
      'Connection.spec.listener': {},
      'Connection.spec.listener.hostKeySecretRef.key': DEFAULTS.listenerHostKeyKey,
      'Connection.spec.listener.serviceType': DEFAULTS.serviceType,
      'Connection.spec.replicas': DEFAULTS.replicas,
      'Connection.spec.oidc.usernameClaim': DEFAULTS.oidc.usernameClaim,
      'Connection.spec.oidc.groupsClaim': DEFAULTS.oidc.groupsClaim,
      'AccessPolicy.spec.rules[].ssh.sftp': DEFAULTS.sftp,
      'AccessPolicy.spec.approvalTimeout': DEFAULTS.approvalTimeout,
      'AccessPolicy.spec.sessionApproval.maxDuration': DEFAULTS.sessionApprovalDuration,
      'AccessPolicy.spec.masking.rules[].strategy': DEFAULTS.maskingStrategy,
      'RecordingPolicy.spec.storage.s3.region': DEFAULTS.s3.region,
      'RecordingPolicy.spec.storage.s3.pathStyle': DEFAULTS.s3.pathStyle,
      'RecordingPolicy.spec.storage.s3.credentialsSecretRef.accessKeyIdKey': DEFAULTS.s3.accessKeyIdKey,
      'RecordingPolicy.spec.storage.s3.credentialsSecretRef.secretAccessKeyKey':
        DEFAULTS.s3.secretAccessKeyKey,
      'RecordingPolicy.spec.storage.s3.caSecretRef.key': DEFAULTS.caKey,
      'RecordingPolicy.spec.storage.s3.sse': DEFAULTS.s3.sse,
      'RecordingPolicy.spec.record': {},
      'RecordingPolicy.spec.record.input': DEFAULTS.record.input,
      'RecordingPolicy.spec.record.output': DEFAULTS.record.output,
      'RecordingPolicy.spec.record.maxEventBytes': DEFAULTS.record.maxEventBytes,
      'RecordingPolicy.spec.record.maxResultRows': DEFAULTS.record.maxResultRows,
      'RecordingPolicy.spec.encryption.keySecretRef.key': DEFAULTS.encryptionKeyKey,
      'RecordingPolicy.spec.signing.keySecretRef.key': DEFAULTS.signingKeyKey,
      'RecordingPolicy.spec.storeMasked': DEFAULTS.storeMasked,
      'RecordingPolicy.spec.onStorageFailure': DEFAULTS.onStorageFailure,
      'RecordingPolicy.spec.sessionRetention': DEFAULTS.sessionRetention,
      'AccessRequest.spec.kind': DEFAULTS.accessRequestKind,
    });
  });

  it('read the same as YAML 1.1, which kubectl parses (no bare on/off/yes/no)', () => {
    for (const file of readdirSync(CRD_DIR)) {
      const text = readFileSync(new URL(file, CRD_DIR), 'utf8');
      expect(parse(text, { version: '1.1' }), file).toEqual(parse(text));
    }
  });
});

describe('the drift check', () => {
  // A copy of the Connection schema to break in one place at a time.
  const fresh = (): JsonSchema => structuredClone(rootSchema('Connection').properties?.spec as JsonSchema);
  const diff = (schema: JsonSchema): string[] => shapeDifferences(connectionSpec, schema, 'spec');

  it('finds nothing in the real schema', () => {
    expect(diff(fresh())).toEqual([]);
  });

  it.each<[string, (spec: JsonSchema) => void, RegExp]>([
    [
      'a field missing from the schema',
      (s) => delete s.properties?.target?.properties?.database,
      /spec\.target\.database: in types\.ts, not in the schema/,
    ],
    [
      'a field only in the schema',
      (s) => {
        s.properties!.paused = { type: 'boolean', description: 'x' };
      },
      /spec\.paused: in the schema, not in types\.ts/,
    ],
    [
      'an enum value only in the schema',
      (s) => s.properties?.protocol?.enum?.push('mysql'),
      /spec\.protocol: enum/,
    ],
    [
      'a field required only in types.ts',
      (s) => s.required?.splice(0, 1),
      /spec\.protocol: required in types\.ts, optional/,
    ],
    [
      'a field required only in the schema',
      (s) => {
        s.properties!.target!.required = ['host'];
      },
      /spec\.target\.host: optional in types\.ts, required/,
    ],
    [
      'a different type',
      (s) => {
        s.properties!.replicas!.type = 'string';
      },
      /spec\.replicas: integer in types\.ts, string/,
    ],
    [
      'a list that became a single value',
      (s) => {
        s.properties!.target!.properties!.hostKeys = { type: 'string', description: 'x' };
      },
      /spec\.target\.hostKeys: list in types\.ts/,
    ],
  ])('finds %s', (_, breakIt, expected) => {
    const schema = fresh();
    breakIt(schema);
    expect(diff(schema).join('\n')).toMatch(expected);
  });
});

describe('the samples in config/samples/', () => {
  const files = readdirSync(SAMPLES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .sort();

  it('start with the Namespace the others live in', () => {
    expect(files[0]).toBe('00-namespace.yaml');
    const docs = files.flatMap((file) =>
      parseAllDocuments(readFileSync(new URL(file, SAMPLES_DIR), 'utf8')).map(
        (d) => d.toJS() as SampleObject,
      ),
    );
    expect(docs[0]).toMatchObject({ kind: 'Namespace', metadata: { name: 'warden-demo' } });
    for (const doc of docs.slice(1)) expect(doc.metadata.namespace, doc.metadata.name).toBe('warden-demo');
  });

  it('cover every kind users write', () => {
    const kinds = files.flatMap((file) =>
      parseAllDocuments(readFileSync(new URL(file, SAMPLES_DIR), 'utf8')).map(
        (d) => (d.toJS() as SampleObject).kind,
      ),
    );
    expect(new Set(kinds)).toEqual(
      new Set(['Namespace', 'Secret', 'Connection', 'AccessPolicy', 'RecordingPolicy']),
    );
    const protocols = files.flatMap((file) =>
      parseAllDocuments(readFileSync(new URL(file, SAMPLES_DIR), 'utf8'))
        .map((d) => d.toJS() as SampleObject)
        .filter((o) => o.kind === 'Connection')
        .map((o) => o.spec?.protocol),
    );
    expect(protocols.sort()).toEqual([...PROTOCOLS].sort());
  });

  it('read the same as YAML 1.1, which kubectl parses', () => {
    for (const file of files) {
      const text = readFileSync(new URL(file, SAMPLES_DIR), 'utf8');
      const as11 = parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS());
      const as12 = parseAllDocuments(text).map((d) => d.toJS());
      expect(as11, file).toEqual(as12);
    }
  });
});

interface SampleObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: { protocol?: string };
}
