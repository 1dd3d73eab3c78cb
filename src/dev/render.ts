// From the manifests to one sidecar configuration document per Connection, with the controller's
// own render function (src/controller/render.ts) and the gateway's own validation
// (src/sidecar/config.ts). What a cluster would provide, warden dev provides here:
//
// - Secrets: the manifests' Secrets, written as files (0600) into the state directory; the
//   document's mount paths (/etc/warden/secrets/<name>/<key>) are pointed at those files.
// - Generated keys: the recording signing key (the controller's `<policy>-signing` Secret), an SSH
//   host key and a TLS certificate for listeners without one — persisted in the state directory,
//   so clients see the same host key and recordings verify with the same public key across runs.
// - OIDC: Connections without spec.oidc use the development issuer.
// - Recording: a Connection no RecordingPolicy selects records into the local directory store,
//   through a stand-in policy named `warden-dev-local` (its S3 fields are never used).

import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULTS, type Connection, type RecordingPolicy } from '../api/types.ts';
import { signingSecretName } from '../controller/names.ts';
import { renderConnection, type SecretSummary, selectRecordingPolicy } from '../controller/render.ts';
import { SIDECAR_PATHS, type SecretFile, type SidecarConfig, sealSidecarConfig, SidecarConfigError, validateSidecarConfig } from '../sidecar/config.ts';
import { generateSelfSignedCertificate } from '../sidecar/self-signed.ts';
import type { LoadedManifests } from './manifests.ts';
import { type DevState, STATE_FILES, writePrivate } from './state.ts';

export const LOCAL_RECORDING_POLICY = 'warden-dev-local';
const LOCAL_RECORDING_SECRET = 'warden-dev-local-recording';

export interface DevIssuerSettings {
  issuer: string;
  audience: string;
  jwksUri: string;
}

export type RenderedConnection =
  | {
      ok: true;
      name: string;
      namespace: string;
      config: SidecarConfig;
      /** Records into the local directory store (no RecordingPolicy selects it, or --local-recordings). */
      localRecording: boolean;
      /** Whether spec.oidc names an issuer other than the development one. */
      externalIssuer: boolean;
      /** Things worth one warning line each (policy problems, no policy). */
      warnings: string[];
      source: string;
    }
  | { ok: false; name: string; namespace: string; reason: string; source: string };

interface SecretEntry {
  summary: SecretSummary;
  /** Files by key; absent for stand-in Secrets nobody reads. */
  files: Map<string, string>;
}

/** Writes one private file per Secret key under <state>/secrets and returns the lookup per namespace. */
async function writeSecrets(manifests: LoadedManifests, state: DevState): Promise<Map<string, Map<string, SecretEntry>>> {
  const root = state.path(STATE_FILES.secrets);
  await rm(root, { recursive: true, force: true });
  const byNamespace = new Map<string, Map<string, SecretEntry>>();
  for (const secret of manifests.secrets) {
    const dir = join(root, secret.namespace, secret.name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const files = new Map<string, string>();
    for (const [key, value] of secret.data) {
      const file = join(dir, key);
      await writePrivate(file, value);
      files.set(key, file);
    }
    const ns = byNamespace.get(secret.namespace) ?? new Map<string, SecretEntry>();
    ns.set(secret.name, { summary: { name: secret.name, resourceVersion: '1', keys: [...secret.data.keys()] }, files });
    byNamespace.set(secret.namespace, ns);
  }
  return byNamespace;
}

/** Removes the Secret files written for the running process. */
export async function removeSecretFiles(state: DevState): Promise<void> {
  await rm(state.path(STATE_FILES.secrets), { recursive: true, force: true });
}

async function persisted(state: DevState, namespace: string, secret: string, make: () => Record<string, string>): Promise<SecretEntry> {
  const dir = state.path(STATE_FILES.generated, namespace, secret);
  const files = new Map<string, string>();
  let found = true;
  try {
    const keys = JSON.parse(await readFile(join(dir, '.keys.json'), 'utf8')) as string[];
    for (const key of keys) {
      await readFile(join(dir, key));
      files.set(key, join(dir, key));
    }
  } catch {
    found = false;
    files.clear();
  }
  if (!found) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const made = make();
    for (const [key, value] of Object.entries(made)) {
      await writePrivate(join(dir, key), value);
      files.set(key, join(dir, key));
    }
    await writePrivate(join(dir, '.keys.json'), JSON.stringify(Object.keys(made)));
  }
  return { summary: { name: secret, resourceVersion: '1', keys: [...files.keys()] }, files };
}

