// The protocol-neutral policy engine every gateway calls: is this subject admitted, what happens to
// this command, which session limits apply, which masking. A decision is made by an ordered list
// of named pure checks (STYLE.md point 7); the first check that returns a decision wins, and its
// reason is what the user sees and what the recording stores.
import type { RuleEffect, Subject } from '../api/types.ts';
import { createMasker, type Masker } from '../masking/masker.ts';
import { MIN_HASH_KEY_BYTES } from '../masking/strategies.ts';
import type { Command, PolicySubject } from './command.ts';
import { type BundledPolicy, type CompiledPolicy, compilePolicy, type LimitsMs, type PolicyBundle, POLICY_BUNDLE_VERSION } from './compile.ts';
import { parseGoDuration } from './duration.ts';
import { describeProblem, PolicyErrorCode, type PolicyProblem } from './errors.ts';
import { describeCommand, isDiscoveryRequest, normalizeHttpPath } from './matchers.ts';

/** Names of the checks, in the order they run; stored with each decision. */
export const DECISION_CHECKS = [
  'subjectAdmitted',
  'policiesValid',
  'httpPathNormalized',
  'denyRules',
  'approvalRules',
  'kubernetesDiscovery',
  'allowRules',
  'defaultDeny',
] as const;
export type DecisionCheckName = (typeof DECISION_CHECKS)[number];

export interface Decision {
  effect: RuleEffect;
  /** The policy and rule that decided; absent when no rule did (not admitted, default deny). */
  policy?: string;
  rule?: string;
  /** One sentence naming policy and rule, for protocol errors and recordings. */
  reason: string;
  /** The check that decided (one of DECISION_CHECKS). */
  check: DecisionCheckName;
  /** The rule's own message, when it has one. */
  message?: string;
  /** RequireApproval only: who may approve (the deciding policy's approvers) and how long to wait. */
  approvers?: Subject[];
  approvalTimeoutMs?: number;
}

export interface Admission {
  admitted: boolean;
  /** Policies that list the subject, by name. */
  policies: string[];
  reason: string;
}

/**
 * What a subject needs before a session may start when a policy listing them has
 * `spec.sessionApproval.required` (docs/session-approval.md). Several such policies: approval is
 * needed once, for the shortest duration and the shortest approval timeout, and any of their
 * approvers may decide.
 */
export interface SessionApprovalRequirement {
  /** The policies that require it, by name. */
  policies: string[];
  /** How long access lasts once approved. */
  durationMs: number;
  approvers: Subject[];
  /** How long approvers have to decide. */
  timeoutMs: number;
}

/** Effective limits for a session; null means no limit. */
export type EffectiveSessionLimits = LimitsMs;

export interface PolicyEngineOptions {
  /**
   * Key for the hash masking strategy (HMAC-SHA256), at least 16 bytes. Without it, policies that
   * use hash are broken (their subjects are denied everything), not silently unmasked.
   */
  hashKey?: Uint8Array;
}

export interface PolicyEngine {
  /** Problems of all policies (the gateway logs them; the controller reports them per policy). */
  readonly problems: readonly PolicyProblem[];
  readonly policies: readonly string[];
  /** Whether some policy lists the subject (by user or one of its groups). Default deny. */
  admits(subject: PolicySubject): boolean;
  admission(subject: PolicySubject): Admission;
  decide(subject: PolicySubject, command: Command): Decision;
  /** Connection limits and those of the policies listing the subject merged; the stricter wins. */
  sessionLimits(subject: PolicySubject): EffectiveSessionLimits;
  /** A masker with the masking rules of every policy listing the subject (cached per policy set). */
  masker(subject: PolicySubject): Masker;
  /** Undefined: the subject needs no approved Session request to connect. */
  sessionApproval(subject: PolicySubject): SessionApprovalRequirement | undefined;
}

/**
 * Compiles a bundle into an engine (gateway side). Never throws on bad policies: a malformed
 * bundle gives an engine that admits nobody, a malformed policy denies its subjects everything.
 */
export function compilePolicies(bundle: PolicyBundle, options: PolicyEngineOptions = {}): PolicyEngine {
  const hashKeyAvailable = hasHashKey(options);
  if (bundle === null || typeof bundle !== 'object' || bundle.version !== POLICY_BUNDLE_VERSION || !Array.isArray(bundle.policies)) {
    const problem: PolicyProblem = {
      code: PolicyErrorCode.InvalidPolicy,
      policy: '(bundle)',
      message: `the policy bundle is not version ${POLICY_BUNDLE_VERSION} or is malformed; no subject is admitted`,
    };
    return new Engine([], { maxDurationMs: null, idleTimeoutMs: null }, [problem], options);
  }
  const policies = bundle.policies.map((p: BundledPolicy) => compilePolicy(p, { hashKeyAvailable }));
  const connectionProblems: PolicyProblem[] = [];
  const limits = connectionLimits(bundle, connectionProblems);
  return new Engine(policies, limits, connectionProblems, options);
}

