import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A progress line from the plane; the global setup prints these so a slow first run is visible. */
export type Log = (message: string) => void;

/** A started server or helper process with a way to stop it. */
export interface Started<T> {
  info: T;
  stop(): Promise<void>;
}

/** Asks the kernel for a free loopback TCP port. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the port of a probe listener'));
      });
    });
  });
}

export interface ProcessOptions {
  /** Name used in messages and the log file name. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** File that receives the process's stdout and stderr. */
  logFile: string;
}

/** A long-running child process whose output goes to a log file; stopping it waits for exit. */
export class ManagedProcess {
  readonly child: ChildProcess;
  readonly options: ProcessOptions;
  #exited: Promise<number | null>;
  #exitCode: number | null | undefined;

  constructor(options: ProcessOptions) {
    this.options = options;
    const out = createWriteStream(options.logFile, { flags: 'a' });
    this.child = spawn(options.command, options.args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Own process group, so stop() reaches children the server forks (postgres backends).
      detached: true,
    });
    this.child.stdout?.pipe(out);
    this.child.stderr?.pipe(out);
    this.#exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.#exitCode = code ?? (signal ? -1 : null);
        resolve(this.#exitCode);
      });
      this.child.on('error', (error) => {
        out.write(`spawn error: ${error.message}\n`);
        this.#exitCode = -1;
        resolve(-1);
      });
    });
  }

  /** True once the process has exited (for readiness loops: stop waiting, read the log). */
  get exited(): boolean {
    return this.#exitCode !== undefined;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exited || this.child.pid === undefined) return;
    const pid = this.child.pid;
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        process.kill(-pid, signal);
      } catch {
        // Already gone.
      }
    };
    signalGroup('SIGTERM');
    const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }
}

/**
 * Polls `probe` until it resolves true, the process exits, or `timeoutMs` passes. On failure the
 * error carries the tail of the process log, because "timed out" alone helps nobody.
 */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs?: number; intervalMs?: number; process?: ManagedProcess } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (options.process?.exited) {
      throw new Error(`${what}: the process exited early; see ${options.process.options.logFile}${logTail(options.process.options.logFile)}`);
    }
    try {
      if (await probe()) return;
    } catch (error) {
      lastError = error;
    }
    await sleep(options.intervalMs ?? 100);
  }
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  const log = options.process ? `; see ${options.process.options.logFile}${logTail(options.process.options.logFile)}` : '';
  throw new Error(`${what}: not ready after ${options.timeoutMs ?? 60_000} ms${detail}${log}`);
}

/** The last lines of a log file, for an error message (the file may be gone when the error is read). */
function logTail(file: string, lines = 20): string {
  try {
    const tail = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    return tail === '' ? '' : `; its last lines:\n${tail}`;
  } catch {
    return '';
  }
}

/** Resolves true when a TCP connection to host:port succeeds. */
export async function canConnect(host: string, port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface Captured {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when the process was killed by a signal. */
  code: number;
}

/** Runs a command to completion and returns its output and exit code, whatever the code. */
export async function capture(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {},
): Promise<Captured> {
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? process.env, cwd: options.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ stdout, stderr, code: code ?? (signal ? -1 : 0) }));
    // A command that exits without reading its input (id, pg_isready) closes the pipe: EPIPE here
    // is expected and must not become an unhandled 'error' event that kills the runner.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** Runs a command to completion and returns its output; rejects with stderr on a non-zero exit. */
export async function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  const { stdout, stderr, code } = await capture(command, args, options);
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.trim() || stdout.trim()}`);
  }
  return { stdout, stderr };
}
