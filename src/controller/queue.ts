/**
 * A de-duplicating, rate-limited work queue keyed by "namespace/name", in the manner of
 * client-go's workqueue: a key is held at most once while waiting; a key being processed is
 * never handed to a second worker, and if it is added meanwhile it is processed again right
 * after; a failed key comes back after an exponential back-off (base · 2^failures, capped).
 */
import { type Span, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { SpanAttribute, SpanName } from '../observability/names.ts';
import { controllerMetrics, controllerTracing } from './metrics.ts';

export interface QueueOptions {
  name: string;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class WorkQueue {
  readonly name: string;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  /** Waiting keys, in order. */
  readonly #queue: string[] = [];
  readonly #waiting = new Set<string>();
  readonly #processing = new Set<string>();
  /** Keys added while being processed: re-queued by done(). */
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  #getters: Array<(key: string | undefined) => void> = [];
  #shutDown = false;

  constructor(options: QueueOptions) {
    this.name = options.name;
    this.#baseDelayMs = options.baseDelayMs ?? 250;
    this.#maxDelayMs = options.maxDelayMs ?? 120_000;
  }

  /** Keys waiting (not counting those being processed or delayed). */
  get length(): number {
    return this.#queue.length;
  }

  get shuttingDown(): boolean {
    return this.#shutDown;
  }

  add(key: string): void {
    if (this.#shutDown) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#waiting.has(key)) return;
    const getter = this.#getters.shift();
    if (getter) {
      this.#processing.add(key);
      getter(key);
      return;
    }
    this.#waiting.add(key);
    this.#queue.push(key);
    controllerMetrics.queueDepth.add(1, { controller: this.name });
  }

  /** Adds the key after `delayMs`; an earlier pending delayed add of the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#shutDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    if (this.#timers.has(key)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, timer);
  }

  /** Adds the key after its back-off, which doubles with each failure until forget(). */
  addRateLimited(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = Math.min(this.#baseDelayMs * 2 ** failures, this.#maxDelayMs);
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count (after a success). */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key to process; waits for one. Undefined once the queue is shut down. */
  async get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#waiting.delete(key);
      this.#processing.add(key);
      controllerMetrics.queueDepth.add(-1, { controller: this.name });
      return key;
    }
    if (this.#shutDown) return undefined;
    return await new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Marks the key processed; if it was added meanwhile, it goes back in the queue. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  shutDown(): void {
    this.#shutDown = true;
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    const getters = this.#getters;
    this.#getters = [];
    for (const getter of getters) getter(undefined);
  }
}

/**
 * Runs `concurrency` workers over the queue until it shuts down; resolves when every worker has
 * finished its current key. A handler that throws puts the key back with back-off; one that
 * returns `{ requeueAfterMs }` is run again after that delay (resync of slow-moving state).
 */
/** A span per reconcile when tracing is on (docs/observability.md): which controller, which object. */
function reconcileSpan(controller: string, key: string): Span | undefined {
  const tracer = controllerTracing.tracer;
  if (tracer === undefined) return undefined;
  const slash = key.indexOf('/');
  return tracer.startSpan(SpanName.Reconcile, {
    kind: SpanKind.INTERNAL,
    attributes: {
      [SpanAttribute.Controller]: controller,
      ...(slash === -1 ? { [SpanAttribute.ObjectName]: key } : { [SpanAttribute.Namespace]: key.slice(0, slash), [SpanAttribute.ObjectName]: key.slice(slash + 1) }),
    },
  });
}

export async function runWorkers(
  queue: WorkQueue,
  concurrency: number,
  handler: (key: string) => Promise<{ requeueAfterMs?: number } | void>,
  onError: (key: string, error: unknown, retryInMs: number) => void,
): Promise<void> {
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const span = reconcileSpan(queue.name, key);
      try {
        const result = await handler(key);
        queue.forget(key);
        if (result && result.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (error) {
        const delay = queue.shuttingDown ? 0 : queue.addRateLimited(key);
        span?.setAttribute(SpanAttribute.RetryInMs, delay);
        span?.setStatus({ code: SpanStatusCode.ERROR, message: (error instanceof Error ? error.message : String(error)).slice(0, 512) });
        onError(key, error, delay);
      } finally {
        span?.end();
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
}
