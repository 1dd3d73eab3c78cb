// The cheap half of the recording and approval commands: what defining a command and mapping its
// failures to exit codes needs. The work itself (Kubernetes client, S3 client, recording reader)
// lives in recording-access.ts and is imported inside each command's action, so `warden --help`
// and `warden dev token` do not load @kubernetes/client-node or minio.

import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { defaultStateDir, STATE_FILES } from '../dev/state.ts';
import { RecorderError } from '../recorder/errors.ts';

/** Exit codes of the recording commands. */
export const ExitCode = {
  Ok: 0,
  /** Verification found problems, or the recording could not be read. */
  Problems: 1,
  /** Wrong arguments or options. */
  Usage: 2,
} as const;

/** A mistake in how the command was called: exit code 2. */
export class UsageError extends Error {
  readonly code = 'USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface AccessOptions {
  endpoint?: string;
  region?: string;
  accessKey?: string;
  secretKey?: string;
  secretKeyFile?: string;
  pathStyle?: boolean;
  dir?: string;
  publicKey?: string[];
  decryptionKey?: string[];
  kubeconfig?: string;
  namespace?: string;
  /** The local recordings of `warden dev` (its state directory). */
  dev?: boolean;
  /** State directory of `warden dev` (implies dev). */
  stateDir?: string;
}

/**
 * With --dev (or --state-dir): the recordings and public key of `warden dev`'s state directory,
 * unless --dir / --public-key say otherwise.
 */
export function withDevDefaults<T extends AccessOptions>(options: T, env: NodeJS.ProcessEnv = process.env): T {
  if (!options.dev && options.stateDir === undefined) return options;
  const state = options.stateDir ?? defaultStateDir(env);
  return {
    ...options,
    dir: options.dir ?? join(state, STATE_FILES.recordings),
    publicKey: options.publicKey ?? [join(state, STATE_FILES.publicKey)],
  };
}

/** Commander argument parser of a repeatable option: the values in order. */
export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** Adds the options for reaching a recording to a command. */
export function addAccessOptions(command: Command): Command {
  return command
    .option('--endpoint <url>', 'S3 endpoint, e.g. https://minio.example:9000 (env WARDEN_S3_ENDPOINT)')
    .option('--region <region>', 'S3 region (env AWS_REGION, default us-east-1)')
    .option('--access-key <id>', 'S3 access key id (env AWS_ACCESS_KEY_ID)')
    .option('--secret-key <key>', 'S3 secret key; prefer the env AWS_SECRET_ACCESS_KEY or --secret-key-file')
    .option('--secret-key-file <file>', 'file holding the S3 secret key')
    .addOption(new Option('--no-path-style', 'virtual-host-style bucket addressing (AWS); path style is the default'))
    .option('--dir <root>', 'read from a local directory store instead of a bucket')
    .option('--dev', 'read the local recordings of `warden dev` (with its public key)')
    .option('--state-dir <dir>', 'state directory of `warden dev` (implies --dev; env WARDEN_DEV_HOME)')
    .option('--public-key <file>', 'Ed25519 public key (PEM or raw) trusted to have signed recordings; repeat during a key rotation (env WARDEN_PUBLIC_KEY)', collect)
    .option('--decryption-key <[kid=]file>', 'AES-256 key of client-side encrypted recordings; repeatable', collect)
    .option('--kubeconfig <file>', 'kubeconfig for finding a Session object (default: $KUBECONFIG or ~/.kube/config)')
    .option('-n, --namespace <ns>', 'namespace of the Session object (default: search all namespaces)');
}

/** Runs a command body and maps failures to exit codes and one clear message on stderr. */
export async function runCommand(body: () => Promise<number>): Promise<void> {
  // `warden export … | head`: a reader that goes away is not an error worth a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? ExitCode.Ok);
    throw error;
  });
  let code: number;
  try {
    code = await body();
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`warden: ${error.message}\n`);
      code = ExitCode.Usage;
    } else if (error instanceof RecorderError) {
      process.stderr.write(`warden: ${error.code}: ${error.message}\n`);
      code = ExitCode.Problems;
    } else {
      process.stderr.write(`warden: ${(error as Error).message}\n`);
      code = ExitCode.Problems;
    }
  }
  process.exitCode = code;
}

/** Commander's own usage errors (unknown option, missing argument) exit 2 like ours. */
export function usageExitCode(command: Command): Command {
  return command.exitOverride((error) => {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.help' || error.code === 'commander.version') process.exit(0);
    process.exit(ExitCode.Usage);
  });
}
