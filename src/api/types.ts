/**
 * TypeScript view of Warden's custom resources (group warden.dev, version v1alpha1).
 *
 * The CRDs in crds/ are the source of truth: field documentation, defaults, limits and the CEL
 * rules live there. This file mirrors their structure so code that reads and writes the objects is
 * typed; src/api/types.test.ts fails when a field, an enum value or the required/optional split
 * differs between the two.
 *
 * Fields the API server defaults (see DEFAULTS) are optional here, because they are optional for
 * whoever writes a manifest; code reading objects from the server can rely on them being set.
 */
import type { V1ListMeta, V1ObjectMeta } from '@kubernetes/client-node';

export const GROUP = 'warden.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = 'warden.dev/v1alpha1';
/** `kubectl get warden` lists every Warden object. */
export const CATEGORY = 'warden';

/** Resource names per kind, as registered by the CRDs. */
export const RESOURCES = {
  Connection: { plural: 'connections', singular: 'connection', shortNames: ['wconn'] },
  AccessPolicy: { plural: 'accesspolicies', singular: 'accesspolicy', shortNames: ['ap'] },
  RecordingPolicy: { plural: 'recordingpolicies', singular: 'recordingpolicy', shortNames: ['recpol'] },
  Session: { plural: 'sessions', singular: 'session', shortNames: ['wsess', 'ws'] },
  AccessRequest: { plural: 'accessrequests', singular: 'accessrequest', shortNames: ['areq'] },
} as const;

export type Kind = keyof typeof RESOURCES;
export const KINDS = Object.keys(RESOURCES) as Kind[];
export type Plural = (typeof RESOURCES)[Kind]['plural'];

// Enumerations: each list is the schema's `enum`, in the same order; the types derive from them.

export const PROTOCOLS = ['postgres', 'ssh', 'kubernetes', 'http'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const TLS_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

export const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer'] as const;
export type ServiceType = (typeof SERVICE_TYPES)[number];

export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;
export type ConditionStatus = (typeof CONDITION_STATUSES)[number];

export const LABEL_SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;
export type LabelSelectorOperator = (typeof LABEL_SELECTOR_OPERATORS)[number];

export const SUBJECT_KINDS = ['User', 'Group'] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];

/** Deny wins over RequireApproval, which wins over Allow; no matching Allow means deny. */
export const RULE_EFFECTS = ['Allow', 'Deny', 'RequireApproval'] as const;
export type RuleEffect = (typeof RULE_EFFECTS)[number];

export const SQL_STATEMENT_CLASSES = [
  'read',
  'write',
  'ddl',
  'privilege',
  'transaction',
  'session',
  'utility',
  'unparseable',
] as const;
export type SqlStatementClass = (typeof SQL_STATEMENT_CLASSES)[number];

export const SFTP_MODES = ['none', 'read-only', 'read-write'] as const;
export type SftpMode = (typeof SFTP_MODES)[number];

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export const MASKING_DETECTORS = [
  'email',
  'creditCard',
  'iban',
  'phone',
  'nationalId',
  'jwt',
  'cloudKey',
  'privateKey',
] as const;
export type MaskingDetector = (typeof MASKING_DETECTORS)[number];

// `nullify` rather than `null`: a bare `null` in YAML is no string at all.
export const MASKING_STRATEGIES = ['redact', 'partial', 'hash', 'nullify'] as const;
export type MaskingStrategy = (typeof MASKING_STRATEGIES)[number];

export const SSE_MODES = ['none', 'S3', 'KMS'] as const;
export type SseMode = (typeof SSE_MODES)[number];

export const OBJECT_LOCK_MODES = ['GOVERNANCE', 'COMPLIANCE'] as const;
export type ObjectLockMode = (typeof OBJECT_LOCK_MODES)[number];

export const STORAGE_FAILURE_MODES = ['FailClosed', 'FailOpen'] as const;
export type StorageFailureMode = (typeof STORAGE_FAILURE_MODES)[number];

export const SESSION_PHASES = ['Active', 'Closed', 'Terminated', 'Denied'] as const;
export type SessionPhase = (typeof SESSION_PHASES)[number];

export const ACCESS_REQUEST_KINDS = ['Command', 'Session'] as const;
export type AccessRequestKind = (typeof ACCESS_REQUEST_KINDS)[number];

