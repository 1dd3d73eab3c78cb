import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DevError, DevErrorCode } from './errors.ts';
import { expandString, loadManifests, postgresUrlVars } from './manifests.ts';

const CONNECTION = `apiVersion: warden.dev/v1alpha1
kind: Connection
metadata:
  name: pg
spec:
  protocol: postgres
  target:
    host: \${PGHOST:-127.0.0.1}
    port: \${PGPORT:-5432}
  credentialsRef:
    name: pg-credentials
  listener:
    port: 15432
`;
const SECRET = `apiVersion: v1
kind: Secret
metadata:
  name: pg-credentials
stringData:
  username: \${PGUSER:-postgres}
  password: \${PGPASSWORD}
data:
  extra: aGVsbG8=
`;

describe('loadManifests', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warden-dev-manifests-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function load(name: string, text: string, vars: Record<string, string> = {}): Promise<Awaited<ReturnType<typeof loadManifests>>> {
    await writeFile(join(dir, name), text);
    return await loadManifests([join(dir, name)], { vars, cwd: dir });
  }

  async function failure(name: string, text: string, vars: Record<string, string> = {}): Promise<DevError> {
    try {
      await load(name, text, vars);
    } catch (error) {
      expect(error).toBeInstanceOf(DevError);
      expect((error as Error).message).not.toContain('\n');
      return error as DevError;
    }
    throw new Error('expected a DevError');
  }

  it('reads multi-document files, fills in variables with their types, decodes Secrets', async () => {
    const loaded = await load('ok.yaml', `${SECRET}---\n${CONNECTION}`, { PGPASSWORD: 's3cret', PGPORT: '6543' });
    expect(loaded.connections).toHaveLength(1);
    const connection = loaded.connections[0]?.object;
    expect(connection?.metadata).toMatchObject({ name: 'pg', namespace: 'default', generation: 1 });
    expect(connection?.spec.target).toEqual({ host: '127.0.0.1', port: 6543 });
    expect(loaded.connections[0]?.source).toBe('ok.yaml:11');
    const secret = loaded.secrets[0];
    expect(secret?.data.get('password')?.toString()).toBe('s3cret');
    expect(secret?.data.get('username')?.toString()).toBe('postgres');
    expect(secret?.data.get('extra')?.toString()).toBe('hello');
  });

  it('sets a Connection or Secret with an unset variable aside, with file:line and what to do', async () => {
    const loaded = await load('unset.yaml', `${SECRET}---\n${CONNECTION}`);
    expect(loaded.secrets).toHaveLength(0);
    expect(loaded.unavailable).toEqual([
      { kind: 'Secret', namespace: 'default', name: 'pg-credentials', reason: 'unset.yaml:7: ${PGPASSWORD} is not set; export PGPASSWORD (or give it a default: ${PGPASSWORD:-value})' },
    ]);
  });

  it.each([
    ['invalid YAML', 'bad.yaml', 'kind: Connection\nmetadata:\n  name: [x\n', DevErrorCode.YamlInvalid, /^bad\.yaml:\d+: invalid YAML: .*; fix the file/],
    ['an unknown kind', 'kind.yaml', 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n', DevErrorCode.KindUnknown, /^kind\.yaml:1: unknown kind v1 Pod; warden dev reads warden\.dev\/v1alpha1 Connection, AccessPolicy, RecordingPolicy and v1 Secret$/],
    ['a Warden kind with the wrong apiVersion', 'version.yaml', 'apiVersion: warden.dev/v1\nkind: Connection\nmetadata:\n  name: x\n', DevErrorCode.KindUnknown, /the apiVersion of Connection is warden\.dev\/v1alpha1/],
    ['a wrong type', 'type.yaml', CONNECTION.replace('port: 15432', 'port: fifteen'), DevErrorCode.SchemaInvalid, /^type\.yaml:13: Connection pg: spec\.listener\.port must be an integer, got "fifteen"; see crds\//],
    ['an unknown field', 'field.yaml', CONNECTION.replace('  listener:', '  listner:'), DevErrorCode.SchemaInvalid, /^field\.yaml:12: Connection pg: spec\.listner unknown field/],
    ['a value outside the enum', 'enum.yaml', CONNECTION.replace('protocol: postgres', 'protocol: mysql'), DevErrorCode.SchemaInvalid, /spec\.protocol must be one of postgres, ssh, kubernetes, http, got "mysql"/],
    ['a missing name', 'noname.yaml', 'apiVersion: warden.dev/v1alpha1\nkind: Connection\nmetadata: {}\nspec: {}\n', DevErrorCode.SchemaInvalid, /has no metadata\.name/],
    ['bad base64 in a Secret', 'b64.yaml', 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  k: "not base64!"\n', DevErrorCode.SchemaInvalid, /^b64\.yaml:6: Secret data\.k must be base64/],
  ])('refuses %s in one line naming file:line', async (_what, name, text, code, message) => {
    const error = await failure(name, text);
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
  });

  it('refuses a variable in a policy that has no value (policies are not optional)', async () => {
    const error = await failure('policy.yaml', `${CONNECTION.replace('${PGHOST:-127.0.0.1}', 'localhost')}---\napiVersion: warden.dev/v1alpha1\nkind: AccessPolicy\nmetadata:\n  name: p\nspec:\n  connections: [pg]\n  subjects:\n    - kind: Group\n      name: \${TEAM}\n`);
    expect(error.code).toBe(DevErrorCode.VariableUnset);
    expect(error.message).toMatch(/^policy\.yaml:23: \$\{TEAM\} is not set/);
  });

  it('reads the sample local configuration', async () => {
    const loaded = await loadManifests(['config/samples/local/'], { vars: { PGPASSWORD: 'x' } });
    expect(loaded.connections.map((c) => c.object.metadata.name)).toEqual(['local-postgres']);
    expect(loaded.unavailable.map((u) => `${u.kind}/${u.name}`)).toEqual(['Secret/local-ssh-credentials', 'Connection/local-ssh']);
    expect(loaded.accessPolicies.map((p) => p.object.metadata.name)).toEqual(['dba']);
  });

  it('reads every cluster sample too', async () => {
    const loaded = await loadManifests(['config/samples/'], { vars: {} });
    expect(loaded.connections).toHaveLength(4);
    expect(loaded.recordingPolicies).toHaveLength(1);
  });

  it('says what to do when -f names nothing', async () => {
    await expect(loadManifests([join(dir, 'missing')], { vars: {}, cwd: dir })).rejects.toThrow(/no such file or directory; give -f a manifest file or a directory/);
  });
});

describe('expandString', () => {
  it.each([
    ['${A}', { A: 'x' }, 'x'],
    ['${A:-d}', {}, 'd'],
    ['${A:-d}', { A: '' }, 'd'],
    ['a-${A}-${B:-b}', { A: '1' }, 'a-1-b'],
    ['$${A} and $HOME', { A: '1' }, '${A} and $HOME'],
  ])('%s → %s', (text, vars, expected) => {
    expect(expandString(text, vars)).toBe(expected);
  });
});

describe('postgresUrlVars', () => {
  it('splits a URL into libpq variables', () => {
    expect(postgresUrlVars('postgres://al%40ice:p%3Ass@db.local:6543/app?sslmode=require')).toEqual({
      PGHOST: 'db.local',
      PGPORT: '6543',
      PGUSER: 'al@ice',
      PGPASSWORD: 'p:ss',
      PGDATABASE: 'app',
      PGSSLMODE: 'require',
    });
    expect(postgresUrlVars('postgresql://localhost')).toEqual({ PGHOST: 'localhost', PGPORT: '5432' });
  });

  it.each(['localhost:5432', 'mysql://x/y', 'not a url'])('refuses %s with what to write instead', (url) => {
    expect(() => postgresUrlVars(url)).toThrow(/--postgres-url/);
  });
});
