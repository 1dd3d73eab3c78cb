// `warden verify <session>`: checks every chunk's digest and signature, the hash chain and the
// manifest of one recording, prints each problem on its own line and a summary, and exits 1 on any
// problem, 0 when the recording is intact, 2 on usage errors.

import { Command } from 'commander';
import { verifySessionFolder } from '../recorder/reader.ts';
import { progressLine } from './progress.ts';
import type { VerifyReport } from '../recorder/verify.ts';
import { type AccessOptions, addAccessOptions, ExitCode, runCommand, usageExitCode } from './command-kit.ts';

interface VerifyOptions extends AccessOptions {
  allowOpen?: boolean;
  json?: boolean;
}

export function formatReport(report: VerifyReport, location: string): string[] {
  const lines: string[] = [];
  for (const problem of report.problems) {
    const where = problem.object ?? (problem.seq === undefined ? 'recording' : `chunk ${problem.seq}`);
    lines.push(`PROBLEM ${problem.code} ${where}: ${problem.message}`);
  }
  for (const note of report.notes) lines.push(`note: ${note}`);
  const extent =
    report.verifiedThrough < 0
      ? 'no chunk verified'
      : `chunks 0..${report.verifiedThrough} verified (${report.events} events)`;
  if (report.ok) {
    lines.push(
      `OK ${location}: session ${report.sessionId ?? '?'}, ${report.closed ? 'closed, manifest verified' : 'not closed (no manifest)'}, ` +
        `${extent}, signatures and hash chain intact${report.bodiesChecked ? '' : ' (encrypted bodies not decoded)'}`,
    );
  } else {
    lines.push(
      `FAILED ${location}: ${report.problems.length} problem${report.problems.length === 1 ? '' : 's'} in session ${report.sessionId ?? '?'}; ${extent}`,
    );
  }
  return lines;
}

export function verifyCommand(): Command {
  const command = new Command('verify')
    .description(
      "Verify a session's recording: every chunk's digest and signature, the hash chain and the manifest.\n" +
        'Exits 0 when intact, 1 when anything is wrong (each problem is printed), 2 on usage errors.',
    )
    .argument('<session>', 'Session name, or the recording location (s3://bucket/.../<id>/, a directory, or a key under --dir)')
    .option('--allow-open', 'accept a recording without manifest (a session still running, or cut off by a crash)')
    .option('--json', 'print the report as JSON');
  addAccessOptions(command);
  usageExitCode(command);
  command.action(async (session: string, options: VerifyOptions) => {
    await runCommand(async () => {
      // Loaded here, not at the top: it brings the Kubernetes and S3 clients (see command-kit.ts).
      const { assertSessionFolder, loadDecryptionKeys, loadPublicKeys, resolveRecording } = await import('./recording-access.ts');
      const trustedKeys = loadPublicKeys(options);
      const decryptionKeys = loadDecryptionKeys(options);
      const { store, folder } = await resolveRecording(session, options);
      const location = store.url(folder);
      await assertSessionFolder(store, folder);
      const progress = progressLine(`verifying ${location}`);
      let report;
      try {
        report = await verifySessionFolder(store, folder, {
          trustedKeys,
          decryptionKeys,
          ...(options.allowOpen ? { allowOpen: true } : {}),
          onProgress: (done, total) => progress.update(`${done}/${total} objects`),
        });
      } finally {
        progress.done();
      }
      if (options.json) process.stdout.write(`${JSON.stringify({ location, ...report }, null, 2)}\n`);
      else for (const line of formatReport(report, location)) process.stdout.write(`${line}\n`);
      return report.ok ? ExitCode.Ok : ExitCode.Problems;
    });
  });
  return command;
}
