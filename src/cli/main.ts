import { Command } from 'commander';
import { registerControllerCommand } from '../controller/cli.ts';
import { devCommand } from '../dev/cli.ts';
import { uiCommand } from '../ui/cli.ts';
import { VERSION } from '../version.ts';
import { approvalCommands } from './approvals.ts';
import { exportCommand, replayCommand } from './replay.ts';
import { sessionsCommand } from './sessions.ts';
import { sidecarCommand } from './sidecar.ts';
import { verifyCommand } from './verify.ts';

/**
 * Builds the `warden` command tree. Subcommands register themselves here as they land. Command
 * modules define their options cheaply and import what does the work inside their action, so that
 * `warden --help` and quick commands such as `warden dev token` do not load the Kubernetes, S3 and
 * telemetry clients.
 */
export function buildCli(): Command {
  const program = new Command('warden')
    .description(
      'Warden: a recorded, policy-enforcing gateway in front of PostgreSQL, SSH, Kubernetes and HTTP targets.\n' +
        'Run `warden <command> --help` for the options of a command.',
    )
    .version(VERSION, '-V, --version', 'print the Warden version')
    .helpOption('-h, --help', 'show help')
    .showHelpAfterError('(run `warden --help` for usage)')
    .showSuggestionAfterError(true);
  registerControllerCommand(program);
  program.addCommand(sessionsCommand());
  program.addCommand(replayCommand());
  program.addCommand(exportCommand());
  program.addCommand(verifyCommand());
  program.addCommand(sidecarCommand());
  program.addCommand(devCommand());
  for (const command of approvalCommands()) program.addCommand(command);
  program.addCommand(uiCommand());
  return program;
}

if (import.meta.main) {
  await buildCli().parseAsync(process.argv);
}
