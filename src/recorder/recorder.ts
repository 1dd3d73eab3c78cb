// The recorder a gateway talks to: one `Recorder` per sidecar process (store, spool, uploader,
// Session objects) and one `SessionRecorder` per client session.
//
//   gateway ──append(event)──▶ Chunker ──sealed chunk──▶ spool (fsync) ──▶ uploader ──▶ bucket
//                                                                         └─▶ Session status (batched)
//
// `append` never waits for disk or network: it hands the event to the chunker and queues whatever
// that seals. It returns false when the session holds too much in memory (chunks not yet on disk)
// or the spool is past its high-water mark; the gateway then pauses reading from its sockets until
// the session emits 'drain'. That is the back-pressure that keeps memory bounded however fast a
// session produces output. If the bucket stays unreachable and the spool grows past its bound,
// every session is told through `onFailure` (SPOOL_FULL) so the gateway can fail closed; the
// recorder itself never drops an event it accepted (it keeps spooling until the gateway stops).
//
// A crash loses at most the events not yet sealed (the chunker's time bound, 2 s by default).
// `recover()` on the next start uploads whatever the spool still holds and marks Sessions that
// never closed as Terminated.

import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { SessionPhase, SessionSpec, SessionStatus } from '../api/types.ts';
import type { ChunkEncryption, Compression, SealedChunk } from './chunk.ts';
import { Chunker } from './chunker.ts';
import { type SigningKey, sha256Hex } from './crypto.ts';
import { RecorderError, RecorderErrorCode } from './errors.ts';
import { ApprovalState, createSessionClock, Decision, EventKind, K8sExecChannel, MessageDirection, payloadLength, type Protocol, type RecordingEvent } from './events.ts';
import type { Manifest, SessionMeta } from './manifest.ts';
import { assertValidSessionId, chunkObjectName, MANIFEST_OBJECT_NAME, parseChunkObjectName, sessionFolder } from './naming.ts';
import {
  formatDuration,
  isValidSessionObjectName,
  phaseForEndReason,
  type SessionObjectClient,
  type SessionRef,
  SessionStatusReporter,
} from './session-objects.ts';
import { Spool, type SpoolSessionInfo } from './spool.ts';
import { listAll, type ObjectLockMode, type PutOptions, type RecordingStore } from './store.ts';
import { type RetryPolicy, Uploader } from './uploader.ts';

export const DEFAULT_SPOOL_MAX_BYTES = 512 * 1024 * 1024;
export const DEFAULT_MEMORY_HIGH_WATER_BYTES = 8 * 1024 * 1024;

export interface RecorderOptions {
  readonly store: RecordingStore;
  /** Local folder for sealed chunks not yet in the bucket (an emptyDir volume in the sidecar pod). */
  readonly spoolDir: string;
  /** Past this many spooled bytes the sessions are told SPOOL_FULL (default 512 MiB). */
  readonly spoolMaxBytes?: number;
  /** Past this many spooled bytes `append` asks the gateway to pause (default half the bound). */
  readonly spoolHighWaterBytes?: number;
  /** Past this many bytes held in memory by one session `append` asks the gateway to pause (default 8 MiB). */
  readonly memoryHighWaterBytes?: number;
  readonly signingKey: SigningKey;
  readonly encryption?: ChunkEncryption;
  readonly compression?: Compression;
  /** Key prefix from the RecordingPolicy (`storage.s3.prefix`). */
  readonly prefix?: string;
  /** Object Lock retention for every object (RecordingPolicy `retention`). */
  readonly retention?: { readonly mode: ObjectLockMode; readonly days: number };
  /** Session objects: where and how often to write them. Without it no Session objects are written. */
  readonly sessionObjects?: { readonly client: SessionObjectClient; readonly namespace: string; readonly intervalMs?: number };
  readonly maxChunkBytes?: number;
  readonly maxChunkAgeMs?: number;
  readonly retry?: RetryPolicy;
  readonly uploadConcurrency?: number;
  /** Monotonic clock in ms (default `performance.now`). */
  readonly now?: () => number;
  /** Wall clock in ms since the epoch (default `Date.now`). */
  readonly wallClock?: () => number;
  readonly log?: (message: string) => void;
  /** Metrics and traces (src/observability): told of every session, event and close. */
  readonly observer?: RecorderObserver;
}

