// `warden sidecar --config <file>`: the gateway process the controller's Deployment runs
// (src/controller/render.ts: args `sidecar --config /etc/warden/config/sidecar-config.json`, env
// POD_NAME, POD_NAMESPACE, WARDEN_CONFIGMAP; ports `listener` and `health` — the latter serves
// /healthz, /readyz and the Prometheus /metrics, docs/observability.md).
//
// Start: load and validate the document (invalid → one error line, exit 1), compile the policies,
// open the recorder (recover what a previous process left in the spool), start the protocol's
// gateway, then answer /readyz. Reload: SidecarConfigWatcher (the ConfigMap through the API when
// WARDEN_CONFIGMAP and POD_NAMESPACE are set, the mounted file otherwise) → new policy engine for
// new statements and sessions; listener/target/OIDC/recording changes are logged as needing a
// restart. SIGTERM/SIGINT: not ready, stop accepting, sessions get the grace period, recordings
// are flushed, exit 0. The command itself is defined in src/cli/sidecar.ts, which loads this module
// only when it runs.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';
import { createLogger, type Logger, type LogLevel } from '../controller/log.ts';
import { parseGoDuration } from '../policy/duration.ts';
import { openRecorderFromConfig } from '../recorder/from-config.ts';
import type { SidecarTelemetry } from '../observability/sidecar-telemetry.ts';
import type { Telemetry } from '../observability/telemetry.ts';
import type { Recorder } from '../recorder/recorder.ts';
import { KubeSessionObjects } from '../recorder/session-objects.ts';
import { KubeApprovals } from '../approvals/kube.ts';
import { webhookFromEnv } from '../approvals/webhook.ts';
import { VERSION } from '../version.ts';
import { resolveSidecarPath, SIDECAR_PATHS, type SidecarConfig } from './config.ts';
import { type ConfigSource, SidecarConfigWatcher } from './config-watch.ts';
import type { RunningGateway } from './gateways.ts';
import { buildPolicyEngine, NO_RECORDING_REASON, restartRequired, SwappablePolicyEngine, tokenVerifier } from './runtime.ts';

export interface SidecarOptions {
  /** Path of the document as the Deployment passes it (resolved under WARDEN_FS_ROOT). */
  configPath: string;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** How long open sessions may run on after SIGTERM (default 50 s; the pod allows 60). */
  graceMs?: number;
  /** File polling interval while the API watch is down or unused (default 2 s). */
  pollMs?: number;
  /** Listener address (default 0.0.0.0). */
  host?: string;
}

export interface RunningSidecar {
  readonly config: SidecarConfig;
  readonly gateway: RunningGateway;
  readonly healthPort: number;
  /** Graceful stop; resolves when the gateway is closed and recordings are flushed. */
  stop(): Promise<void>;
}

