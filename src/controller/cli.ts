/**
 * `warden controller`: runs the operator. Registered on the `warden` command tree by
 * src/cli/main.ts.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseGoDuration } from '../policy/duration.ts';
import { VERSION } from '../version.ts';
import { type LogLevel, createLogger } from './log.ts';
import { startController } from './manager.ts';
import { bindControllerMetrics } from './metrics.ts';
import { DEFAULT_HEALTH_PORT, type RenderSettings } from './render.ts';

export const DEFAULT_IMAGE = `ghcr.io/warden-dev/warden:${VERSION}`;

interface ControllerFlags {
  kubeconfig?: string;
  namespace?: string;
  leaderElect: boolean;
  leaseNamespace: string;
  leaseName: string;
  healthPort: number;
  image: string;
  imagePullPolicy?: RenderSettings['imagePullPolicy'];
  gatewayHealthPort: number;
  oidcIssuer?: string;
  oidcAudience?: string;
  oidcUsernameClaim?: string;
  oidcGroupsClaim?: string;
  oidcJwksUri?: string;
  workers: number;
  resync: number;
  leaseDuration: number;
  renewDeadline: number;
  retryPeriod: number;
  logLevel: LogLevel;
}

const port = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
};
const positive = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('must be an integer from 1 to 64');
  return n;
};
const duration = (value: string): number => {
  try {
    return parseGoDuration(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};

export function registerControllerCommand(program: Command): Command {
  const env = process.env;
  return program
    .command('controller')
    .description(
      'Run the Warden operator: reconcile Connections into gateway Deployments, Services, ConfigMaps and RBAC;\n' +
        'check RecordingPolicy buckets; tidy up Sessions. Logs are JSON lines on stderr.',
    )
    .option('--kubeconfig <path>', 'kubeconfig to use (default: $KUBECONFIG, the in-cluster service account, or ~/.kube/config)')
    .option('-n, --namespace <namespace>', 'manage only this namespace (default: all namespaces)')
    .option('--leader-elect', 'elect a leader among replicas through a coordination.k8s.io Lease', false)
    .option('--lease-namespace <namespace>', 'namespace of the leader-election Lease', env.POD_NAMESPACE ?? 'warden-system')
    .option('--lease-name <name>', 'name of the leader-election Lease', 'warden-controller')
    .option('--health-port <port>', 'port of /healthz, /readyz and /metrics (0: any free port)', port, 8081)
    .option('--image <image>', 'gateway image the rendered Deployments run', env.WARDEN_IMAGE ?? DEFAULT_IMAGE)
    .addOption(new Option('--image-pull-policy <policy>', 'imagePullPolicy of gateway containers').choices(['Always', 'IfNotPresent', 'Never']))
    .option('--gateway-health-port <port>', 'port of the gateways\' /healthz and /readyz', port, DEFAULT_HEALTH_PORT)
    .option('--oidc-issuer <url>', 'OIDC issuer for Connections without spec.oidc', env.WARDEN_OIDC_ISSUER)
    .option('--oidc-audience <audience>', 'OIDC audience for Connections without spec.oidc', env.WARDEN_OIDC_AUDIENCE)
    .option('--oidc-username-claim <claim>', 'claim naming the user (default "email")', env.WARDEN_OIDC_USERNAME_CLAIM)
    .option('--oidc-groups-claim <claim>', 'claim listing the groups (default "groups")', env.WARDEN_OIDC_GROUPS_CLAIM)
    .option('--oidc-jwks-uri <url>', 'JWKS URL, when discovery at the issuer is not available', env.WARDEN_OIDC_JWKS_URI)
    .option('--workers <n>', 'concurrent reconciles per controller', positive, 4)
    .addOption(new Option('--resync <duration>', 'reconcile everything again this often').argParser(duration).default(600_000, '10m'))
    .addOption(new Option('--lease-duration <duration>', 'how long a Lease holds without renewal').argParser(duration).default(15_000, '15s'))
    .addOption(new Option('--renew-deadline <duration>', 'a leader that cannot renew for this long steps down').argParser(duration).default(10_000, '10s'))
    .addOption(new Option('--retry-period <duration>', 'how often candidates try the Lease and the leader renews it').argParser(duration).default(2_000, '2s'))
    .addOption(new Option('--log-level <level>', 'least severe level logged').choices(['debug', 'info', 'warn', 'error']).default('info'))
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  warden controller --kubeconfig ~/.kube/config --oidc-issuer https://idp.example.com --oidc-audience warden\n' +
        '  warden controller --leader-elect --namespace payments\n',
    )
    .action(async (flags: ControllerFlags) => {
      await runController(flags);
      // Everything is stopped and the Lease released; idle keep-alive connections of the watch
      // client (30 s) would otherwise hold the process.
      process.exit(0);
    });
}

async function runController(flags: ControllerFlags): Promise<void> {
  const log = createLogger({ level: flags.logLevel });
  const kubeConfig = new KubeConfig();
  if (flags.kubeconfig) kubeConfig.loadFromFile(flags.kubeconfig);
  else kubeConfig.loadFromDefault();
  // Empty values (the settings ConfigMap of config/default ships them empty) mean unset.
  for (const k of ['oidcIssuer', 'oidcAudience', 'oidcUsernameClaim', 'oidcGroupsClaim', 'oidcJwksUri'] as const) {
    if (flags[k] === '') delete flags[k];
  }
  if ((flags.oidcIssuer === undefined) !== (flags.oidcAudience === undefined)) {
    throw new InvalidArgumentError('--oidc-issuer and --oidc-audience go together');
  }
  const settings: RenderSettings = {
    image: flags.image,
    healthPort: flags.gatewayHealthPort,
    ...(flags.imagePullPolicy ? { imagePullPolicy: flags.imagePullPolicy } : {}),
    ...(flags.oidcIssuer && flags.oidcAudience
      ? {
          oidc: {
            issuer: flags.oidcIssuer,
            audience: flags.oidcAudience,
            ...(flags.oidcUsernameClaim ? { usernameClaim: flags.oidcUsernameClaim } : {}),
            ...(flags.oidcGroupsClaim ? { groupsClaim: flags.oidcGroupsClaim } : {}),
            ...(flags.oidcJwksUri ? { jwksUri: flags.oidcJwksUri } : {}),
          },
        }
      : {}),
  };
  // Metrics on the health port (/metrics) and, when OTEL_EXPORTER_OTLP_ENDPOINT is set, traces.
  const { startTelemetry } = await import('../observability/telemetry.ts');
  const telemetry = await startTelemetry({ service: 'warden-controller' });
  bindControllerMetrics(telemetry.meter);
  const controller = await startController({
    kubeConfig,
    metrics: telemetry.handleMetrics,
    ...(flags.namespace ? { namespace: flags.namespace } : {}),
    settings,
    ...(flags.leaderElect ? {
          leaderElection: {
            namespace: flags.leaseNamespace,
            name: flags.leaseName,
            leaseDurationMs: flags.leaseDuration,
            renewDeadlineMs: flags.renewDeadline,
            retryPeriodMs: flags.retryPeriod,
          },
        } : {}),
    healthPort: flags.healthPort,
    workers: flags.workers,
    resyncMs: flags.resync,
    log,
    onLostLeadership: () => {
      log.error('lost leadership; exiting so that a fresh candidate takes over');
      process.exit(1);
    },
  });
  log.info('warden controller started', { version: VERSION, namespace: flags.namespace ?? '(all)', leaderElect: flags.leaderElect, healthPort: controller.healthPort });
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      log.info('shutting down', { signal });
      controller.stop().then(telemetry.shutdown).then(resolve, (error: unknown) => {
        log.error('unclean shutdown', { error: String(error) });
        resolve();
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
}
