/**
 * The sidecar configuration document: the one contract between the controller, which renders it
 * into a ConfigMap per Connection, and the gateway (`warden sidecar`), which loads it at start and
 * again whenever it changes.
 *
 * Rules of the contract:
 * - Versioned: `apiVersion` is `warden.dev/sidecar-config/v1`. A gateway refuses any other version
 *   with a message naming the one it understands; a breaking change gets a new version.
 * - No secrets inside. Credentials, TLS keys, CA bundles and signing keys stay in their Secrets,
 *   which the Deployment mounts as files; the document names the file (and, for re-reading after a
 *   rotation, the Secret and key). `secretVersions` carries the resourceVersion of every referenced
 *   Secret, so a rotation changes the document and wakes the gateway, which then re-reads the files.
 * - Self-checking: `hash` is the SHA-256 of the canonical JSON (RFC 8785) of the document without
 *   `hash`. The gateway logs it on every reload; the controller compares it to skip writes.
 * - Validated: {@link validateSidecarConfig} rejects a bad document with the path of every problem,
 *   so a gateway never runs on a half-understood configuration (it keeps the last good one).
 *
 * Access policies travel as their specs (ordered by name), masking rules inside them; the gateway
 * compiles them with src/policy/compile.ts. The controller has already checked every user pattern
 * in them, so a compile failure in the gateway is a bug, not bad input.
 */
import { createHash } from 'node:crypto';
import {
  OBJECT_LOCK_MODES,
  type ObjectLockMode,
  PROTOCOLS,
  type Protocol,
  SSE_MODES,
  STORAGE_FAILURE_MODES,
  type SseMode,
  type StorageFailureMode,
  TLS_MODES,
  type TlsMode,
} from '../api/types.ts';
import type { BundledPolicy } from '../policy/compile.ts';
import { canonicalJson } from '../recorder/canonical-json.ts';

export const SIDECAR_CONFIG_API_VERSION = 'warden.dev/sidecar-config/v1';
export const SIDECAR_CONFIG_KIND = 'SidecarConfig';
/** Key of the document in the ConfigMap, and file name in the mounted ConfigMap directory. */
export const SIDECAR_CONFIG_KEY = 'sidecar-config.json';

/** Where the Deployment mounts things in the gateway container (fixed, so the contract is simple). */
export const SIDECAR_PATHS = {
  /** Directory of the mounted ConfigMap; the document is `<configDir>/<SIDECAR_CONFIG_KEY>`. */
  configDir: '/etc/warden/config',
  /** Every referenced Secret is mounted whole, read-only, under `<secretsDir>/<secret name>/`. */
  secretsDir: '/etc/warden/secrets',
  /** Writable scratch space (emptyDir): the recording spool. The root filesystem is read-only. */
  spoolDir: '/var/lib/warden/spool',
} as const;

/**
 * Where an absolute path of the document (or --config) is on this machine: under
 * `$WARDEN_FS_ROOT` when set. In a pod the variable is unset and paths are used as they are; the
 * e2e runner (test/e2e/local-gateway.ts), which has no kubelet to mount volumes, writes the
 * ConfigMap and Secrets under a scratch directory and points WARDEN_FS_ROOT there. Gateways open
 * every file of the document through this function.
 */
export function resolveSidecarPath(path: string, root: string | undefined = process.env.WARDEN_FS_ROOT): string {
  if (!root || !path.startsWith('/')) return path;
  return `${root.replace(/\/+$/, '')}${path}`;
}

/** A file the gateway reads, coming from key `key` of Secret `secret` (same namespace). */
export interface SecretFile {
  secret: string;
  key: string;
  /** Absolute path of the mounted file. */
  file: string;
}

