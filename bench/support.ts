import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';

// Shared by the benchmarks: what they read of a gateway child process from /proc (proc(5)).

/** Clock ticks per second for /proc/<pid>/stat times (USER_HZ; 100 on Linux x86-64). */
const CLK_TCK = 100;

/** VmRSS and VmHWM (peak RSS) of a process, in KiB. */
export async function memoryOf(pid: number): Promise<{ rssKiB: number; hwmKiB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM') };
}

/** User + system CPU seconds a process has used. */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state is field 3, utime 14, stime 15 (proc(5)).
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Things to undo at the end of a benchmark, in reverse order, also on Ctrl-C. */
export class Cleanups {
  readonly #steps: Array<{ what: string; run: () => Promise<unknown> }> = [];
  readonly #log: (message: string) => void;
  #running: Promise<void> | undefined;

  constructor(log: (message: string) => void) {
    this.#log = log;
  }

  add(what: string, run: () => Promise<unknown>): void {
    this.#steps.push({ what, run });
  }

  /** Runs every step once (later calls share the first run); a failing step is logged, not fatal. */
  run(): Promise<void> {
    this.#running ??= (async () => {
      for (const { what, run } of this.#steps.reverse()) {
        try {
          await run();
        } catch (error) {
          this.#log(`cleanup: ${what}: ${(error as Error).message}`);
        }
      }
    })();
    return this.#running;
  }

  /** SIGINT/SIGTERM stop servers and remove temporary files, then exit 130. */
  onSignals(): void {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        this.#log(`${signal}: stopping servers and removing temporary files`);
        void this.run().finally(() => process.exit(130));
      });
    }
  }
}

export type ChildMessage = Record<string, unknown>;

/**
 * A gateway run in a child process (so its RSS and CPU are its own). The child reads its config as
 * JSON on stdin and writes JSON lines on stdout: `{ready: true, port, …}` once listening,
 * `{stopped: true, …}` on SIGTERM, anything else a benchmark wants to report.
 */
export interface GatewayChild {
  pid: number;
  port: number;
  /** The child's `ready` message. */
  ready: ChildMessage;
  /** Resolves with the first message `pick` finds; rejects on timeout or when the child exits. */
  waitFor(pick: (messages: readonly ChildMessage[]) => ChildMessage | undefined, timeoutMs: number, what: string): Promise<ChildMessage>;
  /** SIGTERM (SIGKILL after a grace period); resolves with the `stopped` message. */
  stop(): Promise<ChildMessage | undefined>;
}

export async function startGatewayChild(
  args: string[],
  config: unknown,
  cleanups: Cleanups,
  options: { stopGraceMs?: number; readyTimeoutMs?: number; cgroupProcsFile?: string } = {},
): Promise<GatewayChild> {
  // In a cgroup from its first instruction (bench/cgroup.ts), so every page it touches is charged
  // there: /bin/sh writes its own pid into the group, then execs Node under that same pid.
  const child: ChildProcess =
    options.cgroupProcsFile === undefined
      ? spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] })
      : spawn('/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', options.cgroupProcsFile, process.execPath, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const messages: ChildMessage[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      messages.push(JSON.parse(line) as ChildMessage);
    } catch {
      process.stderr.write(`gateway: ${line}\n`);
    }
    for (const w of waiters) w();
  });
  const hasExited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    for (const w of waiters) w();
  });
  const waitFor: GatewayChild['waitFor'] = async (pick, timeoutMs, what) =>
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const done = (error?: Error, value?: ChildMessage): void => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error) reject(error);
        else resolve(value!);
      };
      const check = (): void => {
        const m = pick(messages);
        if (m) done(undefined, m);
        else if (hasExited()) done(new Error(`gateway child exited while waiting for ${what} (see its stderr above)`));
      };
      waiters.add(check);
      check();
    });
  child.stdin!.end(JSON.stringify(config));
  const ready = await waitFor((ms) => ms.find((m) => m.ready === true), options.readyTimeoutMs ?? 60_000, 'the gateway child to listen');
  let stopped: Promise<ChildMessage | undefined> | undefined;
  const handle: GatewayChild = {
    pid: child.pid!,
    port: Number(ready.port),
    ready,
    waitFor,
    stop: () => {
      stopped ??= (async () => {
        if (!hasExited()) {
          child.kill('SIGTERM');
          const killer = setTimeout(() => child.kill('SIGKILL'), options.stopGraceMs ?? 20_000);
          await exited;
          clearTimeout(killer);
        }
        return messages.find((m) => m.stopped === true);
      })();
      return stopped;
    },
  };
  cleanups.add('gateway child', () => handle.stop());
  return handle;
}
