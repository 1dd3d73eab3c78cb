/**
 * The RecordingPolicy reconciler: makes the bucket ready for gateways to write recordings.
 *
 * gather (the policy; its credentials Secret, read directly: values are never cached) → check
 * the bucket with those credentials → create it when missing (with object lock when the policy
 * asks) → default retention (object lock) and a lifecycle expiration rule (retention.days) →
 * a signing key when the policy names none → status (Ready, bucket, signing, connections) and
 * Events. The bucket is checked again every few minutes (`requeueAfterMs`), so a bucket that
 * becomes unreachable shows in the status.
 *
 * No finalizer: the controller never deletes a bucket or recordings (they are evidence), so
 * deleting a RecordingPolicy needs no cleanup outside the cluster.
 */
import http from 'node:http';
import https from 'node:https';
import { type LifecycleRule, Client as MinioClient } from 'minio';
import { API_VERSION, type Connection, DEFAULTS, type RecordingPolicy, type RecordingPolicyStatus } from '../api/types.ts';
import { exportSigningKey, generateSigningKey, loadSigningKey } from '../recorder/crypto.ts';
import { canonicalJson } from '../recorder/canonical-json.ts';
import { type DesiredCondition, mergeConditions } from './conditions.ts';
import type { EventRecorder, EventTarget } from './events.ts';
import type { Cache } from './informers.ts';
import { isNotFound, type KubeClient, type KubeObject } from './kube.ts';
import type { Logger } from './log.ts';
import { controllerMetrics } from './metrics.ts';
import { LABELS, MANAGED_BY, signingSecretName } from './names.ts';
import { WorkQueue } from './queue.ts';
import { ConditionType, Reason, type ReasonName } from './reasons.ts';
import { selectRecordingPolicy } from './render.ts';
import type { SecretObject } from './connection-controller.ts';

export interface RecordingCaches {
  connections: Cache<Connection & KubeObject>;
  recordingPolicies: Cache<RecordingPolicy & KubeObject>;
  secrets: Cache<SecretObject>;
}

export interface RecordingPolicyControllerOptions {
  client: KubeClient;
  caches: RecordingCaches;
  events: EventRecorder;
  log: Logger;
  /** How often a ready bucket is checked again (default 5 min). */
  recheckMs?: number;
  now?: () => Date;
}

/** A failure with the condition reason to report. */
class BucketProblem extends Error {
  readonly reason: ReasonName;
  constructor(reason: ReasonName, message: string) {
    super(message);
    this.reason = reason;
  }
}

const RETENTION_RULE_ID = 'warden-retention';
const key = (namespace: string, name: string): string => `${namespace}/${name}`;

export class RecordingPolicyController {
  readonly queue = new WorkQueue({ name: 'recordingpolicy', baseDelayMs: 1000 });
  readonly #o: RecordingPolicyControllerOptions;
  readonly #log: Logger;
  readonly #now: () => Date;
  /** ns/secret → policies (ns/name) that use it. */
  readonly #bySecret = new Map<string, Set<string>>();
  /** The last successful bucket check per policy. */
  readonly #lastCheck = new Map<string, { fingerprint: string; at: number; outcome: { objectLock: boolean }; signing: RecordingPolicyStatus['signing'] }>();
  /** Secret contents read during one reconcile (each Secret is read once per pass). */
  #secretReads = new Map<string, Promise<Record<string, string>>>();

  constructor(options: RecordingPolicyControllerOptions) {
    this.#o = options;
    this.#log = options.log.child({ controller: 'recordingpolicy' });
    this.#now = options.now ?? (() => new Date());
  }