export interface SidecarConfig {
  apiVersion: typeof SIDECAR_CONFIG_API_VERSION;
  kind: typeof SIDECAR_CONFIG_KIND;
  connection: {
    namespace: string;
    name: string;
    uid: string;
    /** metadata.generation of the Connection this document was rendered from. */
    generation: number;
  };
  protocol: Protocol;
  listener: {
    /** Port the gateway listens on inside the pod (the Service maps its port here). */
    port: number;
    /** Port of /healthz and /readyz. */
    healthPort: number;
    /** Client-facing TLS (postgres, kubernetes, http). Absent: http serves plain HTTP; postgres and
     *  kubernetes generate a self-signed certificate at start. */
    tls?: { certificate: SecretFile; key: SecretFile };
    /** SSH host key (ssh). Absent: the gateway generates an Ed25519 key at start. */
    hostKey?: SecretFile;
  };
  target: {
    host?: string;
    port?: number;
    database?: string;
    url?: string;
    tls?: { mode: TlsMode; ca?: SecretFile; serverName?: string };
    hostKeys?: string[];
    insecureSkipHostKeyVerification?: boolean;
  };
  /** Files holding the credentials the gateway logs in to the target with; only the ones present. */
  credentials: Partial<Record<CredentialName, SecretFile>>;
  oidc: {
    issuer: string;
    audience: string;
    usernameClaim: string;
    groupsClaim: string;
    jwksUri?: string;
  };
  /** The AccessPolicies that select the Connection, ordered by name. Empty: everything is denied.
   *  Their masking rules are in their specs. */
  policies: RenderedPolicy[];
  /** spec.sessionLimits of the Connection; policies may carry stricter ones. */
  sessionLimits: { maxDuration?: string; idleTimeout?: string };
  /** Null when no RecordingPolicy applies: the gateway then admits no session (fail closed). */
  recording: RecordingConfig | null;
  /** resourceVersion of each referenced Secret, by name: a rotation changes the document. */
  secretVersions: Record<string, string>;
  /** `sha256:<hex>` over the canonical JSON of everything above. */
  hash: string;
}

export const CREDENTIAL_NAMES = [
  'username',
  'password',
  'privateKey',
  'passphrase',
  'token',
  'clientCertificate',
  'clientKey',
] as const;
export type CredentialName = (typeof CREDENTIAL_NAMES)[number];

/**
 * One AccessPolicy as src/policy/compile.ts bundles it (`BundledPolicy`: the spec without the
 * Connection selection, and the problems the controller found compiling it), plus its identity.
 * `{ version: POLICY_BUNDLE_VERSION, policies: config.policies }` is a PolicyBundle for the
 * engine's `compilePolicies`: a policy with problems denies its subjects every command.
 */
export interface RenderedPolicy extends BundledPolicy {
  uid: string;
  generation: number;
}

export interface RecordingConfig {
  /** Name of the RecordingPolicy. */
  policy: string;
  s3: {
    endpoint: string;
    bucket: string;
    region: string;
    pathStyle: boolean;
    /** Key prefix of this Connection's recordings: `<policy prefix><namespace>/<connection>/`. */
    prefix: string;
    accessKeyId: SecretFile;
    secretAccessKey: SecretFile;
    ca?: SecretFile;
    sse: SseMode;
    kmsKeyId?: string;
  };
  record: { input: boolean; output: boolean; maxEventBytes: number; maxResultRows: number };
  /** Ed25519 PKCS#8 PEM. */
  signingKey: SecretFile;
  /** 32-byte AES-256-GCM key for client-side encryption. */
  encryptionKey?: SecretFile;
  storeMasked: boolean;
  onStorageFailure: StorageFailureMode;
  /** Per-object retention the gateway sets when the bucket has object lock. */
  objectLock?: { mode: ObjectLockMode; days: number };
}

export type SidecarConfigBody = Omit<SidecarConfig, 'hash'>;

/** `sha256:<hex>` of the canonical JSON of the document without its `hash`. */
export function hashSidecarConfig(body: SidecarConfigBody | SidecarConfig): string {
  const { hash: _ignored, ...rest } = body as SidecarConfig;
  return `sha256:${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`;
}

/** Adds the hash: the finished document. */
export function sealSidecarConfig(body: SidecarConfigBody): SidecarConfig {
  return { ...body, hash: hashSidecarConfig(body) };
}

/** Serializes a document for the ConfigMap: canonical JSON, so equal documents are equal bytes. */
export function serializeSidecarConfig(config: SidecarConfig): string {
  return canonicalJson(config);
}

// ---------------------------------------------------------------------------------------------
// Validation

export interface ConfigIssue {
  /** JSON path of the offending value, e.g. `$.listener.port`. */
  path: string;
  message: string;
}

export class SidecarConfigError extends Error {
  readonly code = 'WARDEN_INVALID_SIDECAR_CONFIG';
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    const shown = issues.slice(0, 10).map((i) => `${i.path}: ${i.message}`);
    if (issues.length > 10) shown.push(`… and ${issues.length - 10} more`);
    super(`invalid sidecar configuration: ${shown.join('; ')}`);
    this.name = 'SidecarConfigError';
    this.issues = issues;
  }
}