/**
 * Watches sessions for metrics and traces without being part of the recording: it sees each event
 * after the chunker took it, on the gateway's call stack, so it must be cheap and must not throw.
 */
export interface RecorderObserver {
  sessionStarted(session: SessionRecorder): SessionObserver | undefined;
}

export interface SessionObserver {
  event(event: RecordingEvent): void;
  closed(reason: string, phase: SessionPhase): void;
}

/** What the gateway knows when a session starts. */
export interface SessionStartInfo {
  /** Defaults to a random UUID. With Session objects it must be a DNS subdomain (lowercase). */
  readonly sessionId?: string;
  readonly protocol: Protocol;
  /** `namespace/name` of the Connection. */
  readonly connection: string;
  readonly user?: string;
  readonly groups?: readonly string[];
  /** ip:port of the client. */
  readonly clientAddress?: string;
  /** application_name, SSH client version, User-Agent. */
  readonly clientApplication?: string;
  /** Target as the gateway sees it (never credentials). */
  readonly target?: string;
}

export interface CloseOptions {
  /** Session phase; default from the reason (client-closed / server-closed → Closed, else Terminated). */
  readonly phase?: Extract<SessionPhase, 'Closed' | 'Terminated' | 'Denied'>;
  /** Why Warden ended or refused the session, for the Session status. */
  readonly message?: string;
}

export interface SessionCloseResult {
  /** True when every chunk and the manifest are in the bucket. */
  readonly shipped: boolean;
  readonly error?: RecorderError;
  readonly manifest: Manifest;
  /** URL of the session folder, e.g. `s3://bucket/prefix/2026/11/22/<id>/`. */
  readonly location: string;
}

export interface RecoveredSession {
  readonly sessionId: string;
  readonly chunksUploaded: number;
  /** The session had closed (its manifest was in the spool). */
  readonly closed: boolean;
  readonly error?: RecorderError;
}

export class Recorder {
  readonly store: RecordingStore;
  readonly spool: Spool;
  readonly uploader: Uploader;
  readonly options: RecorderOptions;
  readonly #sessions = new Set<SessionRecorder>();
  readonly #log: (message: string) => void;

  private constructor(options: RecorderOptions) {
    this.options = options;
    this.store = options.store;
    this.#log = options.log ?? (() => undefined);
    this.spool = new Spool(options.spoolDir, options.spoolMaxBytes ?? DEFAULT_SPOOL_MAX_BYTES);
    this.uploader = new Uploader(options.store, {
      concurrency: options.uploadConcurrency ?? 2,
      ...(options.retry ? { retry: options.retry } : {}),
      log: this.#log,
      onAvailability: (available, error) => {
        this.#log(available ? `recording store ${this.store.description} is reachable again` : `recording store ${this.store.description} is unreachable: ${error?.message ?? ''}`);
      },
    });
  }

  /** Opens the spool (creating it) and counts what an earlier process left there; call `recover` next. */
  static async open(options: RecorderOptions): Promise<Recorder> {
    const recorder = new Recorder(options);
    await recorder.spool.open();
    return recorder;
  }

  get sessions(): ReadonlySet<SessionRecorder> {
    return this.#sessions;
  }

  get spoolHighWaterBytes(): number {
    return this.options.spoolHighWaterBytes ?? Math.floor(this.spool.maxBytes / 2);
  }

  /** Starts recording a session: writes the `session.start` event and creates the Session object. */
  startSession(info: SessionStartInfo): SessionRecorder {
    const session = new SessionRecorder(this, info, {
      forget: () => {
        this.#sessions.delete(session);
      },
    });
    this.#sessions.add(session);
    return session;
  }

