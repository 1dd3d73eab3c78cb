import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { BodyStream, type ResponseSink, UpstreamExchange } from './upstream.ts';

/** undici's DispatchController as the handler sees it: records what the gateway asked of it. */
class FakeController implements Dispatcher.DispatchController {
  aborted = false;
  paused = false;
  reason: Error | null = null;
  pauses = 0;
  resumes = 0;
  abort(reason: Error): void {
    this.aborted = true;
    this.reason = reason;
  }
  pause(): void {
    this.paused = true;
    this.pauses += 1;
  }
  resume(): void {
    this.paused = false;
    this.resumes += 1;
  }
}

function recordingSink(): ResponseSink & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    onData: (chunk) => void seen.push(`data:${chunk.toString()}`),
    onEnd: () => void seen.push('end'),
    onError: (error) => void seen.push(`error:${error.message}`),
    onClientClosed: (finished) => void seen.push(`closed:${finished}`),
  };
}

function exchange(start: (status: number) => ResponseSink): { exchange: UpstreamExchange; failures: unknown[]; starts: number[] } {
  const failures: unknown[] = [];
  const starts: number[] = [];
  const ex = new UpstreamExchange(
    (_controller, status) => {
      starts.push(status);
      return start(status);
    },
    (error) => failures.push(error),
  );
  return { exchange: ex, failures, starts };
}

describe('UpstreamExchange', () => {
  it('skips 1xx informational answers and hands the final head to the gateway', () => {
    const sink = recordingSink();
    const { exchange: ex, starts } = exchange(() => sink);
    const controller = new FakeController();
    ex.onRequestStart(controller);
    ex.onResponseStart(controller, 103, {});
    ex.onResponseStart(controller, 200, { 'content-type': 'text/plain' });
    ex.onResponseData(controller, Buffer.from('ok'));
    ex.onResponseEnd();
    expect(starts).toEqual([200]);
    expect(sink.seen).toEqual(['data:ok', 'end']);
  });

  it('reports a failure before the response began to the gateway, once', () => {
    const { exchange: ex, failures } = exchange(() => recordingSink());
    const controller = new FakeController();
    ex.onRequestStart(controller);
    ex.onResponseError(controller, new Error('connect ECONNREFUSED'));
    ex.onResponseError(controller, new Error('again'));
    expect(failures).toEqual([new Error('connect ECONNREFUSED')]);
  });

  it('cuts the client (through the sink) when the target breaks off after the response began', () => {
    const sink = recordingSink();
    const { exchange: ex, failures } = exchange(() => sink);
    const controller = new FakeController();
    ex.onRequestStart(controller);
    ex.onResponseStart(controller, 200, {});
    ex.onResponseError(controller, new Error('other side closed'));
    expect(failures).toEqual([]);
    expect(sink.seen).toEqual(['error:other side closed']);
  });

  it('fails and aborts the request when the gateway refuses the response head (e.g. cannot mask)', () => {
    const refusal = new Error('cannot mask');
    const { exchange: ex, failures } = exchange(() => {
      throw refusal;
    });
    const controller = new FakeController();
    ex.onRequestStart(controller);
    ex.onResponseStart(controller, 200, {});
    // undici reports the abort back as an error: already answered, so ignored.
    ex.onResponseError(controller, refusal);
    expect(failures).toEqual([refusal]);
    expect(controller.reason).toBe(refusal);
  });

  it('aborts a request the client left before undici started it, as soon as it starts', () => {
    const { exchange: ex } = exchange(() => recordingSink());
    ex.clientClosed(false);
    const controller = new FakeController();
    ex.onRequestStart(controller);
    expect(controller.aborted).toBe(true);
  });

  it('does not abort a request whose response the client received whole', () => {
    const sink = recordingSink();
    const { exchange: ex } = exchange(() => sink);
    const controller = new FakeController();
    ex.onRequestStart(controller);
    ex.onResponseStart(controller, 200, {});
    ex.onResponseEnd();
    ex.clientClosed(true);
    expect(controller.aborted).toBe(false);
    expect(sink.seen).toEqual(['end', 'closed:true']);
  });
});

describe('BodyStream', () => {
  it('pauses the target while its buffer is full and resumes it when read', async () => {
    const controller = new FakeController();
    const body = new BodyStream(controller);
    body.onData(Buffer.alloc(64 * 1024));
    expect(controller.pauses).toBe(1);
    expect(controller.resumes).toBe(0);
    const read = body.read() as Buffer;
    expect(read.length).toBe(64 * 1024);
    await new Promise((resolve) => setImmediate(resolve));
    expect(controller.resumes).toBeGreaterThan(0);
    body.onEnd();
    expect(await body.toArray()).toEqual([]);
    expect(controller.aborted).toBe(false);
  });

  it('aborts the target when destroyed before the end (the client went away, the masker refused)', () => {
    const controller = new FakeController();
    const body = new BodyStream(controller);
    body.onData(Buffer.from('{"a":'));
    body.destroy();
    expect(controller.aborted).toBe(true);
  });

  it('passes a target failure on as a stream error', async () => {
    const controller = new FakeController();
    const body = new BodyStream(controller);
    body.onData(Buffer.from('{"a":'));
    body.onError(new Error('other side closed'));
    await expect(body.toArray()).rejects.toThrow('other side closed');
  });
});
