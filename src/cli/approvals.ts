// `warden requests`, `warden approve NAME`, `warden deny NAME`: the approver's tools for
// just-in-time approvals (docs/approvals.md). The kubectl plugin bin/kubectl-warden runs the same
// commands as `kubectl warden requests|approve|deny`.

import { Command, Option } from 'commander';
import type { KubeConfig } from '@kubernetes/client-node';
import { ExitCode, runCommand, UsageError, usageExitCode } from './command-kit.ts';

interface ClusterOptions {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  as?: string;
}

function addClusterOptions(command: Command): Command {
  return command
    .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG or ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('-n, --namespace <ns>', 'namespace (default: the context namespace)')
    .option('--as <user>', 'impersonate this user (needs impersonate permission)');
}

async function clusterConfig(options: ClusterOptions): Promise<{ config: KubeConfig; namespace: string }> {
  // Loaded here, not at the top: the Kubernetes client is the bulk of `warden --help`'s start-up.
  const { kubeConfig } = await import('./recording-access.ts');
  const config = kubeConfig(options);
  if (options.context) {
    if (!config.getContextObject(options.context)) throw new UsageError(`no context ${JSON.stringify(options.context)} in the kubeconfig`);
    config.setCurrentContext(options.context);
  }
  if (options.as) {
    const current = config.getCurrentUser();
    if (!current) throw new UsageError('--as needs a user in the current context');
    config.users = config.users.map((user) => (user.name === current.name ? { ...user, impersonateUser: options.as } : user));
  }
  const namespace = options.namespace ?? (config.getContextObject(config.getCurrentContext())?.namespace || 'default');
  return { config, namespace };
}

async function failOnDecisionError(body: () => Promise<number>): Promise<void> {
  await runCommand(async () => {
    const { DecisionError } = await import('../approvals/decide.ts');
    try {
      return await body();
    } catch (error) {
      if (error instanceof DecisionError) {
        process.stderr.write(`warden: ${error.message}\n`);
        return ExitCode.Problems;
      }
      throw error;
    }
  });
}

interface RequestsOptions extends ClusterOptions {
  allNamespaces?: boolean;
  all?: boolean;
  output: 'table' | 'json';
}

export function requestsCommand(name = 'requests'): Command {
  const command = addClusterOptions(new Command(name))
    .description('List AccessRequests waiting for a decision (with --all, decided ones too).')
    .option('-A, --all-namespaces', 'requests of all namespaces')
    .option('--all', 'also decided and expired requests')
    .addOption(new Option('-o, --output <format>', 'table or json').choices(['table', 'json']).default('table'));
  usageExitCode(command);
  command.action(async (options: RequestsOptions) => {
    await failOnDecisionError(async () => {
      const { config, namespace } = await clusterConfig(options);
      const { isPending, listRequests, requestsTable } = await import('../approvals/decide.ts');
      const now = Date.now();
      const all = await listRequests(config, options.allNamespaces ? undefined : namespace);
      const shown = options.all ? all : all.filter((r) => isPending(r, now));
      if (options.output === 'json') {
        process.stdout.write(`${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: shown }, null, 2)}\n`);
      } else if (shown.length === 0) {
        process.stderr.write(`No ${options.all ? '' : 'pending '}AccessRequests${options.allNamespaces ? '' : ` in namespace ${namespace}`}.\n`);
      } else {
        for (const line of requestsTable(shown, { allNamespaces: options.allNamespaces === true, now })) process.stdout.write(`${line}\n`);
      }
      return ExitCode.Ok;
    });
  });
  return command;
}

interface DecideCommandOptions extends ClusterOptions {
  comment?: string;
}

export function decisionCommand(verb: 'approve' | 'deny'): Command {
  const decision = verb === 'approve' ? 'Approved' : 'Denied';
  const command = addClusterOptions(new Command(verb))
    .description(`${verb === 'approve' ? 'Approve' : 'Deny'} an AccessRequest: the held command ${verb === 'approve' ? 'runs' : 'is refused'}. You are recorded as the decider.`)
    .argument('<name>', 'the AccessRequest (see `requests`)')
    .option('-m, --comment <text>', 'a comment shown to the requester');
  usageExitCode(command);
  command.action(async (name: string, options: DecideCommandOptions) => {
    await failOnDecisionError(async () => {
      const { config, namespace } = await clusterConfig(options);
      const [{ decide }, { shortCommand }] = await Promise.all([import('../approvals/decide.ts'), import('../approvals/kube.ts')]);
      const decided = await decide(config, { namespace, name, decision, ...(options.comment ? { comment: options.comment } : {}) });
      const what = decided.spec.kind === 'Session' ? `session access to ${decided.spec.connection} for ${decided.spec.duration ?? '?'}` : shortCommand(decided.spec.command?.text, 80);
      process.stdout.write(`accessrequest.warden.dev/${name} ${decision.toLowerCase()} by ${decided.status?.decidedBy ?? '?'} (${decided.spec.requester.user}: ${what})\n`);
      return ExitCode.Ok;
    });
  });
  return command;
}

/** The three approver commands, for `warden` and for the kubectl plugin. */
export function approvalCommands(): Command[] {
  return [requestsCommand(), decisionCommand('approve'), decisionCommand('deny')];
}

/** `kubectl warden …`: the same commands under a program of their own. */
export function buildKubectlPlugin(): Command {
  const program = new Command('kubectl warden')
    .description('Warden just-in-time approvals: list AccessRequests, approve or deny them.')
    .helpOption('-h, --help', 'show help')
    .showHelpAfterError('(run `kubectl warden --help` for usage)');
  for (const command of approvalCommands()) program.addCommand(command);
  return program;
}
