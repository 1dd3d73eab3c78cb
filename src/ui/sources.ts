// Where the viewer reads from: the API server (RecordingPolicies, Connections, Session objects,
// the bucket credentials Secret of a policy) with the server's own service account, and the
// recording stores. The viewer never writes to either.

import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { type Connection, DEFAULTS, GROUP, RESOURCES, type RecordingPolicy, type Session, VERSION } from '../api/types.ts';
import { type AccessOptions, storeForLocation, UsageError } from '../cli/recording-access.ts';
import { type EncryptionKey, loadVerifyKey, type VerifyKey } from '../recorder/crypto.ts';
import { statusCode } from '../recorder/session-objects.ts';
import type { RecordingStore } from '../recorder/store.ts';
import { DirectoryStore } from '../recorder/store-dir.ts';
import { S3Store } from '../recorder/store-s3.ts';
import { UiError, UiErrorCode } from './errors.ts';
import type { ApiPage, ListScope } from './listing.ts';

const CACHE_MS = 5_000;

/** Read-only API access with a short cache of the policy and Connection lists (they change rarely). */
export class KubeSource {
  readonly #custom: CustomObjectsApi;
  readonly #core: CoreV1Api;
  readonly #namespace: string | undefined;
  #cache: { at: number; value: Promise<{ policies: RecordingPolicy[]; connections: Connection[] }> } | undefined;

  /** `namespace`: restrict everything to one namespace (a namespaced install). */
  constructor(config: KubeConfig, namespace?: string) {
    this.#custom = config.makeApiClient(CustomObjectsApi);
    this.#core = config.makeApiClient(CoreV1Api);
    this.#namespace = namespace;
  }

