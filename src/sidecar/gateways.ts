// The SidecarConfig mapped onto each protocol gateway's own configuration, and a small handle the
// entry point (main.ts) drives: address, graceful close, credential rotation.

import type { Logger } from '../controller/log.ts';
import type { Recorder } from '../recorder/recorder.ts';
import type { TokenVerifier } from './auth/oidc.ts';
import type { SidecarConfig } from './config.ts';
import { readSecretValue } from './config-watch.ts';
import type { HttpGatewayConfig, HttpUpstream, LogFields as HttpLogFields, UpstreamCredentials } from './http/config.ts';
import { HttpGateway } from './http/gateway.ts';
import type { LogFields as PgLogFields, PostgresGatewayConfig, UpstreamConfig } from './postgres/config.ts';
import { fromPolicyEngine } from './postgres/engine.ts';
import { PostgresGateway } from './postgres/server.ts';
import { type SwappablePolicyEngine, readSecretText, requiredCredential, sessionRecorderFactory, SidecarErrorCode, SidecarStartError } from './runtime.ts';
import { generateSelfSignedCertificate } from './self-signed.ts';
import type { SshGatewayConfig, SshRecorderFactory, SshRecordingEvent, SshSessionRecorder, SshUpstreamConfig } from './ssh/config.ts';
import { generateHostKey, SshGateway } from './ssh/gateway.ts';
import { EventKind, type RecordingEvent } from '../recorder/events.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Approvals } from '../approvals/types.ts';

export interface GatewayDeps {
  config: SidecarConfig;
  policy: SwappablePolicyEngine;
  verifier: TokenVerifier;
  /** Undefined when the document has `recording: null` (the policy then refuses every session). */
  recorder: Recorder | undefined;
  log: Logger;
  /** Listen address (default 0.0.0.0). */
  host: string;
  /** For reading rotated Secrets through the API; without it the mounted files are read. */
  api?: { kubeConfig: KubeConfig; namespace: string };
  /** Just-in-time approvals; without them RequireApproval commands are refused (fail closed). */
  approvals?: Approvals;
}

export interface RunningGateway {
  readonly address: { host: string; port: number };
  /** Stops accepting, lets sessions end for up to `graceMs`, then ends the rest. */
  close(graceMs: number): Promise<void>;
  /**
   * Re-reads the target credentials after a Secret rotation (same files, new content) for the
   * sessions that start from now on. Returns false when this gateway cannot take them live.
   */
  rotateCredentials?(config: SidecarConfig): Promise<boolean>;
}

/** Client-facing TLS from the mounted Secret, or a fresh self-signed certificate (logged). */
async function listenerTls(deps: GatewayDeps): Promise<{ cert: string; key: string }> {
  const tls = deps.config.listener.tls;
  if (tls) {
    return { cert: await readSecretText(tls.certificate, 'listener TLS certificate'), key: await readSecretText(tls.key, 'listener TLS key') };
  }
  deps.log.info('no listener TLS Secret configured; generated a self-signed certificate for this process (clients cannot verify it: use sslmode=require, or mount a certificate)');
  return generateSelfSignedCertificate({ dnsNames: ['localhost', `${deps.config.connection.name}-gateway`] });
}

