import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AccessPolicySpec, AccessRule } from '../api/types.ts';
import type { Command, PolicySubject } from './command.ts';
import { bundlePolicies, type PolicySource } from './compile.ts';
import { compilePolicies } from './engine.ts';
import { PolicyErrorCode } from './errors.ts';

const alice: PolicySubject = { user: 'alice@example.com', groups: ['dev'] };
const bob: PolicySubject = { user: 'bob@example.com', groups: ['sre', 'oncall'] };
const mallory: PolicySubject = { user: 'mallory@example.com', groups: ['contractors'] };

const policy = (name: string, spec: Partial<AccessPolicySpec>): PolicySource => ({
  name,
  spec: { connections: ['orders-db'], subjects: [{ kind: 'User', name: alice.user }], ...spec },
});

const engineOf = (...sources: PolicySource[]) => compilePolicies(bundlePolicies(sources).bundle, { hashKey: new Uint8Array(32) });

/** Decides one command with one rule (plus whatever `extra` adds) for alice. */
const effectOf = (rule: Omit<AccessRule, 'name'>, command: Command, extra: AccessRule[] = []) =>
  engineOf(policy('p', { rules: [{ name: 'r', ...rule }, ...extra], approvers: [{ kind: 'Group', name: 'sre' }] })).decide(alice, command)
    .effect;

const sql = (statementClass: 'read' | 'write' | 'ddl', tables: string[]): Command => ({ protocol: 'postgres', text: '…', statementClass, tables, flags: [] });

describe('admission', () => {
  const engine = engineOf(
    policy('devs', { subjects: [{ kind: 'Group', name: 'dev' }] }),
    policy('bob', { subjects: [{ kind: 'User', name: bob.user }] }),
  );

  it.each([
    ['by user', bob, true, ['bob']],
    ['by group', alice, true, ['devs']],
    ['nobody else', mallory, false, []],
    ['not by a user name that equals a group name', { user: 'dev', groups: [] }, false, []],
    ['not case-insensitively', { user: 'BOB@example.com', groups: ['DEV'] }, false, []],
  ])('admits %s', (_what, subject, admitted, policies) => {
    expect(engine.admits(subject)).toBe(admitted);
    expect(engine.admission(subject)).toMatchObject({ admitted, policies });
  });

  it('denies every command of a subject no policy lists, whatever the rules', () => {
    const open = engineOf(policy('open', { rules: [{ name: 'all', effect: 'Allow' }] }));
    const commands = fc.oneof(
      fc.record({ protocol: fc.constant('postgres' as const), text: fc.string(), statementClass: fc.constantFrom('read', 'write', 'ddl' as const), tables: fc.array(fc.string()), flags: fc.constant([]) }),
      fc.record({ protocol: fc.constant('ssh' as const), kind: fc.constant('exec' as const), command: fc.string() }),
      fc.record({ protocol: fc.constant('http' as const), method: fc.constantFrom('GET', 'POST'), host: fc.string(), path: fc.string() }),
      fc.record({ protocol: fc.constant('kubernetes' as const), verb: fc.constantFrom('get', 'delete'), apiGroup: fc.constant(''), resource: fc.string() }),
    );
    fc.assert(
      fc.property(commands, fc.string(), fc.array(fc.string()), (command, user, groups) => {
        fc.pre(user !== alice.user);
        const decision = open.decide({ user, groups }, command as Command);
        expect(decision).toMatchObject({ effect: 'Deny', check: 'subjectAdmitted' });
        expect(decision.reason).toMatch(/no AccessPolicy for this connection lists user/);
      }),
    );
  });
});