  /** RecordingPolicies and Connections, at most CACHE_MS old. */
  policiesAndConnections(now: number = Date.now()): Promise<{ policies: RecordingPolicy[]; connections: Connection[] }> {
    if (this.#cache && now - this.#cache.at < CACHE_MS) return this.#cache.value;
    const value = (async () => ({
      policies: await this.#listAll<RecordingPolicy>(RESOURCES.RecordingPolicy.plural),
      connections: await this.#listAll<Connection>(RESOURCES.Connection.plural),
    }))();
    this.#cache = { at: now, value };
    value.catch(() => {
      if (this.#cache?.value === value) this.#cache = undefined;
    });
    return value;
  }

  async #listAll<T>(plural: string): Promise<T[]> {
    const items: T[] = [];
    let next: string | undefined;
    do {
      const page = await this.#list(plural, this.#namespace, undefined, 500, next);
      items.push(...(page.items as T[]));
      next = page.continue;
    } while (next);
    return items;
  }

  async #list(plural: string, namespace: string | undefined, labelSelector: string | undefined, limit: number, continueToken: string | undefined): Promise<{ items: unknown[]; continue?: string }> {
    const common = {
      group: GROUP,
      version: VERSION,
      plural,
      limit,
      ...(labelSelector === undefined ? {} : { labelSelector }),
      ...(continueToken === undefined ? {} : { _continue: continueToken }),
    };
    let page: { items?: unknown[]; metadata?: { continue?: string } };
    try {
      page = (namespace === undefined
        ? await this.#custom.listClusterCustomObject(common)
        : await this.#custom.listNamespacedCustomObject({ ...common, namespace })) as typeof page;
    } catch (error) {
      if (statusCode(error) === 410) throw new UiError(UiErrorCode.ListExpired, 'the session list changed too much since the previous page; start again from the first page', { cause: error });
      throw error;
    }
    return { items: page.items ?? [], ...(page.metadata?.continue ? { continue: page.metadata.continue } : {}) };
  }

  /** One API page of Session objects in `scope` (the paging of listing.ts). */
  readonly fetchSessions = async (scope: ListScope, limit: number, continueToken: string | undefined): Promise<ApiPage> => {
    const namespace = this.#namespace ?? scope.namespace;
    if (this.#namespace !== undefined && scope.namespace !== undefined && scope.namespace !== this.#namespace) return { items: [] };
    const page = await this.#list(RESOURCES.Session.plural, namespace, scope.labelSelector, limit, continueToken);
    return { items: page.items as Session[], ...(page.continue === undefined ? {} : { continue: page.continue }) };
  };

  async getSession(namespace: string, name: string): Promise<Session | undefined> {
    if (this.#namespace !== undefined && namespace !== this.#namespace) return undefined;
    try {
      return (await this.#custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: RESOURCES.Session.plural, namespace, name })) as Session;
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async readSecret(namespace: string, name: string): Promise<Record<string, string>> {
    const secret = await this.#core.readNamespacedSecret({ namespace, name });
    return Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  }
}

export interface RecordingSourceOptions {
  /** Endpoint, credentials, `dir`, extra public keys and decryption keys from the command line. */
  readonly access: AccessOptions;
  readonly env: NodeJS.ProcessEnv;
  readonly extraKeys: readonly VerifyKey[];
  readonly decryptionKeys: readonly EncryptionKey[];
}

export interface OpenRecording {
  readonly store: RecordingStore;
  readonly folder: string;
  readonly trustedKeys: readonly VerifyKey[];
  readonly decryptionKeys: readonly EncryptionKey[];
}

/**
 * Opens a session's recording: the store named by its `status.recording.location`, reached with
 * (in order) a local `--recordings` directory, the endpoint and credentials given on the command
 * line or in the environment, or the covering RecordingPolicy's bucket settings and credentials
 * Secret. Trusted keys: the policy's published signing key plus any given with --public-key.
 */
export class RecordingSource {
  readonly #kube: KubeSource;
  readonly #options: RecordingSourceOptions;
  readonly #stores = new Map<string, { version: string; store: S3Store }>();

  constructor(kube: KubeSource, options: RecordingSourceOptions) {
    this.#kube = kube;
    this.#options = options;
  }

  async open(session: Session, policy: RecordingPolicy): Promise<OpenRecording> {
    const location = session.status?.recording?.location;
    if (!location) throw new UiError(UiErrorCode.RecordingUnavailable, 'no part of this recording has been shipped yet; try again in a few seconds');
    const trustedKeys = [...this.#options.extraKeys];
    const published = policy.status?.signing?.publicKey;
    if (published) {
      try {
        trustedKeys.push(loadVerifyKey(published));
      } catch {
        // A malformed published key is reported by verification as "no trusted key" below.
      }
    }
    if (trustedKeys.length === 0) {
      throw new UiError(UiErrorCode.RecordingUnavailable, `RecordingPolicy ${policy.metadata.namespace}/${policy.metadata.name} publishes no signing key (status.signing.publicKey) and none was given with --public-key: the recording cannot be verified`);
    }
    const { store, folder } = await this.#store(location, policy);
    return { store, folder, trustedKeys, decryptionKeys: this.#options.decryptionKeys };
  }

  async #store(location: string, policy: RecordingPolicy): Promise<{ store: RecordingStore; folder: string }> {
    const { access, env } = this.#options;
    const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(location);
    try {
      if (s3 && access.dir !== undefined) return { store: new DirectoryStore(access.dir), folder: (s3[2] as string).replace(/\/*$/, '/') };
      if (!s3 || access.endpoint !== undefined || env.WARDEN_S3_ENDPOINT !== undefined) return storeForLocation(location, access, env);
    } catch (error) {
      if (error instanceof UsageError) throw new UiError(UiErrorCode.RecordingUnavailable, error.message, { cause: error });
      throw error;
    }
    const bucket = s3[1] as string;
    const folder = (s3[2] as string).replace(/\/*$/, '/');
    const spec = policy.spec.storage.s3;
    const namespace = policy.metadata.namespace ?? '';
    const key = `${namespace}/${policy.metadata.name}/${bucket}`;
    const version = `${policy.metadata.resourceVersion}`;
    const cached = this.#stores.get(key);
    if (cached && cached.version === version) return { store: cached.store, folder };
    let secret: Record<string, string>;
    try {
      secret = await this.#kube.readSecret(namespace, spec.credentialsSecretRef.name);
    } catch (cause) {
      throw new UiError(UiErrorCode.RecordingUnavailable, `cannot read the bucket credentials Secret ${namespace}/${spec.credentialsSecretRef.name} of RecordingPolicy ${policy.metadata.name}`, { cause });
    }
    const accessKey = secret[spec.credentialsSecretRef.accessKeyIdKey ?? DEFAULTS.s3.accessKeyIdKey];
    const secretKey = secret[spec.credentialsSecretRef.secretAccessKeyKey ?? DEFAULTS.s3.secretAccessKeyKey];
    if (!accessKey || !secretKey) throw new UiError(UiErrorCode.RecordingUnavailable, `Secret ${namespace}/${spec.credentialsSecretRef.name} lacks the bucket credentials keys`);
    let ca: string | undefined;
    if (spec.caSecretRef) ca = (await this.#kube.readSecret(namespace, spec.caSecretRef.name))[spec.caSecretRef.key ?? DEFAULTS.caKey];
    const store = new S3Store({
      endpoint: spec.endpoint,
      bucket,
      region: spec.region ?? DEFAULTS.s3.region,
      pathStyle: spec.pathStyle ?? DEFAULTS.s3.pathStyle,
      accessKey,
      secretKey,
      ...(ca === undefined ? {} : { ca }),
    });
    this.#stores.set(key, { version, store });
    return { store, folder };
  }
}
