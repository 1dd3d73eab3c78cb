// `warden replay <session>` and `warden export <session>`: read a recording out of the bucket (each
// chunk checked before its events are used) and show it: terminal sessions in real time or as
// asciicast v2, SQL / HTTP / Kubernetes sessions as a timeline; or export the events as JSONL / CSV.

import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { createInterface } from 'node:readline/promises';
import { Command, Option } from 'commander';
import { EventKind, type RecordingEvent } from '../recorder/events.ts';
import { ExportFormat, exportLines } from '../recorder/export.ts';
import { noProgress, progressLine } from './progress.ts';
import { readSessionEvents } from '../recorder/reader.ts';
import { asciicastLines, isTerminalProtocol, playTerminal, printTimeline } from '../recorder/replay.ts';
import { type AccessOptions, addAccessOptions, ExitCode, runCommand, UsageError, usageExitCode } from './command-kit.ts';

/** The first event (to learn the protocol) and the whole stream again. */
async function peek(events: AsyncGenerator<RecordingEvent>): Promise<{ first: RecordingEvent | undefined; all: AsyncIterable<RecordingEvent> }> {
  const head = await events.next();
  const first = head.done ? undefined : head.value;
  async function* all(): AsyncGenerator<RecordingEvent> {
    if (first) yield first;
    yield* events;
  }
  return { first, all: all() };
}

async function openEvents(session: string, options: AccessOptions): Promise<{ events: AsyncGenerator<RecordingEvent>; location: string; protocol?: string }> {
  // Loaded here, not at the top: it brings the Kubernetes and S3 clients (see command-kit.ts).
  const { assertSessionFolder, loadDecryptionKeys, loadPublicKeys, resolveRecording } = await import('./recording-access.ts');
  const trustedKeys = loadPublicKeys(options);
  const decryptionKeys = loadDecryptionKeys(options);
  const { store, folder, session: object } = await resolveRecording(session, options);
  await assertSessionFolder(store, folder);
  return {
    events: readSessionEvents(store, folder, { trustedKeys, decryptionKeys }),
    location: store.url(folder),
    ...(object ? { protocol: object.spec.protocol } : {}),
  };
}

function output(path: string | undefined): { stream: NodeJS.WritableStream; close: () => Promise<void> } {
  if (path === undefined || path === '-') return { stream: process.stdout, close: async () => undefined };
  const stream = createWriteStream(path, { flags: 'wx', mode: 0o600 });
  return {
    stream,
    close: async () => {
      stream.end();
      await finished(stream);
    },
  };
}

function positiveNumber(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new UsageError(`${name} must be a positive number, got ${JSON.stringify(value)}`);
  return number;
}

interface ReplayOptions extends AccessOptions {
  format?: 'play' | 'asciicast' | 'timeline';
  speed?: string;
  maxIdle?: string;
  step?: boolean;
  input?: boolean;
  output?: string;
}

export function replayCommand(): Command {
  const command = new Command('replay')
    .description(
      'Replay a recorded session: terminal (SSH) sessions in real time, SQL / HTTP / Kubernetes sessions as a timeline\n' +
        'with results. --format asciicast writes asciicast v2 (play it with `asciinema play`).',
    )
    .argument('<session>', 'Session name, or the recording location (s3://bucket/.../<id>/, a directory, or a key under --dir)')
    .addOption(new Option('--format <format>', 'play (terminal), timeline, or asciicast').choices(['play', 'asciicast', 'timeline']))
    .option('--speed <factor>', 'playback speed factor, e.g. 2 for twice as fast', '1')
    .option('--max-idle <seconds>', 'shorten pauses longer than this (idle-gap compression)')
    .option('--step', 'timeline: wait for Enter before each command')
    .option('--input', 'asciicast: include keystrokes as "i" events')
    .option('-o, --output <file>', 'write to a file instead of stdout');
  addAccessOptions(command);
  usageExitCode(command);
  command.action(async (session: string, options: ReplayOptions) => {
    await runCommand(async () => {
      const speed = positiveNumber('--speed', options.speed) ?? 1;
      const maxIdle = positiveNumber('--max-idle', options.maxIdle);
      const opened = await openEvents(session, options);
      const { first, all } = await peek(opened.events);
      const protocol = first?.k === EventKind.SessionStart ? first.protocol : opened.protocol;
      const terminal = isTerminalProtocol(protocol);
      const format = options.format ?? (terminal ? 'play' : 'timeline');
      if (format !== 'timeline' && !terminal) {
        throw new UsageError(`${format} is for terminal (ssh) sessions; this is a ${protocol ?? 'unknown'} session: use --format timeline or warden export`);
      }
      const { writeLines } = await import('./recording-access.ts');
      const out = output(options.output);
      try {
        if (format === 'asciicast') {
          await writeLines(
            out.stream,
            asciicastLines(all, {
              ...(options.input ? { input: true } : {}),
              ...(maxIdle === undefined ? {} : { idleTimeLimitSeconds: maxIdle }),
              title: `warden ${opened.location}`,
            }),
          );
        } else if (format === 'play') {
          await playTerminal(all, out.stream as NodeJS.WriteStream, { speed, ...(maxIdle === undefined ? {} : { maxIdleMs: maxIdle * 1000 }) });
        } else {
          const prompt = options.step && process.stdin.isTTY ? createInterface({ input: process.stdin, output: process.stderr }) : undefined;
          try {
            await printTimeline(all, (line) => out.stream.write(`${line}\n`), {
              ...(prompt ? { step: async () => void (await prompt.question('')) } : {}),
            });
          } finally {
            prompt?.close();
          }
        }
      } finally {
        await out.close();
      }
      return ExitCode.Ok;
    });
  });
  return command;
}

interface ExportOptions extends AccessOptions {
  format: ExportFormat;
  output?: string;
}

export function exportCommand(): Command {
  const command = new Command('export')
    .description('Export the events of a recorded session as JSON lines or CSV (every chunk is verified as it is read).')
    .argument('<session>', 'Session name, or the recording location (s3://bucket/.../<id>/, a directory, or a key under --dir)')
    .addOption(new Option('--format <format>', 'jsonl or csv').choices([ExportFormat.Jsonl, ExportFormat.Csv]).default(ExportFormat.Jsonl))
    .option('-o, --output <file>', 'write to a file instead of stdout');
  addAccessOptions(command);
  usageExitCode(command);
  command.action(async (session: string, options: ExportOptions) => {
    await runCommand(async () => {
      const { events, location } = await openEvents(session, options);
      const { writeLines } = await import('./recording-access.ts');
      const out = output(options.output);
      // Progress only where it cannot mix with the export itself on the same terminal.
      const progress = options.output !== undefined && options.output !== '-' ? progressLine(`exporting ${location}`) : noProgress;
      async function* counted(): AsyncGenerator<RecordingEvent> {
        let n = 0;
        for await (const event of events) {
          n += 1;
          progress.update(`${n} events`);
          yield event;
        }
      }
      try {
        await writeLines(out.stream, exportLines(counted(), options.format));
      } finally {
        progress.done();
        await out.close();
      }
      return ExitCode.Ok;
    });
  });
  return command;
}