describe('precedence', () => {
  const read = sql('read', ['public.orders']);
  it.each([
    ['Allow alone allows', ['Allow'], 'Allow'],
    ['Deny wins over Allow', ['Allow', 'Deny'], 'Deny'],
    ['RequireApproval wins over Allow', ['Allow', 'RequireApproval'], 'RequireApproval'],
    ['Deny wins over RequireApproval', ['RequireApproval', 'Deny'], 'Deny'],
    ['nothing matching means deny', [], 'Deny'],
  ] as const)('%s', (_what, effects, expected) => {
    const rules = effects.map((effect, i) => ({ name: `r${i}`, effect }));
    const engine = engineOf(policy('p', { rules, approvers: [{ kind: 'Group', name: 'sre' }] }));
    expect(engine.decide(alice, read).effect).toBe(expected);
  });

  it('lets a Deny of one policy win over an Allow of another that lists the same subject', () => {
    const engine = engineOf(
      policy('allow-all', { rules: [{ name: 'all', effect: 'Allow' }] }),
      policy('no-writes', { subjects: [{ kind: 'Group', name: 'dev' }], rules: [{ name: 'no-writes', effect: 'Deny', sql: { statementClasses: ['write'] }, message: 'writes need a change ticket' }] }),
    );
    const decision = engine.decide(alice, sql('write', ['public.orders']));
    expect(decision).toMatchObject({ effect: 'Deny', policy: 'no-writes', rule: 'no-writes', check: 'denyRules' });
    expect(decision.reason).toBe('denied by policy no-writes rule no-writes: writes need a change ticket [write statement on public.orders (statement class write)]');
    expect(engine.decide(alice, sql('read', ['public.orders'])).effect).toBe('Allow');
  });

  it('ignores the rules of policies that do not list the subject', () => {
    const engine = engineOf(
      policy('alice', { rules: [{ name: 'all', effect: 'Allow' }] }),
      policy('bob-denied', { subjects: [{ kind: 'User', name: bob.user }], rules: [{ name: 'none', effect: 'Deny' }] }),
    );
    expect(engine.decide(alice, sql('write', [])).effect).toBe('Allow');
  });

  it('says which policies had no rule for the command', () => {
    const engine = engineOf(policy('readers', { rules: [{ name: 'reads', effect: 'Allow', sql: { statementClasses: ['read'] } }] }));
    const decision = engine.decide(alice, sql('ddl', ['public.orders']));
    expect(decision).toMatchObject({ effect: 'Deny', check: 'defaultDeny' });
    expect(decision.reason).toBe('denied: no rule of policy readers allows ddl statement on public.orders');
  });

  it('names approvers and the approval timeout for RequireApproval', () => {
    const engine = engineOf(
      policy('p', { rules: [{ name: 'ddl', effect: 'RequireApproval', sql: { statementClasses: ['ddl'] } }], approvers: [{ kind: 'Group', name: 'sre' }], approvalTimeout: '10m' }),
    );
    expect(engine.decide(alice, sql('ddl', ['t']))).toMatchObject({
      effect: 'RequireApproval',
      approvers: [{ kind: 'Group', name: 'sre' }],
      approvalTimeoutMs: 600_000,
      reason: expect.stringMatching(/^held for approval by policy p rule ddl: /),
    });
  });
});

describe('SQL matcher', () => {
  it.each<[string, Omit<AccessRule, 'name'>, Command, string]>([
    ['a class it lists', { effect: 'Allow', sql: { statementClasses: ['read'] } }, sql('read', ['t']), 'Allow'],
    ['not a class it does not list', { effect: 'Allow', sql: { statementClasses: ['read'] } }, sql('write', ['t']), 'Deny'],
    ['every table for Allow', { effect: 'Allow', sql: { tables: ['public.*'] } }, sql('read', ['public.a', 'public.b']), 'Allow'],
    ['not when one table is outside, for Allow', { effect: 'Allow', sql: { tables: ['public.*'] } }, sql('read', ['public.a', 'audit.log']), 'Deny'],
    ['any table for Deny', { effect: 'Deny', sql: { tables: ['audit.*'] } }, sql('read', ['public.a', 'audit.log']), 'Deny'],
    ['a one-part pattern in any schema', { effect: 'Allow', sql: { tables: ['orders'] } }, sql('read', ['sales.orders']), 'Allow'],
    ['a glob within a part', { effect: 'Allow', sql: { tables: ['audit_*'] } }, sql('read', ['audit_2024']), 'Allow'],
    ['case-insensitively', { effect: 'Allow', sql: { tables: ['Public.Orders'] } }, sql('read', ['public.orders']), 'Allow'],
    ['an unqualified table as public for Allow', { effect: 'Allow', sql: { tables: ['public.orders'] } }, sql('read', ['orders']), 'Allow'],
    ['an unqualified table not as another schema for Allow', { effect: 'Allow', sql: { tables: ['sales.orders'] } }, sql('read', ['orders']), 'Deny'],
    ['an unqualified table as any schema for Deny', { effect: 'Deny', sql: { tables: ['secret.keys'] } }, sql('read', ['keys']), 'Deny'],
    ['a catalog-qualified name by its last two parts', { effect: 'Allow', sql: { tables: ['public.orders'] } }, sql('read', ['db.public.orders']), 'Allow'],
    ['no statement without tables when tables are set', { effect: 'Allow', sql: { tables: ['public.*'] } }, sql('read', []), 'Deny'],
    ['a statement without tables when tables are omitted', { effect: 'Allow', sql: {} }, sql('read', []), 'Allow'],
    ['no other protocol', { effect: 'Allow', sql: {} }, { protocol: 'ssh', kind: 'shell' }, 'Deny'],
  ])('matches %s', (_what, rule, command, effect) => {
    expect(effectOf(rule, command)).toBe(effect);
  });
});

