import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { WorkQueue, runWorkers } from './queue.ts';

describe('WorkQueue', () => {
  it('holds a key once however often it is added', async () => {
    const queue = new WorkQueue({ name: 't' });
    queue.add('a');
    queue.add('b');
    queue.add('a');
    expect(queue.length).toBe(2);
    expect(await queue.get()).toBe('a');
    expect(await queue.get()).toBe('b');
  });

  it('does not hand out a key being processed, and processes it again when it was added meanwhile', async () => {
    const queue = new WorkQueue({ name: 't' });
    queue.add('a');
    const key = await queue.get();
    queue.add('a');
    expect(queue.length).toBe(0);
    queue.done(key as string);
    expect(queue.length).toBe(1);
    expect(await queue.get()).toBe('a');
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const queue = new WorkQueue({ name: 't' });
    const next = queue.get();
    queue.add('x');
    expect(await next).toBe('x');
  });

  it('backs off exponentially per key and forgets after a success', () => {
    const queue = new WorkQueue({ name: 't', baseDelayMs: 100, maxDelayMs: 1000 });
    const delays = [1, 2, 3, 4, 5].map(() => queue.addRateLimited('k'));
    expect(delays).toEqual([100, 200, 400, 800, 1000]);
    queue.forget('k');
    expect(queue.failures('k')).toBe(0);
    queue.shutDown();
  });

  it('delivers a delayed key after its delay', async () => {
    const queue = new WorkQueue({ name: 't' });
    const began = Date.now();
    queue.addAfter('later', 50);
    expect(queue.length).toBe(0);
    expect(await queue.get()).toBe('later');
    expect(Date.now() - began).toBeGreaterThanOrEqual(45);
  });

  it('releases waiting workers on shutdown', async () => {
    const queue = new WorkQueue({ name: 't' });
    const next = queue.get();
    queue.shutDown();
    expect(await next).toBeUndefined();
  });
});

describe('runWorkers', () => {
  it('retries a failing key with back-off until it succeeds, never running it twice at once', async () => {
    const queue = new WorkQueue({ name: 't', baseDelayMs: 10 });
    let attempts = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const errors: number[] = [];
    queue.add('k');
    const running = runWorkers(
      queue,
      4,
      async () => {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        queue.add('k'); // added while processing: must not start a second run now
        await sleep(5);
        concurrent--;
        attempts++;
        if (attempts < 3) throw new Error('transient');
        if (attempts === 3) queue.shutDown();
      },
      (_key, _error, delay) => errors.push(delay),
    );
    await running;
    expect(maxConcurrent).toBe(1);
    expect(errors).toEqual([10, 20]);
  });
});
