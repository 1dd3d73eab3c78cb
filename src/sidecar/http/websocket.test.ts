import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileMasker } from '../../masking/masker.ts';
import {
  type ChannelMaskerOutput,
  isKubernetesChannelProtocol,
  KubernetesChannelMasker,
  serializeWsFrame,
  websocketAccept,
  WsFrameParser,
  WsOpcode,
  WsProtocolError,
} from './websocket.ts';

describe('WebSocket framing', () => {
  it('computes the RFC 6455 §1.3 example accept value', () => {
    expect(websocketAccept('dGhlIHNhbXBsZSBub25jZQ==')).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('parses frames split anywhere, masked or not, of every length class', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            opcode: fc.constantFrom(WsOpcode.Text, WsOpcode.Binary, WsOpcode.Ping),
            payload: fc.uint8Array({ maxLength: 300 }),
            mask: fc.option(fc.uint8Array({ minLength: 4, maxLength: 4 }), { nil: undefined }),
            fin: fc.boolean(),
          }),
          { maxLength: 4 },
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        (frames, cuts) => {
          const wire = Buffer.concat(
            frames.map((f) => serializeWsFrame(f.opcode, Buffer.from(f.payload), { fin: f.fin, ...(f.mask ? { mask: Buffer.from(f.mask) } : {}) })),
          );
          const parser = new WsFrameParser({ maxPayloadBytes: 100_000 });
          const points = [...new Set(cuts.map((c) => (wire.length === 0 ? 0 : c % wire.length)))].sort((a, b) => a - b);
          const parsed = [];
          let at = 0;
          for (const p of [...points, wire.length]) {
            parsed.push(...parser.push(wire.subarray(at, p)));
            at = p;
          }
          expect(parsed.map((f) => ({ opcode: f.opcode, fin: f.fin, masked: f.masked, payload: f.payload.toString('hex') }))).toEqual(
            frames.map((f) => ({ opcode: f.opcode, fin: f.fin, masked: f.mask !== undefined, payload: Buffer.from(f.payload).toString('hex') })),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('parses the 16-bit and 64-bit length forms', () => {
    for (const size of [125, 126, 65_535, 65_536, 70_000]) {
      const payload = Buffer.alloc(size, 7);
      const [frame] = new WsFrameParser({ maxPayloadBytes: 100_000 }).push(serializeWsFrame(WsOpcode.Binary, payload, { mask: Buffer.from([9, 8, 7, 6]) }));
      expect(frame?.size).toBe(size);
      expect(frame?.payload.equals(payload)).toBe(true);
    }
  });

  it('keeps at most maxPayloadBytes of a frame but reports its size', () => {
    const parser = new WsFrameParser({ maxPayloadBytes: 10 });
    const [frame] = parser.push(serializeWsFrame(WsOpcode.Binary, Buffer.alloc(70_000, 1), { mask: Buffer.from([1, 2, 3, 4]) }));
    expect(frame?.payload).toEqual(Buffer.alloc(10, 1));
    expect(frame?.size).toBe(70_000);
  });

  it('refuses a frame larger than maxFrameBytes as soon as its header is read', () => {
    const parser = new WsFrameParser({ maxPayloadBytes: 1000, maxFrameBytes: 1000 });
    expect(parser.push(serializeWsFrame(WsOpcode.Binary, Buffer.alloc(1000, 1)))[0]?.payload.length).toBe(1000);
    // Only the 4 header bytes of a 1001-byte frame: refused before any payload is buffered.
    expect(() => parser.push(serializeWsFrame(WsOpcode.Binary, Buffer.alloc(1001, 1)).subarray(0, 4))).toThrow(/1001 bytes is larger than the 1000/);
  });

  it('refuses reserved bits', () => {
    expect(() => new WsFrameParser().push(Buffer.from([0xc1, 0x00]))).toThrow(WsProtocolError);
  });

  it.each([
    ['v5.channel.k8s.io', true],
    ['v4.channel.k8s.io', true],
    ['channel.k8s.io', true],
    ['v4.base64.channel.k8s.io', false],
    ['chat', false],
    [undefined, false],
  ])('knows the Kubernetes channel protocol %s: %s', (protocol, yes) => {
    expect(isKubernetesChannelProtocol(protocol)).toBe(yes);
  });
});

const masker = compileMasker([{ name: 'secrets', detectors: ['email', 'cloudKey', 'privateKey'] }]);
const KEY = 'AKIAIOSFODNN7EXAMPLE';

/** A binary frame from the API server: channel byte, then data (server frames are not masked). */
const serverFrame = (ch: number, data: string | Buffer, fin = true): Buffer =>
  serializeWsFrame(WsOpcode.Binary, Buffer.concat([Buffer.of(ch), typeof data === 'string' ? Buffer.from(data) : data]), { fin });

/** What the client receives: each frame as [opcode, channel, data]; control frames with their payload. */
function clientView(outputs: ChannelMaskerOutput[]): Array<[number, number | undefined, string]> {
  const parser = new WsFrameParser({ maxPayloadBytes: 1 << 20 });
  const frames = parser.push(Buffer.concat(outputs.flatMap((o) => o.wire)));
  for (const f of frames) {
    expect(f.masked).toBe(false);
    expect(f.fin).toBe(true);
  }
  return frames.map((f) => (f.opcode === WsOpcode.Binary ? [f.opcode, f.payload[0], f.payload.subarray(1).toString('utf8')] : [f.opcode, undefined, f.payload.toString('utf8')]));
}

/** The client's bytes of one channel, joined. */
function channelText(outputs: ChannelMaskerOutput[], ch: number): string {
  return clientView(outputs)
    .filter(([op, c]) => op === WsOpcode.Binary && c === ch)
    .map(([, , d]) => d)
    .join('');
}

const newMasker = (recordOriginal = false): KubernetesChannelMasker =>
  new KubernetesChannelMasker({ createStream: () => masker.createStream(), maxFrameBytes: 64 * 1024, recordOriginal });

describe('KubernetesChannelMasker', () => {
  it('masks a secret split across stdout frames, keeps a split character whole, passes other channels in order', () => {
    const m = newMasker();
    const euro = Buffer.from('€'); // 3 bytes, split 1 + 2 across frames
    const status = '{"metadata":{},"status":"Success"}';
    const outputs = [
      m.push(serverFrame(1, `key: ${KEY.slice(0, 9)}`)),
      m.push(serverFrame(1, Buffer.concat([Buffer.from(`${KEY.slice(9)}\nprice 5`), euro.subarray(0, 1)]))),
      m.push(serverFrame(2, 'warning: mail bob@example.org\n')),
      m.push(Buffer.concat([serverFrame(1, Buffer.concat([euro.subarray(1), Buffer.from('\n')])), serializeWsFrame(WsOpcode.Ping, Buffer.from('p'))])),
      m.push(serverFrame(3, status)),
      m.push(serializeWsFrame(WsOpcode.Close, Buffer.from([0x03, 0xe8]))),
    ];
    expect(channelText(outputs, 1)).toBe('key: [REDACTED:cloudKey]\nprice 5€\n');
    expect(channelText(outputs, 2)).toBe('warning: mail [REDACTED:email]\n');
    const view = clientView(outputs);
    // The exit Status comes after every byte of output, unchanged; Close comes last.
    const statusAt = view.findIndex(([, c]) => c === 3);
    expect(view[statusAt]).toEqual([WsOpcode.Binary, 3, status]);
    expect(view.slice(statusAt + 1).map(([op]) => op)).toEqual([WsOpcode.Close]);
    expect(view.some(([op, , d]) => op === WsOpcode.Ping && d === 'p')).toBe(true);
    expect(JSON.stringify(view)).not.toContain(KEY.slice(0, 9));
    // The recording holds what the client got, marked where masking changed it.
    const records = outputs.flatMap((o) => o.records);
    expect(records.filter((r) => r.ch === 1).map((r) => r.data.toString()).join('')).toBe('key: [REDACTED:cloudKey]\nprice 5€\n');
    expect(records.filter((r) => r.masked).map((r) => r.ch).sort()).toEqual([1, 2]);
    expect(records.find((r) => r.ch === 3)?.data.toString()).toBe(status);
  });

  it('streams whatever the split like masking the whole output at once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom('ls\n', KEY, 'é', '😀', 'x@example.com', '\u001b[31m', ' ', 'a\r\n'), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (parts, frameCuts, wireCuts) => {
          const text = Buffer.from(parts.join(''));
          const cuts = [...new Set(frameCuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
          const frames: Buffer[] = [];
          let at = 0;
          for (const cut of [...cuts, text.length]) {
            if (cut > at) frames.push(serverFrame(1, text.subarray(at, cut)));
            at = cut;
          }
          const wire = Buffer.concat(frames);
          const points = [...new Set(wireCuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
          const m = newMasker();
          const outputs: ChannelMaskerOutput[] = [];
          at = 0;
          for (const p of [...points, wire.length]) {
            outputs.push(m.push(wire.subarray(at, p)));
            at = p;
          }
          outputs.push(m.end());
          const whole = masker.createStream();
          const reference = Buffer.concat([whole.push(text).bytes, whole.end().bytes]).toString('utf8');
          expect(channelText(outputs, 1)).toBe(reference);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('lets held output out on flush and at the end', () => {
    const m = newMasker();
    const first = m.push(serverFrame(1, 'prompt$ '));
    expect(first.pushed).toBe(true);
    expect(channelText([first], 1)).toBe(''); // held: a secret could continue in the next frame
    expect(channelText([m.flush()], 1)).toBe('prompt$ ');
    m.push(serverFrame(2, 'tail'));
    expect(channelText([m.end()], 2)).toBe('tail');
    expect(m.end().wire).toEqual([]);
  });

  it('re-frames a fragmented binary message as whole messages with the channel byte', () => {
    const m = newMasker();
    const outputs = [
      m.push(serverFrame(3, '{"sta', false)),
      m.push(serializeWsFrame(WsOpcode.Ping, Buffer.alloc(0))),
      m.push(serializeWsFrame(WsOpcode.Continuation, Buffer.from('tus":1}'), { fin: true })),
      m.push(serverFrame(1, 'mail ', false)),
      m.push(serializeWsFrame(WsOpcode.Continuation, Buffer.from('a@example.com'), { fin: true })),
      m.end(),
    ];
    expect(clientView(outputs).filter(([, c]) => c === 3)).toEqual([
      [WsOpcode.Binary, 3, '{"sta'],
      [WsOpcode.Binary, 3, 'tus":1}'],
    ]);
    expect(channelText(outputs, 1)).toBe('mail [REDACTED:email]');
  });

  it('masks the frames of one channel within a read as one piece (tiny frames cost no more than their bytes), in order', () => {
    let pushes = 0;
    const counting = new KubernetesChannelMasker({
      createStream: () => {
        const stream = masker.createStream();
        return { push: (chunk) => { pushes += 1; return stream.push(chunk); }, flush: () => stream.flush(), end: () => stream.end() };
      },
      maxFrameBytes: 64 * 1024,
    });
    const text = `key ${KEY} mail x@example.com\n`;
    const wire = Buffer.concat([...[...text].map((c) => serverFrame(1, c)), serverFrame(2, 'err\n'), serverFrame(1, 'tail')]);
    const outputs = [counting.push(wire), counting.end()];
    // Three runs of one channel: stdout, stderr, stdout again.
    expect(pushes).toBe(3);
    expect(channelText(outputs, 1)).toBe('key [REDACTED:cloudKey] mail [REDACTED:email]\ntail');
    expect(channelText(outputs, 2)).toBe('err\n');
  });

  it('forwards empty frames on any channel unchanged', () => {
    const m = newMasker();
    const wire = Buffer.concat([serverFrame(1, ''), serverFrame(255, ''), serverFrame(0, '')]);
    const out = m.push(wire);
    expect(Buffer.concat(out.wire).equals(wire)).toBe(true);
    expect(out.pushed).toBe(false);
  });

  it('records the target\'s data unmasked when asked, with empty markers where masking changed the output', () => {
    const m = newMasker(true);
    const outputs = [m.push(serverFrame(1, `id ${KEY.slice(0, 5)}`)), m.push(serverFrame(1, `${KEY.slice(5)} ok\n`)), m.push(serverFrame(2, 'x@example.com')), m.flush()];
    outputs.push(m.push(serverFrame(2, 'more')), m.end());
    expect(channelText(outputs, 1)).toBe('id [REDACTED:cloudKey] ok\n');
    const records = outputs.flatMap((o) => o.records);
    expect(records.map((r) => [r.ch, r.data.toString(), r.masked])).toEqual([
      [1, `id ${KEY.slice(0, 5)}`, false],
      [1, `${KEY.slice(5)} ok\n`, false],
      [2, 'x@example.com', false],
      // The flush let out both masked values: an empty marker per channel.
      [1, '', true],
      [2, '', true],
      [2, 'more', false],
    ]);
  });

  it.each([
    ['a frame larger than the cap', serverFrame(1, Buffer.alloc(64 * 1024 + 1, 0x61)).subarray(0, 16), /larger than/],
    ['a masked server frame', serializeWsFrame(WsOpcode.Binary, Buffer.from('\u0001x'), { mask: Buffer.from([1, 2, 3, 4]) }), /masked frame/],
    ['a fragmented text message', serializeWsFrame(WsOpcode.Text, Buffer.from('x'), { fin: false }), /text frame/],
    ['a text frame (some clients read it as channel data)', serializeWsFrame(WsOpcode.Text, Buffer.from(`\u0001${KEY}`)), /text frame/],
    ['data on stdin\'s channel from the server', serverFrame(0, 'a@example.com'), /channel 0/],
    ['data on an unknown channel', serverFrame(7, 'x'), /channel 7/],
    ['a continuation outside a message', serializeWsFrame(WsOpcode.Continuation, Buffer.from('x')), /continuation/],
  ])('refuses %s (the gateway cuts the stream)', (_what, wire, message) => {
    expect(() => newMasker().push(wire)).toThrow(message);
  });

  it('drops whatever follows a Close frame', () => {
    const m = newMasker();
    const out = m.push(Buffer.concat([serializeWsFrame(WsOpcode.Close, Buffer.alloc(0)), serverFrame(1, `late ${KEY}`)]));
    expect(clientView([out])).toEqual([[WsOpcode.Close, undefined, '']]);
  });
});
