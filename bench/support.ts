import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
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
  return parseStat(await readFile(`/proc/${pid}/stat`, 'utf8')).cpu;
}

/** From a /proc/<pid>/stat line: ppid, CPU seconds (utime + stime) and start time (tells a reused pid apart). */
function parseStat(stat: string): { ppid: number; cpu: number; start: string } {
  // After "pid (comm) " (comm may hold spaces and parentheses): state is field 3, ppid 4, utime
  // 14, stime 15, starttime 22 (proc(5)).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / CLK_TCK, start: fields[19] ?? '' };
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

/** pid → ppid, CPU seconds (utime + stime) and start time (to tell a reused pid) of every process. */
async function processTable(): Promise<Map<number, { ppid: number; cpu: number; start: string }>> {
  const table = new Map<number, { ppid: number; cpu: number; start: string }>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (stat !== '') table.set(Number(entry), parseStat(stat));
  }
  return table;
}

/**
 * CPU seconds used by a forking server's processes (e.g. sshd: a process per connection, which
 * forks the user's session process) over a period. Their CPU cannot be read from the listener's
 * cutime: OpenSSH's session process is often reparented to init when the connection ends, so
 * the listener never reaps it. Instead the listener's descendants are sampled every `intervalMs`
 * while the period lasts and read once more at its end (an exited process that was not reaped
 * yet still shows its times); CPU a process used after its last sample and before it was reaped
 * is missed (at most one interval of one process).
 */
export class ProcessTreeCpu {
  readonly #roots: readonly number[];
  /** `pid/starttime` → CPU seconds when first seen (0 for processes born during the period) and last seen. */
  readonly #seen = new Map<string, { pid: number; first: number; last: number }>();
  #timer: NodeJS.Timeout | undefined;
  #scanning: Promise<void> = Promise.resolve();

  constructor(roots: readonly number[]) {
    this.#roots = roots;
  }

  /** Takes the baseline, then samples every `intervalMs`. */
  async start(intervalMs = 200): Promise<void> {
    await this.#scan(true);
    this.#timer = setInterval(() => {
      this.#scanning = this.#scanning.then(() => this.#scan(false)).catch(() => undefined);
    }, intervalMs);
  }

  /** Stops sampling; resolves with the CPU seconds used since start. */
  async stop(): Promise<number> {
    clearInterval(this.#timer);
    await this.#scanning;
    await this.#scan(false);
    let total = 0;
    for (const p of this.#seen.values()) total += p.last - p.first;
    return total;
  }

  async #scan(baseline: boolean): Promise<void> {
    const table = await processTable();
    const inTree = new Set<number>(this.#roots);
    // Parents before children is not guaranteed: repeat until nothing is added.
    for (let grew = true; grew; ) {
      grew = false;
      for (const [pid, p] of table) {
        if (!inTree.has(pid) && inTree.has(p.ppid)) {
          inTree.add(pid);
          grew = true;
        }
      }
    }
    for (const [pid, p] of table) {
      const key = `${pid}/${p.start}`;
      const known = this.#seen.get(key);
      // Known processes are followed even once reparented (see the class comment).
      if (known !== undefined) known.last = Math.max(known.last, p.cpu);
      else if (inTree.has(pid)) this.#seen.set(key, { pid, first: baseline ? p.cpu : 0, last: p.cpu });
    }
  }
}
