import { readFile } from 'node:fs/promises';

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
