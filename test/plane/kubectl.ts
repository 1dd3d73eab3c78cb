/**
 * Talking to the test plane's API server: the real kubectl for what a user would type, and a
 * @kubernetes/client-node config for what code does (watches, typed clients).
 */
import { dirname, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { type Captured, capture } from './proc.ts';
import type { KubeInfo } from './types.ts';

export interface KubectlOptions {
  /** Written to kubectl's stdin, e.g. a manifest for `apply -f -`. */
  input?: string;
  /** Adds `--namespace`. */
  namespace?: string;
}

export type KubectlResult = Captured;

/**
 * Runs kubectl as the plane's admin and resolves with its output and exit code, also on failure,
 * so tests can assert on refusals. Impersonation is plain arguments: `['--as=nobody', 'get', …]`.
 */
export async function kubectl(
  kube: KubeInfo,
  args: string[],
  options: KubectlOptions = {},
): Promise<KubectlResult> {
  const fullArgs = [
    `--kubeconfig=${kube.kubeconfig}`,
    // Discovery cache inside the plane's directory, not the developer's ~/.kube/cache.
    `--cache-dir=${join(dirname(kube.kubeconfig), 'kubectl-cache')}`,
    ...(options.namespace === undefined ? [] : [`--namespace=${options.namespace}`]),
    ...args,
  ];
  // No KUBECONFIG or kubectl plugins from the developer's environment.
  const { KUBECONFIG: _, ...env } = process.env;
  return await capture(kube.kubectl, fullArgs, { env, ...(options.input === undefined ? {} : { input: options.input }) });
}

/** Like {@link kubectl}, but rejects with kubectl's stderr when it exits non-zero. */
export async function kubectlOk(
  kube: KubeInfo,
  args: string[],
  options: KubectlOptions = {},
): Promise<string> {
  const result = await kubectl(kube, args, options);
  if (result.code !== 0) {
    throw new Error(
      `kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr.trim() || result.stdout.trim()}`,
    );
  }
  return result.stdout;
}

/** A client-node config for the plane's admin (client certificate in group system:masters). */
export function kubeClient(kube: KubeInfo): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(kube.kubeconfig);
  return config;
}
