// `warden dev`: the gateways of a set of manifests, in this process, without a cluster.
//
// Start: open the state directory → read the manifests (fatal on invalid YAML / unknown kind /
// schema problems) → start the development OIDC issuer → render every Connection with the
// controller's render function → per Connection: check what a new user gets wrong (target
// reachable and credentials accepted, recording bucket and its credentials, external issuer) →
// open the recorder (local directory store, or the RecordingPolicy's bucket) → start the gateway
// (src/sidecar/gateways.ts, as `warden sidecar` does). A Connection that fails is reported in one
// line and the others run; when none runs, warden dev exits 1.
// Stop: gateways close (sessions end and are recorded as such), recorders flush their final
// chunks and manifests, the Secret files are removed.

import { createServer, type Server } from 'node:http';
import { connect as netConnect } from 'node:net';
import { mkdir, readFile } from 'node:fs/promises';
import type { Logger } from '../controller/log.ts';
import type { SidecarTelemetry } from '../observability/sidecar-telemetry.ts';
import type { Telemetry } from '../observability/telemetry.ts';
import { loadSigningKey } from '../recorder/crypto.ts';
import { recorderOptionsFromConfig } from '../recorder/from-config.ts';
import { Recorder } from '../recorder/recorder.ts';
import { DirectoryStore } from '../recorder/store-dir.ts';
import type { S3Store } from '../recorder/store-s3.ts';
import type { SidecarConfig } from '../sidecar/config.ts';
import type { RunningGateway } from '../sidecar/gateways.ts';
import { buildPolicyEngine, SidecarStartError, SwappablePolicyEngine, tokenVerifier } from '../sidecar/runtime.ts';
import { DevError, DevErrorCode, listenError } from './errors.ts';
import { loadManifests, type LoadedManifests, postgresUrlVars } from './manifests.ts';
import { type RunningIssuer, startIssuer } from './oidc.ts';
import { removeSecretFiles, type RenderedConnection, renderDevConnections } from './render.ts';
import { DEFAULT_ISSUER_PORT, DEV_AUDIENCE, DevState, STATE_FILES } from './state.ts';

export interface DevOptions {
  /** Manifest files and directories (-f). */
  files: string[];
  stateDir: string;
  /** Listen address of the gateways and the issuer (default 127.0.0.1). */
  host?: string;
  /** Port of the development issuer (default 15556; 0 = any free port). */
  issuerPort?: number;
  postgresUrl?: string;
  /** Record locally even where a RecordingPolicy selects a Connection. */
  localRecordings?: boolean;
  env?: NodeJS.ProcessEnv;
  log: Logger;
  /** Time open sessions get at stop before they are ended (default 2 s). */
  graceMs?: number;
  /** How long each start-up check may take (default 5 s). */
  checkTimeoutMs?: number;
  cwd?: string;
  /** Lines worth telling the user while starting (first-run setup). */
  note?: (line: string) => void;
  /** Serve every gateway's Prometheus metrics at http://host:port/metrics (0 = any free port; undefined = off). */
  metricsPort?: number;
}

export interface StartedConnection {
  readonly namespace: string;
  readonly name: string;
  readonly config: SidecarConfig;
  readonly gateway: RunningGateway;
  readonly recorder: Recorder;
  /** Where recordings go: a file:// or s3:// URL of the Connection's prefix. */
  readonly recordings: string;
  readonly warnings: readonly string[];
  /** SSH: the target account, which is also the user name clients log in to the gateway with. */
  readonly sshAccount?: string;
}

export interface FailedConnection {
  readonly namespace: string;
  readonly name: string;
  readonly error: DevError;
}

export interface RunningDev {
  readonly state: DevState;
  readonly issuer: RunningIssuer;
  readonly audience: string;
  readonly manifests: LoadedManifests;
  readonly started: readonly StartedConnection[];
  readonly failed: readonly FailedConnection[];
  /** ms from the call to runDev until every gateway listened. */
  readonly startupMs: number;
  /** Where the metrics are served, when asked for (`metricsPort`). */
  readonly metricsUrl?: string;
  stop(): Promise<void>;
}

function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]);
}

const POSTGRES_URL_HINT = 'give its address with --postgres-url postgres://user:password@host:5432/database';