  /** Put options for new objects (Object Lock retention from now). */
  putOptions(): PutOptions {
    const retention = this.options.retention;
    if (!retention) return {};
    const wall = this.options.wallClock ?? Date.now;
    return { retention: { mode: retention.mode, retainUntil: new Date(wall() + retention.days * 86_400_000) } };
  }

  /** Called when spool usage drops (an upload finished): sessions that asked the gateway to pause may resume. */
  spoolShrank(): void {
    for (const session of this.#sessions) session.checkDrain();
  }

  /** Called when spool usage passes the bound: every live session is told. */
  spoolOverflowed(): void {
    const error = new RecorderError(
      RecorderErrorCode.SpoolFull,
      `the recording spool ${this.spool.dir} holds ${this.spool.usedBytes} bytes, more than its bound of ${this.spool.maxBytes}: ` +
        `${this.uploader.available ? 'uploads are not keeping up with' : 'the bucket is unreachable for'} ${this.store.description}`,
    );
    for (const session of this.#sessions) session.fail(error);
  }

  /**
   * Uploads what an earlier process left in the spool (chunks in order, then the manifest if the
   * session closed) and marks Sessions that never closed as Terminated. Waits for the store as
   * long as it takes; run it in the background at start-up.
   */
  async recover(): Promise<RecoveredSession[]> {
    const results: RecoveredSession[] = [];
    for (const spooled of await this.spool.scan()) {
      const { info } = spooled;
      const id = info.sessionId;
      let uploaded = 0;
      try {
        for (const seq of spooled.chunks) {
          const name = chunkObjectName(seq);
          const bytes = await this.spool.read(id, name);
          await this.uploader.upload(info.folder + name, () => Promise.resolve(bytes), this.putOptions());
          await this.spool.remove(id, name, bytes.length);
          uploaded += 1;
        }
        let manifest: Manifest | undefined;
        if (spooled.manifest) {
          const bytes = await this.spool.read(id, MANIFEST_OBJECT_NAME);
          manifest = JSON.parse(bytes.toString('utf8')) as Manifest;
          await this.uploader.upload(info.folder + MANIFEST_OBJECT_NAME, () => Promise.resolve(bytes), this.putOptions());
          await this.spool.remove(id, MANIFEST_OBJECT_NAME, bytes.length);
        }
        await this.spool.finishSession(id);
        this.spoolShrank();
        if (info.sessionObject && this.options.sessionObjects) {
          await this.#finishRecoveredSessionObject(info, info.sessionObject, manifest, spooled.lastWrite);
        }
        this.#log(`recovered session ${id} from the spool: ${uploaded} chunk(s) uploaded${manifest ? ', manifest uploaded' : ', session never closed'}`);
        results.push({ sessionId: id, chunksUploaded: uploaded, closed: manifest !== undefined });
      } catch (error) {
        const recorderError =
          error instanceof RecorderError ? error : new RecorderError(RecorderErrorCode.RecordingFailed, (error as Error).message);
        this.#log(`recovering session ${id} failed: ${recorderError.message}`);
        results.push({ sessionId: id, chunksUploaded: uploaded, closed: false, error: recorderError });
      }
    }
    return results;
  }

  async #finishRecoveredSessionObject(info: SpoolSessionInfo, ref: SessionRef, manifest: Manifest | undefined, lastWrite: Date): Promise<void> {
    const client = (this.options.sessionObjects as NonNullable<RecorderOptions['sessionObjects']>).client;
    // Count what the bucket holds now: earlier chunks left the spool before the crash.
    const objects = (await listAll(this.store, info.folder)).filter((object) => parseChunkObjectName(object.key) !== undefined);
    const last = objects.at(-1);
    const lastBytes = last ? await this.store.get(last.key) : undefined;
    const recording = {
      location: this.store.url(info.folder),
      chunks: manifest?.chunks.length ?? objects.length,
      ...(manifest && manifest.chunks.length > 0
        ? { headDigest: `sha256:${manifest.final}` }
        : lastBytes
          ? { headDigest: `sha256:${sha256Hex(lastBytes)}` }
          : {}),
    };
    const existing = await client.get(ref).catch(() => undefined);
    const phase = existing?.status?.phase;
    const startedAt = Date.parse(info.startedAt);
    let status: SessionStatus;
    if (phase !== undefined && phase !== 'Active') {
      status = { recording };
    } else if (manifest) {
      const endedAt = manifest.meta.endedAt;
      status = {
        phase: phaseForEndReason(manifest.meta.endReason ?? 'error'),
        endedAt,
        duration: formatDuration(Date.parse(endedAt) - startedAt),
        recording,
      };
    } else {
      const endedAt = new Date(Math.max(lastWrite.getTime(), startedAt)).toISOString();
      status = {
        phase: 'Terminated',
        endedAt,
        duration: formatDuration(Date.parse(endedAt) - startedAt),
        reason:
          'the gateway stopped before the session closed (crash or restart); what it had sealed was uploaded from its spool ' +
          `and verifies up to chunk ${Math.max(0, recording.chunks - 1)}`,
        recording,
      };
    }
    await client.patchStatus(ref, status);
  }

  /** Resolves when nothing is left to upload for the sessions that closed (for shutdown and tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.#sessions].map((session) => session.closed ?? Promise.resolve()));
  }

  /** Stops uploading; what is not in the bucket stays in the spool for the next start. */
  stop(): void {
    for (const session of this.#sessions) session.stopTimers();
    this.uploader.stop();
  }
}

type QueueItem = { readonly kind: 'chunk'; readonly chunk: SealedChunk } | { readonly kind: 'manifest'; readonly bytes: Uint8Array; readonly done: () => void };

/**
 * The recording of one session. Events: 'drain' (resume reading), 'failure' (RecorderError),
 * 'spooled' (seq of a chunk now durable in the spool), 'shipped' (seq of a chunk now in the store).
 */
export class SessionRecorder extends EventEmitter<{ drain: []; failure: [RecorderError]; spooled: [number]; shipped: [number] }> {
  readonly sessionId: string;
  /** Object key prefix of the session folder. */
  readonly folder: string;
  /** URL of the session folder, e.g. `s3://bucket/prefix/yyyy/mm/dd/<id>/`. */
  readonly location: string;
  readonly startedAt: Date;
  readonly info: SessionStartInfo;
  /** Milliseconds since the session started, for events' `t`. */
  readonly t: () => number;

  readonly #recorder: Recorder;
  readonly #chunker: Chunker;
  readonly #now: () => number;
  readonly #wallClock: () => number;
  readonly #forget: () => void;
  readonly #reporter: SessionStatusReporter | undefined;
  readonly #opened: Promise<void>;
  readonly #queue: QueueItem[] = [];
  readonly #uploads = new Set<Promise<void>>();
  readonly #memoryHighWater: number;
  #queuedBytes = 0;
  #lastT = 0;
  #writing = false;
  #spooledWaiters: Array<() => void> = [];
  #timer: NodeJS.Timeout | undefined;
  #timerDeadline: number | undefined;
  #paused = false;
  #failure: RecorderError | undefined;
  /** A chunk that could not be shipped at all: the manifest is then not written. */
  #fatal: RecorderError | undefined;
  #closed: Promise<SessionCloseResult> | undefined;
  // Running counts for the Session status.
  #commands = 0;
  #denied = 0;
  #approvals = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #shippedChunks = 0;
  #headSeq = -1;
  #headDigest: string | undefined;
  readonly #observer: SessionObserver | undefined;

  constructor(recorder: Recorder, info: SessionStartInfo, hooks: { forget: () => void }) {
    super();
    const options = recorder.options;
    this.#recorder = recorder;
    this.#forget = hooks.forget;
    this.info = info;
    this.sessionId = info.sessionId ?? randomUUID();
    assertValidSessionId(this.sessionId);
    if (options.sessionObjects && !isValidSessionObjectName(this.sessionId)) {
      throw new RecorderError(
        RecorderErrorCode.SessionIdInvalid,
        `session id ${JSON.stringify(this.sessionId)} cannot name a Session object: use lowercase letters, digits, '-' and '.'`,
      );
    }
    this.#now = options.now ?? (() => performance.now());
    this.#wallClock = options.wallClock ?? Date.now;
    this.#memoryHighWater = options.memoryHighWaterBytes ?? DEFAULT_MEMORY_HIGH_WATER_BYTES;
    this.startedAt = new Date(this.#wallClock());
    this.t = createSessionClock(this.#now);
    this.folder = sessionFolder(options.prefix ?? '', this.startedAt, this.sessionId);
    this.location = recorder.store.url(this.folder);
    this.#chunker = new Chunker({
      sessionId: this.sessionId,
      signingKey: options.signingKey,
      ...(options.encryption ? { encryption: options.encryption } : {}),
      ...(options.compression ? { compression: options.compression } : {}),
      ...(options.maxChunkBytes ? { maxChunkBytes: options.maxChunkBytes } : {}),
      ...(options.maxChunkAgeMs ? { maxChunkAgeMs: options.maxChunkAgeMs } : {}),
      now: this.#now,
    });

    const sessionObjects = options.sessionObjects;
    const ref = sessionObjects ? { namespace: sessionObjects.namespace, name: this.sessionId } : undefined;
    this.#opened = recorder.spool.openSession({
      v: 1,
      sessionId: this.sessionId,
      folder: this.folder,
      startedAt: this.startedAt.toISOString(),
      ...(ref ? { sessionObject: ref } : {}),
      ...(options.retention ? { retention: options.retention } : {}),
    });
    // Failures surface when the first chunk is written; keep the promise from being unhandled.
    this.#opened.catch(() => undefined);

    if (sessionObjects && ref) {
      this.#reporter = new SessionStatusReporter(sessionObjects.client, ref, {
        ...(sessionObjects.intervalMs === undefined ? {} : { intervalMs: sessionObjects.intervalMs }),
        ...(options.log ? { log: options.log } : {}),
      });
      this.#reporter.setSnapshot(() => this.#runningStatus());
      this.#reporter.start(this.#spec(), { phase: 'Active', recording: { location: this.location, chunks: 0 } });
    }
    this.#observer = options.observer?.sessionStarted(this);

    this.append({
      t: 0,
      k: EventKind.SessionStart,
      protocol: info.protocol,
      connection: info.connection,
      startedAt: this.startedAt.toISOString(),
      ...(info.clientAddress === undefined
        ? {}
        : { client: { addr: info.clientAddress, ...(info.clientApplication === undefined ? {} : { app: info.clientApplication }) } }),
      ...(info.target === undefined ? {} : { target: info.target }),
    });
  }

  /** The failure reported to the gateway, if any. */
  get failure(): RecorderError | undefined {
    return this.#failure;
  }

  /** Resolves when the session is closed and shipped; undefined before `close`. */
  get closed(): Promise<SessionCloseResult> | undefined {
    return this.#closed;
  }

  /** Session status writes that reached the API server so far (batching: far fewer than events). */
  get statusWrites(): number {
    return this.#reporter?.writes ?? 0;
  }

  /** Bytes this session holds in memory: the chunker's buffer and sealed chunks not yet in the spool. */
  get memoryBytes(): number {
    return this.#chunker.bufferedBytes + this.#queuedBytes;
  }

  /** Registers a failure callback (also emitted as 'failure'); called at once if the session already failed. */
  onFailure(callback: (error: RecorderError) => void): void {
    if (this.#failure) callback(this.#failure);
    else this.once('failure', callback);
  }

  /**
   * Records an event. Returns quickly and never waits for disk or network. Returns false when the
   * gateway should stop reading from its sockets until 'drain' (the event was still recorded).
   * Throws EVENT_INVALID / EVENT_TOO_LARGE (caller bugs) and CHUNKER_CLOSED after `close`.
   */
  append(event: RecordingEvent): boolean {
    const sealed = this.#chunker.append(event);
    if (event.t > this.#lastT) this.#lastT = event.t;
    this.#count(event);
    this.#observer?.event(event);
    for (const chunk of sealed) this.#enqueue({ kind: 'chunk', chunk });
    this.#armTimer();
    this.#reporter?.touch();
    return this.#accepting();
  }

  /** Seals what is buffered now (e.g. before a risky operation). */
  flush(): void {
    if (this.#closed) return;
    const chunk = this.#chunker.flush();
    if (chunk) this.#enqueue({ kind: 'chunk', chunk });
    this.#armTimer();
  }

  /**
   * Resolves once every chunk sealed so far is durable in the spool (not necessarily shipped):
   * after `flush()`, what a crash from here on would leave for the next start to upload.
   */
  spooled(): Promise<void> {
    if (this.#queue.length === 0 && !this.#writing) return Promise.resolve();
    return new Promise((resolve) => this.#spooledWaiters.push(resolve));
  }

  /**
   * Ends the session: records `session.end`, seals the tail, writes the manifest, ships everything
   * and writes the final Session status. Resolves (never rejects) once shipped or failed.
   */
  close(reason: string, options: CloseOptions = {}): Promise<SessionCloseResult> {
    this.#closed ??= this.#close(reason, options);
    return this.#closed;
  }

  /** Reports a failure to the gateway (once). */
  fail(error: RecorderError): void {
    if (this.#failure) return;
    this.#failure = error;
    this.emit('failure', error);
  }

  checkDrain(): void {
    if (this.#paused && this.#underWater()) {
      this.#paused = false;
      this.emit('drain');
    }
  }

  stopTimers(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #close(reason: string, options: CloseOptions): Promise<SessionCloseResult> {
    // Never before the last event, even if the gateway stamped events with its own clock.
    for (const chunk of this.#chunker.append({ t: Math.max(this.t(), this.#lastT), k: EventKind.SessionEnd, reason })) {
      this.#enqueue({ kind: 'chunk', chunk });
    }
    this.stopTimers();
    const endedAt = new Date(Math.max(this.#wallClock(), this.startedAt.getTime()));
    const meta: SessionMeta = {
      protocol: this.info.protocol,
      connection: this.info.connection,
      ...(this.info.user === undefined ? {} : { user: this.info.user }),
      ...(this.info.groups === undefined ? {} : { groups: [...this.info.groups] }),
      ...(this.info.clientAddress === undefined ? {} : { client: this.info.clientAddress }),
      ...(this.info.clientApplication === undefined ? {} : { clientApplication: this.info.clientApplication }),
      startedAt: this.startedAt.toISOString(),
      endedAt: endedAt.toISOString(),
      endReason: reason,
    };
    const { tail, manifest } = this.#chunker.close(meta);
    if (tail) this.#enqueue({ kind: 'chunk', chunk: tail });
    const phase = options.phase ?? phaseForEndReason(reason);
    this.#observer?.closed(reason, phase);
    const message = options.message ?? (this.#failure ? this.#failure.message : phase === 'Closed' ? undefined : reason);
    void this.#reporter?.finish({
      phase,
      endedAt: endedAt.toISOString(),
      duration: formatDuration(endedAt.getTime() - this.startedAt.getTime()),
      ...(message === undefined ? {} : { reason: message.slice(0, 1024) }),
    });

    const manifestWritten = new Promise<void>((resolve) => {
      this.#enqueue({ kind: 'manifest', bytes: manifest.bytes, done: resolve });
    });
    const result = (shipped: boolean, error?: RecorderError): SessionCloseResult => ({
      shipped,
      ...(error ? { error } : {}),
      manifest: manifest.manifest,
      location: this.location,
    });
    try {
      await manifestWritten;
      while (this.#uploads.size > 0) await Promise.all([...this.#uploads]);
      // SPOOL_FULL and SPOOL_WRITE_FAILED are reported to the gateway but nothing was lost; a chunk
      // the store refused for good (OBJECT_EXISTS) or a stopped uploader means the recording is incomplete.
      if (this.#fatal) return result(false, this.#fatal);
      const size = manifest.bytes.length;
      await this.#recorder.uploader.upload(
        this.folder + MANIFEST_OBJECT_NAME,
        this.#readOnce(manifest.bytes, MANIFEST_OBJECT_NAME),
        this.#recorder.putOptions(),
      );
      await this.#recorder.spool.remove(this.sessionId, MANIFEST_OBJECT_NAME, size);
      await this.#recorder.spool.finishSession(this.sessionId);
      this.#recorder.spoolShrank();
      await this.#reporter?.finish({
        recording: {
          location: this.location,
          chunks: manifest.manifest.chunks.length,
          ...(manifest.manifest.chunks.length > 0 ? { headDigest: `sha256:${manifest.manifest.final}` } : {}),
        },
      });
      return result(true);
    } catch (error) {
      const recorderError =
        error instanceof RecorderError ? error : new RecorderError(RecorderErrorCode.RecordingFailed, (error as Error).message);
      this.fail(recorderError);
      return result(false, recorderError);
    } finally {
      this.#forget();
    }
  }

  #enqueue(item: QueueItem): void {
    this.#queue.push(item);
    this.#queuedBytes += item.kind === 'chunk' ? item.chunk.bytes.length : item.bytes.length;
    void this.#pumpWrites();
  }

  /** Writes queued chunks to the spool in order, one at a time, and hands each to the uploader. */
  async #pumpWrites(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    const spool = this.#recorder.spool;
    let attempt = 0;
    try {
      while (this.#queue.length > 0) {
        const item = this.#queue[0] as QueueItem;
        try {
          await this.#opened;
          if (item.kind === 'chunk') await spool.writeChunk(this.sessionId, item.chunk.seq, item.chunk.bytes);
          else await spool.writeManifest(this.sessionId, item.bytes);
        } catch (error) {
          // The disk refused (full, read-only): report, keep the item, try again. The memory
          // high-water mark makes the gateway pause meanwhile.
          this.fail(
            error instanceof RecorderError
              ? error
              : new RecorderError(RecorderErrorCode.SpoolWriteFailed, `spool write failed: ${(error as Error).message}`),
          );
          attempt += 1;
          await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** attempt)).unref());
          continue;
        }
        attempt = 0;
        this.#queue.shift();
        if (item.kind === 'chunk') {
          this.#queuedBytes -= item.chunk.bytes.length;
          this.#ship(item.chunk);
          this.emit('spooled', item.chunk.seq);
        } else {
          this.#queuedBytes -= item.bytes.length;
          item.done();
        }
        if (spool.full) this.#recorder.spoolOverflowed();
        this.checkDrain();
      }
    } finally {
      this.#writing = false;
      if (this.#queue.length === 0) for (const resolve of this.#spooledWaiters.splice(0)) resolve();
    }
  }

  #ship(chunk: SealedChunk): void {
    const name = chunkObjectName(chunk.seq);
    const size = chunk.bytes.length;
    const { seq, digest } = chunk;
    const spool = this.#recorder.spool;
    const upload = this.#recorder.uploader
      .upload(this.folder + name, this.#readOnce(chunk.bytes, name), this.#recorder.putOptions())
      .then(
        async () => {
          await spool.remove(this.sessionId, name, size);
          this.#shippedChunks += 1;
          if (seq > this.#headSeq) {
            this.#headSeq = seq;
            this.#headDigest = digest;
          }
          this.#reporter?.touch();
          this.#recorder.spoolShrank();
          this.emit('shipped', seq);
        },
        (error: unknown) => {
          this.#fatal ??= error as RecorderError;
          this.fail(error as RecorderError);
        },
      )
      .finally(() => {
        this.#uploads.delete(upload);
      });
    this.#uploads.add(upload);
  }

  /**
   * The uploader's `read` for a file just made durable in the spool. When a worker is free the
   * uploader calls it at once, inside `upload()`: it then gets the bytes still in memory (the same
   * bytes the spool holds) instead of reading the file back. Every later call — a queued job, a
   * retry — reads the spool, so memory stays bounded by the upload concurrency as before.
   */
  #readOnce(bytes: Uint8Array, name: string): () => Promise<Uint8Array> {
    let held: Uint8Array | undefined = bytes;
    queueMicrotask(() => {
      held = undefined;
    });
    return () => {
      const inMemory = held;
      held = undefined;
      return inMemory ? Promise.resolve(inMemory) : this.#recorder.spool.read(this.sessionId, name);
    };
  }

  #armTimer(): void {
    const deadline = this.#chunker.closed ? undefined : this.#chunker.deadline();
    if (deadline === this.#timerDeadline && (deadline === undefined || this.#timer !== undefined)) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerDeadline = deadline;
    if (deadline === undefined) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerDeadline = undefined;
        if (this.#chunker.closed) return;
        const chunk = this.#chunker.tick();
        if (chunk) this.#enqueue({ kind: 'chunk', chunk });
        this.#armTimer();
      },
      Math.max(0, Math.ceil(deadline - this.#now())),
    );
    this.#timer.unref();
  }

  #underWater(): boolean {
    return this.memoryBytes <= this.#memoryHighWater && this.#recorder.spool.usedBytes <= this.#recorder.spoolHighWaterBytes;
  }

  #accepting(): boolean {
    if (this.#underWater()) return true;
    this.#paused = true;
    return false;
  }

  #count(event: RecordingEvent): void {
    switch (event.k) {
      case EventKind.SqlQuery:
      case EventKind.Exec:
      case EventKind.Command:
      case EventKind.HttpRequest:
        if (event.decision === Decision.Deny) this.#denied += 1;
        else if (event.decision === Decision.RequireApproval) this.#approvals += 1;
        else this.#commands += 1;
        if (event.k === EventKind.SqlQuery) this.#bytesIn += payloadLength(event.text);
        if (event.k === EventKind.HttpRequest && event.body) this.#bytesIn += payloadLength(event.body);
        break;
      case EventKind.Approval:
        if (event.state === ApprovalState.Approved) this.#commands += 1;
        break;
      case EventKind.TermStdin:
        this.#bytesIn += payloadLength(event.data);
        break;
      case EventKind.TermStdout:
      case EventKind.TermStderr:
        this.#bytesOut += payloadLength(event.data);
        break;
      case EventKind.HttpResponse:
        if (event.body) this.#bytesOut += payloadLength(event.body);
        break;
      case EventKind.Sftp:
      case EventKind.Forward:
        // Allowed transfers are not commands; a refused one is a denial (no separate `deny` event).
        if (event.decision === Decision.Deny) this.#denied += 1;
        break;
      case EventKind.WsMessage:
        if (event.direction === MessageDirection.ToTarget) this.#bytesIn += payloadLength(event.data);
        else this.#bytesOut += payloadLength(event.data);
        break;
      case EventKind.K8sExec:
        if (event.ch === K8sExecChannel.Stdin) this.#bytesIn += payloadLength(event.data);
        else if (event.ch === K8sExecChannel.Stdout || event.ch === K8sExecChannel.Stderr) this.#bytesOut += payloadLength(event.data);
        break;
      default:
        break;
    }
  }

  #spec(): SessionSpec {
    const [, name = this.info.connection] = this.info.connection.split('/', 2);
    return {
      connection: name.slice(0, 63),
      protocol: this.info.protocol,
      user: (this.info.user ?? 'unauthenticated').slice(0, 256),
      ...(this.info.groups === undefined ? {} : { groups: this.info.groups.slice(0, 256).map((group) => group.slice(0, 256)) }),
      ...(this.info.clientAddress === undefined ? {} : { clientAddress: this.info.clientAddress.slice(0, 128) }),
      ...(this.info.clientApplication === undefined ? {} : { clientApplication: this.info.clientApplication.slice(0, 512) }),
      startedAt: this.startedAt.toISOString(),
    };
  }

  #runningStatus(): SessionStatus {
    return {
      commands: this.#commands,
      denied: this.#denied,
      approvals: this.#approvals,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      ...(this.#closed ? {} : { duration: formatDuration(this.#wallClock() - this.startedAt.getTime()) }),
      recording: {
        location: this.location,
        chunks: this.#shippedChunks,
        ...(this.#headDigest === undefined ? {} : { headDigest: `sha256:${this.#headDigest}` }),
      },
    };
  }
}