export const ACCESS_REQUEST_DECISIONS = ['Approved', 'Denied', 'Expired', 'Withdrawn'] as const;
export type AccessRequestDecision = (typeof ACCESS_REQUEST_DECISIONS)[number];

/**
 * Defaults the code applies where the schema cannot: values that depend on the protocol, and
 * settings whose parent object may be absent. The schema's own `default`s are listed too, so code
 * has one place to read them from; src/api/types.test.ts checks those against the CRDs.
 */
export const DEFAULTS = {
  /** Service port per protocol when spec.listener.port is omitted. */
  listenerPort: { postgres: 5432, ssh: 2222, kubernetes: 443, http: 80 } satisfies Record<Protocol, number>,
  /** Secret keys read when spec.credentialsRef.keys (or one of its fields) is omitted. */
  credentialKeys: {
    username: 'username',
    password: 'password',
    privateKey: 'privateKey',
    passphrase: 'passphrase',
    token: 'token',
    clientCertificate: 'tls.crt',
    clientKey: 'tls.key',
  } satisfies Required<CredentialKeys>,
  /** spec.target.tls.mode, also when spec.target.tls is omitted (postgres and https URLs). */
  tlsMode: 'verify-full',
  caKey: 'ca.crt',
  listenerHostKeyKey: 'ssh-privatekey',
  serviceType: 'ClusterIP',
  replicas: 1,
  /** spec.resources of the gateway container; a Connection's own values replace these one by one. */
  gatewayResources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '512Mi' } } satisfies GatewayResources,
  oidc: { usernameClaim: 'email', groupsClaim: 'groups' },
  sftp: 'none',
  maskingStrategy: 'redact',
  approvalTimeout: '5m',
  sessionApprovalDuration: '1h',
  s3: {
    region: 'us-east-1',
    pathStyle: true,
    accessKeyIdKey: 'accessKeyId',
    secretAccessKeyKey: 'secretAccessKey',
    sse: 'none',
  },
  record: { input: true, output: true, maxEventBytes: 65536, maxResultRows: 1000 },
  encryptionKeyKey: 'key',
  signingKeyKey: 'signing.pem',
  storeMasked: true,
  onStorageFailure: 'FailClosed',
  sessionRetention: '720h',
  accessRequestKind: 'Command',
} as const;

// ---------------------------------------------------------------------------------------------
// Shared shapes

/** metav1.Condition as it appears in JSON (timestamps are RFC 3339 strings). */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface LocalObjectReference {
  name: string;
}

/** A key in a Secret of the same namespace; `key` has a per-field default in the schema. */
export interface SecretKeyReference {
  name: string;
  key?: string;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface LabelSelectorRequirement {
  key: string;
  operator: LabelSelectorOperator;
  values?: string[];
}

/** A user or group as the OIDC token names them. */
export interface Subject {
  kind: SubjectKind;
  name: string;
}

/** Go duration strings ("30s", "1h30m"); the stricter of all applicable limits wins. */
export interface SessionLimits {
  maxDuration?: string;
  idleTimeout?: string;
}

// ---------------------------------------------------------------------------------------------
// Connection

export interface ConnectionSpec {
  protocol: Protocol;
  target: ConnectionTarget;
  credentialsRef?: CredentialsReference;
  listener?: Listener;
  replicas?: number;
  resources?: GatewayResources;
  recordingPolicyRef?: LocalObjectReference;
  sessionLimits?: SessionLimits;
  oidc?: OidcSettings;
}

/**
 * The gateway container's cpu and memory requests and limits, as Kubernetes quantities in strings
 * (`"500m"`, `"1"`, `"256Mi"`; a bare YAML number is refused: quote it).
 */
export interface GatewayResources {
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
}

/** postgres and ssh use host + port, kubernetes and http use url (enforced by CEL rules). */
export interface ConnectionTarget {
  host?: string;
  port?: number;
  database?: string;
  url?: string;
  tls?: TargetTls;
  /** "type base64" entries (ssh). */
  hostKeys?: string[];
  insecureSkipHostKeyVerification?: boolean;
}

export interface TargetTls {
  mode?: TlsMode;
  caSecretRef?: SecretKeyReference;
  serverName?: string;
}

export interface CredentialsReference {
  name: string;
  keys?: CredentialKeys;
}

/** Secret key names per credential; DEFAULTS.credentialKeys when omitted. */
export interface CredentialKeys {
  username?: string;
  password?: string;
  privateKey?: string;
  passphrase?: string;
  token?: string;
  clientCertificate?: string;
  clientKey?: string;
}

export interface Listener {
  port?: number;
  tlsSecretRef?: LocalObjectReference;
  hostKeySecretRef?: SecretKeyReference;
  serviceType?: ServiceType;
}

/** Replaces the operator-wide OIDC settings for one Connection. */
export interface OidcSettings {
  issuer: string;
  audience: string;
  usernameClaim?: string;
  groupsClaim?: string;
}

export interface ConnectionStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  endpoint?: string;
  readyReplicas?: number;
  recording?: ConnectionRecordingStatus;
  policies?: string[];
}