/** Logs in to the target database once, as the gateway will for each session. */
async function checkPostgres(started: { config: SidecarConfig; namespace: string; name: string }, timeoutMs: number): Promise<void> {
  const { config } = started;
  const { postgresUpstream } = await import('../sidecar/gateways.ts');
  const { connectUpstream, UpstreamError } = await import('../sidecar/postgres/upstream.ts');
  const upstream = { ...(await postgresUpstream(config)), connectTimeoutMs: timeoutMs };
  const where = `${upstream.host}:${upstream.port}`;
  try {
    const conn = await connectUpstream(upstream, { application_name: 'warden-dev-check' });
    // Terminate ('X', length 4), then close.
    conn.socket.end(Buffer.from([0x58, 0, 0, 0, 4]));
  } catch (error) {
    if (!(error instanceof UpstreamError)) throw error;
    const secret = config.credentials.password?.secret;
    if (error.code === 'WARDEN_PG_UPSTREAM_UNREACHABLE') {
      throw new DevError(DevErrorCode.TargetUnreachable, `PostgreSQL at ${where} is unreachable (${error.message.replace(/^.*?: /, '')}): start it, or ${POSTGRES_URL_HINT}`);
    }
    if (error.code === 'WARDEN_PG_UPSTREAM_TLS') {
      throw new DevError(DevErrorCode.TargetUnreachable, `PostgreSQL at ${where}: ${error.message}; set spec.target.tls.mode (with --postgres-url: add ?sslmode=disable or ?sslmode=require)`);
    }
    throw new DevError(
      DevErrorCode.TargetAuthFailed,
      `PostgreSQL at ${where} refused the login of database user ${JSON.stringify(upstream.user)} to database ${JSON.stringify(upstream.database)} (${error.message}): check the user, password and database ${secret ? `in Secret ${started.namespace}/${secret}` : 'of the Connection'} or in --postgres-url`,
    );
  }
}

/** A TCP connection to the target: enough to tell "nobody listens there" early. */
async function checkTcp(host: string, port: number, what: string, hint: string, timeoutMs: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DevError(DevErrorCode.TargetUnreachable, `${what} at ${host}:${port} does not answer (timed out): ${hint}`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new DevError(DevErrorCode.TargetUnreachable, `${what} at ${host}:${port} is unreachable (${error.code ?? error.message}): ${hint}`));
    });
  });
}

/** OpenID discovery of an issuer a Connection names in spec.oidc. */
async function checkIssuer(issuer: string, connection: string, timeoutMs: number): Promise<void> {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  const fix = `check spec.oidc.issuer of Connection ${connection} (or drop spec.oidc to use the development issuer)`;
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    const reason = (error as { cause?: { code?: string; errors?: Array<{ code?: string }>; message?: string } }).cause;
    const cause = reason?.code ?? reason?.errors?.[0]?.code ?? reason?.message ?? (error as Error).message;
    throw new DevError(DevErrorCode.IssuerInvalid, `OIDC issuer ${issuer} is unreachable (${cause}): ${fix}`);
  }
  let body: unknown;
  try {
    body = response.ok ? await response.json() : undefined;
  } catch {
    body = undefined;
  }
  const found = (body as { issuer?: unknown } | undefined)?.issuer;
  if (!response.ok || typeof found !== 'string') {
    throw new DevError(DevErrorCode.IssuerInvalid, `OIDC issuer ${issuer} has no discovery document at ${url} (HTTP ${response.status}): ${fix}`);
  }
  if (found !== issuer) {
    throw new DevError(DevErrorCode.IssuerInvalid, `OIDC issuer ${issuer} calls itself ${found} in its discovery document; tokens would never match: ${fix}`);
  }
}

const S3_AUTH_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied']);