/** Starts the gateway process's parts. Throws on an invalid document or unreadable Secret. */
export async function runSidecar(options: SidecarOptions): Promise<RunningSidecar> {
  const env = options.env ?? process.env;
  const log = options.log ?? createLogger({ level: (env.WARDEN_LOG_LEVEL as LogLevel | undefined) ?? 'info' }, { component: 'sidecar', ...(env.POD_NAME ? { pod: env.POD_NAME } : {}) });
  const file = resolveSidecarPath(options.configPath, env.WARDEN_FS_ROOT);

  const namespace = env.POD_NAMESPACE;
  const configMap = env.WARDEN_CONFIGMAP;
  let kubeConfig: KubeConfig | undefined;
  if (namespace && configMap) {
    try {
      kubeConfig = new KubeConfig();
      kubeConfig.loadFromDefault();
    } catch (error) {
      log.warn('no Kubernetes API access; following the mounted file only', { error: error as Error });
      kubeConfig = undefined;
    }
  }
  const api = kubeConfig && namespace ? { kubeConfig, namespace } : undefined;

  let ready = false;
  let stopping = false;
  let state: { gateway: RunningGateway; policy: SwappablePolicyEngine; recorder: Recorder | undefined; bound: SidecarConfig } | undefined;
  let applied: SidecarConfig | undefined;
  const pending: Array<{ config: SidecarConfig; source: ConfigSource }> = [];

  const apply = async (next: SidecarConfig, source: ConfigSource): Promise<void> => {
    if (!state) {
      pending.push({ config: next, source });
      return;
    }
    const { policy, recorder, gateway } = state;
    const engine = buildPolicyEngine(next);
    policy.swap(engine, next.recording && recorder ? undefined : NO_RECORDING_REASON);
    applied = next;
    let changed = restartRequired(state.bound, next);
    const onlyRotation = changed.length === 1 && changed[0] === '$.secretVersions';
    if (onlyRotation && gateway.rotateCredentials) {
      try {
        if (await gateway.rotateCredentials(next)) {
          state.bound = { ...state.bound, secretVersions: next.secretVersions };
          changed = [];
          log.info('target credentials re-read after a Secret rotation; new sessions use them', { secrets: Object.keys(next.secretVersions) });
        }
      } catch (error) {
        log.error('could not re-read rotated credentials; new sessions keep the previous ones', { error: error as Error });
      }
    }
    log.info('configuration applied', { hash: next.hash, source, policies: next.policies.map((p) => p.name), problems: engine.problems.length });
    for (const problem of engine.problems) log.warn('policy problem; its subjects are denied every command', { policy: problem.policy, code: problem.code, problem: problem.message });
    if (changed.length > 0) {
      log.warn('configuration change needs a restart of the gateway; still serving the previous listener, target, credentials, OIDC and recording settings (the Deployment rollout replaces this pod)', {
        hash: next.hash,
        fields: changed,
      });
    }
  };

  const watcher = new SidecarConfigWatcher({
    file,
    ...(api && configMap ? { api: { ...api, configMap } } : {}),
    ...(options.pollMs ? { pollMs: options.pollMs } : {}),
    onConfig: (next, source) => {
      apply(next, source).catch((error: unknown) => log.error('could not apply the configuration', { error: error as Error }));
    },
    onInvalid: (error, source) => log.error('configuration refused; keeping the current one', { source, error: error.message }),
    onWatchError: (error) => stopping || log.warn('ConfigMap watch error; following the mounted file until it recovers', { error: error instanceof Error ? error.message : String(error) }),
  });
  const config = await watcher.start();
  applied = config;
  log.info('starting', { version: VERSION, protocol: config.protocol, connection: `${config.connection.namespace}/${config.connection.name}`, hash: config.hash, configSource: api ? 'api+file' : 'file' });

  let health: Server | undefined;
  let recorder: Recorder | undefined;
  let approvals: KubeApprovals | undefined;
  // Metrics (/metrics on the health port) and, with OTEL_EXPORTER_OTLP_ENDPOINT, traces: derived
  // from the recorder's events (src/observability/sidecar-telemetry.ts).
  const telemetry = await startSidecarTelemetry(config, env);
  try {
    health = await startHealthServer(config.listener.healthPort, () => ready && !stopping, () => applied?.hash, telemetry.handleMetrics);
    const engine = buildPolicyEngine(config);
    for (const problem of engine.problems) log.warn('policy problem; its subjects are denied every command', { policy: problem.policy, code: problem.code, problem: problem.message });
    if (config.recording) {
      recorder = await openRecorderFromConfig(config.recording, {
        spoolDir: resolveSidecarPath(SIDECAR_PATHS.spoolDir, env.WARDEN_FS_ROOT),
        ...(api ? { sessionObjects: { client: new KubeSessionObjects(api.kubeConfig), namespace: api.namespace } } : {}),
        fsRoot: env.WARDEN_FS_ROOT,
        log: (message) => log.info(message, { part: 'recorder' }),
        overrides: { observer: telemetry.sessions },
      });
      telemetry.sessions.watchRecorder(recorder);
      const core = recorder;
      core
        .recover()
        .then((found) => {
          if (found.length > 0) log.info('recovered recordings a previous process left in the spool', { sessions: found.length });
        })
        .catch((error: unknown) => log.error('recovering the spool failed', { error: error as Error }));
    } else {
      log.warn(`no recording configured: ${NO_RECORDING_REASON}`);
    }
    const policy = new SwappablePolicyEngine(engine, config.recording ? undefined : NO_RECORDING_REASON);
    // Loaded here, not at the top: other `warden` commands need not load the protocol gateways.
    const { startGateway } = await import('./gateways.ts');
    // Just-in-time approvals need the API (AccessRequests); without it RequireApproval is refused.
    approvals = api ? approvalsFromEnv(api, env, log) : undefined;
    const gateway = await startGateway({ config, policy, verifier: tokenVerifier(config), recorder, log, host: options.host ?? '0.0.0.0', ...(api ? { api } : {}), ...(approvals ? { approvals } : {}) });
    state = { gateway, policy, recorder, bound: config };
    ready = true;
    log.info('gateway listening', { protocol: config.protocol, port: gateway.address.port, healthPort: config.listener.healthPort, policies: config.policies.map((p) => p.name) });
    for (const p of pending.splice(0)) await apply(p.config, p.source);
  } catch (error) {
    await watcher.stop();
    recorder?.stop();
    health?.close();
    await telemetry.shutdown();
    throw error;
  }

  const running = state;
  let stopped: Promise<void> | undefined;
  return {
    config,
    gateway: running.gateway,
    healthPort: config.listener.healthPort,
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        const graceMs = options.graceMs ?? 50_000;
        log.info('stopping: no new sessions; open sessions may run on', { graceMs });
        await watcher.stop();
        await running.gateway.close(graceMs);
        await approvals?.close(); // requests still waiting are withdrawn
        if (running.recorder) {
          // Sessions ended above; their final chunks and manifests are being uploaded.
          const flushed = await Promise.race([running.recorder.idle().then(() => true), delay(10_000).then(() => false)]);
          running.recorder.stop();
          log.info(flushed ? 'recordings flushed' : 'recordings not all uploaded; the rest stays in the spool for the next start');
        }
        await new Promise<void>((resolve) => {
          if (health) health.close(() => resolve());
          else resolve();
          health?.closeAllConnections();
        });
        await telemetry.shutdown();
        log.info('stopped');
      })()),
  };
}