export interface ConnectionRecordingStatus {
  policy?: string;
  endpoint?: string;
  bucket?: string;
  prefix?: string;
}

// ---------------------------------------------------------------------------------------------
// AccessPolicy

export interface AccessPolicySpec {
  connectionSelector?: LabelSelector;
  connections?: string[];
  subjects: Subject[];
  rules?: AccessRule[];
  approvers?: Subject[];
  approvalTimeout?: string;
  masking?: Masking;
  sessionLimits?: SessionLimits;
  sessionApproval?: SessionApproval;
}

/**
 * Session-level just-in-time access: the policy's subjects connect only while an approved
 * AccessRequest of kind Session for the Connection exists (docs/session-approval.md).
 */
export interface SessionApproval {
  required: boolean;
  /** How long access lasts once approved (Go duration); defaults to DEFAULTS.sessionApprovalDuration. */
  maxDuration?: string;
}

/** At most one protocol matcher per rule; none means the rule matches every command. */
export interface AccessRule {
  name: string;
  effect: RuleEffect;
  message?: string;
  /** CEL over subject, connection, command and now. */
  when?: string;
  sql?: SqlMatcher;
  ssh?: SshMatcher;
  kubernetes?: KubernetesMatcher;
  http?: HttpMatcher;
}

export interface SqlMatcher {
  statementClasses?: SqlStatementClass[];
  /** Allow rules need every referenced table to match; Deny and RequireApproval rules any. */
  tables?: string[];
}

export interface SshMatcher {
  shell?: boolean;
  /** RE2, anchored at both ends. */
  exec?: string[];
  sftp?: SftpMode;
  portForwarding?: PortForwardDestination[];
}

export interface PortForwardDestination {
  host: string;
  port?: number;
}

export interface KubernetesMatcher {
  verbs?: string[];
  apiGroups?: string[];
  resources?: string[];
  namespaces?: string[];
  names?: string[];
  nonResourceURLs?: string[];
}

export interface HttpMatcher {
  methods?: HttpMethod[];
  paths?: string[];
  hosts?: string[];
}

export interface Masking {
  rules?: MaskingRule[];
}

export interface MaskingRule {
  name: string;
  columns?: string[];
  jsonPaths?: string[];
  detectors?: MaskingDetector[];
  /** RE2. */
  patterns?: string[];
  strategy?: MaskingStrategy;
}

export interface AccessPolicyStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  connections?: string[];
}

// ---------------------------------------------------------------------------------------------
// RecordingPolicy

export interface RecordingPolicySpec {
  connectionSelector?: LabelSelector;
  storage: RecordingStorage;
  record?: RecordSettings;
  retention?: Retention;
  encryption?: RecordingEncryption;
  signing?: RecordingSigning;
  storeMasked?: boolean;
  viewers?: Subject[];
  onStorageFailure?: StorageFailureMode;
  sessionRetention?: string;
}

export interface RecordingStorage {
  s3: S3Storage;
}

export interface S3Storage {
  endpoint: string;
  bucket: string;
  region?: string;
  pathStyle?: boolean;
  prefix?: string;
  credentialsSecretRef: S3CredentialsReference;
  caSecretRef?: SecretKeyReference;
  sse?: SseMode;
  kmsKeyId?: string;
}

