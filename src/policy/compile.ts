// AccessPolicies in two forms:
//
// 1. The bundle (`PolicyBundle`): plain JSON the controller renders into the sidecar's
//    configuration. It carries each policy's spec as written (minus the Connection selection,
//    which the controller has already applied) and the problems the controller found compiling it.
//    Keeping the spec as written keeps the ConfigMap readable and leaves one compiler.
// 2. The compiled form (`CompiledPolicy`): matchers as functions, durations in milliseconds,
//    subjects as sets. `compilePolicy` builds it from a bundled policy; the controller runs the same
//    function (through `bundlePolicies`) to find problems, the gateway (through `compilePolicies`
//    in engine.ts) to get matchers. A policy with any problem, found by either, is compiled to deny
//    every command of its subjects.
import type { AccessPolicySpec, AccessRule, Protocol, RuleEffect, SessionLimits, Subject } from '../api/types.ts';
import { DEFAULTS, RULE_EFFECTS } from '../api/types.ts';
import { type CompiledMaskingRule, compileMaskingRules } from '../masking/masker.ts';
import { parseGoDuration } from './duration.ts';
import { PolicyErrorCode, type PolicyProblem } from './errors.ts';
import {
  type CommandMatcher,
  compileHttpMatcher,
  compileKubernetesMatcher,
  compileSqlMatcher,
  compileSshMatcher,
  type MatcherProblem,
} from './matchers.ts';

export const POLICY_BUNDLE_VERSION = 1;

/** The sidecar's view of the policies that select its Connection. JSON-serialisable. */
export interface PolicyBundle {
  version: typeof POLICY_BUNDLE_VERSION;
  connection?: BundleConnection;
  policies: BundledPolicy[];
}

export interface BundleConnection {
  name: string;
  protocol: Protocol;
  sessionLimits?: SessionLimits;
}

export interface BundledPolicy {
  /** metadata.name; policies are in the Connection's namespace. */
  name: string;
  spec: BundledPolicySpec;
  /** Problems the controller found; the gateway denies the policy's subjects everything while any exist. */
  problems: PolicyProblem[];
}

/** What the gateway needs of an AccessPolicy spec: everything but the Connection selection. */
export type BundledPolicySpec = Omit<AccessPolicySpec, 'connectionSelector' | 'connections'>;

/** An AccessPolicy as the controller has it. */
export interface PolicySource {
  name: string;
  spec: AccessPolicySpec;
}

export interface BundleResult {
  bundle: PolicyBundle;
  /** All problems, in policy order; also stored per policy in the bundle. */
  problems: PolicyProblem[];
}

/**
 * Renders the policies selecting a Connection into a bundle (controller side). Policies are sorted
 * by name so the bundle, and with it the rendered ConfigMap, does not change with watch order.
 */
export function bundlePolicies(sources: readonly PolicySource[], connection?: BundleConnection): BundleResult {
  const policies: BundledPolicy[] = [...sources]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map(({ name, spec }) => {
      const { connectionSelector: _selector, connections: _connections, ...rest } = spec;
      const bundled: BundledPolicy = { name, spec: structuredClone(rest), problems: [] };
      bundled.problems = compilePolicy(bundled).problems;
      return bundled;
    });
  const bundle: PolicyBundle = { version: POLICY_BUNDLE_VERSION, policies };
  if (connection !== undefined) bundle.connection = structuredClone(connection);
  return { bundle, problems: policies.flatMap((p) => p.problems) };
}

// ---------------------------------------------------------------------------------------------
// Compiled form

export interface CompiledRule {
  name: string;
  effect: RuleEffect;
  message: string | undefined;
  matcher: CommandMatcher;
}

export interface LimitsMs {
  /** null: no limit from this source. */
  maxDurationMs: number | null;
  idleTimeoutMs: number | null;
}

export interface CompiledPolicy {
  name: string;
  users: ReadonlySet<string>;
  groups: ReadonlySet<string>;
  rules: CompiledRule[];
  approvers: Subject[];
  approvalTimeoutMs: number;
  masking: CompiledMaskingRule[];
  sessionLimits: LimitsMs;
  /** spec.sessionApproval when required: how long approved access lasts. Absent: no session approval. */
  sessionApproval?: { durationMs: number };
  /** Non-empty means the policy is broken: it admits its subjects and denies them everything. */
  problems: PolicyProblem[];
}