/**
 * KubeApprovals in the pod's namespace. Environment: WARDEN_APPROVAL_COMMAND_WINDOW (Go duration,
 * how long an approved Command covers a retry; default 5m), WARDEN_APPROVAL_WEBHOOK_URL and
 * WARDEN_APPROVAL_WEBHOOK_SECRET (optional notifications, docs/approvals.md).
 */
function approvalsFromEnv(api: { kubeConfig: KubeConfig; namespace: string }, env: NodeJS.ProcessEnv, log: Logger): KubeApprovals {
  const window = env.WARDEN_APPROVAL_COMMAND_WINDOW ? parseGoDuration(env.WARDEN_APPROVAL_COMMAND_WINDOW) : undefined;
  const webhook = webhookFromEnv(env, (message, fields) => log.warn(message, { part: 'approvals', ...fields }));
  return new KubeApprovals(api.kubeConfig, {
    namespace: api.namespace,
    ...(window === undefined ? {} : { commandWindowMs: window }),
    ...(webhook ? { notify: webhook.notify } : {}),
    log: (message, fields) => log.warn(message, { part: 'approvals', ...fields }),
  });
}

const delay = async (ms: number): Promise<void> =>
  await new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });

async function startSidecarTelemetry(config: SidecarConfig, env: NodeJS.ProcessEnv): Promise<Telemetry & { sessions: SidecarTelemetry }> {
  // Loaded here, not at the top: other `warden` commands need not load the OpenTelemetry SDK.
  const [{ startTelemetry }, { SidecarTelemetry }] = await Promise.all([import('../observability/telemetry.ts'), import('../observability/sidecar-telemetry.ts')]);
  const telemetry = await startTelemetry({
    service: 'warden-sidecar',
    env,
    attributes: { 'warden.connection': `${config.connection.namespace}/${config.connection.name}`, 'warden.protocol': config.protocol },
  });
  const sessions = new SidecarTelemetry({ meter: telemetry.meter, exposition: telemetry.addExposition, ...(telemetry.tracer ? { tracer: telemetry.tracer } : {}) });
  return { ...telemetry, sessions };
}

async function startHealthServer(
  port: number,
  isReady: () => boolean,
  hash: () => string | undefined,
  metrics: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ok = isReady();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ ready: ok, hash: hash() })}\n`);
    } else if (path === '/metrics') {
      metrics(req, res);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
