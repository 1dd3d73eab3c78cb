// Recorder-core micro-benchmark: CPU per event (HTTP) and per MiB (SSH) of the real SessionRecorder
// — validation, serialisation, chunking, zstd, signing and chaining, fsynced spool writes, shipping
// into a DirectoryStore on local disk — without a gateway in front. Every recording is verified
// afterwards with the same code as `warden verify` (signatures, chain, manifest, event bodies).
//
//   node_modules/.bin/node bench/recorder-events.ts                 # both workloads
//   BENCH_WORKLOAD=http node_modules/.bin/node bench/recorder-events.ts
//   BENCH_WORKLOAD=ssh BENCH_MIB=256 node_modules/.bin/node --cpu-prof --cpu-prof-dir=/tmp/prof bench/recorder-events.ts
//
// http: BENCH_SESSIONS (64) sessions, BENCH_REQUESTS (200000) request/response pairs spread over
//   them round-robin, small JSON bodies; every BENCH_PAIRS_PER_CHUNK (25) pairs a session seals a
//   chunk (what the 2 s time bound does in the gateway at ~800 requests/s over 64 connections).
// ssh: one session, BENCH_MIB (256) MiB of random binary terminal output in 32–64 KiB events
//   (base64 payloads, as the SSH adapter records non-UTF-8 output), 1 MiB chunks by size.
//
// Prints per workload: CPU µs per event (http) or ms per MiB of payload (ssh), measured with
// process.cpuUsage over the whole run including close and shipping, the chunk count and stored size.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey } from '../src/recorder/crypto.ts';
import { EventKind, type RecordingEvent } from '../src/recorder/events.ts';
import { MANIFEST_OBJECT_NAME, parseChunkObjectName } from '../src/recorder/naming.ts';
import { Recorder, type SessionRecorder } from '../src/recorder/recorder.ts';
import { listAll } from '../src/recorder/store.ts';
import { DirectoryStore } from '../src/recorder/store-dir.ts';
import { verifyRecording } from '../src/recorder/verify.ts';

const MIB = 1024 * 1024;
const workload = process.env.BENCH_WORKLOAD ?? 'both';
const signingKey = generateSigningKey();

interface Figures {
  readonly [key: string]: number | string | boolean;
}