export interface CompileOptions {
  /** Whether the gateway has a key for the hash masking strategy (a policy using hash without one is a problem). */
  hashKeyAvailable?: boolean;
}

/** Compiles one bundled policy; never throws, malformed input becomes problems. */
export function compilePolicy(bundled: BundledPolicy, options: CompileOptions = {}): CompiledPolicy {
  const name = typeof bundled?.name === 'string' && bundled.name !== '' ? bundled.name : '(unnamed)';
  const problems: PolicyProblem[] = Array.isArray(bundled?.problems) ? [...bundled.problems] : [];
  const compiled: CompiledPolicy = {
    name,
    users: new Set(),
    groups: new Set(),
    rules: [],
    approvers: [],
    approvalTimeoutMs: 0,
    masking: [],
    sessionLimits: { maxDurationMs: null, idleTimeoutMs: null },
    problems,
  };
  const seen = new Set(problems.map(problemKey));
  const report = (problem: PolicyProblem): void => {
    // The controller's problems come back when the gateway recompiles; report each once.
    const key = problemKey(problem);
    if (seen.has(key)) return;
    seen.add(key);
    problems.push(problem);
  };
  try {
    compileInto(compiled, bundled.spec, report, options);
  } catch (error) {
    report({ code: PolicyErrorCode.InvalidPolicy, policy: name, message: `the policy could not be compiled (${(error as Error).message})` });
  }
  return compiled;
}

function problemKey(problem: PolicyProblem): string {
  return JSON.stringify([problem.code, problem.rule ?? '', problem.pattern ?? '', problem.message]);
}

function compileInto(
  compiled: CompiledPolicy,
  spec: BundledPolicySpec,
  report: (problem: PolicyProblem) => void,
  options: CompileOptions,
): void {
  const policy = compiled.name;
  if (spec === null || typeof spec !== 'object') {
    report({ code: PolicyErrorCode.InvalidPolicy, policy, message: 'the policy has no spec' });
    return;
  }
  // Subjects.
  const users = new Set<string>();
  const groups = new Set<string>();
  if (!Array.isArray(spec.subjects) || spec.subjects.length === 0) {
    report({ code: PolicyErrorCode.InvalidPolicy, policy, message: 'spec.subjects must list at least one User or Group' });
  }
  for (const subject of Array.isArray(spec.subjects) ? spec.subjects : []) {
    if (!isSubject(subject)) {
      report({ code: PolicyErrorCode.InvalidPolicy, policy, message: `subject ${JSON.stringify(subject)} needs kind User or Group and a name` });
      continue;
    }
    (subject.kind === 'User' ? users : groups).add(subject.name);
  }
  compiled.users = users;
  compiled.groups = groups;
  compiled.approvers = (spec.approvers ?? []).filter(isSubject);

  // Durations.
  const duration = (field: string, value: string | undefined, fallback: number | null): number | null => {
    if (value === undefined) return fallback;
    try {
      return parseGoDuration(value);
    } catch (error) {
      report({ code: PolicyErrorCode.InvalidDuration, policy, pattern: value, message: `${field}: ${(error as Error).message}` });
      return fallback;
    }
  };
  compiled.approvalTimeoutMs = duration('approvalTimeout', spec.approvalTimeout, parseGoDuration(DEFAULTS.approvalTimeout)) ?? 0;
  compiled.sessionLimits = {
    maxDurationMs: duration('sessionLimits.maxDuration', spec.sessionLimits?.maxDuration, null),
    idleTimeoutMs: duration('sessionLimits.idleTimeout', spec.sessionLimits?.idleTimeout, null),
  };
  const sessionApproval = spec.sessionApproval;
  if (sessionApproval !== undefined && sessionApproval !== null) {
    const fallback = parseGoDuration(DEFAULTS.sessionApprovalDuration);
    if (typeof sessionApproval !== 'object' || typeof sessionApproval.required !== 'boolean') {
      // Fail closed: an unreadable requirement still requires approval (and the policy is broken).
      report({ code: PolicyErrorCode.InvalidPolicy, policy, message: 'spec.sessionApproval needs required: true or false' });
      compiled.sessionApproval = { durationMs: fallback };
    } else if (sessionApproval.required) {
      let durationMs = duration('sessionApproval.maxDuration', sessionApproval.maxDuration, fallback) ?? fallback;
      if (durationMs <= 0) {
        report({ code: PolicyErrorCode.InvalidDuration, policy, pattern: String(sessionApproval.maxDuration), message: 'sessionApproval.maxDuration must be longer than 0s' });
        durationMs = fallback;
      }
      compiled.sessionApproval = { durationMs };
      if (compiled.approvers.length === 0) {
        report({ code: PolicyErrorCode.InvalidPolicy, policy, message: 'spec.sessionApproval.required needs spec.approvers' });
      }
    }
  }

  // Rules.
  const names = new Set<string>();
  for (const rule of Array.isArray(spec.rules) ? spec.rules : []) {
    const ruleName = typeof rule?.name === 'string' ? rule.name : '(unnamed)';
    const ruleReport = (p: MatcherProblem): void => report({ ...p, policy, rule: ruleName });
    if (names.has(ruleName)) ruleReport({ code: PolicyErrorCode.InvalidRule, message: 'the rule name is used twice in the policy' });
    names.add(ruleName);
    const compiledRule = compileRule(rule, ruleReport);
    if (compiledRule !== undefined) compiled.rules.push(compiledRule);
  }
  if (compiled.rules.some((r) => r.effect === 'RequireApproval') && compiled.approvers.length === 0) {
    report({ code: PolicyErrorCode.InvalidPolicy, policy, message: 'rules with effect RequireApproval need spec.approvers' });
  }

  // Masking.
  const masking = compileMaskingRules(spec.masking?.rules ?? [], { policy });
  compiled.masking = masking.rules;
  for (const problem of masking.problems) {
    report({ code: PolicyErrorCode.InvalidMasking, policy, rule: problem.rule, pattern: problem.pattern, message: problem.message });
  }
  if (options.hashKeyAvailable === false) {
    for (const rule of compiled.masking.filter((r) => r.strategy === 'hash')) {
      report({
        code: PolicyErrorCode.MissingHashKey,
        policy,
        rule: rule.name,
        message: 'the masking rule uses strategy hash but the gateway has no hash key configured',
      });
    }
  }
}

