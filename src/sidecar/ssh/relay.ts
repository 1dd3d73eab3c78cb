import type { Readable, Writable } from 'node:stream';

/**
 * Moves data from `src` to `dst` with back-pressure: when `dst` refuses more (SSH window full,
 * socket buffer full) `src` is paused until `dst` drains, so the SSH windows on both sides do
 * the flow control end to end. `map` may transform or swallow a chunk (masking, policy).
 */
export function pump(
  src: Readable,
  dst: Writable,
  map?: (chunk: Buffer) => Uint8Array | undefined,
  /** A promise while something downstream of `map` (the recorder) is behind; src waits for it. */
  behind?: () => Promise<void> | undefined,
): void {
  // src is paused while any reason holds: the destination is full, or the recorder is behind.
  let holds = 0;
  const hold = (released: Promise<void>): void => {
    holds += 1;
    src.pause();
    void released.then(() => {
      holds -= 1;
      if (holds === 0) src.resume();
    });
  };
  let waitingForDrain = false;
  let waitingForRecorder = false;
  src.on('data', (chunk: Buffer) => {
    const out = map === undefined ? chunk : map(chunk);
    const lagging = waitingForRecorder ? undefined : behind?.();
    if (lagging !== undefined) {
      waitingForRecorder = true;
      hold(lagging.then(() => {
        waitingForRecorder = false;
      }));
    }
    if (out === undefined || out.length === 0 || dst.destroyed || dst.writableEnded) return;
    if (!dst.write(out) && !waitingForDrain) {
      waitingForDrain = true;
      hold(
        new Promise<void>((resolve) =>
          dst.once('drain', () => {
            waitingForDrain = false;
            resolve();
          }),
        ),
      );
    }
  });
}

/** Writes to `dst` respecting back-pressure of a `src` that is fed by hand. */
export function writeWithPressure(dst: Writable, data: Uint8Array, src: Readable): void {
  if (data.length === 0 || dst.destroyed || dst.writableEnded) return;
  if (!dst.write(data) && !src.isPaused()) {
    src.pause();
    dst.once('drain', () => src.resume());
  }
}

/** Resolves once everything written to `w` so far has been handed on (an empty write's callback). */
export function written(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (w.destroyed || w.writableEnded) {
      resolve();
      return;
    }
    w.write(Buffer.alloc(0), () => resolve());
  });
}

/** Resolves when `r` has delivered all its data (ended) or can no longer (destroyed). */
export function drained(r: Readable): Promise<void> {
  return new Promise((resolve) => {
    if (r.readableEnded || r.destroyed) {
      resolve();
      return;
    }
    const done = (): void => {
      r.off('end', done);
      r.off('close', onClose);
      resolve();
    };
    const onClose = (): void => {
      // 'close' can come before buffered data was read (a paused stream); wait for 'end' then.
      if (r.readableLength === 0 || r.destroyed) done();
    };
    r.on('end', done);
    r.on('close', onClose);
  });
}

/**
 * Makes an emitter's listeners unable to crash the process: an exception thrown by a listener (or
 * an 'error' event nobody listens to) is handed to `onError` instead of unwinding into ssh2's
 * packet parser or the event loop. Applied to every connection, session and channel object.
 */
export function guard(emitter: NodeJS.EventEmitter, onError: (error: unknown) => void): void {
  const emit = emitter.emit.bind(emitter);
  emitter.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    try {
      return emit(event, ...args);
    } catch (error) {
      onError(error);
      return true;
    }
  };
}