function logAdapter<F>(log: Logger): (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: F) => void {
  return (level, message, fields) => log[level](message, (fields ?? {}) as Record<string, unknown>);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export async function postgresUpstream(config: SidecarConfig): Promise<UpstreamConfig> {
  const { target } = config;
  return {
    host: target.host ?? '',
    port: target.port ?? 5432,
    database: target.database ?? 'postgres',
    user: await requiredCredential(config, 'username', 'database user'),
    password: await requiredCredential(config, 'password', 'database password'),
    tls: {
      mode: target.tls?.mode ?? 'disable',
      ...(target.tls?.ca ? { ca: await readSecretText(target.tls.ca, 'target CA bundle') } : {}),
      ...(target.tls?.serverName ? { serverName: target.tls.serverName } : {}),
    },
  };
}

export async function startPostgresGateway(deps: GatewayDeps): Promise<RunningGateway> {
  const { config, log } = deps;
  const upstream = await postgresUpstream(config);
  const recording = config.recording;
  const pgConfig: PostgresGatewayConfig = {
    connection: `${config.connection.namespace}/${config.connection.name}`,
    listen: { host: deps.host, port: config.listener.port },
    tls: await listenerTls(deps),
    upstream,
    verifier: deps.verifier,
    ...(deps.approvals ? { approvals: deps.approvals } : {}),
    ...fromPolicyEngine(deps.policy),
    ...(deps.recorder && recording ? { recorder: sessionRecorderFactory(deps.recorder, recording.onStorageFailure, log) } : {}),
    ...(recording ? { maxRecordedRows: recording.record.maxResultRows, maxEventBytes: recording.record.maxEventBytes } : {}),
    logger: logAdapter<PgLogFields>(log.child({ gateway: 'postgres' })),
  };
  const gateway = await PostgresGateway.start(pgConfig);
  return {
    get address() {
      return gateway.address;
    },
    close: async (graceMs) => await gateway.close({ graceMs }),
    // The gateway reads config.upstream for every new session: replacing user and password there
    // is a live rotation (open sessions keep their upstream connection).
    rotateCredentials: async (next) => {
      const { username, password } = next.credentials;
      if (!username || !password) return false;
      upstream.user = (await readSecretValue(username, deps.api)).toString('utf8').trim();
      upstream.password = (await readSecretValue(password, deps.api)).toString('utf8').trim();
      return true;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// HTTP and Kubernetes API

async function httpCredentials(config: SidecarConfig): Promise<UpstreamCredentials> {
  const c = config.credentials;
  if (c.token) return { kind: 'bearer', token: (await readSecretText(c.token, 'target bearer token')).trim() };
  if (c.username && c.password) {
    return {
      kind: 'basic',
      username: (await readSecretText(c.username, 'target user name')).trim(),
      password: (await readSecretText(c.password, 'target password')).trim(),
    };
  }
  return { kind: 'none' };
}

export async function httpUpstream(config: SidecarConfig): Promise<HttpUpstream> {
  const { target, credentials } = config;
  const tls: NonNullable<HttpUpstream['tls']> | undefined = target.tls ? { mode: target.tls.mode } : undefined;
  if (tls && target.tls?.ca) tls.ca = await readSecretText(target.tls.ca, 'target CA bundle');
  if (tls && target.tls?.serverName) tls.serverName = target.tls.serverName;
  const withClientCert = credentials.clientCertificate && credentials.clientKey;
  const clientTls = withClientCert
    ? {
        cert: await readSecretText(credentials.clientCertificate!, 'target client certificate'),
        key: await readSecretText(credentials.clientKey!, 'target client key'),
      }
    : {};
  const mergedTls = tls || withClientCert ? { mode: tls?.mode ?? 'verify-full', ...tls, ...clientTls } : undefined;
  return {
    url: target.url ?? '',
    ...(mergedTls ? { tls: mergedTls } : {}),
    credentials: await httpCredentials(config),
  };
}

export async function startHttpGateway(deps: GatewayDeps): Promise<RunningGateway> {
  const { config, log } = deps;
  const flavour = config.protocol === 'kubernetes' ? 'kubernetes' : 'http';
  const recording = config.recording;
  const recorder = deps.recorder;
  // Plain HTTP is allowed for 'http' only when no certificate is mounted (the document says so);
  // the Kubernetes flavour always serves TLS (kubectl sends bearer tokens).
  const tls = config.listener.tls || flavour === 'kubernetes' ? await listenerTls(deps) : undefined;
  const factory = recorder && recording ? sessionRecorderFactory(recorder, recording.onStorageFailure, log) : undefined;
  const httpConfig: HttpGatewayConfig = {
    connection: `${config.connection.namespace}/${config.connection.name}`,
    flavour,
    listen: { host: deps.host, port: config.listener.port },
    ...(tls ? { tls } : {}),
    upstream: await httpUpstream(config),
    verifier: deps.verifier,
    ...(deps.approvals ? { approvals: deps.approvals } : {}),
    policy: deps.policy,
    masking: (subject) => deps.policy.masker(subject),
    ...(factory
      ? {
          recorder: (info) =>
            factory({
              sessionId: info.sessionId,
              protocol: flavour,
              connection: info.connection,
              clientAddress: info.client.addr,
              ...(info.client.app ? { clientApplication: info.client.app } : {}),
            }),
          recorderWritesLifecycle: true,
        }
      : {}),
    ...(recording ? { maxRecordedBodyBytes: recording.record.maxEventBytes, recordMasked: recording.storeMasked } : {}),
    logger: logAdapter<HttpLogFields>(log.child({ gateway: flavour })),
  };
  const gateway = await HttpGateway.start(httpConfig);
  return {
    get address() {
      return gateway.address;
    },
    // The HTTP gateway has no drain: requests are short, and close() ends every connection.
    close: async () => await gateway.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// SSH

export async function sshUpstream(config: SidecarConfig): Promise<SshUpstreamConfig> {
  const { target, credentials: c } = config;
  return {
    host: target.host ?? '',
    port: target.port ?? 22,
    ...(c.username ? { user: (await readSecretText(c.username, 'target account')).trim() } : {}),
    ...(c.privateKey ? { privateKey: await readSecretText(c.privateKey, 'target private key') } : {}),
    ...(c.passphrase ? { passphrase: (await readSecretText(c.passphrase, 'private key passphrase')).trim() } : {}),
    ...(c.password ? { password: (await readSecretText(c.password, 'target password')).trim() } : {}),
    hostKeys: target.hostKeys ?? [],
    ...(target.insecureSkipHostKeyVerification ? { insecureSkipHostKeyVerification: true } : {}),
  };
}

/**
 * The recorder core behind the SSH gateway's recording seam. The core writes `session.start`
 * itself and `session.end` in close(reason), so the gateway's own two are taken as the close
 * reason instead of being appended. The SSH seam reads `false` from append as "recording is
 * lost" (the core means back-pressure by it): here false is returned only after a FailClosed
 * failure.
 */
export function sshRecorderFactory(deps: Pick<GatewayDeps, 'config' | 'recorder' | 'log'>): SshRecorderFactory {
  const { recorder, config, log } = deps;
  const recording = config.recording;
  if (!recorder || !recording) {
    return () => Promise.reject(new Error('no recording is configured for this Connection'));
  }
  const factory = sessionRecorderFactory(recorder, recording.onStorageFailure, log);
  return (info) => {
    const core = factory({
      sessionId: info.id,
      protocol: 'ssh',
      connection: `${config.connection.namespace}/${config.connection.name}`,
      user: info.identity.user,
      groups: info.identity.groups,
      clientAddress: info.client.addr,
      ...(info.client.app ? { clientApplication: info.client.app } : {}),
      target: `${info.account}@${info.target}`,
    });
    let failed = false;
    // Set while the core recorder holds more than its high-water mark; released on 'drain', or on
    // a failure (FailClosed ends the session; FailOpen goes on unrecorded and must not stall).
    let lagging: Promise<void> | undefined;
    let release = (): void => {};
    core.onFailure(() => {
      failed = recording.onStorageFailure === 'FailClosed';
      release();
    });
    let lastT = 0;
    let endReason = 'server-closed';
    const session: SshSessionRecorder = {
      behind: () => lagging,
      append: (event: SshRecordingEvent) => {
        if (event.k === EventKind.SessionStart) return !failed;
        if (event.k === EventKind.SessionEnd) {
          endReason = (event as { reason?: string }).reason ?? endReason;
          return !failed;
        }
        lastT = Math.max(lastT, event.t);
        try {
          if (!core.append({ ...event, t: lastT } as RecordingEvent) && !failed && lagging === undefined) {
            lagging = new Promise<void>((resolve) => {
              release = () => {
                lagging = undefined;
                release = () => {};
                resolve();
              };
              core.once('drain', () => release());
            });
          }
        } catch (error) {
          log.error('recording event refused', { session: info.id, kind: event.k, error: error as Error });
          return false;
        }
        return !failed;
      },
      close: async () => {
        await core.close(endReason, endReason === 'denied' ? { phase: 'Denied' } : {});
      },
    };
    return session;
  };
}

export async function startSshGateway(deps: GatewayDeps): Promise<RunningGateway> {
  const { config, log } = deps;
  let hostKey: string;
  if (config.listener.hostKey) hostKey = await readSecretText(config.listener.hostKey, 'SSH host key');
  else {
    hostKey = generateHostKey();
    log.warn('no SSH host key Secret configured; generated an Ed25519 host key for this process: it changes on every restart, so clients will see a host key change (mount a host key Secret to keep it stable)');
  }
  const recording = config.recording;
  const sshLog = log.child({ gateway: 'ssh' });
  const sshConfig: SshGatewayConfig = {
    connection: `${config.connection.namespace}/${config.connection.name}`,
    listen: { host: deps.host, port: config.listener.port },
    hostKey,
    upstream: await sshUpstream(config),
    verifier: deps.verifier,
    ...(deps.approvals ? { approvals: deps.approvals } : {}),
    policy: deps.policy,
    recorder: sshRecorderFactory(deps),
    ...(recording ? { limits: { maxEventBytes: recording.record.maxEventBytes }, record: { input: recording.record.input, output: recording.record.output } } : {}),
    log: (line) => sshLog.info(line),
  };
  let gateway: SshGateway;
  try {
    gateway = new SshGateway(sshConfig);
  } catch (error) {
    throw new SidecarStartError(SidecarErrorCode.GatewayConfigInvalid, (error as Error).message);
  }
  const address = await gateway.listen();
  return {
    address,
    // SshGateway.close() ends every session at once; readiness is already false (no new
    // clients through the Service), so sessions get the grace period to end on their own first.
    close: async (graceMs) => {
      const deadline = Date.now() + graceMs;
      while (gateway.connections > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 200));
      await gateway.close();
    },
  };
}

export async function startGateway(deps: GatewayDeps): Promise<RunningGateway> {
  switch (deps.config.protocol) {
    case 'postgres':
      return await startPostgresGateway(deps);
    case 'http':
    case 'kubernetes':
      return await startHttpGateway(deps);
    case 'ssh':
      return await startSshGateway(deps);
    default:
      throw new SidecarStartError(SidecarErrorCode.ProtocolUnsupported, `warden sidecar cannot run ${String(deps.config.protocol)} gateways`);
  }
}
