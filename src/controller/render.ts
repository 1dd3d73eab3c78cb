/**
 * Render: what a Connection should look like in the cluster, as a pure function of what the
 * reconciler gathered (the Connection, the policies of its namespace, the key names of its
 * Secrets, its Deployment's status). No I/O, no clock (the time comes in), so every case is a
 * table test (render.test.ts).
 *
 * Output: the sidecar configuration document, the objects to apply (ConfigMap, ServiceAccount,
 * Role, RoleBinding, Deployment, Service), the Connection's status, and the problems worth an
 * Event. When the configuration cannot be rendered (a Secret or key is missing, a name is taken,
 * no OIDC settings) no object is returned: the gateways keep running on the last good
 * configuration, and the status says what to fix. A broken AccessPolicy does not block
 * rendering: it travels with its problems and the gateway denies its subjects everything.
 */
import { createHash } from 'node:crypto';
import {
  type AccessPolicy,
  API_VERSION,
  type Condition,
  type Connection,
  type ConnectionStatus,
  DEFAULTS,
  type GatewayResources,
  type Protocol,
  type RecordingPolicy,
  RESOURCES,
} from '../api/types.ts';
import { type BundledPolicy, bundlePolicies } from '../policy/compile.ts';
import type { PolicyProblem } from '../policy/errors.ts';
import { canonicalJson } from '../recorder/canonical-json.ts';
import {
  type RecordingConfig,
  SIDECAR_CONFIG_API_VERSION,
  SIDECAR_CONFIG_KEY,
  SIDECAR_CONFIG_KIND,
  SIDECAR_PATHS,
  type SecretFile,
  type SidecarConfig,
  type SidecarConfigBody,
  sealSidecarConfig,
  serializeSidecarConfig,
} from '../sidecar/config.ts';
import { POSTGRES_GATEWAY_NODE_FLAGS } from '../sidecar/postgres/node-flags.ts';
import { type DesiredCondition, findCondition, mergeConditions } from './conditions.ts';
import { ANNOTATIONS, LABELS, MANAGED_BY, gatewayNames, signingSecretName } from './names.ts';
import { ConditionType, Reason, type ReasonName } from './reasons.ts';
import { selectorMatches } from './selectors.ts';

/** What the controller knows of a Secret: its key names, never its values. */

/** Optional Secret in the Connection's namespace with the approval webhook (docs/approvals.md). */
export const APPROVAL_WEBHOOK_SECRET = 'warden-approval-webhook';
const APPROVAL_WEBHOOK_KEYS = ['WARDEN_APPROVAL_WEBHOOK_URL', 'WARDEN_APPROVAL_WEBHOOK_SECRET'] as const;
/** Optional Secret in the Connection's namespace with where to send traces (docs/observability.md). */
export const TELEMETRY_SECRET = 'warden-telemetry';
const TELEMETRY_KEYS = ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_TRACES_HEADERS'] as const;
export interface SecretSummary {
  name: string;
  resourceVersion: string;
  keys: readonly string[];
}

/** Operator-wide settings, from the controller's flags. */
/** Finds a Secret of the Connection's namespace by name (a Map, or a view of the informer cache). */
export interface SecretLookup {
  get(name: string): SecretSummary | undefined;
}

export interface RenderSettings {
  /** Image of the gateway (the one Warden image). */
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** OIDC settings for Connections without spec.oidc. */
  oidc?: { issuer: string; audience: string; usernameClaim?: string; groupsClaim?: string; jwksUri?: string };
  /** Port of the gateway's /healthz and /readyz. */
  healthPort: number;
}

export const DEFAULT_HEALTH_PORT = 9090;

/** Where the Warden image has bin/warden.js (Dockerfile: WORKDIR /app, `COPY bin ./bin`). */
export const IMAGE_WARDEN_SCRIPT = '/app/bin/warden.js';

export interface ObservedDeployment {
  replicas?: number;
  readyReplicas?: number;
}

export interface ConnectionInputs {
  connection: Connection;
  /** Every AccessPolicy of the Connection's namespace; render selects. */
  accessPolicies: readonly AccessPolicy[];
  /** Every RecordingPolicy of the Connection's namespace; render selects. */
  recordingPolicies: readonly RecordingPolicy[];
  /** Secrets of the namespace by name (key names only). */
  secrets: SecretLookup;
  /** The gateway Deployment as observed; undefined when it does not exist (yet). */
  deployment: ObservedDeployment | undefined;
  /** Whether the gateway ConfigMap exists: gateways run on an older configuration. */
  configMapExists: boolean;
  /** Objects in the way: they exist under a name the gateway needs but belong to someone else. */
  conflicts?: readonly string[];
  settings: RenderSettings;
  now: Date;
}

