/**
 * AccessPolicy status: which Connections the policy selects (status.connections) and whether
 * its user-supplied patterns compile (Ready, reason InvalidPolicy naming the rule). The same
 * check blocks rendering of every Connection the policy selects (render.ts); here it is shown
 * where the author of the policy looks. The checks are the policy compiler's (src/policy/compile.ts),
 * the same the gateway runs.
 */
import { type AccessPolicy, type AccessPolicyStatus, API_VERSION, type Connection } from '../api/types.ts';
import { canonicalJson } from '../recorder/canonical-json.ts';
import { type DesiredCondition, mergeConditions } from './conditions.ts';
import { connectionsSelectedBy } from './connection-controller.ts';
import type { Cache } from './informers.ts';
import type { KubeClient, KubeObject } from './kube.ts';
import type { Logger } from './log.ts';
import { controllerMetrics } from './metrics.ts';
import { WorkQueue } from './queue.ts';
import { ConditionType, Reason } from './reasons.ts';
import { bundlePolicies } from '../policy/compile.ts';
import { describePolicyProblem } from './render.ts';

export interface AccessPolicyCaches {
  accessPolicies: Cache<AccessPolicy & KubeObject>;
  connections: Cache<Connection & KubeObject>;
}

const key = (namespace: string, name: string): string => `${namespace}/${name}`;

export class AccessPolicyController {
  readonly queue = new WorkQueue({ name: 'accesspolicy' });
  readonly #client: KubeClient;
  readonly #caches: AccessPolicyCaches;
  readonly #now: () => Date;

  constructor(options: { client: KubeClient; caches: AccessPolicyCaches; log: Logger; now?: () => Date }) {
    this.#client = options.client;
    this.#caches = options.caches;
    this.#now = options.now ?? (() => new Date());
  }

  wire(): void {
    this.#caches.accessPolicies.on((_e, p) => this.queue.add(key(p.metadata?.namespace ?? '', p.metadata?.name ?? '')));
    // Connections coming, going or relabelled change status.connections; bursts coalesce.
    this.#caches.connections.on((_e, c) => {
      for (const p of this.#caches.accessPolicies.list(c.metadata?.namespace)) this.queue.addAfter(key(p.metadata?.namespace ?? '', p.metadata?.name ?? ''), 1_000);
    });
  }

  resync(): void {
    for (const p of this.#caches.accessPolicies.list()) this.queue.add(key(p.metadata?.namespace ?? '', p.metadata?.name ?? ''));
  }

  async reconcile(k: string): Promise<void> {
    const [namespace = '', name = ''] = k.split('/');
    const policy = this.#caches.accessPolicies.get(namespace, name);
    if (!policy || policy.metadata.deletionTimestamp) return;
    const connections = connectionsSelectedBy(policy, this.#caches.connections.list(namespace)).sort();
    const problems = bundlePolicies([{ name, spec: policy.spec }]).problems.map((p) => ({ message: describePolicyProblem(namespace, p) }));
    const condition: DesiredCondition =
      problems.length === 0
        ? { type: ConditionType.Ready, status: 'True', reason: Reason.PolicyValid, message: `selects ${connections.length} Connection${connections.length === 1 ? '' : 's'}` }
        : { type: ConditionType.Ready, status: 'False', reason: Reason.InvalidPolicy, message: problems.map((p) => p.message).join('; ') };
    const generation = policy.metadata.generation ?? 0;
    const status: AccessPolicyStatus = {
      observedGeneration: generation,
      conditions: mergeConditions(policy.status?.conditions, [condition], generation, this.#now()),
      connections,
    };
    if (canonicalJson(policy.status ?? {}) === canonicalJson(status)) return;
    await this.#client.apply(
      { apiVersion: API_VERSION, kind: 'AccessPolicy', metadata: { name, namespace }, status } as KubeObject & { kind: string; metadata: { name: string; namespace: string } },
      'status',
    );
    controllerMetrics.writes.add(1, { kind: 'AccessPolicy/status' });
  }
}