function isSubject(value: unknown): value is Subject {
  const s = value as Subject | null;
  return s !== null && typeof s === 'object' && (s.kind === 'User' || s.kind === 'Group') && typeof s.name === 'string' && s.name !== '';
}

const MATCHER_FIELDS = ['sql', 'ssh', 'kubernetes', 'http'] as const;

function compileRule(rule: AccessRule, report: (problem: MatcherProblem) => void): CompiledRule | undefined {
  if (rule === null || typeof rule !== 'object') {
    report({ code: PolicyErrorCode.InvalidRule, message: 'the rule is not an object' });
    return undefined;
  }
  if (!(RULE_EFFECTS as readonly string[]).includes(rule.effect)) {
    report({ code: PolicyErrorCode.InvalidRule, message: `effect ${JSON.stringify(rule.effect)} is not one of ${RULE_EFFECTS.join(', ')}` });
    return undefined;
  }
  if (rule.when !== undefined) {
    // No CEL evaluator is wired in yet (see src/policy/README.md); failing closed: the policy is
    // reported and denies its subjects everything until the condition is removed.
    report({
      code: PolicyErrorCode.InvalidCondition,
      pattern: rule.when.slice(0, 200),
      message: 'when conditions are not supported yet by this version of Warden; remove the condition or split the rule',
    });
    return undefined;
  }
  const present = MATCHER_FIELDS.filter((field) => rule[field] !== undefined);
  if (present.length > 1) {
    report({ code: PolicyErrorCode.InvalidRule, message: `the rule has ${present.join(' and ')} matchers; a rule has at most one` });
    return undefined;
  }
  let matcher: CommandMatcher = () => 'every command';
  if (rule.sql !== undefined) matcher = compileSqlMatcher(rule.sql, rule.effect, report);
  else if (rule.ssh !== undefined) matcher = compileSshMatcher(rule.ssh, rule.effect, report);
  else if (rule.kubernetes !== undefined) matcher = compileKubernetesMatcher(rule.kubernetes);
  else if (rule.http !== undefined) matcher = compileHttpMatcher(rule.http);
  return { name: rule.name, effect: rule.effect, message: rule.message, matcher };
}
