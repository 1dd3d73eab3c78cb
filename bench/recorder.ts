// Recorder benchmark: records a terminal session that streams BENCH_MIB MiB of output (default
// 1024) through the real recorder — chunker, spool, uploader — into a MinIO started for the run,
// honouring back-pressure the way a gateway does (pause on `append() === false`, resume on 'drain').
//
//   node_modules/.bin/node bench/recorder.ts            # 1 GiB, text-like output
//   BENCH_MIB=256 BENCH_DATA=random node_modules/.bin/node bench/recorder.ts
//
// Prints: throughput (MiB/s of terminal output recorded and shipped, until the manifest is in the
// bucket), peak RSS of this process, CPU time per MiB (this process; MinIO's CPU is not included),
// chunk count and compressed size. Needs the MinIO binary the test plane builds (npm run testbin).

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMinio } from '../test/plane/minio.ts';
import { generateSigningKey } from '../src/recorder/crypto.ts';
import { EventKind } from '../src/recorder/events.ts';
import { Recorder } from '../src/recorder/recorder.ts';
import { S3Store } from '../src/recorder/store-s3.ts';

const MIB = 1024 * 1024;
const totalMiB = Number(process.env.BENCH_MIB ?? 1024);
const eventBytes = Number(process.env.BENCH_EVENT_BYTES ?? 4096);
const random = process.env.BENCH_DATA === 'random';

/** Terminal-like output: `ls -l`/log lines with varying numbers (compresses roughly like real output). */
function textBlock(i: number): string {
  let out = '';
  let n = i * 7919;
  while (out.length < eventBytes) {
    n = (n * 1103515245 + 12345) >>> 0;
    out += `-rw-r--r-- 1 app app ${String(n % 999_999).padStart(7)} Nov 22 ${String(n % 24).padStart(2, '0')}:${String(n % 60).padStart(2, '0')} file-${n.toString(36)}.log\r\n`;
  }
  return out.slice(0, eventBytes);
}

const dir = await mkdtemp(join(tmpdir(), 'warden-bench-'));
const minio = await startMinio(join(dir, 'minio'), () => undefined);
try {
  const store = new S3Store({
    endpoint: minio.info.endpoint,
    bucket: 'bench',
    region: minio.info.region,
    accessKey: minio.info.accessKey,
    secretKey: minio.info.secretKey,
  });
  await store.ensureBucket();
  const recorder = await Recorder.open({ store, spoolDir: join(dir, 'spool'), signingKey: generateSigningKey(), uploadConcurrency: 4 });
  let peakRss = process.memoryUsage.rss();
  let atPeak = process.memoryUsage();
  const sampler = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > peakRss) {
      peakRss = rss;
      atPeak = process.memoryUsage();
    }
  }, 20);

  // A pool of distinct blocks generated up front, so the benchmark measures the recorder, not the generator.
  const pool = Array.from({ length: 256 }, (_, i) =>
    random ? randomBytes(eventBytes).toString('latin1').replace(/[^\x20-\x7e]/g, '.') : textBlock(i),
  );
  const session = recorder.startSession({ protocol: 'ssh', connection: 'bench/host', user: 'bench' });
  const events = Math.ceil((totalMiB * MIB) / eventBytes);
  let pauses = 0;
  const cpuStart = process.cpuUsage();
  const began = performance.now();
  for (let i = 0; i < events; i++) {
    const text = pool[(i * 31) % pool.length] as string;
    if (!session.append({ t: session.t(), k: EventKind.TermStdout, data: { text } })) {
      pauses += 1;
      await new Promise<void>((resolve) => session.once('drain', resolve));
    }
    // Let timers and I/O callbacks run now and then, as a socket-driven gateway would.
    if (i % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const recordedAt = performance.now();
  const result = await session.close('client-closed');
  const shippedAt = performance.now();
  const cpu = process.cpuUsage(cpuStart);
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  recorder.stop();

  const seconds = (shippedAt - began) / 1000;
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const figures = {
    mib: totalMiB,
    data: random ? 'random printable' : 'text-like',
    eventBytes,
    shipped: result.shipped,
    chunks: result.manifest.totals.chunks,
    storedMiB: +(result.manifest.totals.bytes / MIB).toFixed(1),
    recordSeconds: +((recordedAt - began) / 1000).toFixed(2),
    totalSeconds: +seconds.toFixed(2),
    throughputMiBps: +(totalMiB / seconds).toFixed(1),
    peakRssMiB: +(peakRss / MIB).toFixed(1),
    maxRssMiB: +(process.resourceUsage().maxRSS / 1024).toFixed(1),
    atPeakMiB: {
      heapTotal: +(atPeak.heapTotal / MIB).toFixed(1),
      heapUsed: +(atPeak.heapUsed / MIB).toFixed(1),
      external: +(atPeak.external / MIB).toFixed(1),
      arrayBuffers: +(atPeak.arrayBuffers / MIB).toFixed(1),
    },
    cpuMsPerMiB: +((cpuSeconds * 1000) / totalMiB).toFixed(2),
    backPressurePauses: pauses,
  };
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
} finally {
  await minio.stop();
  await rm(dir, { recursive: true, force: true });
}