async function withRecorder<T>(run: (recorder: Recorder, store: DirectoryStore) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'warden-bench-rec-'));
  try {
    const store = new DirectoryStore(join(dir, 'bucket'));
    const recorder = await Recorder.open({ store, spoolDir: join(dir, 'spool'), signingKey, uploadConcurrency: 4 });
    try {
      return await run(recorder, store);
    } finally {
      recorder.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Verifies every session in the store as `warden verify` does; throws on the first problem. */
async function verifyAll(store: DirectoryStore, sessions: readonly SessionRecorder[]): Promise<{ bytes: number; chunks: number }> {
  let bytes = 0;
  let chunks = 0;
  for (const session of sessions) {
    const objects = await listAll(store, session.folder);
    const input: { name: string; bytes: Uint8Array }[] = [];
    let manifest: Uint8Array | undefined;
    for (const object of objects) {
      const name = object.key.slice(session.folder.length);
      const content = await store.get(object.key);
      if (content === undefined) throw new Error(`${object.key} vanished`);
      bytes += content.length;
      if (name === MANIFEST_OBJECT_NAME) manifest = content;
      else if (parseChunkObjectName(name) !== undefined) input.push({ name, bytes: content });
    }
    chunks += input.length;
    const report = verifyRecording({ chunks: input, ...(manifest ? { manifest } : {}) }, signingKey, { sessionId: session.sessionId });
    if (!report.ok || !report.closed) throw new Error(`session ${session.sessionId} does not verify: ${JSON.stringify(report.problems)}`);
  }
  return { bytes, chunks };
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  lastSystemMs = used.system / 1000;
  return (used.user + used.system) / 1000;
}
/** System (kernel) part of the last `cpuMs` figure: mostly the spool's and the store's fsyncs. */
let lastSystemMs = 0;

const pause = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function appendHonouringBackPressure(session: SessionRecorder, event: RecordingEvent): Promise<void> {
  if (!session.append(event)) await new Promise<void>((resolve) => session.once('drain', resolve));
}

async function http(): Promise<Figures> {
  const sessionCount = Number(process.env.BENCH_SESSIONS ?? 64);
  const requests = Number(process.env.BENCH_REQUESTS ?? 200_000);
  const pairsPerChunk = Number(process.env.BENCH_PAIRS_PER_CHUNK ?? 25);
  return await withRecorder(async (recorder, store) => {
    const sessions = Array.from({ length: sessionCount }, (_, i) =>
      recorder.startSession({
        protocol: 'http',
        connection: 'bench/api',
        user: `user-${i}@example.com`,
        clientAddress: `10.0.0.${i}:5${String(i).padStart(4, '0')}`,
        clientApplication: 'curl/8.5.0',
        target: 'http://api.bench.svc:8080',
      }),
    );
    const started = process.cpuUsage();
    for (let i = 0; i < requests; i++) {
      const session = sessions[i % sessionCount] as SessionRecorder;
      const id = Math.floor(i / sessionCount) + 1;
      // What the HTTP gateway records for a small JSON API call (src/sidecar/http/recording.ts).
      await appendHonouringBackPressure(session, {
        t: session.t(),
        k: EventKind.HttpRequest,
        id,
        method: i % 4 === 0 ? 'POST' : 'GET',
        url: `/api/v1/items/${i % 997}?expand=owner`,
        headers: { accept: 'application/json', 'user-agent': 'curl/8.5.0', 'content-type': 'application/json' },
        ...(i % 4 === 0 ? { body: { text: `{"name":"item-${i}","qty":${i % 13}}` } } : {}),
        decision: 'allow',
        rule: 'read-items',
      } as RecordingEvent);
      await appendHonouringBackPressure(session, {
        t: session.t(),
        k: EventKind.HttpResponse,
        id,
        status: 200,
        headers: { 'content-type': 'application/json', 'content-length': '58', date: 'Thu, 03 Dec 2026 16:00:00 GMT' },
        body: { text: `{"id":${i % 997},"name":"item-${i % 997}","owner":"team-a","qty":${i % 13}}` },
      } as RecordingEvent);
      if (id % pairsPerChunk === 0) session.flush();
      if (i % 64 === 0) await pause();
    }
    await Promise.all(sessions.map((session) => session.close('client-closed')));
    const cpu = cpuMs(started);
    const { bytes, chunks } = await verifyAll(store, sessions);
    const events = requests * 2;
    return {
      workload: 'http',
      sessions: sessionCount,
      events,
      chunks,
      storedMiB: +(bytes / MIB).toFixed(2),
      cpuMs: +cpu.toFixed(0),
      systemMs: +lastSystemMs.toFixed(0),
      cpuUsPerEvent: +((cpu * 1000) / events).toFixed(2),
      cpuUsPerChunk: +((cpu * 1000) / chunks).toFixed(0),
      verified: true,
    };
  });
}

async function ssh(): Promise<Figures> {
  const totalMiB = Number(process.env.BENCH_MIB ?? 256);
  return await withRecorder(async (recorder, store) => {
    const session = recorder.startSession({ protocol: 'ssh', connection: 'bench/host', user: 'bench' });
    // Distinct random blocks generated up front so the generator is not measured; 32–64 KiB each.
    const pool = Array.from({ length: 64 }, (_, i) => randomBytes(32 * 1024 + ((i * 4099) % (32 * 1024))).toString('base64'));
    const started = process.cpuUsage();
    let payload = 0;
    for (let i = 0; payload < totalMiB * MIB; i++) {
      const b64 = pool[i % pool.length] as string;
      const size = (b64.length / 4) * 3 - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
      payload += size;
      await appendHonouringBackPressure(session, { t: session.t(), k: EventKind.TermStdout, data: { b64 } });
      if (i % 16 === 0) await pause();
    }
    await session.close('client-closed');
    const cpu = cpuMs(started);
    const { bytes, chunks } = await verifyAll(store, [session]);
    return {
      workload: 'ssh',
      payloadMiB: +(payload / MIB).toFixed(1),
      chunks,
      storedMiB: +(bytes / MIB).toFixed(1),
      cpuMs: +cpu.toFixed(0),
      systemMs: +lastSystemMs.toFixed(0),
      cpuMsPerMiB: +(cpu / (payload / MIB)).toFixed(2),
      verified: true,
    };
  });
}

const results: Figures[] = [];
if (workload === 'http' || workload === 'both') results.push(await http());
if (workload === 'ssh' || workload === 'both') results.push(await ssh());
for (const figures of results) process.stdout.write(`${JSON.stringify(figures)}\n`);
