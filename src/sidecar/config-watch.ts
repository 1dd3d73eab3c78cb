/**
 * How a running gateway picks up a new configuration without restarting (live sessions stay):
 *
 * 1. At start it reads the mounted file (`<SIDECAR_PATHS.configDir>/<SIDECAR_CONFIG_KEY>`); the
 *    pod cannot start without it, so there is always a first configuration.
 * 2. It then watches its ConfigMap through the API (the gateway Role allows get/list/watch on
 *    that one name; list and watch pass `fieldSelector=metadata.name=<name>`, which RBAC
 *    authorises against resourceNames). A change reaches it in well under a second.
 * 3. While the API watch is not working, it polls the mounted file instead. Kubelet refreshes
 *    ConfigMap volumes only every minute or so, which is why the API is the primary path.
 *    File changes are ignored while the API watch is healthy, so a lagging file can never roll
 *    the gateway back to an older document.
 *
 * Every candidate is validated (validateSidecarConfig); an invalid one is reported through
 * `onInvalid` and the gateway keeps its current configuration. `onConfig` is called only when
 * the hash changes. Secret rotation arrives the same way: the controller puts each referenced
 * Secret's resourceVersion into the document, so the hash changes and the gateway re-reads its
 * credential files (or, until kubelet has refreshed them, GETs the Secret; the Role allows it).
 */
import { readFile } from 'node:fs/promises';
import { CoreV1Api, type KubeConfig, ListWatch, type V1ConfigMap, Watch } from '@kubernetes/client-node';
import { SIDECAR_CONFIG_KEY, type SecretFile, type SidecarConfig, SidecarConfigError, parseSidecarConfig, resolveSidecarPath } from './config.ts';

export type ConfigSource = 'file' | 'api';

export interface ConfigWatchOptions {
  /** Path of the mounted document. */
  file: string;
  /** The ConfigMap to watch through the API; omitted: file polling only. */
  api?: { kubeConfig: KubeConfig; namespace: string; configMap: string };
  /** How often the file is polled while the API watch is down (default 2 s). */
  pollMs?: number;
  onConfig: (config: SidecarConfig, source: ConfigSource) => void;
  onInvalid: (error: SidecarConfigError, source: ConfigSource) => void;
  /** API watch trouble (it retries on its own); for logging. */
  onWatchError?: (error: unknown) => void;
}

/** Reads and validates the mounted document. Throws SidecarConfigError (or the fs error). */
export async function loadSidecarConfigFile(path: string): Promise<SidecarConfig> {
  return parseSidecarConfig(await readFile(path, 'utf8'));
}

/**
 * The current value of a credential: read through the API when the gateway has access (a
 * rotation is visible at once; the gateway Role allows get on exactly the referenced Secrets),
 * else from the mounted file, which kubelet refreshes within a minute or so. Gateways call this
 * when they open an upstream connection after the document's `secretVersions` changed.
 */
export async function readSecretValue(ref: SecretFile, api?: { kubeConfig: KubeConfig; namespace: string }): Promise<Buffer> {
  if (api) {
    try {
      const secret = await api.kubeConfig.makeApiClient(CoreV1Api).readNamespacedSecret({ name: ref.secret, namespace: api.namespace });
      const value = secret.data?.[ref.key];
      if (value !== undefined) return Buffer.from(value, 'base64');
    } catch {
      // No API access or the Secret is gone: the mounted file is what the pod has.
    }
  }
  return await readFile(resolveSidecarPath(ref.file));
}

export class SidecarConfigWatcher {
  readonly #o: ConfigWatchOptions;
  #current: SidecarConfig | undefined;
  #lastFileText: string | undefined;
  #apiHealthy = false;
  #stopped = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #listWatch: ListWatch<V1ConfigMap> | undefined;

  constructor(options: ConfigWatchOptions) {
    this.#o = options;
  }

  get current(): SidecarConfig | undefined {
    return this.#current;
  }

  /** Whether changes currently arrive through the API watch. */
  get apiHealthy(): boolean {
    return this.#apiHealthy;
  }

  /** Loads the file (throws if it is missing or invalid: the gateway must not start) and starts watching. */
  async start(): Promise<SidecarConfig> {
    const text = await readFile(this.#o.file, 'utf8');
    const first = parseSidecarConfig(text);
    this.#lastFileText = text;
    this.#current = first;
    this.#pollTimer = setInterval(() => void this.#pollFile(), this.#o.pollMs ?? 2_000);
    this.#pollTimer.unref();
    if (this.#o.api) this.#startApiWatch(this.#o.api);
    return first;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#pollTimer) clearInterval(this.#pollTimer);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    await this.#listWatch?.stop();
  }

  #offer(text: string | undefined, source: ConfigSource): void {
    if (text === undefined) {
      this.#o.onInvalid(new SidecarConfigError([{ path: `$`, message: `ConfigMap has no key ${SIDECAR_CONFIG_KEY}` }]), source);
      return;
    }
    let next: SidecarConfig;
    try {
      next = parseSidecarConfig(text);
    } catch (error) {
      this.#o.onInvalid(error as SidecarConfigError, source);
      return;
    }
    if (next.hash === this.#current?.hash) return;
    this.#current = next;
    this.#o.onConfig(next, source);
  }

  async #pollFile(): Promise<void> {
    if (this.#stopped || this.#apiHealthy) return;
    let text: string;
    try {
      text = await readFile(this.#o.file, 'utf8');
    } catch {
      return; // mid-swap of kubelet's ..data symlink; next tick
    }
    if (text === this.#lastFileText) return;
    this.#lastFileText = text;
    this.#offer(text, 'file');
  }

  #startApiWatch(api: NonNullable<ConfigWatchOptions['api']>): void {
    const core = api.kubeConfig.makeApiClient(CoreV1Api);
    const fieldSelector = `metadata.name=${api.configMap}`;
    const list = async () => await core.listNamespacedConfigMap({ namespace: api.namespace, fieldSelector });
    const listWatch = new ListWatch<V1ConfigMap>(
      `/api/v1/namespaces/${encodeURIComponent(api.namespace)}/configmaps`,
      new Watch(api.kubeConfig),
      list,
      false,
      undefined,
      fieldSelector,
    );
    this.#listWatch = listWatch;
    const onObject = (cm: V1ConfigMap): void => {
      this.#apiHealthy = true;
      this.#offer(cm.data?.[SIDECAR_CONFIG_KEY], 'api');
    };
    // Connected (list and watch running): the file is no longer needed as a source.
    listWatch.on('connect', () => {
      this.#apiHealthy = true;
    });
    listWatch.on('add', onObject);
    listWatch.on('update', onObject);
    listWatch.on('error', (error: unknown) => {
      this.#apiHealthy = false;
      this.#o.onWatchError?.(error);
      if (this.#stopped) return;
      this.#retryTimer = setTimeout(() => {
        if (!this.#stopped) listWatch.start().catch((e: unknown) => this.#o.onWatchError?.(e));
      }, 2_000);
      this.#retryTimer.unref();
    });
    listWatch.start().catch((error: unknown) => this.#o.onWatchError?.(error));
  }
}
