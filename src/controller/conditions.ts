import type { Condition, ConditionStatus } from '../api/types.ts';
import type { ConditionTypeName, ReasonName } from './reasons.ts';

/** A condition as a reconciler computes it; the helper adds generation and transition time. */
export interface DesiredCondition {
  type: ConditionTypeName;
  status: ConditionStatus;
  reason: ReasonName;
  message: string;
}

/**
 * Merges computed conditions into the ones an object has, per API conventions: a condition's
 * lastTransitionTime moves only when its status flips; reason, message and observedGeneration
 * follow the latest computation. Conditions of other types are kept, and the result is ordered
 * by type so that equal states serialize equally.
 */
export function mergeConditions(
  existing: readonly Condition[] | undefined,
  desired: readonly DesiredCondition[],
  generation: number,
  now: Date,
): Condition[] {
  const byType = new Map<string, Condition>();
  for (const condition of existing ?? []) byType.set(condition.type, condition);
  for (const next of desired) {
    const previous = byType.get(next.type);
    byType.set(next.type, {
      type: next.type,
      status: next.status,
      observedGeneration: generation,
      lastTransitionTime:
        previous && previous.status === next.status ? previous.lastTransitionTime : toRfc3339(now),
      reason: next.reason,
      message: next.message,
    });
  }
  return [...byType.values()].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** metav1.Time has second precision; the schema's date-time format takes RFC 3339. */
export function toRfc3339(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}
