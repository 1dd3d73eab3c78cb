import { describe, expect, it } from 'vitest';
import { API_VERSION, type Session } from '../api/types.ts';
import { aConnection, aRecordingPolicy } from '../controller/test-support.ts';
import { grantsFor, mayView, subjectsInclude } from './access.ts';

const session = (connection: string, namespace = 'payments'): Session => ({
  apiVersion: API_VERSION,
  kind: 'Session',
  metadata: { name: `s-${connection}`, namespace },
  spec: { connection, protocol: 'postgres', user: 'bob', startedAt: '2026-11-22T08:00:00.000Z' },
});

describe('subjectsInclude', () => {
  it.each([
    [[{ kind: 'User' as const, name: 'alice' }], { user: 'alice', groups: [] }, true],
    [[{ kind: 'User' as const, name: 'alice' }], { user: 'Alice', groups: [] }, false],
    [[{ kind: 'Group' as const, name: 'auditors' }], { user: 'bob', groups: ['auditors'] }, true],
    [[{ kind: 'Group' as const, name: 'auditors' }], { user: 'auditors', groups: [] }, false],
    [[{ kind: 'User' as const, name: 'auditors' }], { user: 'bob', groups: ['auditors'] }, false],
    [undefined, { user: 'alice', groups: ['auditors'] }, false],
    [[], { user: 'alice', groups: [] }, false],
  ])('subjects %j include %j: %s', (subjects, viewer, expected) => {
    expect(subjectsInclude(subjects, viewer)).toBe(expected);
  });
});

describe('grantsFor', () => {
  const orders = aConnection('orders', {}, { team: 'shop' });
  const billing = aConnection('billing', {}, { team: 'finance' });
  const orphan = aConnection('orphan', {}, { team: 'none' });
  const other = aConnection('orders', {}, { team: 'shop' }, 'elsewhere');
  const shop = aRecordingPolicy('shop', { connectionSelector: { matchLabels: { team: 'shop' } }, viewers: [{ kind: 'Group', name: 'auditors' }] });
  const finance = aRecordingPolicy('finance', { connectionSelector: { matchLabels: { team: 'finance' } }, viewers: [{ kind: 'User', name: 'carol' }] });
  const policies = [shop, finance];
  const connections = [orders, billing, orphan, other];

  it('grants the connections whose recording policy lists the viewer, in that policy namespace only', () => {
    const grants = grantsFor({ user: 'dave', groups: ['auditors'] }, policies, connections);
    expect([...grants.connections]).toEqual(['payments/orders']);
    expect(grants.policyOf.get('payments/orders')?.metadata.name).toBe('shop');
    expect(mayView(grants, session('orders'))).toBe(true);
    expect(mayView(grants, session('billing'))).toBe(false);
    expect(mayView(grants, session('orders', 'elsewhere'))).toBe(false);
  });

  it('grants nothing to someone in no viewers list, and nothing for a Connection without a policy', () => {
    expect(grantsFor({ user: 'mallory', groups: ['developers'] }, policies, connections).connections.size).toBe(0);
    expect(mayView(grantsFor({ user: 'carol', groups: ['auditors'] }, policies, connections), session('orphan'))).toBe(false);
  });

  it('fails closed when two policies select the same Connection (the controller records it with neither)', () => {
    const both = aRecordingPolicy('both', { connectionSelector: {}, viewers: [{ kind: 'Group', name: 'auditors' }] });
    const grants = grantsFor({ user: 'dave', groups: ['auditors'] }, [shop, both], [orders]);
    expect(grants.connections.size).toBe(0);
  });

  it('follows spec.recordingPolicyRef over selectors', () => {
    const pinned = aConnection('pinned', { recordingPolicyRef: { name: 'finance' } }, { team: 'shop' });
    const grants = grantsFor({ user: 'carol', groups: [] }, policies, [pinned]);
    expect([...grants.connections]).toEqual(['payments/pinned']);
  });
});