function localRecordingPolicy(namespace: string): RecordingPolicy {
  return {
    apiVersion: 'warden.dev/v1alpha1',
    kind: 'RecordingPolicy',
    metadata: { name: LOCAL_RECORDING_POLICY, namespace, generation: 1, uid: `dev-local-${namespace}` },
    spec: {
      storage: { s3: { endpoint: 'http://127.0.0.1/', bucket: 'warden-dev-local', credentialsSecretRef: { name: LOCAL_RECORDING_SECRET } } },
      onStorageFailure: 'FailClosed',
    },
    status: { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True', reason: 'Local', message: 'local directory store', lastTransitionTime: new Date(0).toISOString() }] },
  } as RecordingPolicy;
}

/** Points every SecretFile of the document at the file warden dev wrote, and re-seals it. */
function relocate(config: SidecarConfig, files: (secret: string, key: string) => string | undefined): SidecarConfig {
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (value === null || typeof value !== 'object') return value;
    const obj = value as Record<string, unknown>;
    if (typeof obj.secret === 'string' && typeof obj.key === 'string' && typeof obj.file === 'string' && obj.file.startsWith(`${SIDECAR_PATHS.secretsDir}/`)) {
      const ref = obj as unknown as SecretFile;
      return { ...ref, file: files(ref.secret, ref.key) ?? ref.file };
    }
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, walk(v)]));
  };
  const { hash: _hash, ...body } = walk(config) as SidecarConfig;
  return sealSidecarConfig(body);
}

export interface RenderDevOptions {
  issuer: DevIssuerSettings;
  /** Record locally even where a RecordingPolicy selects the Connection. */
  forceLocalRecording?: boolean;
  now?: Date;
}

