import { describe, expect, it } from 'vitest';
import type { AccessRequest } from '../api/types.ts';
import { buildAccessRequest, coversQuery, durationString, labelValue, namePrefix, outcomeOf, requesterLabel, sessionAccessEnd, shortCommand, waitsForSession } from './kube.ts';
import type { ApprovalRequest } from './types.ts';
import { signWebhook, verifyWebhookSignature, webhookFromEnv } from './webhook.ts';

const request: ApprovalRequest = {
  requester: { user: 'bob@example.com', groups: ['dev'] },
  connection: 'orders-db',
  session: '0b5c1f7e-9a43-4b7c-8a11-2f1d2c3b4a59',
  kind: 'Command',
  command: { protocol: 'postgres', text: 'DELETE FROM t WHERE id = $1', parameters: ['7'] },
  rule: 'deletes',
  approvers: [{ kind: 'User', name: 'alice@example.com' }],
  timeoutMs: 60_000,
};
const NOW = Date.parse('2026-11-22T08:00:00Z');

function decided(object: AccessRequest, decision: 'Approved' | 'Denied', decidedAt: string, comment?: string): AccessRequest {
  return { ...object, metadata: { ...object.metadata, name: 'orders-db-abcde' }, status: { decision, decidedBy: 'alice@example.com', decidedAt, ...(comment ? { comment } : {}) } };
}

describe('AccessRequest objects', () => {
  it('carry the spec, approvers, expiry and listable labels', () => {
    const object = buildAccessRequest(request, 'shop', NOW);
    expect(object.metadata).toMatchObject({ generateName: 'orders-db-', namespace: 'shop' });
    expect(object.metadata.labels).toEqual({
      'warden.dev/connection': 'orders-db',
      'warden.dev/requester': requesterLabel('bob@example.com'),
      'warden.dev/request-kind': 'Command',
      'warden.dev/session': request.session,
    });
    expect(object.spec).toEqual({
      requester: { user: 'bob@example.com', groups: ['dev'] },
      connection: 'orders-db',
      session: request.session,
      kind: 'Command',
      command: { protocol: 'postgres', text: 'DELETE FROM t WHERE id = $1', parameters: ['7'] },
      rule: 'deletes',
      approvers: [{ kind: 'User', name: 'alice@example.com' }],
      expiresAt: '2026-11-22T08:01:00.000Z',
    });
    expect(buildAccessRequest({ ...request, kind: 'Session', durationMs: 1500 }, 'shop', NOW).spec.duration).toBe('2s');
  });

  it('label values are valid or left out', () => {
    expect(requesterLabel('x')).toMatch(/^[0-9a-f]{40}$/);
    expect(labelValue('a b')).toBeUndefined();
    expect(labelValue('x'.repeat(64))).toBeUndefined();
    expect(namePrefix('Orders_DB')).toBe('orders-db-');
    expect(namePrefix('x'.repeat(80))).toHaveLength(51);
    expect(durationString(0)).toBe('1s');
  });

  it('map decisions to outcomes', () => {
    const object = buildAccessRequest(request, 'shop', NOW);
    expect(outcomeOf(object)).toBeUndefined();
    expect(outcomeOf(decided(object, 'Denied', '2026-11-22T08:00:10Z', 'no'))).toEqual({ decision: 'Denied', request: 'orders-db-abcde', decidedBy: 'alice@example.com', comment: 'no' });
    const session = decided(buildAccessRequest({ ...request, kind: 'Session', durationMs: 900_000 }, 'shop', NOW), 'Approved', '2026-11-22T08:00:10Z');
    expect(sessionAccessEnd(session)).toBe(Date.parse('2026-11-22T08:15:10Z'));
    expect(sessionAccessEnd({ ...session, spec: { ...session.spec, duration: '1h30m' } })).toBe(Date.parse('2026-11-22T09:30:10Z'));
  });

  it('cover exactly the approved command of the requester, within the window', () => {
    const approved = decided(buildAccessRequest(request, 'shop', NOW), 'Approved', '2026-11-22T08:00:10Z');
    const query = { requester: request.requester, connection: 'orders-db', kind: 'Command' as const, command: request.command };
    const at = Date.parse('2026-11-22T08:01:00Z');
    expect(coversQuery(approved, query, at, 300_000)).toBe(true);
    expect(coversQuery(approved, query, Date.parse('2026-11-22T08:05:11Z'), 300_000)).toBe(false);
    expect(coversQuery(approved, { ...query, requester: { user: 'eve', groups: [] } }, at, 300_000)).toBe(false);
    expect(coversQuery(approved, { ...query, command: { ...request.command!, parameters: ['8'] } }, at, 300_000)).toBe(false);
    expect(coversQuery(approved, { ...query, command: { ...request.command!, parameters: ['7', '8'] } }, at, 300_000)).toBe(false);
    expect(coversQuery(approved, { ...query, command: { ...request.command!, text: 'DELETE FROM t WHERE id = $1 ' } }, at, 300_000)).toBe(false);
    expect(coversQuery(decided(buildAccessRequest(request, 'shop', NOW), 'Denied', '2026-11-22T08:00:10Z'), query, at, 300_000)).toBe(false);
  });

  it('cover nothing when the approval was written after the request expired', () => {
    // Deadline 08:01:00 (timeout 60 s); approved at 08:01:30 while no gateway was there to mark it Expired.
    const late = decided(buildAccessRequest(request, 'shop', NOW), 'Approved', '2026-11-22T08:01:30Z');
    const query = { requester: request.requester, connection: 'orders-db', kind: 'Command' as const, command: request.command };
    expect(coversQuery(late, query, Date.parse('2026-11-22T08:02:00Z'), 300_000)).toBe(false);
    const lateSession = decided(buildAccessRequest({ ...request, kind: 'Session', durationMs: 900_000 }, 'shop', NOW), 'Approved', '2026-11-22T08:01:30Z');
    expect(coversQuery(lateSession, { requester: request.requester, connection: 'orders-db', kind: 'Session' }, Date.parse('2026-11-22T08:02:00Z'), 300_000)).toBe(false);
    const inTime = decided(buildAccessRequest({ ...request, kind: 'Session', durationMs: 900_000 }, 'shop', NOW), 'Approved', '2026-11-22T08:00:50Z');
    expect(coversQuery(inTime, { requester: request.requester, connection: 'orders-db', kind: 'Session' }, Date.parse('2026-11-22T08:02:00Z'), 300_000)).toBe(true);
  });

  it('shorten commands for tables', () => {
    expect(shortCommand('SELECT\n  1', 60)).toBe('SELECT 1');
    expect(shortCommand('x'.repeat(100), 10)).toBe(`${'x'.repeat(9)}…`);
  });
});

