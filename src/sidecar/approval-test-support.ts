// For the gateways' approval integration tests: the real KubeApprovals against the test plane's
// API server (CRDs applied, one namespace per test file), and the approver's side done the way an
// approver's tools do it: a write of the AccessRequest's status subresource with kubectl.
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { AccessRequest } from '../api/types.ts';
import { KubeApprovals } from '../approvals/kube.ts';
import { kubectl, kubectlOk } from '../../test/plane/kubectl.ts';
import { waitUntil } from '../../test/plane/proc.ts';
import type { PlaneInfo } from '../../test/plane/types.ts';

const REPO = resolve(dirname(new URL(import.meta.url).pathname), '../..');

export interface ApprovalsPlane {
  namespace: string;
  approvals: KubeApprovals;
  /** All AccessRequests of the namespace. */
  list(): Promise<AccessRequest[]>;
  get(name: string): Promise<AccessRequest>;
  /** Waits for a request matching `match` (newest first) and returns it. */
  waitFor(what: string, match: (r: AccessRequest) => boolean, timeoutMs?: number): Promise<AccessRequest>;
  /** Writes the decision as the approver would (status subresource). */
  decide(name: string, decision: 'Approved' | 'Denied', by: string, comment?: string): Promise<void>;
  close(): Promise<void>;
}

export async function approvalsPlane(plane: PlaneInfo, prefix: string, options: { commandWindowMs?: number } = {}): Promise<ApprovalsPlane> {
  const kube = plane.kube;
  const namespace = `${prefix}-${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
  await kubectlOk(kube, ['apply', '--server-side', '--force-conflicts', `--field-manager=${prefix}-test`, `--filename=${join(REPO, 'crds')}`]);
  await kubectlOk(kube, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/accessrequests.warden.dev']);
  await kubectlOk(kube, ['create', 'namespace', namespace]);
  const config = new KubeConfig();
  config.loadFromFile(kube.kubeconfig);
  const approvals = new KubeApprovals(config, { namespace, retryMs: 200, ...(options.commandWindowMs === undefined ? {} : { commandWindowMs: options.commandWindowMs }) });
  const list = async (): Promise<AccessRequest[]> =>
    (JSON.parse(await kubectlOk(kube, ['get', 'accessrequests', '-o', 'json'], { namespace })) as { items: AccessRequest[] }).items;
  return {
    namespace,
    approvals,
    list,
    get: async (name) => JSON.parse(await kubectlOk(kube, ['get', 'accessrequest', name, '-o', 'json'], { namespace })) as AccessRequest,
    async waitFor(what, match, timeoutMs = 15_000) {
      let found: AccessRequest | undefined;
      await waitUntil(
        what,
        async () => {
          const items = await list();
          items.sort((a, b) => (a.metadata.creationTimestamp ?? '') < (b.metadata.creationTimestamp ?? '') ? 1 : -1);
          found = items.find(match);
          return found !== undefined;
        },
        { timeoutMs },
      );
      return found as AccessRequest;
    },
    async decide(name, decision, by, comment) {
      const status = { decision, decidedBy: by, decidedAt: new Date().toISOString(), ...(comment === undefined ? {} : { comment }) };
      await kubectlOk(kube, ['patch', 'accessrequest', name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })], { namespace });
    },
    async close() {
      await approvals.close();
      await kubectl(kube, ['delete', 'namespace', namespace, '--wait=false']);
    },
  };
}