/** Renders every Connection of the manifests (never throws for one Connection's problem). */
export async function renderDevConnections(manifests: LoadedManifests, state: DevState, options: RenderDevOptions): Promise<RenderedConnection[]> {
  const secrets = await writeSecrets(manifests, state);
  // Generated on first use: the file the signing Secrets below point at.
  await state.signingKey();
  const results: RenderedConnection[] = [];

  for (const u of manifests.unavailable.filter((d) => d.kind === 'Connection')) {
    results.push({ ok: false, name: u.name, namespace: u.namespace, reason: u.reason, source: u.reason.split(': ')[0] ?? '' });
  }

  for (const { object: original, source } of manifests.connections) {
    const namespace = original.metadata.namespace ?? 'default';
    const name = original.metadata.name ?? '';
    const fail = (reason: string): void => {
      results.push({ ok: false, name, namespace, reason, source });
    };
    const connection: Connection = structuredClone(original);
    const nsSecrets = new Map(secrets.get(namespace) ?? []);

    // A Secret set aside for an unset variable: the Connection that needs it cannot start.
    const missing = manifests.unavailable.find(
      (u) => u.kind === 'Secret' && u.namespace === namespace && (u.name === connection.spec.credentialsRef?.name || u.name === connection.spec.listener?.tlsSecretRef?.name),
    );
    if (missing) {
      fail(missing.reason);
      continue;
    }

    // Recording: a selected RecordingPolicy records to its bucket; none records locally.
    const policies = manifests.recordingPolicies.map((r) => r.object).filter((p) => p.metadata.namespace === namespace);
    const choice = selectRecordingPolicy(connection, policies);
    let localRecording = false;
    let recordingPolicies: RecordingPolicy[] = policies;
    if (choice.policy === undefined && choice.reason !== 'NoRecordingPolicy') {
      fail(`${choice.message}; fix the RecordingPolicy, or drop spec.recordingPolicyRef to record locally`);
      continue;
    }
    if (choice.policy === undefined || options.forceLocalRecording) {
      localRecording = true;
      recordingPolicies = [localRecordingPolicy(namespace)];
      connection.spec.recordingPolicyRef = { name: LOCAL_RECORDING_POLICY };
      nsSecrets.set(LOCAL_RECORDING_SECRET, { summary: { name: LOCAL_RECORDING_SECRET, resourceVersion: '1', keys: ['accessKeyId', 'secretAccessKey'] }, files: new Map() });
    }
    // The signing keys the controller would generate per RecordingPolicy: the state's key.
    for (const policy of recordingPolicies) {
      if (policy.spec.signing) continue;
      const secretName = signingSecretName(policy.metadata.name ?? '');
      if (!nsSecrets.has(secretName)) {
        nsSecrets.set(secretName, {
          summary: { name: secretName, resourceVersion: '1', keys: [DEFAULTS.signingKeyKey] },
          files: new Map([[DEFAULTS.signingKeyKey, state.signingKeyFile]]),
        });
      }
    }

    // Listener keys a cluster would mount from Secrets: generated once, kept in the state dir.
    connection.spec.listener = { ...connection.spec.listener };
    if (connection.spec.protocol === 'ssh' && !connection.spec.listener.hostKeySecretRef) {
      const secretName = `warden-dev-${name}-host-key`;
      const { generateHostKey } = await import('../sidecar/ssh/gateway.ts');
      nsSecrets.set(secretName, await persisted(state, namespace, secretName, () => ({ [DEFAULTS.listenerHostKeyKey]: generateHostKey() })));
      connection.spec.listener.hostKeySecretRef = { name: secretName };
    }
    if ((connection.spec.protocol === 'postgres' || connection.spec.protocol === 'kubernetes') && !connection.spec.listener.tlsSecretRef) {
      const secretName = `warden-dev-${name}-tls`;
      nsSecrets.set(
        secretName,
        await persisted(state, namespace, secretName, () => {
          const { cert, key } = generateSelfSignedCertificate({ commonName: `${name} (warden dev)`, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], days: 3650 });
          return { 'tls.crt': cert, 'tls.key': key };
        }),
      );
      connection.spec.listener.tlsSecretRef = { name: secretName };
    }

    const rendered = renderConnection({
      connection,
      accessPolicies: manifests.accessPolicies.map((p) => p.object),
      recordingPolicies,
      secrets: { get: (secret) => nsSecrets.get(secret)?.summary },
      deployment: undefined,
      configMapExists: false,
      settings: {
        image: 'warden-dev',
        healthPort: 9090,
        oidc: { issuer: options.issuer.issuer, audience: options.issuer.audience, usernameClaim: 'preferred_username', groupsClaim: 'groups', jwksUri: options.issuer.jwksUri },
      },
      now: options.now ?? new Date(),
    });
    if (!rendered.config) {
      const notRendered = rendered.conditions.find((c) => c.type === 'ConfigRendered' && c.status === 'False');
      const message = notRendered?.message ?? 'the configuration could not be rendered';
      fail(`${message}; add it to the manifests given with -f`);
      continue;
    }
    let config: SidecarConfig;
    try {
      config = validateSidecarConfig(relocate(rendered.config, (secret, key) => nsSecrets.get(secret)?.files.get(key) ?? state.path('missing', secret, key)));
    } catch (error) {
      fail(error instanceof SidecarConfigError ? error.message : (error as Error).message);
      continue;
    }
    const warnings: string[] = [];
    if (config.policies.length === 0) warnings.push('no AccessPolicy selects it: every session is refused (add one with subjects and rules)');
    for (const policy of config.policies) {
      for (const problem of policy.problems) warnings.push(`AccessPolicy ${namespace}/${policy.name}: ${problem.message}; its subjects are denied every command until fixed`);
    }
    const externalIssuer = original.spec.oidc !== undefined && original.spec.oidc.issuer !== options.issuer.issuer;
    results.push({ ok: true, name, namespace, config, localRecording, externalIssuer, warnings, source });
  }
  return results;
}
