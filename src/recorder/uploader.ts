// Ships spooled objects to the store: a small pool of workers over one FIFO queue, each job retried
// with exponential back-off and jitter until the store takes it. Only a refusal that no retry can fix
// (OBJECT_EXISTS: a different object already holds the name) fails a job; an unreachable store is
// waited out while the spool absorbs the backlog. The spool, not memory, holds the bytes: a job
// reads its file when a worker picks it up, so at most `concurrency` objects are in memory.

import { setTimeout as sleep } from 'node:timers/promises';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import { isRetryable, type PutOptions, type PutOutcome, type RecordingStore } from './store.ts';

export interface RetryPolicy {
  /** Delay before the first retry (default 250 ms). */
  readonly baseMs: number;
  /** Ceiling of the delay (default 10 s). */
  readonly maxMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 250, maxMs: 10_000 };

/** Exponential back-off with "equal jitter": half the capped delay fixed, half random. */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const capped = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(capped / 2 + random() * (capped / 2));
}

export interface UploaderOptions {
  readonly concurrency?: number;
  readonly retry?: RetryPolicy;
  /** Told when the store goes from reachable to unreachable and back. */
  readonly onAvailability?: (available: boolean, error?: RecorderError) => void;
  readonly log?: (message: string) => void;
}

interface Job {
  readonly key: string;
  readonly read: () => Promise<Uint8Array>;
  readonly options: PutOptions | undefined;
  readonly resolve: (outcome: PutOutcome) => void;
  readonly reject: (error: RecorderError) => void;
}

export class Uploader {
  readonly store: RecordingStore;
  readonly #retry: RetryPolicy;
  readonly #concurrency: number;
  readonly #onAvailability: ((available: boolean, error?: RecorderError) => void) | undefined;
  readonly #log: (message: string) => void;
  readonly #queue: Job[] = [];
  readonly #abort = new AbortController();
  #running = 0;
  #available = true;
  #unavailableSince: number | undefined;
  #uploadedBytes = 0;

  constructor(store: RecordingStore, options: UploaderOptions = {}) {
    this.store = store;
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#concurrency = options.concurrency ?? 2;
    this.#onAvailability = options.onAvailability;
    this.#log = options.log ?? (() => undefined);
  }

  /** False from a failed attempt until the next successful one. */
  get available(): boolean {
    return this.#available;
  }

  /** `Date.now()` of the first failure of the current outage. */
  get unavailableSince(): number | undefined {
    return this.#unavailableSince;
  }

  get queued(): number {
    return this.#queue.length + this.#running;
  }

  get uploadedBytes(): number {
    return this.#uploadedBytes;
  }

  /**
   * Stores the object `read` gives under `key`, retrying until the store takes it. Rejects with
   * OBJECT_EXISTS (never retried) or RECORDING_FAILED when the uploader is stopped first.
   */
  upload(key: string, read: () => Promise<Uint8Array>, options?: PutOptions): Promise<PutOutcome> {
    if (this.#abort.signal.aborted) {
      return Promise.reject(new RecorderError(RecorderErrorCode.RecordingFailed, 'the uploader is stopped'));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ key, read, options, resolve, reject });
      this.#pump();
    });
  }

  /** Stops the workers; jobs not yet stored reject (their files stay in the spool for the next start). */
  stop(): void {
    this.#abort.abort();
    for (const job of this.#queue.splice(0)) {
      job.reject(new RecorderError(RecorderErrorCode.RecordingFailed, `upload of ${job.key} abandoned: the recorder stopped`, { object: job.key }));
    }
  }

  #pump(): void {
    while (this.#running < this.#concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift() as Job;
      this.#running += 1;
      void this.#run(job).finally(() => {
        this.#running -= 1;
        this.#pump();
      });
    }
  }

  async #run(job: Job): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.#abort.signal.aborted) {
        job.reject(new RecorderError(RecorderErrorCode.RecordingFailed, `upload of ${job.key} abandoned: the recorder stopped`, { object: job.key }));
        return;
      }
      let bytes: Uint8Array;
      try {
        bytes = await job.read();
      } catch (error) {
        job.reject(new RecorderError(RecorderErrorCode.SpoolWriteFailed, `reading ${job.key} back from the spool failed: ${(error as Error).message}`, { object: job.key }));
        return;
      }
      // Stopped while the spool was being read: the file stays for the next start, which may
      // already be uploading it (a put from here would race that process's recovery).
      if (this.#abort.signal.aborted) continue;
      try {
        const outcome = await this.store.putOnce(job.key, bytes, job.options);
        this.#uploadedBytes += bytes.length;
        this.#setAvailable(true);
        job.resolve(outcome);
        return;
      } catch (error) {
        const recorderError =
          error instanceof RecorderError
            ? error
            : new RecorderError(RecorderErrorCode.StoreUnavailable, `writing ${job.key}: ${(error as Error).message}`, { object: job.key });
        if (!isRetryable(recorderError)) {
          job.reject(recorderError);
          return;
        }
        this.#setAvailable(false, recorderError);
        const delay = backoffDelay(attempt, this.#retry);
        this.#log(`upload of ${job.key} failed (${recorderError.code}: ${recorderError.message}); retry ${attempt + 1} in ${delay} ms`);
        try {
          await sleep(delay, undefined, { signal: this.#abort.signal });
        } catch {
          // Aborted: the loop head rejects the job.
        }
      }
    }
  }

  #setAvailable(available: boolean, error?: RecorderError): void {
    if (available === this.#available) return;
    this.#available = available;
    this.#unavailableSince = available ? undefined : Date.now();
    this.#onAvailability?.(available, error);
  }
}
