import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isKubernetesChannelProtocol, serializeWsFrame, websocketAccept, WsFrameParser, WsOpcode, WsProtocolError } from './websocket.ts';

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
