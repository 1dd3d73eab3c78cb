// `warden sidecar --config <file>`: the gateway process the controller's Deployment runs. The
// process itself is src/sidecar/main.ts (runSidecar), imported when the command runs.

import { Command, Option } from 'commander';
import { createLogger, type LogLevel } from '../controller/log.ts';
import { parseGoDuration } from '../policy/duration.ts';
import { SIDECAR_CONFIG_KEY, SIDECAR_PATHS, SidecarConfigError } from '../sidecar/config.ts';
import type { RunningSidecar } from '../sidecar/main.ts';

/** `warden sidecar`: registered in src/cli/main.ts. */
export function sidecarCommand(): Command {
  return new Command('sidecar')
    .description('run the gateway of one Connection from its sidecar configuration document (the controller\'s Deployment runs this)')
    .requiredOption('--config <file>', `the sidecar configuration document (in a pod: ${SIDECAR_PATHS.configDir}/${SIDECAR_CONFIG_KEY})`)
    .addOption(new Option('--grace-period <duration>', 'how long open sessions may run on after SIGTERM').default('50s'))
    .addOption(new Option('--poll-interval <duration>', 'how often the mounted file is read when the API watch is not in use').default('2s'))
    .action(async (opts: { config: string; gracePeriod: string; pollInterval: string }) => {
      const log = createLogger({ level: (process.env.WARDEN_LOG_LEVEL as LogLevel | undefined) ?? 'info' }, { component: 'sidecar', ...(process.env.POD_NAME ? { pod: process.env.POD_NAME } : {}) });
      let graceMs: number;
      let pollMs: number;
      try {
        graceMs = parseGoDuration(opts.gracePeriod);
        pollMs = parseGoDuration(opts.pollInterval);
      } catch (error) {
        log.error(`invalid option: ${(error as Error).message}`);
        process.exit(1);
      }
      let sidecar: RunningSidecar;
      try {
        // Loaded here, not at the top: the gateway process's parts (Kubernetes and S3 clients,
        // policy engine) are not needed to define the command or print its help.
        const { runSidecar } = await import('../sidecar/main.ts');
        sidecar = await runSidecar({ configPath: opts.config, log, graceMs, pollMs: Math.max(100, pollMs) });
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        const message = error instanceof SidecarConfigError ? error.message : `cannot start: ${(error as Error).message}`;
        log.error(message, { ...(typeof code === 'string' ? { code } : {}) });
        process.exit(1);
      }
      process.on('unhandledRejection', (error) => log.error('unhandled rejection (kept running)', { error: error instanceof Error ? error : String(error) }));
      await new Promise<void>((resolve) => {
        const onSignal = (signal: NodeJS.Signals): void => {
          log.info('signal received', { signal });
          sidecar.stop().then(resolve, (error: unknown) => {
            log.error('unclean stop', { error: error as Error });
            resolve();
          });
        };
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      });
      process.exit(0);
    });
}
