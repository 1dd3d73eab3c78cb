import { describe, expect, it } from 'vitest';
import type { ApprovalHandle, ApprovalOutcome, ApprovalRequest, Approvals } from '../approvals/types.ts';
import { approvalEvent, connectionName, oneLine, qualifiedRequest, refusalText } from './approvals.ts';
import { formatDuration, onAccessExpiry, SessionApprovalGate, type SessionApprovalRequirement } from './session-approval.ts';

/** An in-memory Approvals: requests are decided by the test. (The real one is tested against an API server.) */
class MemoryApprovals implements Approvals {
  readonly created: Array<{ request: ApprovalRequest; name: string; settle: (o: ApprovalOutcome) => void; withdrawn: boolean }> = [];
  approved: (ApprovalOutcome & { decision: 'Approved' }) | undefined;
  failFind: Error | undefined;
  failCreate: Error | undefined;
  /** What findWaiting answers: a request another replica created; an Error makes it fail. */
  waitingElsewhere: string | Error | undefined;

  async request(request: ApprovalRequest): Promise<ApprovalHandle> {
    if (this.failCreate) throw this.failCreate;
    const name = `req-${this.created.length + 1}`;
    let settle!: (o: ApprovalOutcome) => void;
    const outcome = new Promise<ApprovalOutcome>((resolve) => {
      settle = resolve;
    });
    const entry = { request, name, settle, withdrawn: false };
    this.created.push(entry);
    return {
      name,
      outcome,
      withdraw: async () => {
        entry.withdrawn = true;
        settle({ decision: 'Withdrawn', request: name });
      },
    };
  }

  async findApproved(): Promise<(ApprovalOutcome & { decision: 'Approved' }) | undefined> {
    if (this.failFind) throw this.failFind;
    return this.approved;
  }

  async findWaiting(): Promise<string | undefined> {
    if (this.waitingElsewhere instanceof Error) throw this.waitingElsewhere;
    return this.waitingElsewhere;
  }
}

const carol = { user: 'carol@example.com', groups: ['oncall'] };
const requirement: SessionApprovalRequirement = { policies: ['jit'], durationMs: 1_800_000, approvers: [{ kind: 'User', name: 'boss' }], timeoutMs: 300_000 };
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('SessionApprovalGate', () => {
  it('admits without asking when no policy requires approval', async () => {
    const approvals = new MemoryApprovals();
    const gate = new SessionApprovalGate({ approvals, connection: 'prod/db' });
    expect(await gate.admit(carol, undefined)).toEqual({ admitted: true, events: [] });
    expect(approvals.created).toHaveLength(0);
  });

  it('refuses (fail closed) when approval is required but the gateway has no approvals', async () => {
    const gate = new SessionApprovalGate({ approvals: undefined, connection: 'prod/db' });
    expect(await gate.admit(carol, requirement)).toMatchObject({ admitted: false, message: expect.stringContaining('approvals are not available') });
  });

  it('creates a Session request and names it; connecting again while it waits names the same one', async () => {
    const approvals = new MemoryApprovals();
    const gate = new SessionApprovalGate({ approvals, connection: 'prod/db' });
    const first = await gate.admit(carol, requirement, { session: 's1', reason: 'incident' });
    expect(first).toMatchObject({
      admitted: false,
      request: 'req-1',
      message: 'access to db needs approval: request req-1 created; connect again once it is approved',
      events: [{ k: 'approval', request: 'prod/req-1', state: 'pending', reason: 'session access for 30m' }],
    });
    expect(approvals.created[0]?.request).toEqual({
      requester: { user: carol.user, groups: ['oncall'] },
      connection: 'db',
      session: 's1',
      kind: 'Session',
      policy: 'jit',
      reason: 'incident',
      approvers: requirement.approvers,
      timeoutMs: 300_000,
      durationMs: 1_800_000,
    });
    const again = await gate.admit(carol, requirement);
    expect(again).toMatchObject({ admitted: false, request: 'req-1', message: expect.stringContaining('request req-1 is waiting for a decision') });
    expect(approvals.created).toHaveLength(1);
  });

  it('admits once its own request is approved, until the access expires; then asks again', async () => {
    let now = 1_000_000;
    const approvals = new MemoryApprovals();
    const gate = new SessionApprovalGate({ approvals, connection: 'prod/db', now: () => now });
    await gate.admit(carol, requirement);
    approvals.created[0]?.settle({ decision: 'Approved', request: 'req-1', decidedBy: 'boss', expiresAt: new Date(now + 60_000) });
    await tick();
    const admitted = await gate.admit(carol, requirement);
    expect(admitted).toMatchObject({ admitted: true, approval: { request: 'req-1', decidedBy: 'boss', expiresAt: new Date(now + 60_000) } });
    now += 60_000;
    expect(await gate.admit(carol, requirement)).toMatchObject({ admitted: false, request: 'req-2' });
  });

  it('admits on an approval found through the API (another replica), bounded by the policy when it has no end', async () => {
    const now = 5_000;
    const approvals = new MemoryApprovals();
    approvals.approved = { decision: 'Approved', request: 'elsewhere', decidedBy: 'boss' };
    const gate = new SessionApprovalGate({ approvals, connection: 'prod/db', now: () => now });
    expect(await gate.admit(carol, requirement)).toMatchObject({ admitted: true, approval: { request: 'elsewhere', expiresAt: new Date(now + requirement.durationMs) } });
    approvals.approved = { decision: 'Approved', request: 'old', decidedBy: 'boss', expiresAt: new Date(now - 1) };
    expect(await gate.admit(carol, requirement)).toMatchObject({ admitted: false, request: 'req-1' });
  });

  it("names a request that another replica created and that still waits, instead of creating a second", async () => {
    const approvals = new MemoryApprovals();
    approvals.waitingElsewhere = 'db-other';
    const gate = new SessionApprovalGate({ approvals, connection: 'prod/db' });
    expect(await gate.admit(carol, requirement)).toMatchObject({
      admitted: false,
      request: 'db-other',
      message: 'access to db needs approval: request db-other is waiting for a decision; connect again once it is approved',
      events: [{ k: 'approval', request: 'prod/db-other', state: 'pending' }],
    });
    expect(approvals.created).toHaveLength(0);
    // When that cannot be looked up, a request is created (the connection is refused either way).
    approvals.waitingElsewhere = new Error('timeout');
    expect(await gate.admit(carol, requirement)).toMatchObject({ admitted: false, request: 'req-1' });
    // An approval found through the API still wins over a waiting request.
    approvals.approved = { decision: 'Approved', request: 'db-other', decidedBy: 'boss' };
    approvals.waitingElsewhere = 'db-third';
    expect(await new SessionApprovalGate({ approvals, connection: 'prod/db' }).admit(carol, requirement)).toMatchObject({ admitted: true });
  });

  it('says who denied the previous request when creating the next', async () => {
    const approvals = new MemoryApprovals();
    const gate = new SessionApprovalGate({ approvals, connection: 'prod/db' });
    await gate.admit(carol, requirement);
    approvals.created[0]?.settle({ decision: 'Denied', request: 'req-1', decidedBy: 'boss', comment: 'not\ntoday' });
    await tick();
    const next = await gate.admit(carol, requirement);
    expect(next).toMatchObject({ admitted: false, request: 'req-2' });
    expect(next.admitted ? '' : next.message).toBe(
      'the previous request was denied by boss (request req-1: not today); access to db needs approval: request req-2 created; connect again once it is approved',
    );
  });

  it('refuses when the API cannot be read or the request cannot be created', async () => {
    const approvals = new MemoryApprovals();
    const gate = new SessionApprovalGate({ approvals, connection: 'prod/db' });
    approvals.failFind = new Error('connection refused');
    expect(await gate.admit(carol, requirement)).toMatchObject({ admitted: false, message: expect.stringContaining('cannot be checked right now (connection refused)') });
    approvals.failFind = undefined;
    approvals.failCreate = new Error('forbidden');
    expect(await gate.admit(carol, requirement)).toMatchObject({ admitted: false, message: expect.stringContaining('could not be created (forbidden)') });
  });
});

