/* eslint-disable @typescript-eslint/no-explicit-any -- the tests reach into rendered JSON and break documents on purpose */
import { describe, expect, it } from 'vitest';
import {
  parseSidecarConfig,
  resolveSidecarPath,
  SIDECAR_CONFIG_API_VERSION,
  type SidecarConfig,
  type SidecarConfigBody,
  SidecarConfigError,
  sealSidecarConfig,
  serializeSidecarConfig,
  validateSidecarConfig,
} from './config.ts';

const file = (secret: string, key: string) => ({ secret, key, file: `/etc/warden/secrets/${secret}/${key}` });

function body(overrides: Partial<SidecarConfigBody> = {}): SidecarConfigBody {
  return {
    apiVersion: SIDECAR_CONFIG_API_VERSION,
    kind: 'SidecarConfig',
    connection: { namespace: 'payments', name: 'orders-db', uid: 'u-1', generation: 3 },
    protocol: 'postgres',
    listener: { port: 5432, healthPort: 8081 },
    target: { host: 'db.internal', port: 5432, tls: { mode: 'verify-full' } },
    credentials: { username: file('orders-db-gateway', 'username'), password: file('orders-db-gateway', 'password') },
    oidc: { issuer: 'https://idp.example.com', audience: 'warden', usernameClaim: 'email', groupsClaim: 'groups' },
    policies: [
      { name: 'a-readers', uid: 'p1', generation: 1, spec: { subjects: [{ kind: 'Group', name: 'dev' }], rules: [{ name: 'read', effect: 'Allow', sql: { statementClasses: ['read'] } }] }, problems: [] },
      { name: 'b-agents', uid: 'p2', generation: 2, spec: { subjects: [{ kind: 'User', name: 'bot' }] }, problems: [] },
    ],
    sessionLimits: { maxDuration: '1h' },
    recording: {
      policy: 'minio',
      s3: {
        endpoint: 'http://minio:9000',
        bucket: 'recordings',
        region: 'us-east-1',
        pathStyle: true,
        prefix: 'payments/orders-db/',
        accessKeyId: file('minio', 'accessKeyId'),
        secretAccessKey: file('minio', 'secretAccessKey'),
        sse: 'none',
      },
      record: { input: true, output: true, maxEventBytes: 65536, maxResultRows: 1000 },
      signingKey: file('signing', 'signing.pem'),
      storeMasked: true,
      onStorageFailure: 'FailClosed',
    },
    secretVersions: { 'orders-db-gateway': '12', minio: '7', signing: '9' },
    ...overrides,
  };
}

