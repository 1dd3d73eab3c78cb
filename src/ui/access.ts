// Who may see which sessions in the web viewer. A RecordingPolicy's `viewers` (users or groups as
// the OIDC token names them) may list and open the sessions of the Connections the policy records;
// nobody else may, whatever their other rights. The Connection → policy choice is the controller's
// own (`selectRecordingPolicy`), so the viewer and the recording agree on which policy covers a
// Connection. Pure functions: the server gathers the objects and asks these.

import type { Connection, RecordingPolicy, Session, Subject } from '../api/types.ts';
import { selectRecordingPolicy } from '../controller/render.ts';

/** The caller as the viewer sees them (from the OIDC token). */
export interface Viewer {
  readonly user: string;
  readonly groups: readonly string[];
}

/** True when one of `subjects` names the viewer (User by name, Group by membership). Exact match. */
export function subjectsInclude(subjects: readonly Subject[] | undefined, viewer: Viewer): boolean {
  return (subjects ?? []).some((subject) =>
    subject.kind === 'User' ? subject.name === viewer.user : subject.kind === 'Group' && viewer.groups.includes(subject.name),
  );
}

/** `namespace/name` of a Connection, the key the viewer's grants use. */
export const connectionKey = (namespace: string, name: string): string => `${namespace}/${name}`;

/** What a viewer may see: Connections (`namespace/name`) whose recording policy lists them as a viewer. */
export interface Grants {
  readonly connections: ReadonlySet<string>;
  /** The covering policy of each granted Connection (its signing key verifies the recordings). */
  readonly policyOf: ReadonlyMap<string, RecordingPolicy>;
}

/**
 * The Connections whose sessions `viewer` may see: each Connection's recording policy is chosen as
 * the controller chooses it; the Connection is granted when that policy's `viewers` include the
 * viewer. A Connection with no (or an ambiguous) policy grants nothing: fail closed.
 */
export function grantsFor(viewer: Viewer, policies: readonly RecordingPolicy[], connections: readonly Connection[]): Grants {
  const granted = new Set<string>();
  const policyOf = new Map<string, RecordingPolicy>();
  for (const connection of connections) {
    const { policy } = selectRecordingPolicy(connection, policies);
    if (!policy || !subjectsInclude(policy.spec.viewers, viewer)) continue;
    const key = connectionKey(connection.metadata.namespace ?? '', connection.metadata.name ?? '');
    granted.add(key);
    policyOf.set(key, policy);
  }
  return { connections: granted, policyOf };
}

/** True when `session` belongs to a Connection in `grants`. */
export function mayView(grants: Grants, session: Session): boolean {
  return grants.connections.has(connectionKey(session.metadata.namespace ?? '', session.spec.connection));
}
