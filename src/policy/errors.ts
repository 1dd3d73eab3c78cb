// The one error module of the policy engine (STYLE.md point 8). Problems found while compiling
// AccessPolicies are values (`PolicyProblem`), reported by the controller in the policy's Ready
// condition and carried in the bundle to the gateway, which fails closed on them: a policy with a
// problem denies every command of its subjects. Nothing here is thrown at evaluation time.

export const PolicyErrorCode = {
  /** A user regular expression (ssh exec, masking pattern) is not in the accepted RE2 subset. */
  InvalidPattern: 'POLICY_INVALID_PATTERN',
  /** A glob or name pattern (tables, hosts, paths, columns) is malformed. */
  InvalidGlob: 'POLICY_INVALID_GLOB',
  /** A `when` condition did not compile, or conditions are not supported. */
  InvalidCondition: 'POLICY_INVALID_CONDITION',
  /** A Go duration string (approvalTimeout, sessionLimits) did not parse. */
  InvalidDuration: 'POLICY_INVALID_DURATION',
  /** A rule is malformed: more than one protocol matcher, unknown effect, duplicate name. */
  InvalidRule: 'POLICY_INVALID_RULE',
  /** A masking rule is malformed (no selector, bad JSONPath, bad column pattern, unknown detector). */
  InvalidMasking: 'POLICY_INVALID_MASKING',
  /** A masking rule uses the hash strategy but the gateway was given no hash key. */
  MissingHashKey: 'POLICY_MISSING_HASH_KEY',
  /** The policy itself is malformed (no subjects, wrong types), or the bundle is. */
  InvalidPolicy: 'POLICY_INVALID',
} as const;
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode];

/** One problem in one policy, named down to the rule and pattern where that applies. */
export interface PolicyProblem {
  code: PolicyErrorCode;
  policy: string;
  /** Access rule or masking rule name. */
  rule?: string;
  /** The offending pattern, glob, path or expression (never a credential). */
  pattern?: string;
  message: string;
}

/** Formats a problem as one sentence naming where it is. */
export function describeProblem(problem: PolicyProblem): string {
  const where = problem.rule === undefined ? `policy ${problem.policy}` : `policy ${problem.policy} rule ${problem.rule}`;
  return `${where}: ${problem.message}`;
}
