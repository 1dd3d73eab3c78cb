// A memory cgroup for a benchmark's gateway child, so it runs under the same memory limit as the
// container the controller renders (512Mi, src/controller/render.ts) and an over-limit peak shows
// up as what it would be in a pod: the kernel's OOM killer, not a number in a table.
//
// cgroup v2 (a writable /sys/fs/cgroup with the memory controller) or v1 (the memory hierarchy the
// bench itself runs in). Needs root or a delegated subtree; without one the bench says so and runs
// the child unconfined. Knob: BENCH_GATEWAY_MEMORY_LIMIT (MiB, default 512; 0 turns it off).

import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Cleanups, type GatewayChild, startGatewayChild } from './support.ts';

const MIB = 1024 * 1024;

/** The gateway child's memory limit in MiB from BENCH_GATEWAY_MEMORY_LIMIT (default 512, the rendered container limit); 0 = none. */
function gatewayMemoryLimitMiB(): number {
  const raw = process.env.BENCH_GATEWAY_MEMORY_LIMIT ?? '512';
  const mib = Number(raw);
  if (!Number.isInteger(mib) || mib < 0) throw new Error(`BENCH_GATEWAY_MEMORY_LIMIT must be a whole number of MiB (0 for no limit), not ${JSON.stringify(raw)}`);
  return mib;
}

interface MemoryCgroupStats {
  limitMiB: number;
  /** The group's peak charge (RSS plus page cache of files it wrote, as in a container). */
  peakMiB: number;
  /** Times the kernel's OOM killer killed a process of the group. */
  oomKills: number;
}

interface MemoryCgroup {
  /** `cgroup v2 …` / `cgroup v1 …`, for the report. */
  describe: string;
  /** Its `cgroup.procs`: a process that writes its pid here moves in (startGatewayChild's cgroupProcsFile). */
  procsFile: string;
  stats(): Promise<MemoryCgroupStats>;
  /** Removes the group (after its processes exited). */
  remove(): Promise<void>;
}

async function readNumber(file: string): Promise<number> {
  const text = (await readFile(file, 'utf8')).trim();
  return text === 'max' ? Number.POSITIVE_INFINITY : Number(text);
}

async function oomKillsFrom(file: string): Promise<number> {
  const line = (await readFile(file, 'utf8')).split('\n').find((l) => l.startsWith('oom_kill '));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

/** A created group; v1 and v2 differ only in the names of the files for the peak and the OOM kills. */
function memoryGroup(dir: string, describe: string, limitMiB: number, peakFile: string, oomFile: string): MemoryCgroup {
  return {
    describe,
    procsFile: join(dir, 'cgroup.procs'),
    stats: async () => ({
      limitMiB,
      peakMiB: (await readNumber(join(dir, peakFile)).catch(() => Number.NaN)) / MIB,
      oomKills: await oomKillsFrom(join(dir, oomFile)),
    }),
    remove: async () => await rmdir(dir).catch(() => undefined),
  };
}

/**
 * Creates a memory cgroup limited to `limitMiB` (swap included, so the limit cannot be dodged by
 * swapping). Returns a reason string instead when this machine does not allow one.
 */
async function createMemoryCgroup(name: string, limitMiB: number): Promise<MemoryCgroup | string> {
  const own = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  const unique = `${name}-${process.pid}`;
  try {
    if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
      // v2: a sibling of ours needs the memory controller enabled in our parent's subtree_control.
      const mine = own.split('\n').find((l) => l.startsWith('0::'))?.slice(3) ?? '/';
      const parent = join('/sys/fs/cgroup', mine, '..');
      const enabled = await readFile(join(parent, 'cgroup.subtree_control'), 'utf8').catch(() => '');
      if (!enabled.split(/\s+/).includes('memory')) return `cgroup v2 without the memory controller enabled at ${parent}`;
      const dir = join(parent, unique);
      await mkdir(dir);
      await writeFile(join(dir, 'memory.max'), String(limitMiB * MIB));
      await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined);
      return memoryGroup(dir, `cgroup v2 ${dir}, memory.max ${limitMiB} MiB`, limitMiB, 'memory.peak', 'memory.events');
    }
    const memory = own.split('\n').find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l));
    if (memory === undefined || !existsSync('/sys/fs/cgroup/memory')) return 'no memory cgroup hierarchy mounted';
    const dir = join('/sys/fs/cgroup/memory', memory.split(':')[2] ?? '/', unique);
    await mkdir(dir);
    await writeFile(join(dir, 'memory.limit_in_bytes'), String(limitMiB * MIB));
    // Memory+swap too, where the kernel accounts swap.
    await writeFile(join(dir, 'memory.memsw.limit_in_bytes'), String(limitMiB * MIB)).catch(() => undefined);
    return memoryGroup(dir, `cgroup v1 ${dir}, memory.limit_in_bytes ${limitMiB} MiB`, limitMiB, 'memory.max_usage_in_bytes', 'memory.oom_control');
  } catch (error) {
    return `cannot create a memory cgroup here (${(error as Error).message}); run as root or in a delegated cgroup`;
  }
}

/** One report line for a confined (or unconfined) child. */
function describeConfinement(group: MemoryCgroup | string | undefined, stats: MemoryCgroupStats | undefined): string {
  if (group === undefined) return 'no memory limit (BENCH_GATEWAY_MEMORY_LIMIT=0)';
  if (typeof group === 'string') return `no memory limit: ${group}`;
  if (stats === undefined) return group.describe;
  const verdict = stats.oomKills > 0 ? `OOM-KILLED ${stats.oomKills}× (the pod would have restarted)` : 'no OOM kill';
  return `${group.describe}: peak charge ${stats.peakMiB.toFixed(1)} MiB (what the kernel charges the group: the child's anonymous memory and the page cache it brought in), ${verdict}`;
}

/** A gateway child started inside its own memory cgroup (when BENCH_GATEWAY_MEMORY_LIMIT allows one). */
export interface ConfinedGatewayChild {
  child: GatewayChild;
  /** The report line: the limit, the group's peak charge and OOM kills (read it before cleanups run). */
  confinement(): Promise<string>;
}

/** {@link startGatewayChild} in a fresh memory cgroup limited to BENCH_GATEWAY_MEMORY_LIMIT MiB. */
export async function startConfinedGatewayChild(
  name: string,
  args: string[],
  config: unknown,
  cleanups: Cleanups,
  log: (message: string) => void,
  options: { stopGraceMs?: number } = {},
): Promise<ConfinedGatewayChild> {
  const limit = gatewayMemoryLimitMiB();
  const group = limit > 0 ? await createMemoryCgroup(`warden-bench-${name}`, limit) : undefined;
  // Registered before the child, so that its removal (cleanups run in reverse) comes after the child's stop.
  if (typeof group === 'object') cleanups.add(`memory cgroup ${name}`, async () => await group.remove());
  const child = await startGatewayChild(args, config, cleanups, { ...options, ...(typeof group === 'object' ? { cgroupProcsFile: group.procsFile } : {}) });
  log(`gateway child (${name}): ${describeConfinement(group, undefined)}`);
  return {
    child,
    confinement: async () => describeConfinement(group, typeof group === 'object' ? await group.stats() : undefined),
  };
}