function hasHashKey(options: PolicyEngineOptions): boolean {
  return options.hashKey !== undefined && options.hashKey.length >= MIN_HASH_KEY_BYTES;
}

function connectionLimits(bundle: PolicyBundle, problems: PolicyProblem[]): LimitsMs {
  const parse = (value: string | undefined): number | null => {
    if (value === undefined) return null;
    try {
      return parseGoDuration(value);
    } catch (error) {
      problems.push({
        code: PolicyErrorCode.InvalidDuration,
        policy: `(connection ${bundle.connection?.name ?? ''})`,
        pattern: value,
        message: (error as Error).message,
      });
      // Fail closed: an unreadable limit becomes the strictest limit there is.
      return 0;
    }
  };
  return {
    maxDurationMs: parse(bundle.connection?.sessionLimits?.maxDuration),
    idleTimeoutMs: parse(bundle.connection?.sessionLimits?.idleTimeout),
  };
}

// ---------------------------------------------------------------------------------------------
// Checks

interface DecisionContext {
  subject: PolicySubject;
  /** The command as matched: HTTP paths normalised. */
  command: Command;
  /** Set when an HTTP path cannot be normalised. */
  pathProblem: string | undefined;
  /** Policies listing the subject, in bundle order. */
  policies: readonly CompiledPolicy[];
}

type Check = (ctx: DecisionContext) => Omit<Decision, 'check'> | undefined;

interface RuleHit {
  policy: CompiledPolicy;
  rule: CompiledPolicy['rules'][number];
  why: string;
}

function firstHit(ctx: DecisionContext, effect: RuleEffect): RuleHit | undefined {
  for (const policy of ctx.policies) {
    for (const rule of policy.rules) {
      if (rule.effect !== effect) continue;
      const why = rule.matcher(ctx.command);
      if (why !== undefined) return { policy, rule, why };
    }
  }
  return undefined;
}

const VERB: Record<RuleEffect, string> = { Allow: 'allowed', Deny: 'denied', RequireApproval: 'held for approval' };

function ruleDecision(hit: RuleHit, ctx: DecisionContext): Omit<Decision, 'check'> {
  const { policy, rule } = hit;
  const what = `${describeCommand(ctx.command)} (${hit.why})`;
  const because = rule.message === undefined || rule.effect === 'Allow' ? what : `${rule.message} [${what}]`;
  const decision: Omit<Decision, 'check'> = {
    effect: rule.effect,
    policy: policy.name,
    rule: rule.name,
    reason: `${VERB[rule.effect]} by policy ${policy.name} rule ${rule.name}: ${because}`,
  };
  if (rule.message !== undefined) decision.message = rule.message;
  if (rule.effect === 'RequireApproval') {
    decision.approvers = policy.approvers;
    decision.approvalTimeoutMs = policy.approvalTimeoutMs;
  }
  return decision;
}

const CHECKS: Record<DecisionCheckName, Check> = {
  subjectAdmitted: (ctx) =>
    ctx.policies.length > 0 ? undefined : { effect: 'Deny', reason: `denied: ${notAdmittedReason(ctx.subject)}` },

  // A broken policy may have lost a Deny rule; deny its subjects everything until it is fixed.
  policiesValid: (ctx) => {
    const broken = ctx.policies.find((p) => p.problems.length > 0);
    if (broken === undefined) return undefined;
    const first = broken.problems[0] as PolicyProblem;
    const more = broken.problems.length > 1 ? ` and ${broken.problems.length - 1} more problem(s)` : '';
    return {
      effect: 'Deny',
      policy: broken.name,
      reason: `denied by policy ${broken.name}: the policy is invalid (${describeProblem(first)}${more}); nothing is allowed to its subjects until it is fixed`,
    };
  },

  httpPathNormalized: (ctx) =>
    ctx.pathProblem === undefined
      ? undefined
      : { effect: 'Deny', reason: `denied: ${ctx.pathProblem}, so no policy can be applied to it safely; send the path in normal form` },

  denyRules: (ctx) => {
    const hit = firstHit(ctx, 'Deny');
    return hit === undefined ? undefined : ruleDecision(hit, ctx);
  },

  approvalRules: (ctx) => {
    const hit = firstHit(ctx, 'RequireApproval');
    return hit === undefined ? undefined : ruleDecision(hit, ctx);
  },

  // The CRD promises API discovery to every subject of a policy (kubectl needs it for anything).
  kubernetesDiscovery: (ctx) =>
    ctx.command.protocol === 'kubernetes' && isDiscoveryRequest(ctx.command)
      ? { effect: 'Allow', reason: `allowed: ${describeCommand(ctx.command)} is API discovery, open to every subject of a policy` }
      : undefined,

  allowRules: (ctx) => {
    const hit = firstHit(ctx, 'Allow');
    return hit === undefined ? undefined : ruleDecision(hit, ctx);
  },

  defaultDeny: (ctx) => {
    const names = ctx.policies.map((p) => p.name);
    const which = names.length === 1 ? `policy ${names[0]}` : `policies ${names.join(', ')}`;
    return { effect: 'Deny', reason: `denied: no rule of ${which} allows ${describeCommand(ctx.command)}` };
  },
};

