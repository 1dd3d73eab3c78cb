import { createPrivateKey, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AccessRule } from '../api/types.ts';
import type { SqlCommand } from '../policy/command.ts';
import { SIDECAR_CONFIG_API_VERSION, SIDECAR_CONFIG_KIND, sealSidecarConfig, type SidecarConfig } from './config.ts';
import { buildPolicyEngine, NO_RECORDING_REASON, restartRequired, SwappablePolicyEngine } from './runtime.ts';
import { generateSelfSignedCertificate } from './self-signed.ts';

const file = (secret: string, key: string) => ({ secret, key, file: `/etc/warden/secrets/${secret}/${key}` });

function doc(rules: AccessRule[], patch: Partial<SidecarConfig> = {}): SidecarConfig {
  return sealSidecarConfig({
    apiVersion: SIDECAR_CONFIG_API_VERSION,
    kind: SIDECAR_CONFIG_KIND,
    connection: { namespace: 'team', name: 'orders', uid: 'u1', generation: 1 },
    protocol: 'postgres',
    listener: { port: 5432, healthPort: 8081 },
    target: { host: 'db', port: 5432, database: 'orders' },
    credentials: { username: file('db', 'username'), password: file('db', 'password') },
    oidc: { issuer: 'https://issuer.example', audience: 'warden', usernameClaim: 'email', groupsClaim: 'groups' },
    policies: [{ name: 'devs', uid: 'p1', generation: 1, spec: { subjects: [{ kind: 'Group', name: 'dev' }], rules }, problems: [] }],
    sessionLimits: {},
    recording: null,
    secretVersions: { db: '1' },
    ...patch,
  });
}

const dev = { user: 'alice', groups: ['dev'] };
const sql = (statementClass: SqlCommand['statementClass']): SqlCommand =>
  ({ protocol: 'postgres', text: 'x', statementClass, tables: ['notes'] }) as unknown as SqlCommand;

describe('SwappablePolicyEngine', () => {
  it('answers with the engine it holds now, so a swap reaches holders of the same object', () => {
    const reads = buildPolicyEngine(doc([{ name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } }]));
    const writes = buildPolicyEngine(doc([{ name: 'all', effect: 'Allow', sql: { statementClasses: ['read', 'write'] } }]));
    const policy = new SwappablePolicyEngine(reads);
    const held = policy; // what a gateway keeps in its config
    expect(held.decide(dev, sql('write')).effect).toBe('Deny');
    policy.swap(writes);
    expect(held.decide(dev, sql('write')).effect).toBe('Allow');
    expect(held.policies).toEqual(['devs']);
    expect(held.admission(dev).admitted).toBe(true);
    expect(held.admission({ user: 'mallory', groups: [] }).admitted).toBe(false);
  });

  it('refuses everyone and denies everything while no recording is configured (fail closed)', () => {
    const policy = new SwappablePolicyEngine(buildPolicyEngine(doc([{ name: 'all', effect: 'Allow', sql: { statementClasses: ['read'] } }])), NO_RECORDING_REASON);
    expect(policy.admission(dev)).toMatchObject({ admitted: false, reason: NO_RECORDING_REASON });
    expect(policy.admits(dev)).toBe(false);
    expect(policy.decide(dev, sql('read')).effect).toBe('Deny');
    policy.swap(policy.current);
    expect(policy.admits(dev)).toBe(true);
  });

  it('carries the connection session limits into the engine', () => {
    const engine = buildPolicyEngine(doc([{ name: 'r', effect: 'Allow', sql: { statementClasses: ['read'] } }], { sessionLimits: { maxDuration: '1h' } }));
    expect(engine.sessionLimits(dev).maxDurationMs).toBe(3_600_000);
  });
});

describe('restartRequired', () => {
  const rules: AccessRule[] = [{ name: 'r', effect: 'Allow', sql: { statementClasses: ['read'] } }];
  it('is empty for policy and session-limit changes (applied live)', () => {
    const a = doc(rules);
    expect(restartRequired(a, doc([...rules, { name: 'w', effect: 'Allow', sql: { statementClasses: ['write'] } }]))).toEqual([]);
    expect(restartRequired(a, doc(rules, { sessionLimits: { idleTimeout: '5m' } }))).toEqual([]);
  });

  it('names listener, target, OIDC, recording and rotated Secrets', () => {
    const a = doc(rules);
    expect(restartRequired(a, doc(rules, { listener: { port: 5433, healthPort: 8081 } }))).toEqual(['$.listener']);
    expect(restartRequired(a, doc(rules, { target: { host: 'db2', port: 5432 } }))).toEqual(['$.target']);
    expect(restartRequired(a, doc(rules, { oidc: { ...a.oidc, audience: 'other' } }))).toEqual(['$.oidc']);
    expect(restartRequired(a, doc(rules, { secretVersions: { db: '2' } }))).toEqual(['$.secretVersions']);
  });
});

describe('generateSelfSignedCertificate', () => {
  it('makes a valid self-signed certificate for its key, with the names asked for', () => {
    const { cert, key } = generateSelfSignedCertificate({ dnsNames: ['localhost', 'orders-gateway'], days: 2 });
    const x = new X509Certificate(cert);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(x.subjectAltName).toBe('DNS:localhost, DNS:orders-gateway, IP Address:127.0.0.1');
    expect(x.ca).toBe(false);
    expect(new Date(x.validTo).getTime() - Date.now()).toBeGreaterThan(86_400_000);
  });
});
