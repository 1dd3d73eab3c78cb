/**
 * The e2e runner's stand-in for a kubelet: reads the gateway Deployment the controller rendered
 * and starts its container as a local process — same command and arguments, same environment
 * (downward-API fields filled in), and the ConfigMap and Secret volumes written out as files
 * under a scratch root (`WARDEN_FS_ROOT`, see resolveSidecarPath in src/sidecar/config.ts).
 * The process gets a kubeconfig holding a token of the gateway's own ServiceAccount, so it has
 * exactly the rights the rendered Role gives a pod.
 *
 * Once the process answers /readyz, the runner reports the replica ready in the Deployment's
 * status (the Deployment controller's part), which is what the Connection's Ready follows.
 *
 * Volumes are written once at start; the gateway follows changes through the API watch (as in a
 * pod, where the files lag by up to a minute).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { KubeClient } from '../../src/controller/kube.ts';
import { IMAGE_WARDEN_SCRIPT } from '../../src/controller/render.ts';
import { kubeClient, kubectlOk } from '../plane/kubectl.ts';
import { ManagedProcess, waitUntil } from '../plane/proc.ts';
import type { KubeInfo } from '../plane/types.ts';

const NODE = new URL('../../node_modules/.bin/node', import.meta.url).pathname;
const WARDEN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

/**
 * The container's command with the image's paths replaced by this checkout's: `warden …` (the
 * image's bin/warden.js on PATH) and `node <flags> /app/bin/warden.js …` (Postgres gateways) run
 * src/cli/main.ts with this checkout's Node and the same flags.
 */
function localCommand(command: readonly string[]): string[] {
  if (command[0] === 'warden') return [NODE, WARDEN, ...command.slice(1)];
  const script = command.indexOf(IMAGE_WARDEN_SCRIPT);
  if (command[0] === 'node' && script > 0) return [NODE, ...command.slice(1, script), WARDEN, ...command.slice(script + 1)];
  return [...command];
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: Array<{ name?: string; containerPort: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string };
  emptyDir?: unknown;
}
interface Deployment {
  metadata: { name: string; namespace: string };
  spec: { template: { spec: { serviceAccountName: string; containers: Container[]; volumes?: Volume[] } } };
}

export interface LocalGatewayOptions {
  kube: KubeInfo;
  namespace: string;
  deployment: string;
  /** Replaces the container's command (the image's `warden` otherwise maps to src/cli/main.ts). */
  command?: string[];
  logFile: string;
}

export interface LocalGateway {
  readonly process: ManagedProcess;
  /** Scratch root holding the volumes (WARDEN_FS_ROOT of the process). */
  readonly root: string;
  readonly podName: string;
  readonly healthPort: number | undefined;
  /** Waits for /readyz and reports one ready replica in the Deployment status. */
  ready(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startLocalGateway(options: LocalGatewayOptions): Promise<LocalGateway> {
  const { kube, namespace } = options;
  const client = new KubeClient(kubeClient(kube));
  const deployment = await client.get<Deployment>('Deployment', namespace, options.deployment);
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  if (!container) throw new Error(`Deployment ${namespace}/${options.deployment} has no container`);
  const root = mkdtempSync(join(tmpdir(), 'warden-gateway-'));
  const podName = `${options.deployment}-local-${randomBytes(3).toString('hex')}`;

  // Volumes, as kubelet would mount them.
  const mounts = new Map<string, string>();
  for (const mount of container.volumeMounts ?? []) {
    const volume = pod.volumes?.find((v) => v.name === mount.name);
    const dir = join(root, mount.mountPath);
    mkdirSync(dir, { recursive: true });
    mounts.set(mount.mountPath, dir);
    if (volume?.configMap) {
      const cm = await client.get<{ data?: Record<string, string> }>('ConfigMap', namespace, volume.configMap.name);
      for (const [key, value] of Object.entries(cm.data ?? {})) writeFileSync(join(dir, key), value);
    } else if (volume?.secret) {
      const secret = await client.get<{ data?: Record<string, string> }>('Secret', namespace, volume.secret.secretName);
      for (const [key, value] of Object.entries(secret.data ?? {})) writeFileSync(join(dir, key), Buffer.from(value, 'base64'), { mode: 0o400 });
    }
  }

  // The ServiceAccount's own token, as the pod would have it.
  const token = (await kubectlOk(kube, ['create', 'token', pod.serviceAccountName, '-n', namespace, '--duration=1h'])).trim();
  const kubeconfig = join(root, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'plane', cluster: { server: kube.server, 'certificate-authority': kube.caFile } }],
      users: [{ name: pod.serviceAccountName, user: { token } }],
      contexts: [{ name: 'pod', context: { cluster: 'plane', user: pod.serviceAccountName, namespace } }],
      'current-context': 'pod',
    }),
    { mode: 0o600 },
  );

  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: root, WARDEN_FS_ROOT: root, KUBECONFIG: kubeconfig };
  for (const variable of container.env ?? []) {
    const field = variable.valueFrom?.fieldRef?.fieldPath;
    if (field === 'metadata.name') env[variable.name] = podName;
    else if (field === 'metadata.namespace') env[variable.name] = namespace;
    else if (variable.value !== undefined) env[variable.name] = variable.value;
  }
  const command = options.command ?? localCommand(container.command ?? []);
  const [executable, ...commandArgs] = command;
  if (executable === undefined) throw new Error('the container has no command; pass options.command');
  mkdirSync(dirname(options.logFile), { recursive: true });
  const child = new ManagedProcess({ name: podName, command: executable, args: [...commandArgs, ...(container.args ?? [])], env, cwd: root, logFile: options.logFile });
  const healthPort = container.ports?.find((p) => p.name === 'health')?.containerPort;

  return {
    process: child,
    root,
    podName,
    healthPort,
    async ready(timeoutMs = 15_000) {
      if (healthPort === undefined) throw new Error('the container declares no health port');
      await waitUntil(
        `${podName} /readyz`,
        async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`, { signal: AbortSignal.timeout(1_000) })).status === 200,
        { timeoutMs, process: child },
      );
      await client.mergePatch('Deployment', namespace, options.deployment, { status: { replicas: 1, readyReplicas: 1, availableReplicas: 1, updatedReplicas: 1 } }, 'status');
    },
    async stop() {
      await child.stop();
      await client.mergePatch('Deployment', namespace, options.deployment, { status: { readyReplicas: 0, availableReplicas: 0 } }, 'status').catch(() => {});
      client.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
