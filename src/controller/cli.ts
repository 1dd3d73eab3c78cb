/**
 * `warden controller`: runs the operator. Registered on the `warden` command tree by
 * src/cli/main.ts.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { UsageError } from '../cli/command-kit.ts';
import { parseGoDuration } from '../policy/duration.ts';
import { addUiOptions, checkUiSettings, CONTROLLER_UI_STYLE, UI_DEFAULTS, type UiOptions, uiSettingsOf } from '../ui/cli.ts';
import type { RunningUi } from '../ui/start.ts';
import { VERSION } from '../version.ts';
import { type LogLevel, createLogger } from './log.ts';
import { DEFAULT_HEALTH_PORT, type RenderSettings } from './render.ts';

export const DEFAULT_IMAGE = `ghcr.io/warden-dev/warden:${VERSION}`;

export interface ControllerFlags {
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
  /** The web viewer in this process (--ui, env WARDEN_UI); its settings are the --ui-* options. */
  ui?: boolean;
}

/** Where the viewer listens when it runs in the controller: every interface, beside the health port. */
export const CONTROLLER_UI_LISTEN = '0.0.0.0:8080';

const UI_OPTION_NOTES = {
  listen: `(with --ui; default ${CONTROLLER_UI_LISTEN})`,
  issuer: '(default: --oidc-issuer)',
  clientId: `(default: --oidc-audience, else ${UI_DEFAULTS.clientId})`,
  usernameClaim: `(default: --oidc-username-claim, else ${UI_DEFAULTS.usernameClaim})`,
  groupsClaim: `(default: --oidc-groups-claim, else ${UI_DEFAULTS.groupsClaim})`,
} as const;

/** WARDEN_UI: `true`/`1` or `false`/`0`/empty; anything else is refused rather than guessed. */
export function parseUiEnabled(value: string | undefined): boolean {
  const v = (value ?? '').trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === '' || v === 'false' || v === '0') return false;
  throw new UsageError(`WARDEN_UI must be true or false, not ${JSON.stringify(value)}`);
}

/**
 * The viewer's options when the controller runs it (--ui or WARDEN_UI=true), else undefined.
 * Issuer, client id and claims default to the controller's own OIDC settings for the gateways
 * (--oidc-issuer, --oidc-audience, --oidc-*-claim): the viewer trusts the issuer the Connections
 * trust. Scope and API access are the controller's (--namespace, --kubeconfig). Throws a
 * UsageError on a setting that cannot work, before anything starts.
 */
export function controllerUiOptions(flags: ControllerFlags, env: NodeJS.ProcessEnv = process.env): UiOptions | undefined {
  const enabled = parseUiEnabled(env.WARDEN_UI) || flags.ui === true;
  if (!enabled) return undefined;
  const given = uiSettingsOf(flags, CONTROLLER_UI_STYLE);
  const gateways = { issuer: flags.oidcIssuer || undefined, audience: flags.oidcAudience || undefined, usernameClaim: flags.oidcUsernameClaim || undefined, groupsClaim: flags.oidcGroupsClaim || undefined };
  const issuer = given.issuer ?? gateways.issuer;
  if (!issuer) throw new UsageError('--ui needs the OIDC issuer: --ui-issuer <url> (env WARDEN_UI_ISSUER), or the controller\'s --oidc-issuer (env WARDEN_OIDC_ISSUER)');
  const options: UiOptions = {
    ...given,
    listen: given.listen ?? CONTROLLER_UI_LISTEN,
    issuer,
    clientId: given.clientId ?? gateways.audience ?? UI_DEFAULTS.clientId,
    usernameClaim: given.usernameClaim ?? gateways.usernameClaim ?? UI_DEFAULTS.usernameClaim,
    groupsClaim: given.groupsClaim ?? gateways.groupsClaim ?? UI_DEFAULTS.groupsClaim,
    // The gateways' JWKS URL belongs to their issuer: the viewer uses it only for the same one.
    ...(flags.oidcJwksUri && issuer === gateways.issuer ? { jwksUri: flags.oidcJwksUri } : {}),
    ...(flags.namespace ? { namespace: flags.namespace } : {}),
    ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}),
  };
  const { port } = checkUiSettings(options, env, CONTROLLER_UI_STYLE);
  if (port !== 0 && port === flags.healthPort) {
    throw new UsageError(`--ui-listen (env WARDEN_UI_LISTEN): port ${port} is the controller's --health-port; choose another`);
  }
  return options;
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
  const command = program.command('controller');
  command
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
    .option('--ui', 'also serve the web session viewer (warden ui) from this process, on --ui-listen (env WARDEN_UI=true); docs/ui.md')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  warden controller --kubeconfig ~/.kube/config --oidc-issuer https://idp.example.com --oidc-audience warden\n' +
        '  warden controller --leader-elect --namespace payments\n' +
        '  warden controller --ui --ui-issuer https://idp.example.com --ui-public-url https://warden.example.com\n',
    );
  addUiOptions(command, { ...CONTROLLER_UI_STYLE, notes: UI_OPTION_NOTES });
  return command.action(async (flags: ControllerFlags) => {
    try {
      await runController(flags);
    } catch (error) {
      // A setting that cannot work: one line, and nothing left running.
      if (!(error instanceof UsageError || error instanceof InvalidArgumentError)) throw error;
      process.stderr.write(`warden controller: ${error.message}\n`);
      process.exit(2);
    }
    // Everything is stopped and the Lease released; idle keep-alive connections of the watch
    // client (30 s) would otherwise hold the process.
    process.exit(0);
  });
}

