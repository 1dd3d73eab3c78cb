// A progress line for long CLI operations (verifying or exporting a big session): one line on
// stderr, rewritten in place at most every 250 ms, only when stderr is a terminal — scripts and
// logs stay quiet. `done()` clears it.

export interface Progress {
  update(text: string): void;
  done(): void;
}

/** Shows nothing. */
export const noProgress: Progress = { update: () => undefined, done: () => undefined };

export function progressLine(label: string, stream: NodeJS.WriteStream = process.stderr, now: () => number = Date.now): Progress {
  if (!stream.isTTY) return noProgress;
  let last = 0;
  let shown = false;
  return {
    update: (text) => {
      const t = now();
      if (t - last < 250) return;
      last = t;
      shown = true;
      stream.write(`\r\x1b[K${label}: ${text}`);
    },
    done: () => {
      if (shown) stream.write('\r\x1b[K');
      shown = false;
    },
  };
}