describe('webhook signatures', () => {
  const secret = 'a-secret-of-enough-length';
  it('verify the body, the timestamp and reject replays', () => {
    const body = '{"a":1}';
    const signature = signWebhook(secret, 1000, body);
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(secret, { signature, timestamp: '1000' }, body, 1100)).toBe(true);
    expect(verifyWebhookSignature(secret, { signature, timestamp: '1000' }, '{"a":2}', 1100)).toBe(false);
    expect(verifyWebhookSignature(secret, { signature, timestamp: '1001' }, body, 1100)).toBe(false);
    expect(verifyWebhookSignature(secret, { signature, timestamp: '1000' }, body, 2000)).toBe(false);
    expect(verifyWebhookSignature('other-secret-long-enough', { signature, timestamp: '1000' }, body, 1100)).toBe(false);
    expect(verifyWebhookSignature(secret, { signature: undefined, timestamp: '1000' }, body, 1100)).toBe(false);
  });
  it('come from the environment only when both URL and secret are set', () => {
    expect(webhookFromEnv({})).toBeUndefined();
    expect(() => webhookFromEnv({ WARDEN_APPROVAL_WEBHOOK_URL: 'https://hooks.example.com/x' })).toThrow(/both/);
    expect(() => webhookFromEnv({ WARDEN_APPROVAL_WEBHOOK_URL: 'https://hooks.example.com/x', WARDEN_APPROVAL_WEBHOOK_SECRET: 'short' })).toThrow(/16/);
    expect(webhookFromEnv({ WARDEN_APPROVAL_WEBHOOK_URL: 'https://hooks.example.com/x', WARDEN_APPROVAL_WEBHOOK_SECRET: secret })).toBeDefined();
  });
});

describe('waitsForSession', () => {
  const session = buildAccessRequest({ ...request, kind: 'Session', command: undefined, durationMs: 900_000 }, 'shop', NOW);
  const bob = { requester: { user: 'bob@example.com', groups: [] }, connection: 'orders-db' };

  it('is a Session request of this requester for this connection, undecided, before its deadline', () => {
    expect(waitsForSession(session, bob, NOW + 1000)).toBe(true);
    expect(waitsForSession(session, bob, NOW + request.timeoutMs)).toBe(false);
    expect(waitsForSession(decided(session, 'Denied', new Date(NOW + 1000).toISOString()), bob, NOW + 2000)).toBe(false);
    expect(waitsForSession(decided(session, 'Approved', new Date(NOW + 1000).toISOString()), bob, NOW + 2000)).toBe(false);
    expect(waitsForSession(session, { ...bob, requester: { user: 'mallory@example.com', groups: [] } }, NOW + 1000)).toBe(false);
    expect(waitsForSession(session, { ...bob, connection: 'other-db' }, NOW + 1000)).toBe(false);
    expect(waitsForSession(buildAccessRequest(request, 'shop', NOW), bob, NOW + 1000)).toBe(false);
  });
});
