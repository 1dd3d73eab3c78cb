import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { POSTGRES_GATEWAY_NODE_FLAGS } from './node-flags.ts';

// libpg-query is WASM. Under V8's default tiering, one of its functions (≈ 100 KB of code) is
// recompiled by TurboFan as soon as the first statement is parsed, and that compile takes ≈ 540 MiB
// for a second or two (VmHWM ≈ 640 MiB for a process that otherwise stays near 100 MiB): more than
// the gateway container's memory limit. The loop below runs long enough for that compile to
// finish. Postgres gateways therefore run with POSTGRES_GATEWAY_NODE_FLAGS (--liftoff-only; the
// controller renders them into the gateway's command, render.test.ts checks that). This test runs
// the real classifier in a child started with those flags and checks that parsing many distinct
// statements stays small; without the flag its high-water mark is ≈ 600 MiB and it fails.

const run = promisify(execFile);

// Classifies `n` distinct statements with every cache off (each one goes through the WASM parser),
// then prints VmHWM and the VmRSS just after the parser was loaded, in KiB.
const CHILD = `
import { readFileSync } from 'node:fs';
const { SqlClassifier } = await import(process.argv[1]);
const kib = (name) => Number(new RegExp('^' + name + ':\\\\s+(\\\\d+) kB', 'm').exec(readFileSync('/proc/self/status', 'utf8'))[1]);
const classifier = await SqlClassifier.create({ cacheSize: 0 });
const loaded = kib('VmRSS');
const n = Number(process.argv[2]);
for (let i = 0; i < n; i++) {
  const text = i % 3 === 0 ? 'SELECT abalance FROM pgbench_accounts WHERE aid = ' + i
    : i % 3 === 1 ? 'UPDATE pgbench_accounts SET abalance = abalance + ' + i + ' WHERE aid = ' + (i * 7)
    : 'INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (' + i + ', 1, ' + i + ', -' + i + ', CURRENT_TIMESTAMP)';
  if (classifier.classify(text)[0]?.statementClass === 'unparseable') throw new Error('unparseable: ' + text);
}
process.stdout.write(JSON.stringify({ loaded, hwm: kib('VmHWM') }));
`;

describe('the WASM parser under the flags warden runs with', () => {
  it('keeps the process high-water mark within 160 MiB of its size after loading, over 25,000 distinct statements', async () => {
    const flags = [...POSTGRES_GATEWAY_NODE_FLAGS];
    expect(flags).toContain('--liftoff-only');
    const { stdout } = await run(
      process.execPath,
      [...flags, '--input-type=module', '-e', CHILD, join(import.meta.dirname, 'classify.ts'), '25000'],
      { maxBuffer: 1 << 20 },
    );
    const { loaded, hwm } = JSON.parse(stdout) as { loaded: number; hwm: number };
    expect((hwm - loaded) / 1024).toBeLessThan(160);
  });
});