export interface S3CredentialsReference {
  name: string;
  accessKeyIdKey?: string;
  secretAccessKeyKey?: string;
}

export interface RecordSettings {
  input?: boolean;
  output?: boolean;
  maxEventBytes?: number;
  maxResultRows?: number;
}

export interface Retention {
  days?: number;
  objectLock?: ObjectLock;
}

export interface ObjectLock {
  mode: ObjectLockMode;
}

export interface RecordingEncryption {
  keySecretRef: SecretKeyReference;
}

export interface RecordingSigning {
  keySecretRef: SecretKeyReference;
}

export interface RecordingPolicyStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  bucket?: BucketStatus;
  signing?: SigningStatus;
  connections?: string[];
}

export interface BucketStatus {
  endpoint?: string;
  name?: string;
  region?: string;
  objectLockEnabled?: boolean;
}

export interface SigningStatus {
  keyId?: string;
  /** SPKI PEM. */
  publicKey?: string;
}

// ---------------------------------------------------------------------------------------------
// Session

/** Written once by the gateway (the schema makes it immutable). */
export interface SessionSpec {
  connection: string;
  protocol: Protocol;
  user: string;
  groups?: string[];
  clientAddress?: string;
  clientApplication?: string;
  startedAt: string;
}

export interface SessionStatus {
  phase?: SessionPhase;
  endedAt?: string;
  /** Go duration string shown by `kubectl get sessions`, e.g. "12m30s". */
  duration?: string;
  reason?: string;
  commands?: number;
  denied?: number;
  approvals?: number;
  bytesIn?: number;
  bytesOut?: number;
  recording?: SessionRecordingStatus;
}

export interface SessionRecordingStatus {
  location?: string;
  chunks?: number;
  /** "sha256:<hex>" of the last chunk shipped. */
  headDigest?: string;
}

// ---------------------------------------------------------------------------------------------
// AccessRequest

/** Written once by the gateway (the schema makes it immutable). */
export interface AccessRequestSpec {
  requester: Requester;
  connection: string;
  session?: string;
  kind?: AccessRequestKind;
  command?: HeldCommand;
  policy?: string;
  rule?: string;
  reason?: string;
  expiresAt: string;
  /** Only for kind Session. */
  duration?: string;
  /** Who may decide: the deciding AccessPolicy's approvers, copied by the gateway. */
  approvers?: Subject[];
}

export interface Requester {
  user: string;
  groups?: string[];
}

export interface HeldCommand {
  protocol: Protocol;
  text: string;
  parameters?: string[];
}

/** Final once decision is set (CEL transition rule). */
export interface AccessRequestStatus {
  decision?: AccessRequestDecision;
  decidedBy?: string;
  decidedAt?: string;
  comment?: string;
}

// ---------------------------------------------------------------------------------------------
// Objects

/** The envelope every Warden object shares. */
export interface WardenObject<K extends Kind, Spec, Status> {
  apiVersion: typeof API_VERSION;
  kind: K;
  metadata: V1ObjectMeta;
  spec: Spec;
  status?: Status;
}

export interface WardenList<T extends WardenObject<Kind, unknown, unknown>> {
  apiVersion: typeof API_VERSION;
  kind: `${T['kind']}List`;
  metadata: V1ListMeta;
  items: T[];
}

export type Connection = WardenObject<'Connection', ConnectionSpec, ConnectionStatus>;
export type AccessPolicy = WardenObject<'AccessPolicy', AccessPolicySpec, AccessPolicyStatus>;
export type RecordingPolicy = WardenObject<'RecordingPolicy', RecordingPolicySpec, RecordingPolicyStatus>;
export type Session = WardenObject<'Session', SessionSpec, SessionStatus>;
export type AccessRequest = WardenObject<'AccessRequest', AccessRequestSpec, AccessRequestStatus>;

export type ConnectionList = WardenList<Connection>;
export type AccessPolicyList = WardenList<AccessPolicy>;
export type RecordingPolicyList = WardenList<RecordingPolicy>;
export type SessionList = WardenList<Session>;
export type AccessRequestList = WardenList<AccessRequest>;

/** Any Warden object. */
export type WardenResource = Connection | AccessPolicy | RecordingPolicy | Session | AccessRequest;