/** Parses and validates the ConfigMap's text. Throws SidecarConfigError. */
export function parseSidecarConfig(text: string): SidecarConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new SidecarConfigError([{ path: '$', message: `not JSON (${(error as Error).message})` }]);
  }
  return validateSidecarConfig(doc);
}

/**
 * Checks that `doc` is a complete v1 document whose hash matches its content; returns it typed.
 * Throws SidecarConfigError listing every problem found (not just the first).
 */
export function validateSidecarConfig(doc: unknown): SidecarConfig {
  const v = new Checker();
  const root = v.object('$', doc);
  if (!root) throw new SidecarConfigError(v.issues);
  if (root.apiVersion !== SIDECAR_CONFIG_API_VERSION) {
    // Nothing else is meaningful if the version is wrong: say only that.
    throw new SidecarConfigError([
      {
        path: '$.apiVersion',
        message: `expected ${JSON.stringify(SIDECAR_CONFIG_API_VERSION)}, got ${JSON.stringify(root.apiVersion)}; the controller and the gateway image are of different versions`,
      },
    ]);
  }
  v.literal('$.kind', root.kind, SIDECAR_CONFIG_KIND);

  const connection = v.object('$.connection', root.connection);
  if (connection) {
    v.string('$.connection.namespace', connection.namespace);
    v.string('$.connection.name', connection.name);
    v.string('$.connection.uid', connection.uid);
    v.integer('$.connection.generation', connection.generation, 0);
  }
  const protocol = v.oneOf('$.protocol', root.protocol, PROTOCOLS);

  const listener = v.object('$.listener', root.listener);
  if (listener) {
    v.integer('$.listener.port', listener.port, 1, 65535);
    v.integer('$.listener.healthPort', listener.healthPort, 1, 65535);
    if (listener.port === listener.healthPort) v.issue('$.listener.healthPort', 'must differ from listener.port');
    if (listener.tls !== undefined) {
      const tls = v.object('$.listener.tls', listener.tls);
      if (tls) {
        v.secretFile('$.listener.tls.certificate', tls.certificate);
        v.secretFile('$.listener.tls.key', tls.key);
      }
      if (protocol === 'ssh') v.issue('$.listener.tls', 'ssh listeners present a host key, not TLS');
    }
    if (listener.hostKey !== undefined) {
      v.secretFile('$.listener.hostKey', listener.hostKey);
      if (protocol !== undefined && protocol !== 'ssh') v.issue('$.listener.hostKey', 'only ssh listeners have a host key');
    }
  }

  const target = v.object('$.target', root.target);
  if (target && protocol) {
    if (protocol === 'postgres' || protocol === 'ssh') {
      v.string('$.target.host', target.host);
      v.integer('$.target.port', target.port, 1, 65535);
      if (target.url !== undefined) v.issue('$.target.url', `not used by ${protocol} (host and port are)`);
    } else {
      const url = v.string('$.target.url', target.url);
      if (url !== undefined && !/^https?:\/\/[^\s/?#]+/.test(url)) v.issue('$.target.url', 'must be an http:// or https:// URL');
      if (target.host !== undefined) v.issue('$.target.host', `not used by ${protocol} (url is)`);
    }
    if (target.database !== undefined) {
      v.string('$.target.database', target.database);
      if (protocol !== 'postgres') v.issue('$.target.database', 'only postgres targets have a database');
    }
    if (target.tls !== undefined) {
      const tls = v.object('$.target.tls', target.tls);
      if (tls) {
        v.oneOf('$.target.tls.mode', tls.mode, TLS_MODES);
        if (tls.ca !== undefined) v.secretFile('$.target.tls.ca', tls.ca);
        if (tls.serverName !== undefined) v.string('$.target.tls.serverName', tls.serverName);
      }
    }
    if (protocol === 'ssh') {
      const pinned = target.hostKeys === undefined ? [] : v.stringArray('$.target.hostKeys', target.hostKeys);
      if (target.insecureSkipHostKeyVerification !== undefined) {
        v.boolean('$.target.insecureSkipHostKeyVerification', target.insecureSkipHostKeyVerification);
      }
      if ((pinned?.length ?? 0) === 0 && target.insecureSkipHostKeyVerification !== true) {
        v.issue('$.target.hostKeys', 'ssh targets need pinned host keys (or insecureSkipHostKeyVerification: true)');
      }
    }
  }

  const credentials = v.object('$.credentials', root.credentials);
  if (credentials) {
    for (const [name, file] of Object.entries(credentials)) {
      if (!(CREDENTIAL_NAMES as readonly string[]).includes(name)) {
        v.issue(`$.credentials.${name}`, `unknown credential; expected one of ${CREDENTIAL_NAMES.join(', ')}`);
      } else v.secretFile(`$.credentials.${name}`, file);
    }
  }

  const oidc = v.object('$.oidc', root.oidc);
  if (oidc) {
    const issuer = v.string('$.oidc.issuer', oidc.issuer);
    if (issuer !== undefined && !/^https?:\/\/\S+$/.test(issuer)) v.issue('$.oidc.issuer', 'must be an http(s) URL');
    v.string('$.oidc.audience', oidc.audience);
    v.string('$.oidc.usernameClaim', oidc.usernameClaim);
    v.string('$.oidc.groupsClaim', oidc.groupsClaim);
    if (oidc.jwksUri !== undefined) v.string('$.oidc.jwksUri', oidc.jwksUri);
  }

  const policies = v.array('$.policies', root.policies);
  if (policies) {
    let previous = '';
    policies.forEach((item, index) => {
      const path = `$.policies[${index}]`;
      const policy = v.object(path, item);
      if (!policy) return;
      const name = v.string(`${path}.name`, policy.name);
      if (name !== undefined) {
        if (name <= previous) v.issue(`${path}.name`, 'policies must be ordered by name, without duplicates');
        previous = name;
      }
      v.string(`${path}.uid`, policy.uid);
      v.integer(`${path}.generation`, policy.generation, 0);
      v.policySpec(`${path}.spec`, policy.spec);
      v.array(`${path}.problems`, policy.problems)?.forEach((item, i) => {
        const problem = v.object(`${path}.problems[${i}]`, item);
        if (!problem) return;
        v.string(`${path}.problems[${i}].code`, problem.code);
        v.string(`${path}.problems[${i}].message`, problem.message);
      });
    });
  }

  const limits = v.object('$.sessionLimits', root.sessionLimits);
  if (limits) {
    if (limits.maxDuration !== undefined) v.duration('$.sessionLimits.maxDuration', limits.maxDuration);
    if (limits.idleTimeout !== undefined) v.duration('$.sessionLimits.idleTimeout', limits.idleTimeout);
  }

  if (root.recording !== null) v.recording('$.recording', root.recording);

  const versions = v.object('$.secretVersions', root.secretVersions);
  if (versions) for (const [name, rv] of Object.entries(versions)) v.string(`$.secretVersions.${name}`, rv);

  const hash = v.string('$.hash', root.hash);
  if (v.issues.length === 0 && hash !== undefined) {
    const expected = hashSidecarConfig(root as unknown as SidecarConfig);
    if (hash !== expected) v.issue('$.hash', `does not match the content (expected ${expected}); the document was altered or truncated`);
  }
  if (v.issues.length > 0) throw new SidecarConfigError(v.issues);
  return root as unknown as SidecarConfig;
}

type Obj = Record<string, unknown>;
const DURATION = /^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$/;

class Checker {
  readonly issues: ConfigIssue[] = [];

  issue(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  object(path: string, value: unknown): Obj | undefined {
    if (value === undefined) return this.missing(path);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.issue(path, `must be an object, got ${describe(value)}`);
      return undefined;
    }
    return value as Obj;
  }

  array(path: string, value: unknown): unknown[] | undefined {
    if (value === undefined) return this.missing(path);
    if (!Array.isArray(value)) {
      this.issue(path, `must be a list, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  string(path: string, value: unknown): string | undefined {
    if (value === undefined) return this.missing(path);
    if (typeof value !== 'string' || value.length === 0) {
      this.issue(path, `must be a non-empty string, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  stringArray(path: string, value: unknown): string[] | undefined {
    const list = this.array(path, value);
    if (!list) return undefined;
    list.forEach((item, index) => this.string(`${path}[${index}]`, item));
    return list as string[];
  }

  integer(path: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (value === undefined) return this.missing(path);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.issue(path, `must be an integer from ${min} to ${max}, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  boolean(path: string, value: unknown): boolean | undefined {
    if (value === undefined) return this.missing(path);
    if (typeof value !== 'boolean') {
      this.issue(path, `must be true or false, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  literal(path: string, value: unknown, expected: string): void {
    if (value !== expected) this.issue(path, `must be ${JSON.stringify(expected)}, got ${describe(value)}`);
  }

  oneOf<T extends string>(path: string, value: unknown, allowed: readonly T[]): T | undefined {
    if (value === undefined) return this.missing(path);
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.issue(path, `must be one of ${allowed.join(', ')}, got ${describe(value)}`);
      return undefined;
    }
    return value as T;
  }

  duration(path: string, value: unknown): void {
    const text = this.string(path, value);
    if (text !== undefined && !DURATION.test(text)) this.issue(path, `must be a duration such as "30s" or "1h30m", got ${JSON.stringify(text)}`);
  }

  secretFile(path: string, value: unknown): void {
    const ref = this.object(path, value);
    if (!ref) return;
    this.string(`${path}.secret`, ref.secret);
    this.string(`${path}.key`, ref.key);
    const file = this.string(`${path}.file`, ref.file);
    if (file !== undefined && !file.startsWith('/')) this.issue(`${path}.file`, 'must be an absolute path');
  }

  /**
   * Only the shape: what a policy means (rules, matchers, durations, patterns) is the policy
   * compiler's to judge (src/policy/compile.ts). A policy it finds broken travels with its
   * problems and denies its subjects everything; it does not invalidate the whole document.
   */
  policySpec(path: string, value: unknown): void {
    const spec = this.object(path, value);
    if (!spec) return;
    this.array(`${path}.subjects`, spec.subjects);
  }

  recording(path: string, value: unknown): void {
    const rec = this.object(path, value);
    if (!rec) return;
    this.string(`${path}.policy`, rec.policy);
    const s3 = this.object(`${path}.s3`, rec.s3);
    if (s3) {
      const endpoint = this.string(`${path}.s3.endpoint`, s3.endpoint);
      if (endpoint !== undefined && !/^https?:\/\/\S+$/.test(endpoint)) this.issue(`${path}.s3.endpoint`, 'must be an http(s) URL');
      this.string(`${path}.s3.bucket`, s3.bucket);
      this.string(`${path}.s3.region`, s3.region);
      this.boolean(`${path}.s3.pathStyle`, s3.pathStyle);
      if (typeof s3.prefix !== 'string') this.issue(`${path}.s3.prefix`, `must be a string, got ${describe(s3.prefix)}`);
      this.secretFile(`${path}.s3.accessKeyId`, s3.accessKeyId);
      this.secretFile(`${path}.s3.secretAccessKey`, s3.secretAccessKey);
      if (s3.ca !== undefined) this.secretFile(`${path}.s3.ca`, s3.ca);
      this.oneOf(`${path}.s3.sse`, s3.sse, SSE_MODES);
      if (s3.kmsKeyId !== undefined) this.string(`${path}.s3.kmsKeyId`, s3.kmsKeyId);
    }
    const record = this.object(`${path}.record`, rec.record);
    if (record) {
      const input = this.boolean(`${path}.record.input`, record.input);
      const output = this.boolean(`${path}.record.output`, record.output);
      if (input === false && output === false) this.issue(`${path}.record`, 'must record input or output');
      this.integer(`${path}.record.maxEventBytes`, record.maxEventBytes, 1024, 16_777_216);
      this.integer(`${path}.record.maxResultRows`, record.maxResultRows, 0, 1_000_000);
    }
    this.secretFile(`${path}.signingKey`, rec.signingKey);
    if (rec.encryptionKey !== undefined) this.secretFile(`${path}.encryptionKey`, rec.encryptionKey);
    this.boolean(`${path}.storeMasked`, rec.storeMasked);
    this.oneOf(`${path}.onStorageFailure`, rec.onStorageFailure, STORAGE_FAILURE_MODES);
    if (rec.objectLock !== undefined) {
      const lock = this.object(`${path}.objectLock`, rec.objectLock);
      if (lock) {
        this.oneOf(`${path}.objectLock.mode`, lock.mode, OBJECT_LOCK_MODES);
        this.integer(`${path}.objectLock.days`, lock.days, 1, 36_500);
      }
    }
  }

  private missing(path: string): undefined {
    this.issue(path, 'is required');
    return undefined;
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}