describe('the sidecar configuration document', () => {
  it('round-trips through its serialized form', () => {
    const config = sealSidecarConfig(body());
    expect(parseSidecarConfig(serializeSidecarConfig(config))).toEqual(config);
  });

  it('serializes equal documents to equal bytes whatever the key order', () => {
    const a = sealSidecarConfig(body());
    const reordered = JSON.parse(JSON.stringify(body()), (_k, v: unknown) =>
      v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v,
    ) as SidecarConfigBody;
    expect(serializeSidecarConfig(sealSidecarConfig(reordered))).toBe(serializeSidecarConfig(a));
  });

  it('changes its hash when a policy changes', () => {
    const a = sealSidecarConfig(body());
    const b = sealSidecarConfig(body({ policies: body().policies.slice(0, 1) }));
    expect(a.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b.hash).not.toBe(a.hash);
  });

  it('accepts recording: null (the gateway then admits no session)', () => {
    expect(validateSidecarConfig(sealSidecarConfig(body({ recording: null }))).recording).toBeNull();
  });

  it('refuses another version with a message that names both', () => {
    const doc = { ...sealSidecarConfig(body()), apiVersion: 'warden.dev/sidecar-config/v2' };
    expect(() => validateSidecarConfig(doc)).toThrow(/expected "warden.dev\/sidecar-config\/v1", got "warden.dev\/sidecar-config\/v2"/);
  });

  it('refuses a document whose hash does not match', () => {
    const doc: SidecarConfig = { ...sealSidecarConfig(body()), sessionLimits: {} };
    expect(() => validateSidecarConfig(doc)).toThrow(/\$\.hash: does not match the content/);
  });

  it('refuses text that is not JSON', () => {
    expect(() => parseSidecarConfig('{"apiVersion":')).toThrow(SidecarConfigError);
  });

  const broken: Array<[string, (c: Record<string, any>) => void, string]> = [
    ['a listener port out of range', (c) => (c.listener.port = 70000), '$.listener.port: must be an integer from 1 to 65535, got 70000'],
    ['a missing target host (postgres)', (c) => delete c.target.host, '$.target.host: is required'],
    ['a url on a postgres target', (c) => (c.target.url = 'http://x'), '$.target.url: not used by postgres'],
    ['an unknown protocol', (c) => (c.protocol = 'ftp'), '$.protocol: must be one of postgres, ssh, kubernetes, http, got "ftp"'],
    ['a relative credential path', (c) => (c.credentials.password.file = 'password'), '$.credentials.password.file: must be an absolute path'],
    ['an unknown credential', (c) => (c.credentials.apiKey = c.credentials.password), '$.credentials.apiKey: unknown credential'],
    ['unordered policies', (c) => c.policies.reverse(), '$.policies[1].name: policies must be ordered by name'],
    ['a policy without subjects', (c) => delete c.policies[0].spec.subjects, '$.policies[0].spec.subjects: is required'],
    ['a policy without its problems list', (c) => delete c.policies[0].problems, '$.policies[0].problems: is required'],
    ['a bad duration', (c) => (c.sessionLimits.maxDuration = 'an hour'), '$.sessionLimits.maxDuration: must be a duration'],
    ['recording neither input nor output', (c) => Object.assign(c.recording.record, { input: false, output: false }), '$.recording.record: must record input or output'],
    ['a missing signing key', (c) => delete c.recording.signingKey, '$.recording.signingKey: is required'],
    ['a TLS listener on ssh', (c) => {
      c.protocol = 'ssh';
      c.target.hostKeys = ['ssh-ed25519 AAAA'];
      delete c.target.tls;
      c.listener.tls = { certificate: file('t', 'tls.crt'), key: file('t', 'tls.key') };
    }, '$.listener.tls: ssh listeners present a host key'],
    ['an ssh target without pinned keys', (c) => {
      c.protocol = 'ssh';
      delete c.target.tls;
    }, '$.target.hostKeys: ssh targets need pinned host keys'],
  ];

  it.each(broken)('refuses %s with the path of the problem', (_what, breakIt, message) => {
    const doc = structuredClone(body()) as unknown as Record<string, any>;
    breakIt(doc);
    const sealed = sealSidecarConfig(doc as SidecarConfigBody);
    let error: unknown;
    try {
      validateSidecarConfig(sealed);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SidecarConfigError);
    expect((error as SidecarConfigError).code).toBe('WARDEN_INVALID_SIDECAR_CONFIG');
    expect((error as Error).message).toContain(message);
  });

  it('lists every problem, not only the first', () => {
    const doc = structuredClone(body()) as unknown as Record<string, any>;
    doc.listener.port = 0;
    doc.oidc.audience = '';
    try {
      validateSidecarConfig(sealSidecarConfig(doc as SidecarConfigBody));
      expect.unreachable();
    } catch (error) {
      expect((error as SidecarConfigError).issues.map((i) => i.path)).toEqual(['$.listener.port', '$.oidc.audience']);
    }
  });

  it('resolves document paths under WARDEN_FS_ROOT when one is given', () => {
    expect(resolveSidecarPath('/etc/warden/secrets/db/password', '/tmp/root/')).toBe('/tmp/root/etc/warden/secrets/db/password');
    expect(resolveSidecarPath('/etc/warden/secrets/db/password', undefined)).toBe('/etc/warden/secrets/db/password');
    expect(resolveSidecarPath('/etc/warden/secrets/db/password', '')).toBe('/etc/warden/secrets/db/password');
  });
});