describe('SSH matcher', () => {
  const exec = (command: string): Command => ({ protocol: 'ssh', kind: 'exec', command });
  it.each<[string, Omit<AccessRule, 'name'>, Command, string]>([
    ['a shell', { effect: 'Allow', ssh: { shell: true } }, { protocol: 'ssh', kind: 'shell' }, 'Allow'],
    ['no shell when only exec is listed', { effect: 'Allow', ssh: { exec: ['ls'] } }, { protocol: 'ssh', kind: 'shell' }, 'Deny'],
    ['an exec anchored at both ends', { effect: 'Allow', ssh: { exec: ['systemctl status [a-z0-9@.-]+'] } }, exec('systemctl status nginx'), 'Allow'],
    ['no exec with a suffix', { effect: 'Allow', ssh: { exec: ['systemctl status [a-z0-9@.-]+'] } }, exec('systemctl status nginx; rm -rf /'), 'Deny'],
    ['no exec with a prefix', { effect: 'Allow', ssh: { exec: ['ls'] } }, exec('rm -rf / && ls'), 'Deny'],
    ['no exec escaping the anchors through alternation', { effect: 'Allow', ssh: { exec: ['ls|cat .*'] } }, exec('ls; rm -rf /'), 'Deny'],
    ['no multi-line exec for Allow', { effect: 'Allow', ssh: { exec: ['journalctl .*'] } }, exec('journalctl -u x\nrm -rf /'), 'Deny'],
    ['any line of a multi-line exec for Deny', { effect: 'Deny', ssh: { exec: ['rm .*'] } }, exec('echo hi\nrm -rf /'), 'Deny'],
    ['a typed command by an exec pattern', { effect: 'Deny', ssh: { exec: ['shutdown.*'] } }, { protocol: 'ssh', kind: 'typed', command: 'shutdown -h now' }, 'Deny'],
    ['a typed command in an allowed shell', { effect: 'Allow', ssh: { shell: true } }, { protocol: 'ssh', kind: 'typed', command: 'ls' }, 'Allow'],
    ['sftp reads under read-only', { effect: 'Allow', ssh: { sftp: 'read-only' } }, { protocol: 'ssh', kind: 'sftp', operation: 'read', path: '/etc/hosts' }, 'Allow'],
    ['no sftp writes under read-only', { effect: 'Allow', ssh: { sftp: 'read-only' } }, { protocol: 'ssh', kind: 'sftp', operation: 'write', path: '/tmp/x' }, 'Deny'],
    ['sftp writes under read-write', { effect: 'Allow', ssh: { sftp: 'read-write' } }, { protocol: 'ssh', kind: 'sftp', operation: 'write', path: '/tmp/x' }, 'Allow'],
    ['no sftp under none with another field', { effect: 'Allow', ssh: { shell: true, sftp: 'none' } }, { protocol: 'ssh', kind: 'sftp', operation: 'read', path: '/x' }, 'Deny'],
    ['every request with an empty matcher (sftp none as defaulted)', { effect: 'Allow', ssh: { sftp: 'none' } }, { protocol: 'ssh', kind: 'sftp', operation: 'write', path: '/x' }, 'Allow'],
    ['a forward to a host glob and port', { effect: 'Allow', ssh: { portForwarding: [{ host: '*.internal', port: 5432 }] } }, { protocol: 'ssh', kind: 'forward', direction: 'local', host: 'db.internal', port: 5432 }, 'Allow'],
    ['no forward to another port', { effect: 'Allow', ssh: { portForwarding: [{ host: '*.internal', port: 5432 }] } }, { protocol: 'ssh', kind: 'forward', direction: 'local', host: 'db.internal', port: 22 }, 'Deny'],
    ['a forward to any port when omitted', { effect: 'Allow', ssh: { portForwarding: [{ host: 'db' }] } }, { protocol: 'ssh', kind: 'forward', direction: 'local', host: 'DB', port: 1 }, 'Allow'],
    ['no remote forward', { effect: 'Allow', ssh: { portForwarding: [{ host: '*' }] } }, { protocol: 'ssh', kind: 'forward', direction: 'remote', host: 'x', port: 80 }, 'Deny'],
  ])('matches %s', (_what, rule, command, effect) => {
    expect(effectOf(rule, command)).toBe(effect);
  });

  it('runs a catastrophic exec pattern in linear time', () => {
    const started = performance.now();
    expect(effectOf({ effect: 'Allow', ssh: { exec: ['(a+)+'] } }, exec(`${'a'.repeat(30_000)}b`))).toBe('Deny');
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('Kubernetes matcher', () => {
  const k = (c: Partial<Extract<Command, { protocol: 'kubernetes' }>>): Command => ({ protocol: 'kubernetes', verb: 'get', apiGroup: '', resource: 'pods', namespace: 'shop', ...c });
  it.each<[string, Omit<AccessRule, 'name'>, Command, string]>([
    ['a verb and resource', { effect: 'Allow', kubernetes: { verbs: ['get', 'list'], resources: ['pods'] } }, k({}), 'Allow'],
    ['no other verb', { effect: 'Allow', kubernetes: { verbs: ['get'] } }, k({ verb: 'delete' }), 'Deny'],
    ['"*" verbs', { effect: 'Allow', kubernetes: { verbs: ['*'] } }, k({ verb: 'delete' }), 'Allow'],
    ['not a subresource by its resource', { effect: 'Allow', kubernetes: { resources: ['pods'] } }, k({ verb: 'create', subresource: 'exec' }), 'Deny'],
    ['a subresource by resource/subresource', { effect: 'Allow', kubernetes: { resources: ['pods/exec'] } }, k({ verb: 'create', subresource: 'exec' }), 'Allow'],
    ['a subresource by */subresource', { effect: 'Allow', kubernetes: { resources: ['*/scale'] } }, k({ resource: 'deployments', apiGroup: 'apps', subresource: 'scale' }), 'Allow'],
    ['a subresource by "*"', { effect: 'Deny', kubernetes: { resources: ['*'] } }, k({ subresource: 'log' }), 'Deny'],
    ['an API group', { effect: 'Allow', kubernetes: { apiGroups: ['apps'] } }, k({ apiGroup: 'apps', resource: 'deployments' }), 'Allow'],
    ['not the core group for another', { effect: 'Allow', kubernetes: { apiGroups: ['apps'] } }, k({}), 'Deny'],
    ['the core group as ""', { effect: 'Allow', kubernetes: { apiGroups: [''] } }, k({}), 'Allow'],
    ['a namespace', { effect: 'Allow', kubernetes: { namespaces: ['shop'] } }, k({}), 'Allow'],
    ['not another namespace', { effect: 'Allow', kubernetes: { namespaces: ['shop'] } }, k({ namespace: 'kube-system' }), 'Deny'],
    ['any namespace by "*"', { effect: 'Allow', kubernetes: { namespaces: ['*'] } }, k({ namespace: 'kube-system' }), 'Allow'],
    ['not a cluster-scoped request by "*"', { effect: 'Allow', kubernetes: { namespaces: ['*'] } }, k({ resource: 'nodes', namespace: undefined }), 'Deny'],
    ['a cluster-scoped request by ""', { effect: 'Allow', kubernetes: { namespaces: [''] } }, k({ resource: 'nodes', namespace: undefined }), 'Allow'],
    ['a name', { effect: 'Allow', kubernetes: { names: ['web-1'] } }, k({ name: 'web-1' }), 'Allow'],
    ['not a list with names set', { effect: 'Allow', kubernetes: { names: ['web-1'] } }, k({ verb: 'list' }), 'Deny'],
    ['a non-resource URL', { effect: 'Allow', kubernetes: { nonResourceURLs: ['/healthz'] } }, k({ nonResourceURL: '/healthz' }), 'Allow'],
    ['a non-resource URL prefix', { effect: 'Allow', kubernetes: { nonResourceURLs: ['/metrics*'] } }, k({ nonResourceURL: '/metrics/cadvisor' }), 'Allow'],
    ['no resource request with nonResourceURLs', { effect: 'Allow', kubernetes: { nonResourceURLs: ['*'] } }, k({}), 'Deny'],
    ['no non-resource request with resource fields', { effect: 'Allow', kubernetes: { resources: ['*'] } }, k({ nonResourceURL: '/healthz' }), 'Deny'],
    ['discovery without any rule', { effect: 'Allow', kubernetes: { resources: ['configmaps'] } }, k({ nonResourceURL: '/apis/apps/v1' }), 'Allow'],
    ['no discovery when a Deny matches it', { effect: 'Deny' }, k({ nonResourceURL: '/api' }), 'Deny'],
  ])('matches %s', (_what, rule, command, effect) => {
    expect(effectOf(rule, command)).toBe(effect);
  });
});

describe('HTTP matcher', () => {
  const h = (method: string, path: string, host = 'billing.example.com'): Command => ({ protocol: 'http', method, path, host });
  it.each<[string, Omit<AccessRule, 'name'>, Command, string]>([
    ['a method', { effect: 'Allow', http: { methods: ['GET'] } }, h('get', '/x'), 'Allow'],
    ['not another method', { effect: 'Allow', http: { methods: ['GET'] } }, h('POST', '/x'), 'Deny'],
    ['a path in one segment', { effect: 'Allow', http: { paths: ['/api/v1/invoices/*'] } }, h('GET', '/api/v1/invoices/42?x=1'), 'Allow'],
    ['not a deeper path with *', { effect: 'Allow', http: { paths: ['/api/v1/invoices/*'] } }, h('GET', '/api/v1/invoices/42/pdf'), 'Deny'],
    ['a deeper path with **', { effect: 'Deny', http: { paths: ['/admin/**'] } }, h('GET', '/admin/users/1'), 'Deny'],
    ['the base of /** itself', { effect: 'Deny', http: { paths: ['/admin/**'] } }, h('GET', '/admin'), 'Deny'],
    ['an encoded unreserved character as decoded', { effect: 'Deny', http: { paths: ['/admin/**'] } }, h('GET', '/%61dmin/users'), 'Deny'],
    ['a host glob without the port', { effect: 'Allow', http: { hosts: ['*.example.com'] } }, h('GET', '/', 'billing.example.com:8443'), 'Allow'],
    ['not another host', { effect: 'Allow', http: { hosts: ['*.example.com'] } }, h('GET', '/', 'evil.test'), 'Deny'],
  ])('matches %s', (_what, rule, command, effect) => {
    expect(effectOf(rule, command)).toBe(effect);
  });

  it.each(['/public/../admin', '/public/%2e%2e/admin', '//admin', '/a%2fb', '/a\\b', 'relative'])('denies the path %j, which does not normalise', (path) => {
    const engine = engineOf(policy('p', { rules: [{ name: 'all', effect: 'Allow' }] }));
    expect(engine.decide(alice, h('GET', path))).toMatchObject({ effect: 'Deny', check: 'httpPathNormalized' });
  });
});

describe('compile problems', () => {
  it.each<[string, Partial<AccessPolicySpec>, string, string | undefined, RegExp]>([
    ['a bad exec pattern', { rules: [{ name: 'r', effect: 'Allow', ssh: { exec: ['(a)\\1'] } }] }, PolicyErrorCode.InvalidPattern, 'r', /not valid RE2/],
    ['a when condition', { rules: [{ name: 'r', effect: 'Allow', when: 'now.getHours() < 18' }] }, PolicyErrorCode.InvalidCondition, 'r', /not supported yet/],
    ['two matchers', { rules: [{ name: 'r', effect: 'Allow', sql: {}, ssh: {} }] }, PolicyErrorCode.InvalidRule, 'r', /at most one/],
    ['a bad table pattern', { rules: [{ name: 'r', effect: 'Allow', sql: { tables: ['a.b.c'] } }] }, PolicyErrorCode.InvalidGlob, 'r', /schema.table/],
    ['a bad duration', { sessionLimits: { maxDuration: '1d' } }, PolicyErrorCode.InvalidDuration, undefined, /maxDuration/],
    ['RequireApproval without approvers', { rules: [{ name: 'r', effect: 'RequireApproval' }] }, PolicyErrorCode.InvalidPolicy, undefined, /approvers/],
    ['a bad masking pattern', { masking: { rules: [{ name: 'm', patterns: ['(?=x)'] }] } }, PolicyErrorCode.InvalidMasking, 'm', /not valid RE2/],
    ['duplicate rule names', { rules: [{ name: 'r', effect: 'Allow' }, { name: 'r', effect: 'Deny' }] }, PolicyErrorCode.InvalidRule, 'r', /twice/],
  ])('reports %s naming policy and rule, and denies the subjects everything', (_what, spec, code, rule, message) => {
    const { bundle, problems } = bundlePolicies([policy('broken', spec), policy('fine', { rules: [{ name: 'all', effect: 'Allow' }] })]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject(rule === undefined ? { code, policy: 'broken' } : { code, policy: 'broken', rule });
    expect(problems[0]?.rule).toBe(rule);
    expect(problems[0]?.message).toMatch(message);
    // The bundle is plain JSON and carries the problem to the gateway.
    const engine = compilePolicies(JSON.parse(JSON.stringify(bundle)));
    expect(engine.problems).toHaveLength(1);
    const decision = engine.decide(alice, sql('read', ['t']));
    expect(decision).toMatchObject({ effect: 'Deny', policy: 'broken', check: 'policiesValid' });
    expect(decision.reason).toMatch(/^denied by policy broken: the policy is invalid \(policy broken/);
  });

  it('reports a hash masking rule when the gateway has no hash key', () => {
    const { bundle } = bundlePolicies([policy('p', { rules: [{ name: 'all', effect: 'Allow' }], masking: { rules: [{ name: 'h', columns: ['email'], strategy: 'hash' }] } })]);
    const engine = compilePolicies(bundle);
    expect(engine.problems).toMatchObject([{ code: PolicyErrorCode.MissingHashKey, rule: 'h' }]);
    expect(engine.decide(alice, sql('read', ['t'])).effect).toBe('Deny');
  });

  it.each([null, {}, { version: 2, policies: [] }, { version: 1, policies: 'x' }])('admits nobody with a malformed bundle %j', (bundle) => {
    const engine = compilePolicies(bundle as never);
    expect(engine.admits(alice)).toBe(false);
    expect(engine.problems).toHaveLength(1);
  });

  it('survives malformed policies inside a bundle without throwing', () => {
    const engine = compilePolicies({ version: 1, policies: [{ name: 'x', spec: { subjects: 'nope' } as never, problems: [] }, null as never] });
    expect(engine.problems.length).toBeGreaterThan(0);
    expect(engine.decide(alice, sql('read', [])).effect).toBe('Deny');
  });

  it('sorts policies by name so the bundle does not depend on watch order', () => {
    const a = policy('a', {});
    const b = policy('b', {});
    expect(bundlePolicies([b, a]).bundle).toEqual(bundlePolicies([a, b]).bundle);
    expect(bundlePolicies([b, a]).bundle.policies[0]).not.toHaveProperty('spec.connections');
  });
});

describe('session limits', () => {
  it('merges connection and policy limits, the stricter winning', () => {
    const { bundle } = bundlePolicies(
      [
        policy('a', { sessionLimits: { maxDuration: '2h', idleTimeout: '30m' } }),
        policy('b', { subjects: [{ kind: 'Group', name: 'dev' }], sessionLimits: { maxDuration: '1h30m' } }),
        policy('c', { subjects: [{ kind: 'User', name: 'bob@example.com' }], sessionLimits: { maxDuration: '1m' } }),
      ],
      { name: 'orders-db', protocol: 'postgres', sessionLimits: { idleTimeout: '45m', maxDuration: '8h' } },
    );
    const engine = compilePolicies(bundle);
    expect(engine.sessionLimits(alice)).toEqual({ maxDurationMs: 5_400_000, idleTimeoutMs: 1_800_000 });
    expect(engine.sessionLimits(mallory)).toEqual({ maxDurationMs: 28_800_000, idleTimeoutMs: 2_700_000 });
  });

  it('has no limit when nothing sets one', () => {
    expect(engineOf(policy('a', {})).sessionLimits(alice)).toEqual({ maxDurationMs: null, idleTimeoutMs: null });
  });
});

describe('masking through the engine', () => {
  it('masks with the rules of the policies that list the subject', () => {
    const engine = engineOf(
      policy('a', { masking: { rules: [{ name: 'emails', columns: ['email'] }] } }),
      policy('b', { subjects: [{ kind: 'User', name: bob.user }], masking: { rules: [{ name: 'cards', detectors: ['creditCard'] }] } }),
    );
    expect(engine.masker(alice).maskValue('email', 'a@example.com').value).toBe('[REDACTED:emails]');
    expect(engine.masker(alice).maskValue('note', '4111111111111111').value).toBe('4111111111111111');
    expect(engine.masker(bob).maskValue('note', '4111111111111111').value).toBe('[REDACTED:creditCard]');
    expect(engine.masker(alice)).toBe(engine.masker(alice));
  });
});

describe('session approval', () => {
  const boss = { kind: 'User' as const, name: 'boss@example.com' };
  const sre = { kind: 'Group' as const, name: 'sre' };

  it('is not needed when no policy listing the subject requires it', () => {
    const engine = engineOf(policy('a', {}), policy('jit', { subjects: [{ kind: 'User', name: bob.user }], approvers: [boss], sessionApproval: { required: true } }));
    expect(engine.sessionApproval(alice)).toBeUndefined();
    expect(engine.sessionApproval(mallory)).toBeUndefined();
    expect(engineOf(policy('off', { sessionApproval: { required: false, maxDuration: '5m' } })).sessionApproval(alice)).toBeUndefined();
  });

  it('is needed when any policy listing the subject requires it: shortest duration and timeout, all approvers', () => {
    const engine = engineOf(
      policy('plain', {}),
      policy('jit-a', { approvers: [boss], approvalTimeout: '2m', sessionApproval: { required: true, maxDuration: '30m' } }),
      policy('jit-b', { subjects: [{ kind: 'Group', name: 'dev' }], approvers: [sre, boss], sessionApproval: { required: true } }),
    );
    expect(engine.sessionApproval(alice)).toEqual({ policies: ['jit-a', 'jit-b'], durationMs: 1_800_000, approvers: [boss, sre], timeoutMs: 120_000 });
    expect(engine.problems).toEqual([]);
  });

  it('defaults to 1h, and a policy without approvers is broken', () => {
    const engine = engineOf(policy('jit', { sessionApproval: { required: true } }));
    expect(engine.sessionApproval(alice)).toMatchObject({ durationMs: 3_600_000, approvers: [] });
    expect(engine.problems.map((p) => p.message)).toContain('spec.sessionApproval.required needs spec.approvers');
  });

  it('fails closed on an unreadable spec: approval still required', () => {
    const engine = engineOf(policy('bad', { approvers: [boss], sessionApproval: { required: 'yes' } as never }));
    expect(engine.sessionApproval(alice)).toMatchObject({ policies: ['bad'] });
    expect(engine.problems.length).toBeGreaterThan(0);
  });
});