  wire(): void {
    const { caches } = this.#o;
    caches.recordingPolicies.on((_e, p) => this.queue.add(key(p.metadata?.namespace ?? '', p.metadata?.name ?? '')));
    caches.secrets.on((_e, s) => {
      for (const p of this.#bySecret.get(key(s.metadata?.namespace ?? '', s.metadata?.name ?? '')) ?? []) this.queue.add(p);
    });
    // status.connections lists who records here: follow Connections coming and going.
    // A burst of Connection changes (a GitOps sync of many) coalesces into one pass per policy.
    caches.connections.on((_e, c) => {
      for (const p of caches.recordingPolicies.list(c.metadata?.namespace)) this.queue.addAfter(key(p.metadata?.namespace ?? '', p.metadata?.name ?? ''), 1_000);
    });
  }

  resync(): void {
    for (const p of this.#o.caches.recordingPolicies.list()) this.queue.add(key(p.metadata?.namespace ?? '', p.metadata?.name ?? ''));
  }

  async reconcile(k: string): Promise<{ requeueAfterMs: number } | void> {
    const [namespace = '', name = ''] = k.split('/');
    const policy = this.#o.caches.recordingPolicies.get(namespace, name);
    if (!policy || policy.metadata.deletionTimestamp) return;
    const began = performance.now();
    this.#secretReads = new Map();
    const s3 = policy.spec.storage.s3;
    const credentialsSecret = s3.credentialsSecretRef.name;
    this.#index(k, [credentialsSecret, ...(s3.caSecretRef ? [s3.caSecretRef.name] : []), ...(policy.spec.signing ? [policy.spec.signing.keySecretRef.name] : [])]);
    const status: RecordingPolicyStatus = {
      observedGeneration: policy.metadata.generation ?? 0,
      connections: this.#connections(policy),
      bucket: { endpoint: s3.endpoint, name: s3.bucket, region: s3.region ?? DEFAULTS.s3.region },
    };
    let condition: DesiredCondition;
    let failed: BucketProblem | undefined;
    // The bucket is checked when something it depends on changed, or after recheckMs; a pass
    // that only updates status.connections reuses the last successful check.
    const fingerprint = this.#fingerprint(policy);
    const last = this.#lastCheck.get(k);
    const fresh = last !== undefined && last.fingerprint === fingerprint && Date.now() - last.at < (this.#o.recheckMs ?? 300_000);
    try {
      const outcome = fresh ? last.outcome : await this.#ensureBucket(policy);
      status.bucket = { ...status.bucket, objectLockEnabled: outcome.objectLock };
      status.signing = fresh ? last.signing : await this.#ensureSigningKey(policy);
      if (!fresh) this.#lastCheck.set(k, { fingerprint, at: Date.now(), outcome, signing: status.signing });
      const lock = policy.spec.retention?.objectLock ? `, object lock ${policy.spec.retention.objectLock.mode} for ${policy.spec.retention.days} days` : '';
      const days = (policy.spec.retention?.days ?? 0) > 0 ? `, recordings expire after ${policy.spec.retention?.days} days` : ', recordings kept forever';
      condition = { type: ConditionType.Ready, status: 'True', reason: Reason.BucketReady, message: `bucket ${s3.bucket} at ${s3.endpoint} is ready${lock}${days}` };
    } catch (error) {
      failed = error instanceof BucketProblem ? error : new BucketProblem(Reason.BucketUnreachable, `bucket ${s3.bucket} at ${s3.endpoint}: ${(error as Error).message}`);
      condition = { type: ConditionType.Ready, status: 'False', reason: failed.reason, message: failed.message };
      this.#lastCheck.delete(k);
      controllerMetrics.reconcileErrors.add(1, { controller: 'recordingpolicy' });
    }
    status.conditions = mergeConditions(policy.status?.conditions, [condition], policy.metadata.generation ?? 0, this.#now());
    await this.#report(policy, status, condition);
    controllerMetrics.reconciles.add(1, { controller: 'recordingpolicy', result: failed ? 'error' : 'ok' });
    controllerMetrics.reconcileDuration.record((performance.now() - began) / 1000, { controller: 'recordingpolicy' });
    // A failure retries with back-off (the queue's); a success re-checks the bucket now and then.
    if (failed) throw failed;
    return { requeueAfterMs: this.#o.recheckMs ?? 300_000 };
  }

  /** What a bucket check depends on: the spec and the Secrets it reads. */
  #fingerprint(policy: RecordingPolicy): string {
    const namespace = policy.metadata.namespace ?? '';
    const s3 = policy.spec.storage.s3;
    const secrets = [s3.credentialsSecretRef.name, s3.caSecretRef?.name, policy.spec.signing?.keySecretRef.name ?? signingSecretName(policy.metadata.name ?? '')];
    const versions = secrets.map((s) => (s === undefined ? '' : (this.#o.caches.secrets.get(namespace, s)?.metadata?.resourceVersion ?? 'missing')));
    return `${policy.metadata.uid}|${policy.metadata.generation}|${versions.join(',')}`;
  }

  #connections(policy: RecordingPolicy): string[] {
    const namespace = policy.metadata.namespace ?? '';
    const policies = this.#o.caches.recordingPolicies.list(namespace);
    return this.#o.caches.connections
      .list(namespace)
      .filter((c) => selectRecordingPolicy(c, policies).policy?.metadata.name === policy.metadata.name)
      .map((c) => c.metadata.name ?? '')
      .sort();
  }

  #readSecret(namespace: string, name: string): Promise<Record<string, string>> {
    const k = key(namespace, name);
    let read = this.#secretReads.get(k);
    if (!read) {
      read = this.#fetchSecret(namespace, name);
      this.#secretReads.set(k, read);
    }
    return read;
  }

  async #fetchSecret(namespace: string, name: string): Promise<Record<string, string>> {
    let secret: SecretObject;
    try {
      secret = await this.#o.client.get<SecretObject>('Secret', namespace, name);
    } catch (error) {
      if (isNotFound(error)) throw new BucketProblem(Reason.SecretNotFound, `Secret ${namespace}/${name} not found`);
      throw error;
    }
    return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }

  async #value(namespace: string, secret: string, k: string): Promise<string> {
    const data = await this.#readSecret(namespace, secret);
    const value = data[k];
    if (value === undefined) throw new BucketProblem(Reason.SecretKeyMissing, `Secret ${namespace}/${secret} has no key '${k}'`);
    return value;
  }

  async #ensureBucket(policy: RecordingPolicy): Promise<{ objectLock: boolean }> {
    const namespace = policy.metadata.namespace ?? '';
    const s3 = policy.spec.storage.s3;
    const ref = s3.credentialsSecretRef;
    const accessKey = await this.#value(namespace, ref.name, ref.accessKeyIdKey ?? DEFAULTS.s3.accessKeyIdKey);
    const secretKey = await this.#value(namespace, ref.name, ref.secretAccessKeyKey ?? DEFAULTS.s3.secretAccessKeyKey);
    const ca = s3.caSecretRef ? await this.#value(namespace, s3.caSecretRef.name, s3.caSecretRef.key ?? DEFAULTS.caKey) : undefined;
    const url = new URL(s3.endpoint);
    const useSSL = url.protocol === 'https:';
    const client = new MinioClient({
      endPoint: url.hostname,
      port: url.port ? Number(url.port) : useSSL ? 443 : 80,
      useSSL,
      accessKey,
      secretKey,
      region: s3.region ?? DEFAULTS.s3.region,
      pathStyle: s3.pathStyle ?? DEFAULTS.s3.pathStyle,
      // A socket timeout, so an endpoint that accepts and never answers fails the check.
      transportAgent: useSSL ? new https.Agent({ timeout: 10_000, ...(ca ? { ca } : {}) }) : new http.Agent({ timeout: 10_000 }),
      retryOptions: { disableRetry: true },
    });
    // minio's overloads (callback | promise) confuse inference; these are the promise forms.
    const getLock = client.getObjectLockConfig.bind(client) as (b: string) => Promise<{ objectLockEnabled?: string; mode?: string; unit?: string; validity?: number }>;
    const setLock = client.setObjectLockConfig.bind(client) as (b: string, o: { mode: string; unit: string; validity: number }) => Promise<void>;
    const bucket = s3.bucket;
    const wantLock = policy.spec.retention?.objectLock;
    const days = policy.spec.retention?.days ?? 0;

    let exists: boolean;
    try {
      exists = await client.bucketExists(bucket);
    } catch (error) {
      throw s3Problem(bucket, s3.endpoint, error);
    }
    if (!exists) {
      try {
        await client.makeBucket(bucket, s3.region ?? DEFAULTS.s3.region, wantLock ? { ObjectLocking: true } : {});
      } catch (error) {
        const problem = s3Problem(bucket, s3.endpoint, error);
        throw problem.reason === Reason.BucketUnreachable ? new BucketProblem(Reason.BucketCreateFailed, `could not create ${problem.message}`) : problem;
      }
      this.#log.info('created bucket', { bucket, objectLock: wantLock !== undefined });
      await this.#o.events.record(target(policy), 'Normal', Reason.BucketCreated, `created bucket ${bucket}${wantLock ? ` with object lock (${wantLock.mode})` : ''}`);
    }

    let lockEnabled = false;
    try {
      const lock = await getLock(bucket);
      lockEnabled = lock.objectLockEnabled === 'Enabled';
      if (wantLock && lockEnabled) {
        if (lock.mode !== wantLock.mode || lock.unit !== 'Days' || Number(lock.validity) !== days) {
          await setLock(bucket, { mode: wantLock.mode, unit: 'Days', validity: days });
          this.#log.info('set default retention', { bucket, mode: wantLock.mode, days });
        }
      }
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== 'ObjectLockConfigurationNotFoundError') throw s3Problem(bucket, s3.endpoint, error);
    }
    if (wantLock && !lockEnabled) {
      throw new BucketProblem(
        Reason.ObjectLockUnavailable,
        `bucket ${bucket} exists without object lock, which can only be enabled when a bucket is created; use a new bucket name or remove retention.objectLock`,
      );
    }

    // retention.days → a lifecycle rule expiring this policy's recordings (the prefix, or all).
    try {
      const current = await client.getBucketLifecycle(bucket).catch((error: unknown) => {
        if ((error as { code?: string }).code === 'NoSuchLifecycleConfiguration') return null;
        throw error;
      });
      // The XML parser gives one rule as an object, several as a list.
      const existing: LifecycleRule[] = current?.Rule === undefined ? [] : Array.isArray(current.Rule) ? current.Rule : [current.Rule as LifecycleRule];
      const others = existing.filter((r) => r.ID !== RETENTION_RULE_ID);
      const ours = existing.find((r) => r.ID === RETENTION_RULE_ID);
      const prefix = s3.prefix ?? '';
      const wanted = days > 0 ? { ID: RETENTION_RULE_ID, Status: 'Enabled', Filter: { Prefix: prefix }, Expiration: { Days: days } } : undefined;
      const same = wanted === undefined ? ours === undefined : ours !== undefined && Number(ours.Expiration?.Days) === days && (ours.Filter?.Prefix ?? ours.Prefix ?? '') === prefix;
      if (!same) {
        const rules = wanted ? [...others, wanted] : others;
        if (rules.length === 0) await client.removeBucketLifecycle(bucket);
        else await client.setBucketLifecycle(bucket, { Rule: rules });
        this.#log.info('set lifecycle retention', { bucket, days, prefix });
      }
    } catch (error) {
      if (error instanceof BucketProblem) throw error;
      throw new BucketProblem(Reason.RetentionFailed, `could not set the lifecycle rule of bucket ${bucket}: ${(error as Error).message}`);
    }
    return { objectLock: lockEnabled };
  }

  /** The policy's signing key: the named Secret, or one the controller generates and owns. */
  async #ensureSigningKey(policy: RecordingPolicy): Promise<RecordingPolicyStatus['signing']> {
    const namespace = policy.metadata.namespace ?? '';
    const named = policy.spec.signing?.keySecretRef;
    const secretName = named?.name ?? signingSecretName(policy.metadata.name ?? '');
    const secretKey = named?.key ?? DEFAULTS.signingKeyKey;
    let pem: string | undefined;
    try {
      pem = await this.#value(namespace, secretName, secretKey);
    } catch (error) {
      if (named || !(error instanceof BucketProblem && error.reason === Reason.SecretNotFound)) throw error;
    }
    if (pem === undefined) {
      const key = exportSigningKey(generateSigningKey());
      pem = key.privatePem;
      await this.#o.client.create('Secret', namespace, {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: {
          name: secretName,
          namespace,
          labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.recordingPolicy]: policy.metadata.name ?? '' },
          ownerReferences: [{ apiVersion: API_VERSION, kind: 'RecordingPolicy', name: policy.metadata.name, uid: policy.metadata.uid, controller: true, blockOwnerDeletion: true }],
        },
        data: { [DEFAULTS.signingKeyKey]: Buffer.from(pem).toString('base64') },
      });
      await this.#o.events.record(target(policy), 'Normal', Reason.SigningKeyGenerated, `generated Ed25519 signing key in Secret ${namespace}/${secretName}`);
    }
    try {
      const key = loadSigningKey(pem);
      return { keyId: key.keyId, publicKey: exportSigningKey(key).publicPem };
    } catch (error) {
      throw new BucketProblem(Reason.SigningKeyInvalid, `Secret ${namespace}/${secretName} key '${secretKey}': ${(error as Error).message}`);
    }
  }

  async #report(policy: RecordingPolicy, status: RecordingPolicyStatus, condition: DesiredCondition): Promise<void> {
    const before = policy.status?.conditions?.find((c) => c.type === ConditionType.Ready);
    if (before?.status !== condition.status || before.reason !== condition.reason || before.message !== condition.message) {
      if (condition.status === 'False') await this.#o.events.record(target(policy), 'Warning', condition.reason, condition.message);
      else if (before?.status !== 'True') await this.#o.events.record(target(policy), 'Normal', condition.reason, condition.message);
    }
    if (canonicalJson(policy.status ?? {}) === canonicalJson(status)) return;
    await this.#o.client.apply(
      { apiVersion: API_VERSION, kind: 'RecordingPolicy', metadata: { name: policy.metadata.name ?? '', namespace: policy.metadata.namespace ?? '' }, status } as KubeObject & {
        kind: string;
        metadata: { name: string; namespace: string };
      },
      'status',
    );
  }

  #index(k: string, secrets: string[]): void {
    const namespace = k.split('/')[0] ?? '';
    for (const set of this.#bySecret.values()) set.delete(k);
    for (const s of secrets) {
      const sk = key(namespace, s);
      let set = this.#bySecret.get(sk);
      if (!set) this.#bySecret.set(sk, (set = new Set()));
      set.add(k);
    }
  }
}

/** Turns an S3 client error into a reason and a message that tells the user what to check. */
function s3Problem(bucket: string, endpoint: string, error: unknown): BucketProblem {
  const code = (error as { code?: string }).code ?? '';
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken'].includes(code)) {
    return new BucketProblem(Reason.AccessDenied, `bucket ${bucket} at ${endpoint}: access denied (${code}); check the access key in storage.s3.credentialsSecretRef`);
  }
  return new BucketProblem(Reason.BucketUnreachable, `bucket ${bucket} at ${endpoint}: ${code ? `${code}: ` : ''}${(error as Error).message}`);
}

function target(policy: RecordingPolicy): EventTarget {
  return { apiVersion: API_VERSION, kind: 'RecordingPolicy', namespace: policy.metadata.namespace ?? '', name: policy.metadata.name ?? '', uid: policy.metadata.uid };
}