/** A manifest for server-side apply (plain JSON). */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    ownerReferences: OwnerReference[];
  };
  [field: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

export interface Problem {
  reason: ReasonName;
  message: string;
}

export interface ConnectionRender {
  /** Undefined when the configuration could not be rendered. */
  config: SidecarConfig | undefined;
  /** Objects to apply, in apply order (RBAC first, then config, then the workload). Empty when not rendered. */
  objects: Manifest[];
  status: ConnectionStatus;
  /** Names of the AccessPolicies that select the Connection, sorted. */
  policies: string[];
  /** Conditions as computed this time (before merging with the existing ones): for Events. */
  conditions: DesiredCondition[];
  /** Every Secret the Connection refers to, found or not: a change to any of them re-renders. */
  secrets: string[];
}

// ---------------------------------------------------------------------------------------------

export function renderConnection(inputs: ConnectionInputs): ConnectionRender {
  const { connection } = inputs;
  const namespace = connection.metadata.namespace ?? '';
  const name = connection.metadata.name ?? '';
  const generation = connection.metadata.generation ?? 0;
  const spec = connection.spec;
  const secrets = new SecretCheck(namespace, inputs.secrets);

  const policies = selectAccessPolicies(connection, inputs.accessPolicies);
  // The policy compiler the gateway runs too: a policy with problems is still rendered, carrying
  // them, and the gateway denies its subjects every command (fail closed per policy). Blocking
  // the whole document instead would keep an older, possibly wider version of the policy alive.
  const bundled = bundlePolicies(
    policies.map((p) => ({ name: p.metadata.name ?? '', spec: p.spec })),
    { name, protocol: spec.protocol, ...(spec.sessionLimits ? { sessionLimits: spec.sessionLimits } : {}) },
  );
  const policyProblems = bundled.problems.map((p) => ({ reason: Reason.InvalidPolicy, message: describePolicyProblem(namespace, p) }));

  const listenerPort = spec.listener?.port ?? DEFAULTS.listenerPort[spec.protocol];
  const containerPort = listenerPort < 1024 ? listenerPort + 8000 : listenerPort;
  const healthPort = inputs.settings.healthPort === containerPort ? inputs.settings.healthPort + 1 : inputs.settings.healthPort;

  const credentials = credentialFiles(spec.protocol, spec.credentialsRef, secrets);

  const listener: SidecarConfigBody['listener'] = { port: containerPort, healthPort };
  if (spec.listener?.tlsSecretRef) {
    const s = spec.listener.tlsSecretRef.name;
    listener.tls = { certificate: secrets.file(s, 'tls.crt'), key: secrets.file(s, 'tls.key') };
  }
  if (spec.listener?.hostKeySecretRef) {
    const ref = spec.listener.hostKeySecretRef;
    listener.hostKey = secrets.file(ref.name, ref.key ?? DEFAULTS.listenerHostKeyKey);
  }

  const target: SidecarConfigBody['target'] = {};
  const t = spec.target;
  if (t.host !== undefined) target.host = t.host;
  if (t.port !== undefined) target.port = t.port;
  if (t.database !== undefined) target.database = t.database;
  if (t.url !== undefined) target.url = t.url;
  if (t.hostKeys !== undefined) target.hostKeys = [...t.hostKeys];
  if (t.insecureSkipHostKeyVerification !== undefined) target.insecureSkipHostKeyVerification = t.insecureSkipHostKeyVerification;
  const usesTls = spec.protocol === 'postgres' || (t.url ?? '').startsWith('https://');
  if (spec.protocol !== 'ssh' && (t.tls !== undefined || usesTls)) {
    const tls: NonNullable<SidecarConfigBody['target']['tls']> = { mode: t.tls?.mode ?? DEFAULTS.tlsMode };
    if (t.tls?.caSecretRef) tls.ca = secrets.file(t.tls.caSecretRef.name, t.tls.caSecretRef.key ?? DEFAULTS.caKey);
    if (t.tls?.serverName !== undefined) tls.serverName = t.tls.serverName;
    target.tls = tls;
  }

  // Recording: its own condition; a recording problem leaves the configuration renderable (the
  // gateway then admits no session), so policy changes still reach running gateways.
  const recordingChoice = selectRecordingPolicy(connection, inputs.recordingPolicies);
  const recordingSecrets = new SecretCheck(namespace, inputs.secrets);
  let recording: RecordingConfig | null = null;
  let recordingCondition: DesiredCondition;
  if (recordingChoice.policy === undefined) {
    recordingCondition = { type: ConditionType.RecordingReady, status: 'False', reason: recordingChoice.reason, message: recordingChoice.message };
  } else {
    const rendered = recordingConfig(namespace, name, recordingChoice.policy, recordingSecrets);
    const policyName = recordingChoice.policy.metadata.name ?? '';
    const readiness = recordingPolicyReadiness(namespace, recordingChoice.policy);
    if (recordingSecrets.problems.length > 0 && readiness.status !== 'True') {
      // The policy's own failure is the root cause (its generated signing key, for one, only
      // appears once its bucket is ready): report that, and render no recording for now.
      recordingCondition = readiness;
    } else if (recordingSecrets.problems.length > 0) {
      recordingCondition = {
        type: ConditionType.RecordingReady,
        status: 'False',
        reason: Reason.RecordingSecretInvalid,
        message: `RecordingPolicy ${namespace}/${policyName}: ${recordingSecrets.problems.map((p) => p.message).join('; ')}`,
      };
    } else {
      recording = rendered;
      recordingCondition = readiness;
    }
  }

  const oidcSource = spec.oidc ?? inputs.settings.oidc;
  const problems: Problem[] = [
    ...(inputs.conflicts ?? []).map((message) => ({ reason: Reason.NameConflict, message })),
    ...secrets.problems,
  ];
  if (oidcSource === undefined) {
    problems.push({
      reason: Reason.InvalidConfig,
      message: 'no OIDC settings: set spec.oidc on the Connection or start the controller with --oidc-issuer and --oidc-audience',
    });
  }

  let config: SidecarConfig | undefined;
  if (problems.length === 0 && oidcSource !== undefined) {
    const oidc: SidecarConfigBody['oidc'] = {
      issuer: oidcSource.issuer,
      audience: oidcSource.audience,
      usernameClaim: oidcSource.usernameClaim ?? DEFAULTS.oidc.usernameClaim,
      groupsClaim: oidcSource.groupsClaim ?? DEFAULTS.oidc.groupsClaim,
    };
    const jwksUri = spec.oidc ? undefined : inputs.settings.oidc?.jwksUri;
    if (jwksUri !== undefined) oidc.jwksUri = jwksUri;
    const sessionLimits: SidecarConfigBody['sessionLimits'] = {};
    if (spec.sessionLimits?.maxDuration !== undefined) sessionLimits.maxDuration = spec.sessionLimits.maxDuration;
    if (spec.sessionLimits?.idleTimeout !== undefined) sessionLimits.idleTimeout = spec.sessionLimits.idleTimeout;
    const used = new Set([...secrets.used, ...(recording ? recordingSecrets.used : [])]);
    config = sealSidecarConfig({
      apiVersion: SIDECAR_CONFIG_API_VERSION,
      kind: SIDECAR_CONFIG_KIND,
      connection: { namespace, name, uid: connection.metadata.uid ?? '', generation },
      protocol: spec.protocol,
      listener,
      target,
      credentials,
      oidc,
      policies: bundled.bundle.policies.map((b: BundledPolicy) => {
        const source = policies.find((p) => p.metadata.name === b.name);
        return { ...b, uid: source?.metadata.uid ?? '', generation: source?.metadata.generation ?? 0 };
      }),
      sessionLimits,
      recording,
      secretVersions: Object.fromEntries(
        [...used].sort().map((s) => [s, inputs.secrets.get(s)?.resourceVersion ?? '']),
      ),
    });
  }

  const policyNames = policies.map((p) => p.metadata.name ?? '');
  const conditions = connectionConditions(inputs, problems, recordingCondition, policyProblems);
  const objects = config ? gatewayObjects(inputs, config, containerPort, healthPort, listenerPort) : [];

  const status: ConnectionStatus = {
    observedGeneration: generation,
    conditions: mergeConditions(inputs.connection.status?.conditions, conditions, generation, inputs.now),
    endpoint: `${gatewayNames(name).service}.${namespace}.svc:${listenerPort}`,
    readyReplicas: inputs.deployment?.readyReplicas ?? 0,
    policies: policyNames,
  };
  if (recordingChoice.policy) {
    const policy = recordingChoice.policy;
    status.recording = {
      policy: policy.metadata.name ?? '',
      endpoint: policy.spec.storage.s3.endpoint,
      bucket: policy.spec.storage.s3.bucket,
      prefix: connectionPrefix(policy, namespace, name),
    };
  }
  const referenced = [...new Set([...secrets.used, ...recordingSecrets.used])].sort();
  return { config, objects, status, policies: policyNames, conditions, secrets: referenced };
}

// ---------------------------------------------------------------------------------------------
// Selection

/** AccessPolicies that select the Connection by name or label, ordered by name. */
export function selectAccessPolicies(connection: Connection, policies: readonly AccessPolicy[]): AccessPolicy[] {
  const name = connection.metadata.name ?? '';
  const labels = connection.metadata.labels;
  return policies
    .filter((p) => p.metadata.namespace === connection.metadata.namespace)
    .filter(
      (p) =>
        (p.spec.connections ?? []).includes(name) ||
        (p.spec.connectionSelector !== undefined && selectorMatches(p.spec.connectionSelector, labels)),
    )
    .sort((a, b) => compare(a.metadata.name ?? '', b.metadata.name ?? ''));
}

type RecordingChoice =
  | { policy: RecordingPolicy; reason?: undefined; message?: undefined }
  | { policy: undefined; reason: ReasonName; message: string };

/** spec.recordingPolicyRef wins; otherwise exactly one policy must select the Connection by label. */
export function selectRecordingPolicy(connection: Connection, policies: readonly RecordingPolicy[]): RecordingChoice {
  const namespace = connection.metadata.namespace ?? '';
  const inNamespace = policies.filter((p) => p.metadata.namespace === namespace);
  const ref = connection.spec.recordingPolicyRef?.name;
  if (ref !== undefined) {
    const policy = inNamespace.find((p) => p.metadata.name === ref);
    return policy
      ? { policy }
      : { policy: undefined, reason: Reason.RecordingPolicyNotFound, message: `RecordingPolicy ${namespace}/${ref} named in spec.recordingPolicyRef not found` };
  }
  const selecting = inNamespace
    .filter((p) => p.spec.connectionSelector !== undefined && selectorMatches(p.spec.connectionSelector, connection.metadata.labels))
    .sort((a, b) => compare(a.metadata.name ?? '', b.metadata.name ?? ''));
  const [first, second] = selecting;
  if (first === undefined) {
    return {
      policy: undefined,
      reason: Reason.NoRecordingPolicy,
      message: `no RecordingPolicy in namespace ${namespace} selects this Connection; sessions are refused until one does`,
    };
  }
  if (second !== undefined) {
    return {
      policy: undefined,
      reason: Reason.RecordingPolicyConflict,
      message: `selected by ${selecting.length} RecordingPolicies (${selecting.map((p) => p.metadata.name).join(', ')}); name one in spec.recordingPolicyRef`,
    };
  }
  return { policy: first };
}

function recordingPolicyReadiness(namespace: string, policy: RecordingPolicy): DesiredCondition {
  const name = policy.metadata.name ?? '';
  const ready = findCondition(policy.status?.conditions, ConditionType.Ready);
  const current = (policy.status?.observedGeneration ?? -1) === (policy.metadata.generation ?? 0);
  if (ready?.status === 'True' && current) {
    return {
      type: ConditionType.RecordingReady,
      status: 'True',
      reason: Reason.RecordingConfigured,
      message: `recording to bucket ${policy.spec.storage.s3.bucket} (RecordingPolicy ${name})`,
    };
  }
  const detail = ready && current ? `: ${ready.message}` : ' yet';
  return {
    type: ConditionType.RecordingReady,
    status: 'False',
    reason: Reason.RecordingPolicyNotReady,
    message: `RecordingPolicy ${namespace}/${name} is not ready${detail}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Secrets and credentials

/** Resolves Secret references to mounted file paths, collecting what is missing. */
class SecretCheck {
  readonly problems: Problem[] = [];
  readonly used = new Set<string>();
  readonly #namespace: string;
  readonly #secrets: SecretLookup;
  constructor(namespace: string, secrets: SecretLookup) {
    this.#namespace = namespace;
    this.#secrets = secrets;
  }

  has(secret: string, key: string): boolean {
    return this.#secrets.get(secret)?.keys.includes(key) ?? false;
  }

  /** The mounted path of `key` in `secret`; records a problem when either is missing. */
  file(secret: string, key: string): SecretFile {
    this.used.add(secret);
    const found = this.#secrets.get(secret);
    if (found === undefined) {
      this.add(Reason.SecretNotFound, `Secret ${this.#namespace}/${secret} not found`);
    } else if (!found.keys.includes(key)) {
      this.add(Reason.SecretKeyMissing, `Secret ${this.#namespace}/${secret} has no key '${key}'`);
    }
    return { secret, key, file: `${SIDECAR_PATHS.secretsDir}/${secret}/${key}` };
  }

  private add(reason: ReasonName, message: string): void {
    if (!this.problems.some((p) => p.message === message)) this.problems.push({ reason, message });
  }
}

type CredentialKeyName = keyof typeof DEFAULTS.credentialKeys;

/**
 * Which credentials each protocol needs (see spec.credentialsRef.keys in the CRD): the first
 * alternative whose keys are all present is used; when none is, the first one is reported.
 */
const CREDENTIAL_ALTERNATIVES: Record<Protocol, { required: CredentialKeyName[]; optional: CredentialKeyName[] }[]> = {
  postgres: [{ required: ['username', 'password'], optional: [] }],
  ssh: [
    { required: ['username', 'privateKey'], optional: ['passphrase'] },
    { required: ['username', 'password'], optional: [] },
  ],
  kubernetes: [
    { required: ['token'], optional: [] },
    { required: ['clientCertificate', 'clientKey'], optional: [] },
  ],
  http: [
    { required: ['token'], optional: [] },
    { required: ['username', 'password'], optional: [] },
  ],
};

function credentialFiles(
  protocol: Protocol,
  ref: Connection['spec']['credentialsRef'],
  secrets: SecretCheck,
): SidecarConfigBody['credentials'] {
  if (ref === undefined) return {};
  const keyOf = (c: CredentialKeyName): string => ref.keys?.[c] ?? DEFAULTS.credentialKeys[c];
  const alternatives = CREDENTIAL_ALTERNATIVES[protocol];
  // A key named explicitly in spec.credentialsRef.keys picks the alternative that uses it.
  const explicit = Object.keys(ref.keys ?? {}) as CredentialKeyName[];
  const chosen =
    alternatives.find((a) => a.required.every((c) => secrets.has(ref.name, keyOf(c))) && explicit.every((c) => a.required.includes(c) || a.optional.includes(c))) ??
    alternatives.find((a) => explicit.some((c) => a.required.includes(c))) ??
    alternatives[0];
  const files: SidecarConfigBody['credentials'] = {};
  if (chosen === undefined) return files;
  for (const c of chosen.required) files[c] = secrets.file(ref.name, keyOf(c));
  for (const c of chosen.optional) if (secrets.has(ref.name, keyOf(c))) files[c] = secrets.file(ref.name, keyOf(c));
  return files;
}

// ---------------------------------------------------------------------------------------------
// Policies

/** "AccessPolicy ns/name rule "x": <what is wrong>" — where the author has to look. */
export function describePolicyProblem(namespace: string, problem: PolicyProblem): string {
  const rule = problem.rule === undefined ? '' : ` rule "${problem.rule}"`;
  return `AccessPolicy ${namespace}/${problem.policy}${rule}: ${problem.message}`;
}

// ---------------------------------------------------------------------------------------------
// Recording

function connectionPrefix(policy: RecordingPolicy, namespace: string, name: string): string {
  return `${policy.spec.storage.s3.prefix ?? ''}${namespace}/${name}/`;
}

function recordingConfig(namespace: string, name: string, policy: RecordingPolicy, secrets: SecretCheck): RecordingConfig {
  const spec = policy.spec;
  const s3 = spec.storage.s3;
  const creds = s3.credentialsSecretRef;
  const rendered: RecordingConfig = {
    policy: policy.metadata.name ?? '',
    s3: {
      endpoint: s3.endpoint,
      bucket: s3.bucket,
      region: s3.region ?? DEFAULTS.s3.region,
      pathStyle: s3.pathStyle ?? DEFAULTS.s3.pathStyle,
      prefix: connectionPrefix(policy, namespace, name),
      accessKeyId: secrets.file(creds.name, creds.accessKeyIdKey ?? DEFAULTS.s3.accessKeyIdKey),
      secretAccessKey: secrets.file(creds.name, creds.secretAccessKeyKey ?? DEFAULTS.s3.secretAccessKeyKey),
      sse: s3.sse ?? DEFAULTS.s3.sse,
    },
    record: {
      input: spec.record?.input ?? DEFAULTS.record.input,
      output: spec.record?.output ?? DEFAULTS.record.output,
      maxEventBytes: spec.record?.maxEventBytes ?? DEFAULTS.record.maxEventBytes,
      maxResultRows: spec.record?.maxResultRows ?? DEFAULTS.record.maxResultRows,
    },
    signingKey: spec.signing
      ? secrets.file(spec.signing.keySecretRef.name, spec.signing.keySecretRef.key ?? DEFAULTS.signingKeyKey)
      : secrets.file(signingSecretName(policy.metadata.name ?? ''), DEFAULTS.signingKeyKey),
    storeMasked: spec.storeMasked ?? DEFAULTS.storeMasked,
    onStorageFailure: spec.onStorageFailure ?? DEFAULTS.onStorageFailure,
  };
  if (s3.caSecretRef) rendered.s3.ca = secrets.file(s3.caSecretRef.name, s3.caSecretRef.key ?? DEFAULTS.caKey);
  if (s3.kmsKeyId !== undefined) rendered.s3.kmsKeyId = s3.kmsKeyId;
  if (spec.encryption) {
    rendered.encryptionKey = secrets.file(spec.encryption.keySecretRef.name, spec.encryption.keySecretRef.key ?? DEFAULTS.encryptionKeyKey);
  }
  if (spec.retention?.objectLock && (spec.retention.days ?? 0) > 0) {
    rendered.objectLock = { mode: spec.retention.objectLock.mode, days: spec.retention.days ?? 0 };
  }
  return rendered;
}

// ---------------------------------------------------------------------------------------------
// Conditions

function connectionConditions(inputs: ConnectionInputs, problems: Problem[], recording: DesiredCondition, policyProblems: Problem[]): DesiredCondition[] {
  const rendered: DesiredCondition =
    problems.length === 0
      ? { type: ConditionType.ConfigRendered, status: 'True', reason: Reason.Rendered, message: 'gateway configuration is up to date' }
      : {
          type: ConditionType.ConfigRendered,
          status: 'False',
          // The first problem names the reason; the message lists them all.
          reason: (problems[0] as Problem).reason,
          message: problems.map((p) => p.message).join('; '),
        };
  const desiredReplicas = inputs.connection.spec.replicas ?? DEFAULTS.replicas;
  const ready = inputs.deployment?.readyReplicas ?? 0;

  let readyCondition: DesiredCondition;
  if (rendered.status !== 'True') {
    readyCondition = { type: ConditionType.Ready, status: 'False', reason: Reason.ConfigNotRendered, message: rendered.message };
  } else if (recording.status !== 'True') {
    readyCondition = { type: ConditionType.Ready, status: 'False', reason: Reason.RecordingNotReady, message: recording.message };
  } else if (ready < 1) {
    readyCondition = {
      type: ConditionType.Ready,
      status: 'False',
      reason: Reason.GatewayNotReady,
      message: `0 of ${desiredReplicas} gateway pods are ready`,
    };
  } else {
    readyCondition = {
      type: ConditionType.Ready,
      status: 'True',
      reason: Reason.GatewayReady,
      message: `${ready} of ${desiredReplicas} gateway pods are ready`,
    };
  }

  let degraded: DesiredCondition;
  if (rendered.status !== 'True' && inputs.configMapExists) {
    degraded = {
      type: ConditionType.Degraded,
      status: 'True',
      reason: Reason.StaleConfig,
      message: `gateways keep running on the last good configuration: ${rendered.message}`,
    };
  } else if (rendered.status === 'True' && policyProblems.length > 0) {
    degraded = {
      type: ConditionType.Degraded,
      status: 'True',
      reason: Reason.InvalidPolicy,
      message: `${policyProblems.map((p) => p.message).join('; ')}; until fixed, the gateway denies that policy's subjects every command`,
    };
  } else if (ready > 0 && ready < desiredReplicas) {
    degraded = {
      type: ConditionType.Degraded,
      status: 'True',
      reason: Reason.ReplicasUnavailable,
      message: `${ready} of ${desiredReplicas} gateway pods are ready`,
    };
  } else {
    degraded = { type: ConditionType.Degraded, status: 'False', reason: Reason.AsExpected, message: '' };
  }
  return [readyCondition, rendered, recording, degraded];
}

/**
 * The render result as it stands when applying its objects failed: Ready=False with the API
 * server's answer (e.g. "failed to allocate a serviceIP: range is full"), so the reason shows in
 * `kubectl get connection` rather than only in the controller's log.
 */
export function withApplyFailure(rendered: ConnectionRender, connection: Connection, message: string, now: Date): ConnectionRender {
  const conditions = rendered.conditions.map((c) =>
    c.type === ConditionType.Ready ? { type: ConditionType.Ready, status: 'False' as const, reason: Reason.ApplyFailed, message } : c,
  );
  const generation = connection.metadata.generation ?? 0;
  return {
    ...rendered,
    conditions,
    status: { ...rendered.status, conditions: mergeConditions(connection.status?.conditions, conditions, generation, now) },
  };
}

/** Whether a status computed by render differs from what the object has (ignoring nothing). */
export function statusChanged(current: ConnectionStatus | undefined, next: ConnectionStatus): boolean {
  return canonicalJson(normalizeStatus(current ?? {})) !== canonicalJson(normalizeStatus(next));
}

function normalizeStatus(status: ConnectionStatus): ConnectionStatus {
  const conditions: Condition[] | undefined = status.conditions
    ? [...status.conditions].sort((a, b) => compare(a.type, b.type))
    : undefined;
  return { ...status, conditions };
}

// ---------------------------------------------------------------------------------------------
// Objects

function gatewayObjects(
  inputs: ConnectionInputs,
  config: SidecarConfig,
  containerPort: number,
  healthPort: number,
  listenerPort: number,
): Manifest[] {
  const { connection, settings } = inputs;
  const namespace = connection.metadata.namespace ?? '';
  const name = connection.metadata.name ?? '';
  const names = gatewayNames(name);
  const labels = {
    [LABELS.name]: 'warden-gateway',
    [LABELS.instance]: name,
    [LABELS.component]: 'gateway',
    [LABELS.partOf]: 'warden',
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.connection]: name,
  };
  const selector = { [LABELS.connection]: name, [LABELS.component]: 'gateway' };
  const owner: OwnerReference = {
    apiVersion: API_VERSION,
    kind: 'Connection',
    name,
    uid: connection.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
  const meta = (objectName: string, annotations: Record<string, string> = {}): Manifest['metadata'] => ({
    name: objectName,
    namespace,
    labels: { ...labels },
    annotations,
    ownerReferences: [owner],
  });
  const secretNames = Object.keys(config.secretVersions).sort();

  const serviceAccount: Manifest = {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: meta(names.serviceAccount),
    automountServiceAccountToken: true,
  };
  // What a gateway may do with the API: read its own configuration (watched, so changes apply
  // without a restart) and the Secrets it mounts (re-read after a rotation), record sessions, and
  // raise and follow approval requests. resourceNames pins configuration and Secrets.
  const role: Manifest = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: meta(names.role),
    rules: [
      { apiGroups: [''], resources: ['configmaps'], resourceNames: [names.configMap], verbs: ['get', 'list', 'watch'] },
      ...(secretNames.length > 0 ? [{ apiGroups: [''], resources: ['secrets'], resourceNames: secretNames, verbs: ['get'] }] : []),
      { apiGroups: ['warden.dev'], resources: [RESOURCES.Session.plural], verbs: ['create', 'get', 'update', 'patch'] },
      { apiGroups: ['warden.dev'], resources: [`${RESOURCES.Session.plural}/status`], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['warden.dev'], resources: [RESOURCES.AccessRequest.plural], verbs: ['create', 'get', 'list', 'watch'] },
      { apiGroups: ['warden.dev'], resources: [`${RESOURCES.AccessRequest.plural}/status`], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
    ],
  };
  const roleBinding: Manifest = {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: meta(names.roleBinding),
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: names.role },
    subjects: [{ kind: 'ServiceAccount', name: names.serviceAccount, namespace }],
  };
  const configMap: Manifest = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(names.configMap, { [ANNOTATIONS.configHash]: config.hash }),
    data: { [SIDECAR_CONFIG_KEY]: serializeSidecarConfig(config) },
  };

  // The pod template depends on which Secrets are mounted, never on the configuration's content:
  // a policy change or a Secret rotation must not restart gateways (live sessions would drop).
  const volumes: unknown[] = [
    { name: 'config', configMap: { name: names.configMap } },
    { name: 'spool', emptyDir: { sizeLimit: '1Gi' } },
    { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
    ...secretNames.map((s, i) => ({ name: `secret-${i}`, secret: { secretName: s, defaultMode: 0o440 } })),
  ];
  const volumeMounts: unknown[] = [
    { name: 'config', mountPath: SIDECAR_PATHS.configDir, readOnly: true },
    { name: 'spool', mountPath: SIDECAR_PATHS.spoolDir },
    { name: 'tmp', mountPath: '/tmp' },
    ...secretNames.map((s, i) => ({ name: `secret-${i}`, mountPath: `${SIDECAR_PATHS.secretsDir}/${s}`, readOnly: true })),
  ];
  const deployment: Manifest = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(names.deployment),
    spec: {
      replicas: connection.spec.replicas ?? DEFAULTS.replicas,
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        // Prometheus' kubernetes_sd pod role reads these (docs/observability.md): /metrics is served
        // on the health port.
        metadata: { labels: { ...labels }, annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(healthPort), 'prometheus.io/path': '/metrics' } },
        spec: {
          serviceAccountName: names.serviceAccount,
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          // Long enough for the gateway to drain: it stops accepting, then waits for sessions.
          terminationGracePeriodSeconds: 60,
          securityContext: { runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'gateway',
              image: settings.image,
              imagePullPolicy: settings.imagePullPolicy ?? 'IfNotPresent',
              // The image's `warden` (Dockerfile); Postgres gateways with their Node flags.
              command: connection.spec.protocol === 'postgres' ? ['node', ...POSTGRES_GATEWAY_NODE_FLAGS, IMAGE_WARDEN_SCRIPT] : ['warden'],
              args: ['sidecar', '--config', `${SIDECAR_PATHS.configDir}/${SIDECAR_CONFIG_KEY}`],
              env: [
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'WARDEN_CONFIGMAP', value: names.configMap },
                // Approval notifications (docs/approvals.md) and traces (docs/observability.md): named
                // keys of optional Secrets in the Connection's namespace, not envFrom, so a Secret
                // cannot set anything else (NODE_OPTIONS, say) in the gateway.
                ...APPROVAL_WEBHOOK_KEYS.map((key) => ({
                  name: key,
                  valueFrom: { secretKeyRef: { name: APPROVAL_WEBHOOK_SECRET, key, optional: true } },
                })),
                ...TELEMETRY_KEYS.map((key) => ({
                  name: key,
                  valueFrom: { secretKeyRef: { name: TELEMETRY_SECRET, key, optional: true } },
                })),
              ],
              ports: [
                { name: 'listener', containerPort, protocol: 'TCP' },
                { name: 'health', containerPort: healthPort, protocol: 'TCP' },
              ],
              readinessProbe: { httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 5, failureThreshold: 2 },
              livenessProbe: { httpGet: { path: '/healthz', port: 'health' }, periodSeconds: 10, failureThreshold: 3 },
              resources: gatewayResources(connection.spec.resources),
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts,
            },
          ],
          volumes,
        },
      },
    },
  };
  const service: Manifest = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(names.service),
    spec: {
      type: connection.spec.listener?.serviceType ?? DEFAULTS.serviceType,
      selector,
      ports: [{ name: connection.spec.protocol, port: listenerPort, targetPort: 'listener', protocol: 'TCP' }],
    },
  };
  return [serviceAccount, role, roleBinding, configMap, deployment, service].map(withAppliedHash);
}

/** Stamps the manifest with the hash of its content: the diff step compares it to the live object. */
export function withAppliedHash(manifest: Manifest): Manifest {
  const { [ANNOTATIONS.appliedHash]: _old, ...annotations } = manifest.metadata.annotations;
  const bare = { ...manifest, metadata: { ...manifest.metadata, annotations } };
  const hash = createHash('sha256').update(canonicalJson(bare)).digest('hex').slice(0, 32);
  return { ...bare, metadata: { ...bare.metadata, annotations: { ...annotations, [ANNOTATIONS.appliedHash]: hash } } };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The gateway container's resources: the defaults (DEFAULTS.gatewayResources), each request and
 * limit replaced by the Connection's own value where it gives one.
 */
export function gatewayResources(own: GatewayResources | undefined): Required<GatewayResources> {
  const defaults = DEFAULTS.gatewayResources as GatewayResources;
  return {
    requests: { ...defaults.requests, ...own?.requests },
    limits: { ...defaults.limits, ...own?.limits },
  };
}