async function runController(flags: ControllerFlags): Promise<void> {
  const log = createLogger({ level: flags.logLevel });
  // Empty values (the settings ConfigMap of config/default ships them empty) mean unset.
  for (const k of ['oidcIssuer', 'oidcAudience', 'oidcUsernameClaim', 'oidcGroupsClaim', 'oidcJwksUri'] as const) {
    if (flags[k] === '') delete flags[k];
  }
  if ((flags.oidcIssuer === undefined) !== (flags.oidcAudience === undefined)) {
    throw new InvalidArgumentError('--oidc-issuer and --oidc-audience go together');
  }
  const uiOptions = controllerUiOptions(flags);
  // Loaded here, not at the top: every other `warden` command (and --help) would pay for the
  // Kubernetes client, the S3 client and OpenTelemetry otherwise.
  const [{ KubeConfig }, { startController }, { bindControllerMetrics, bindControllerTracer }] = await Promise.all([
    import('@kubernetes/client-node'),
    import('./manager.ts'),
    import('./metrics.ts'),
  ]);
  const kubeConfig = new KubeConfig();
  try {
    if (flags.kubeconfig) kubeConfig.loadFromFile(flags.kubeconfig);
    else kubeConfig.loadFromDefault();
  } catch (error) {
    throw new UsageError(`cannot load the kubeconfig: ${(error as Error).message}`);
  }
  // The viewer first: a setting of it that cannot work stops the start before the controller
  // takes a Lease or writes anything.
  let ui: RunningUi | undefined;
  if (uiOptions) {
    const { startUi } = await import('../ui/start.ts');
    ui = await startUi(uiOptions, { kubeConfig, log: log.child({ component: 'ui' }), style: CONTROLLER_UI_STYLE });
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
  let telemetry: Awaited<ReturnType<typeof startTelemetry>> | undefined;
  let controller: Awaited<ReturnType<typeof startController>>;
  try {
    telemetry = await startTelemetry({ service: 'warden-controller' });
    bindControllerMetrics(telemetry.meter);
    bindControllerTracer(telemetry.tracer);
    controller = await startController({
      kubeConfig,
      metrics: telemetry.handleMetrics,
      ...(flags.namespace ? { namespace: flags.namespace } : {}),
      settings,
      ...(flags.leaderElect
        ? {
            leaderElection: {
              namespace: flags.leaseNamespace,
              name: flags.leaseName,
              leaseDurationMs: flags.leaseDuration,
              renewDeadlineMs: flags.renewDeadline,
              retryPeriodMs: flags.retryPeriod,
            },
          }
        : {}),
      healthPort: flags.healthPort,
      workers: flags.workers,
      resyncMs: flags.resync,
      log,
      onLostLeadership: () => {
        log.error('lost leadership; exiting so that a fresh candidate takes over');
        process.exit(1);
      },
    });
  } catch (error) {
    await ui?.close();
    await telemetry?.shutdown();
    throw error;
  }
  const started = telemetry;
  log.info('warden controller started', {
    version: VERSION,
    namespace: flags.namespace ?? '(all)',
    leaderElect: flags.leaderElect,
    healthPort: controller.healthPort,
    ...(ui ? { ui: ui.url } : {}),
  });
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      log.info('shutting down', { signal });
      // The viewer serves on every replica, leader or not; it goes first, then the controller
      // releases its Lease.
      Promise.resolve(ui?.close())
        .then(() => controller.stop())
        .then(() => started.shutdown())
        .then(resolve, (error: unknown) => {
          log.error('unclean shutdown', { error: String(error) });
          resolve();
        });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
}