function notAdmittedReason(subject: PolicySubject): string {
  const groups = subject.groups.length === 0 ? 'no groups' : `groups ${subject.groups.slice(0, 10).join(', ')}${subject.groups.length > 10 ? ', …' : ''}`;
  return `no AccessPolicy for this connection lists user ${subject.user} or any of their ${groups}`;
}

// ---------------------------------------------------------------------------------------------

const CACHE_LIMIT = 1024;

class Engine implements PolicyEngine {
  readonly problems: readonly PolicyProblem[];
  readonly policies: readonly string[];
  readonly #compiled: readonly CompiledPolicy[];
  readonly #connectionLimits: LimitsMs;
  readonly #options: PolicyEngineOptions;
  readonly #maskers = new Map<string, Masker>();

  constructor(policies: CompiledPolicy[], connectionLimits: LimitsMs, extraProblems: PolicyProblem[], options: PolicyEngineOptions) {
    this.#compiled = policies;
    this.#connectionLimits = connectionLimits;
    this.#options = options;
    this.policies = policies.map((p) => p.name);
    this.problems = [...extraProblems, ...policies.flatMap((p) => p.problems)];
  }

  #applicable(subject: PolicySubject): CompiledPolicy[] {
    const groups = Array.isArray(subject?.groups) ? subject.groups : [];
    const user = typeof subject?.user === 'string' ? subject.user : undefined;
    return this.#compiled.filter((p) => (user !== undefined && user !== '' && p.users.has(user)) || groups.some((g) => p.groups.has(g)));
  }

  admits(subject: PolicySubject): boolean {
    return this.#applicable(subject).length > 0;
  }

  admission(subject: PolicySubject): Admission {
    const policies = this.#applicable(subject);
    if (policies.length === 0) return { admitted: false, policies: [], reason: `not admitted: ${notAdmittedReason(subject)}` };
    const names = policies.map((p) => p.name);
    return { admitted: true, policies: names, reason: `admitted by ${names.length === 1 ? 'policy' : 'policies'} ${names.join(', ')}` };
  }

  decide(subject: PolicySubject, command: Command): Decision {
    let matched = command;
    let pathProblem: string | undefined;
    if (command.protocol === 'http') {
      const normal = normalizeHttpPath(String(command.path));
      if (normal.ok) matched = { ...command, path: normal.path };
      else pathProblem = `the request path ${JSON.stringify(String(command.path).slice(0, 200))} is not usable (${normal.reason})`;
    }
    const ctx: DecisionContext = { subject, command: matched, pathProblem, policies: this.#applicable(subject) };
    for (const name of DECISION_CHECKS) {
      const decision = CHECKS[name](ctx);
      if (decision !== undefined) return { ...decision, check: name };
    }
    // Unreachable: defaultDeny always decides. Kept so a future edit cannot fall through to allow.
    return { effect: 'Deny', reason: 'denied: no check decided', check: 'defaultDeny' };
  }

  sessionLimits(subject: PolicySubject): EffectiveSessionLimits {
    const stricter = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.min(a, b));
    let limits = { ...this.#connectionLimits };
    for (const policy of this.#applicable(subject)) {
      limits = {
        maxDurationMs: stricter(limits.maxDurationMs, policy.sessionLimits.maxDurationMs),
        idleTimeoutMs: stricter(limits.idleTimeoutMs, policy.sessionLimits.idleTimeoutMs),
      };
    }
    return limits;
  }

  sessionApproval(subject: PolicySubject): SessionApprovalRequirement | undefined {
    const requiring = this.#applicable(subject).filter((p) => p.sessionApproval !== undefined);
    if (requiring.length === 0) return undefined;
    const approvers: Subject[] = [];
    const seen = new Set<string>();
    for (const a of requiring.flatMap((p) => p.approvers)) {
      const key = `${a.kind}\u0000${a.name}`;
      if (!seen.has(key)) {
        seen.add(key);
        approvers.push(a);
      }
    }
    return {
      policies: requiring.map((p) => p.name),
      durationMs: Math.min(...requiring.map((p) => p.sessionApproval?.durationMs ?? 0)),
      approvers,
      timeoutMs: Math.min(...requiring.map((p) => p.approvalTimeoutMs)),
    };
  }

  masker(subject: PolicySubject): Masker {
    const policies = this.#applicable(subject);
    const key = policies.map((p) => p.name).join('\u0000');
    let masker = this.#maskers.get(key);
    if (masker === undefined) {
      // Broken policies contribute whatever masking rules did compile; their subjects get no
      // command through anyway (policiesValid).
      const keyed = hasHashKey(this.#options);
      const rules = policies.flatMap((p) => p.masking.filter((r) => r.strategy !== 'hash' || keyed));
      masker = createMasker(rules, keyed && this.#options.hashKey !== undefined ? { hashKey: this.#options.hashKey } : {});
      if (this.#maskers.size >= CACHE_LIMIT) this.#maskers.clear();
      this.#maskers.set(key, masker);
    }
    return masker;
  }
}
