import fc from 'fast-check';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { compileMasker } from '../../masking/masker.ts';
import { payloadBytes } from '../../recorder/events.ts';
import { BodyCapture, JsonLinesMasker, maskBody, noticingHits, readBounded } from './body.ts';

const masker = compileMasker([{ name: 'who', jsonPaths: ['$.name'] }, { name: 'pii', detectors: ['email'] }]);

describe('BodyCapture', () => {
  it('keeps a small body whole', () => {
    const capture = new BodyCapture(10);
    capture.push(Buffer.from('hello'));
    expect(capture.payload()).toEqual({ text: 'hello' });
  });

  it('keeps a prefix and the full size of a large body, split anywhere', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.array(fc.nat(300)), fc.nat(100), (bytes, cuts, cap) => {
        const capture = new BodyCapture(cap);
        const points = [...new Set(cuts.map((c) => Math.min(c, bytes.length)))].sort((a, b) => a - b);
        let at = 0;
        for (const p of [...points, bytes.length]) {
          capture.push(Buffer.from(bytes.subarray(at, p)));
          at = p;
        }
        const payload = capture.payload();
        if (bytes.length === 0) {
          expect(payload).toBeUndefined();
          return;
        }
        const stored = Buffer.from(payloadBytes(payload as never));
        expect(Buffer.from(bytes).subarray(0, stored.length).equals(stored)).toBe(true);
        if (bytes.length <= cap) expect(stored.length).toBe(bytes.length);
        else expect(payload).toMatchObject({ truncated: true, size: bytes.length });
      }),
    );
  });

  it('marks a body seen only in part as truncated without a size', () => {
    const capture = new BodyCapture(100);
    capture.push(Buffer.from('abc'));
    expect(capture.payload(false)).toEqual({ text: 'abc', truncated: true });
  });

  it('claims no size for a body seen only in part past the cap', () => {
    const capture = new BodyCapture(4);
    capture.push(Buffer.from('abcdef'));
    capture.push(Buffer.from('ghi'));
    expect(capture.payload(false)).toEqual({ text: 'abcd', truncated: true });
  });
});

describe('masking bodies', () => {
  it('tells when masking replaced something, for whole bodies and JSON lines', async () => {
    let hits = 0;
    const noticing = noticingHits(masker, () => hits++);
    maskBody(noticing, 'application/json', Buffer.from('{"id":1}'));
    maskBody(noticing, 'text/plain', Buffer.from('nothing here'));
    expect(hits).toBe(0);
    maskBody(noticing, 'application/json', Buffer.from('{"name":"Alice"}'));
    maskBody(noticing, 'text/plain', Buffer.from('mail bob@example.org'));
    expect(hits).toBe(2);
    const lines = Readable.from([Buffer.from('{"id":1}\n{"note":"x carol@example.com"}\n')]).pipe(new JsonLinesMasker(noticing, 1000));
    for await (const _ of lines) void _;
    expect(hits).toBe(3);
  });

  it('masks JSON by path and detector, and non-JSON as text', () => {
    expect(JSON.parse(maskBody(masker, 'application/json', Buffer.from('{"name":"Ann","mail":"ann@example.com"}')).toString())).toEqual({
      name: '[REDACTED:who]',
      mail: '[REDACTED:email]',
    });
    expect(maskBody(masker, 'application/json', Buffer.from('not json ann@example.com')).toString()).toBe('not json [REDACTED:email]');
    expect(maskBody(masker, 'text/plain', Buffer.from('hi ann@example.com')).toString()).toBe('hi [REDACTED:email]');
  });

  it('masks JSON lines the same however the stream is split', async () => {
    const text = '{"name":"A","x":1}\n{"mail":"b@example.com"}\n\n{"name":"C"}';
    const expected = '{"name":"[REDACTED:who]","x":1}\n{"mail":"[REDACTED:email]"}\n\n{"name":"[REDACTED:who]"}';
    for (let cut = 0; cut <= text.length; cut++) {
      const out = await Readable.from([Buffer.from(text.slice(0, cut)), Buffer.from(text.slice(cut))].filter((b) => b.length > 0))
        .pipe(new JsonLinesMasker(masker, 1000))
        .toArray();
      expect(Buffer.concat(out).toString()).toBe(expected);
    }
  });

  it('applies object paths inside Kubernetes lists and watch events', () => {
    const list = { kind: 'ConfigMapList', apiVersion: 'v1', items: [{ name: 'A' }, { name: 'B', mail: 'b@example.com' }] };
    expect(JSON.parse(maskBody(masker, 'application/json', Buffer.from(JSON.stringify(list)), true).toString())).toEqual({
      kind: 'ConfigMapList',
      apiVersion: 'v1',
      items: [{ name: '[REDACTED:who]' }, { name: '[REDACTED:who]', mail: '[REDACTED:email]' }],
    });
    const event = { type: 'ADDED', object: { name: 'A' } };
    expect(JSON.parse(maskBody(masker, 'application/json', Buffer.from(JSON.stringify(event)), true).toString())).toEqual({
      type: 'ADDED',
      object: { name: '[REDACTED:who]' },
    });
    // Plain HTTP targets get the paths at the document root only.
    expect(JSON.parse(maskBody(masker, 'application/json', Buffer.from(JSON.stringify(event))).toString())).toEqual(event);
  });

  it('fails a line longer than the bound', async () => {
    const stream = Readable.from([Buffer.from('{"name":"'), Buffer.alloc(100, 0x61)]).pipe(new JsonLinesMasker(masker, 50));
    await expect(stream.toArray()).rejects.toMatchObject({ code: 'WARDEN_HTTP_CANNOT_MASK', status: 502 });
  });

  it('reads a body up to a bound and refuses beyond it', async () => {
    expect((await readBounded(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), 4)).toString()).toBe('abcd');
    await expect(readBounded(Readable.from([Buffer.from('ab'), Buffer.from('cde')]), 4)).rejects.toMatchObject({ code: 'WARDEN_HTTP_CANNOT_MASK' });
  });
});
