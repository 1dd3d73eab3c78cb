/**
 * Informers: client-node's `makeInformer` (list, then watch from the list's resourceVersion,
 * re-list on 410 Gone) over our KubeClient's paging list, with what the bare informer lacks:
 * a restart with back-off after an error (the bare one stops), and a `transform` applied before
 * an object enters the cache (the Secret informer keeps key names only, never values).
 */
import { type KubernetesObject, makeInformer } from '@kubernetes/client-node';
import { type KubeClient, type KubeObject, resourcePath } from './kube.ts';
import type { Logger } from './log.ts';

export type CacheEvent = 'add' | 'update' | 'delete';

export interface CacheOptions<T extends KubeObject> {
  kind: string;
  /** Watch one namespace; all when undefined. */
  namespace?: string;
  labelSelector?: string;
  /** Mutates each object before it is cached and handed to handlers. */
  transform?: (obj: T) => void;
  log: Logger;
}

export class Cache<T extends KubeObject> {
  readonly kind: string;
  readonly #informer: ReturnType<typeof makeInformer<KubernetesObject>>;
  readonly #handlers: Array<(event: CacheEvent, obj: T) => void> = [];
  readonly #log: Logger;
  #stopped = false;
  #synced = false;
  #listed = false;
  #restartDelayMs = 500;
  #restartTimer: NodeJS.Timeout | undefined;

  constructor(client: KubeClient, options: CacheOptions<T>) {
    this.kind = options.kind;
    this.#log = options.log.child({ informer: options.kind });
    const path = resourcePath(options.kind, options.namespace);
    const list = async () => {
      const result = await client.list<T>(options.kind, options.namespace, options.labelSelector);
      this.#listed = true;
      return result as unknown as { apiVersion: string; kind: string; metadata: { resourceVersion?: string }; items: KubernetesObject[] };
    };
    this.#informer = makeInformer<KubernetesObject>(client.config, path, list, options.labelSelector);
    const transform = options.transform;
    const emit = (event: CacheEvent) => (obj: KubernetesObject) => {
      // Watch events carry kind/apiVersion; list items got them from KubeClient.list.
      if (transform) transform(obj as T);
      for (const handler of this.#handlers) handler(event, obj as T);
    };
    this.#informer.on('add', emit('add'));
    this.#informer.on('update', emit('update'));
    this.#informer.on('delete', emit('delete'));
    this.#informer.on('connect', () => {
      this.#restartDelayMs = 500;
    });
    this.#informer.on('error', (error: unknown) => {
      if (this.#stopped) return;
      const delay = this.#restartDelayMs;
      this.#restartDelayMs = Math.min(delay * 2, 30_000);
      this.#log.warn('watch failed; restarting', { error: error instanceof Error ? error : String(error), retryInMs: delay });
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = undefined;
        if (!this.#stopped) this.#informer.start().catch((e: unknown) => this.#log.warn('restart failed', { error: String(e) }));
      }, delay);
    });
  }

  on(handler: (event: CacheEvent, obj: T) => void): void {
    this.#handlers.push(handler);
  }

  get synced(): boolean {
    return this.#synced;
  }

  /**
   * Lists and starts watching; resolves once the initial list is in the cache. A failed list is
   * retried by the error handler with back-off, so this waits for the first one that succeeds.
   */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#informer.start();
    // The informer fills its cache in the same microtask chain that resolves the list; a timer
    // tick later the items are there.
    while (!this.#listed && !this.#stopped) await new Promise((r) => setTimeout(r, 50));
    this.#synced = !this.#stopped;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    await this.#informer.stop();
  }

  get(namespace: string, name: string): T | undefined {
    return this.#informer.get(name, namespace) as T | undefined;
  }

  list(namespace?: string): T[] {
    return this.#informer.list(namespace) as T[];
  }
}

/** Keeps a Secret's key names and drops the values before it is cached. */
export function stripSecretValues(secret: KubeObject & { data?: Record<string, string>; stringData?: unknown }): void {
  if (secret.data) secret.data = Object.fromEntries(Object.keys(secret.data).map((k) => [k, '']));
  delete secret.stringData;
  // Nobody reads this from the cache; it can be large.
  if (secret.metadata?.annotations) delete secret.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'];
}