describe('approval texts and events', () => {
  it('names requests in the Connection namespace', () => {
    expect(qualifiedRequest('prod/db', 'db-abc')).toBe('prod/db-abc');
    expect(qualifiedRequest('db', 'db-abc')).toBe('db-abc');
    expect(connectionName('prod/db')).toBe('db');
  });

  it('words each refusal for the user', () => {
    expect(refusalText('command "rm x"', { decision: 'Denied', request: 'r1', decidedBy: 'boss' })).toBe('command "rm x" was denied by boss (request r1)');
    expect(refusalText('x', { decision: 'Expired', request: 'r1' })).toBe('x was not approved in time: request r1 expired');
    expect(refusalText('x', { decision: 'Withdrawn', request: 'r1' })).toBe('x was withdrawn (request r1)');
    expect(refusalText('x', { decision: 'Unavailable', reason: 'API down' })).toBe('x needs approval, but approvals are unavailable (API down)');
  });

  it('records every state', () => {
    expect(approvalEvent('prod/db', { decision: 'Approved', request: 'r1', decidedBy: 'boss', comment: 'ok' })).toEqual({ k: 'approval', request: 'prod/r1', state: 'approved', by: 'boss', reason: 'ok' });
    expect(approvalEvent('prod/db', { decision: 'Withdrawn', request: 'r1' })).toMatchObject({ state: 'withdrawn', reason: 'the client gave up waiting' });
  });

  it('keeps comments to one line without terminal escapes', () => {
    expect(oneLine('a\x1b[2Jb\r\nc')).toBe('a [2Jb c');
    expect(oneLine('x'.repeat(400))).toHaveLength(301);
  });

  it('formats durations', () => {
    expect([formatDuration(3_600_000), formatDuration(90_000), formatDuration(8_000), formatDuration(1_500)]).toEqual(['1h', '90s', '8s', '1500ms']);
  });

  it('ends a session when its access expires', async () => {
    const ended: number[] = [];
    onAccessExpiry(new Date(Date.now() + 30), Date.now, () => ended.push(Date.now()));
    const cancel = onAccessExpiry(new Date(Date.now() + 30), Date.now, () => ended.push(-1));
    cancel();
    await new Promise((r) => setTimeout(r, 80));
    expect(ended).toHaveLength(1);
    expect(ended[0]).toBeGreaterThan(0);
  });
});