/** The bucket is there (created when missing, as the controller does) and the keys work. */
async function checkBucket(store: S3Store, config: SidecarConfig, timeoutMs: number): Promise<void> {
  const recording = config.recording;
  if (!recording) return;
  const { endpoint, bucket } = recording.s3;
  const creds = `Secret ${config.connection.namespace}/${recording.s3.accessKeyId.secret}`;
  try {
    const exists = await withTimeout(store.client.bucketExists(bucket), timeoutMs, () => Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
    if (!exists) await store.client.makeBucket(bucket, recording.s3.region, recording.objectLock ? { ObjectLocking: true } : undefined);
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    // Connections sharing a bucket are checked at once: another one's makeBucket came first.
    if (code === 'BucketAlreadyOwnedByYou') return;
    if (S3_AUTH_CODES.has(code)) {
      throw new DevError(
        DevErrorCode.StorageAuthFailed,
        `recording storage ${endpoint} refused the credentials (${code}): fix accessKeyId/secretAccessKey in ${creds} (RecordingPolicy ${recording.policy}), or remove the RecordingPolicy to record locally`,
      );
    }
    throw new DevError(
      DevErrorCode.StorageUnreachable,
      `recording storage ${endpoint} (bucket ${bucket}) is unreachable (${code || (error as Error).message}): start it, fix storage.s3.endpoint of RecordingPolicy ${recording.policy}, or remove the RecordingPolicy to record locally`,
    );
  }
}

interface DevMetrics {
  readonly url: string;
  readonly observer: SidecarTelemetry;
  stop(): Promise<void>;
}

/** One /metrics endpoint for all gateways of this process, as the sidecar serves on its health port (docs/observability.md). */
async function startDevMetrics(host: string, port: number, env: NodeJS.ProcessEnv): Promise<DevMetrics> {
  // Loaded only when asked for, as in the sidecar.
  const [{ startTelemetry }, { SidecarTelemetry }] = await Promise.all([import('../observability/telemetry.ts'), import('../observability/sidecar-telemetry.ts')]);
  const telemetry: Telemetry = await startTelemetry({ service: 'warden-dev', env });
  const observer = new SidecarTelemetry({ meter: telemetry.meter, exposition: telemetry.addExposition, ...(telemetry.tracer ? { tracer: telemetry.tracer } : {}) });
  const server: Server = createServer((req, res) => {
    if ((req.url ?? '').split('?')[0] === '/metrics') telemetry.handleMetrics(req, res);
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await telemetry.shutdown();
    throw listenError(error, 'metrics', host, port, 'pick another with --metrics-port');
  }
  const address = server.address();
  const bound = address !== null && typeof address === 'object' ? address.port : port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}/metrics`,
    observer,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await telemetry.shutdown();
    },
  };
}

/** Opens, checks and starts one Connection. */
async function startConnection(
  rendered: Extract<RenderedConnection, { ok: true }>,
  state: DevState,
  options: DevOptions,
  observer: SidecarTelemetry | undefined,
): Promise<StartedConnection> {
  const { config, namespace, name } = rendered;
  const id = `${namespace}/${name}`;
  const timeoutMs = options.checkTimeoutMs ?? 5000;
  const log = options.log.child({ connection: id });

  if (rendered.externalIssuer) await checkIssuer(config.oidc.issuer, id, timeoutMs);
  if (config.protocol === 'postgres') await checkPostgres(rendered, timeoutMs);
  else if (config.protocol === 'ssh') {
    await checkTcp(config.target.host ?? '', config.target.port ?? 22, 'SSH host', `start sshd there, or fix spec.target of Connection ${id}`, timeoutMs);
  } else if (config.target.url) {
    const url = new URL(config.target.url);
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    await checkTcp(url.hostname, port, 'target', `start it, or fix spec.target.url of Connection ${id}`, timeoutMs);
  }

  const recording = config.recording;
  if (!recording) throw new DevError(DevErrorCode.RenderFailed, `Connection ${id} has no recording configuration`);
  const spoolDir = state.path(STATE_FILES.spool, namespace, name);
  await mkdir(spoolDir, { recursive: true, mode: 0o700 });
  let recorder: Recorder;
  let recordings: string;
  const recorderLog = (message: string): void => log.info(message, { part: 'recorder' });
  if (rendered.localRecording) {
    const store = new DirectoryStore(state.recordingsDir);
    recorder = await Recorder.open({
      store,
      spoolDir,
      signingKey: loadSigningKey(await readFile(state.signingKeyFile)),
      prefix: recording.s3.prefix,
      log: recorderLog,
      ...(observer ? { observer } : {}),
    });
    recordings = store.url(recording.s3.prefix);
  } else {
    const recorderOptions = await recorderOptionsFromConfig(recording, { spoolDir, log: recorderLog });
    await checkBucket(recorderOptions.store as S3Store, config, timeoutMs);
    recorder = await Recorder.open({ ...recorderOptions, ...(observer ? { observer } : {}) });
    recordings = recorderOptions.store.url(recording.s3.prefix);
  }
  observer?.watchRecorder(recorder);
  const found = await recorder.recover();
  if (found.length > 0) log.info('recovered recordings a previous run left in the spool', { sessions: found.length });

  const policy = new SwappablePolicyEngine(buildPolicyEngine(config));
  // The protocol gateways (SQL parser, SSH) load only once the manifests are known to be good.
  const { startGateway } = await import('../sidecar/gateways.ts');
  let gateway: RunningGateway;
  try {
    gateway = await startGateway({ config, policy, verifier: tokenVerifier(config), recorder, log, host: options.host ?? '127.0.0.1' });
  } catch (error) {
    recorder.stop();
    if (error instanceof SidecarStartError || error instanceof DevError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      throw listenError(error, `Connection ${id}`, options.host ?? '127.0.0.1', config.listener.port, `set spec.listener.port of Connection ${id} to a free port`);
    }
    throw error;
  }
  const account = config.protocol === 'ssh' && config.credentials.username ? (await readFile(config.credentials.username.file, 'utf8')).trim() : undefined;
  return { namespace, name, config, gateway, recorder, recordings, warnings: rendered.warnings, ...(account ? { sshAccount: account } : {}) };
}

function asDevError(error: unknown): DevError {
  if (error instanceof DevError) return error;
  if (error instanceof SidecarStartError) return new DevError(DevErrorCode.RenderFailed, error.message);
  return new DevError(DevErrorCode.RenderFailed, (error as Error).message);
}

/**
 * Starts the issuer and every Connection it can. Throws a DevError for what stops everything
 * (manifests, state directory, issuer port); a Connection's own failure is in `failed`.
 */
export async function runDev(options: DevOptions): Promise<RunningDev> {
  const began = performance.now();
  const env = options.env ?? process.env;
  const state = await DevState.open(options.stateDir);
  const vars: Record<string, string | undefined> = { ...env, ...(options.postgresUrl ? postgresUrlVars(options.postgresUrl) : {}) };
  const manifests = await loadManifests(options.files, { vars, ...(options.cwd ? { cwd: options.cwd } : {}) });

  const existing = await state.issuerKey({ create: false });
  const key = existing ?? (await state.issuerKey());
  if (!key) throw new DevError(DevErrorCode.StateInvalid, 'no issuer key');
  if (existing === undefined) options.note?.(`warden dev: first start: created a development issuer key and a recording signing key in ${state.dir} (kept for the next starts)`);
  const issuer = await startIssuer({ key, host: options.host ?? '127.0.0.1', port: options.issuerPort ?? DEFAULT_ISSUER_PORT });
  let metrics: DevMetrics | undefined;
  try {
    if (options.metricsPort !== undefined) metrics = await startDevMetrics(options.host ?? '127.0.0.1', options.metricsPort, env);
    await state.writeIssuerInfo({ issuer: issuer.issuer, audience: DEV_AUDIENCE });
    const rendered = await renderDevConnections(manifests, state, {
      issuer: { issuer: issuer.issuer, audience: DEV_AUDIENCE, jwksUri: issuer.jwksUri },
      ...(options.localRecordings ? { forceLocalRecording: true } : {}),
    });

    const failed: FailedConnection[] = [];
    const started: StartedConnection[] = [];
    const outcomes = await Promise.all(
      rendered.map(async (r) => {
        if (!r.ok) return { r, error: new DevError(DevErrorCode.RenderFailed, r.reason) };
        try {
          return { r, started: await startConnection(r, state, options, metrics?.observer) };
        } catch (error) {
          return { r, error: asDevError(error) };
        }
      }),
    );
    for (const outcome of outcomes) {
      if (outcome.started) started.push(outcome.started);
      else if (outcome.error) failed.push({ namespace: outcome.r.namespace, name: outcome.r.name, error: outcome.error });
    }
    started.sort((a, b) => (a.name < b.name ? -1 : 1));
    failed.sort((a, b) => (a.name < b.name ? -1 : 1));
    const startupMs = Math.round(performance.now() - began);
    let stopping: Promise<void> | undefined;
    return {
      state,
      issuer,
      audience: DEV_AUDIENCE,
      manifests,
      started,
      failed,
      startupMs,
      ...(metrics ? { metricsUrl: metrics.url } : {}),
      stop: () =>
        (stopping ??= (async () => {
          const graceMs = options.graceMs ?? 2000;
          await Promise.all(
            started.map(async (s) => {
              await s.gateway.close(graceMs).catch((error: unknown) => options.log.warn('gateway did not close cleanly', { connection: `${s.namespace}/${s.name}`, error: error as Error }));
              const flushed = await withTimeout(s.recorder.idle().then(() => true), 10_000, () => new Error('timeout')).catch(() => false);
              s.recorder.stop();
              if (!flushed) options.log.warn('recordings not all written; the rest stays in the spool for the next start', { connection: `${s.namespace}/${s.name}` });
            }),
          );
          await metrics?.stop();
          await issuer.stop();
          await removeSecretFiles(state);
        })()),
    };
  } catch (error) {
    await metrics?.stop().catch(() => undefined);
    await issuer.stop().catch(() => undefined);
    throw error;
  }
}
