import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import { MessageWriter } from './bytes.ts';
import { FrontendCode, StartupCode } from './constants.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';
import {
  decodePasswordMessage,
  decodeSaslInitialResponse,
  type FrontendMessage,
  FrontendParser,
} from './frontend.ts';

/** Parses a whole byte stream after a StartupMessage, dropping `raw` for comparisons. */
function parseAll(bytes: Buffer, chunks: number[] = [bytes.length]): FrontendMessage[] {
  const parser = new FrontendParser();
  const out: FrontendMessage[] = [];
  let at = 0;
  for (const size of chunks) {
    out.push(...parser.push(bytes.subarray(at, at + size)));
    at += size;
  }
  out.push(...parser.push(bytes.subarray(at)));
  return out;
}

const startup = serialize.startup({ user: 'alice', database: 'orders', application_name: 'psql' });

describe('FrontendParser', () => {
  it('parses the startup phase: SSLRequest, GSSENCRequest, then the StartupMessage', () => {
    const gss = new MessageWriter().int32(StartupCode.GSSENCRequest).finish();
    const messages = parseAll(Buffer.concat([serialize.requestSsl(), gss, startup]));
    expect(messages.map((m) => m.type)).toEqual(['SSLRequest', 'GSSENCRequest', 'Startup']);
    expect(messages[2]).toMatchObject({
      major: 3,
      minor: 0,
      params: { user: 'alice', database: 'orders', application_name: 'psql' },
    });
  });

  it('parses a CancelRequest with its key', () => {
    const [m] = parseAll(serialize.cancel(1234, 5678));
    expect(m).toMatchObject({ type: 'CancelRequest', processId: 1234 });
    expect((m as { secretKey: Buffer }).secretKey.readInt32BE(0)).toBe(5678);
  });

  it('parses every typed message pg sends', () => {
    const stream = Buffer.concat([
      startup,
      serialize.query('select 1; select 2'),
      serialize.parse({ name: 's1', text: 'select $1::int', types: [23] }),
      serialize.bind({ portal: 'p1', statement: 's1', values: ['42', null, Buffer.from([1, 2])], binary: true }),
      serialize.describe({ type: 'P', name: 'p1' }),
      serialize.execute({ portal: 'p1', rows: 10 }),
      serialize.close({ type: 'S', name: 's1' }),
      serialize.flush(),
      serialize.sync(),
      serialize.copyData(Buffer.from('1\t2\n')),
      serialize.copyDone(),
      serialize.copyFail('nope'),
      serialize.password('secret'),
      serialize.end(),
    ]);
    const messages = parseAll(stream).slice(1);
    expect(messages.map((m) => m.type)).toEqual([
      'Query',
      'Parse',
      'Bind',
      'Describe',
      'Execute',
      'Close',
      'Flush',
      'Sync',
      'CopyData',
      'CopyDone',
      'CopyFail',
      'Password',
      'Terminate',
    ]);
    expect(messages[0]).toMatchObject({ text: 'select 1; select 2' });
    expect(messages[1]).toMatchObject({ name: 's1', text: 'select $1::int', paramTypes: [23] });
    expect(messages[2]).toMatchObject({ portal: 'p1', statement: 's1', resultFormats: [1] });
    const bind = messages[2] as Extract<FrontendMessage, { type: 'Bind' }>;
    expect(bind.params.map((p) => p && [...p])).toEqual([[...Buffer.from('42')], null, [1, 2]]);
    expect(messages[3]).toMatchObject({ target: 'P', name: 'p1' });
    expect(messages[4]).toMatchObject({ portal: 'p1', maxRows: 10 });
    expect(messages[5]).toMatchObject({ target: 'S', name: 's1' });
    expect(messages[10]).toMatchObject({ message: 'nope' });
    expect(decodePasswordMessage((messages[11] as { data: Buffer }).data)).toBe('secret');
  });

  it('keeps each message raw bytes exactly, so allowed messages are forwarded unchanged', () => {
    const q = serialize.query('select 1');
    const [, m] = parseAll(Buffer.concat([startup, q]));
    expect(m!.raw.equals(q)).toBe(true);
  });

  it('parses a FunctionCall and a SASLInitialResponse', () => {
    const fcall = new MessageWriter(FrontendCode.FunctionCall)
      .uint32(1598)
      .int16(1)
      .int16(0)
      .int16(1)
      .int32(2)
      .bytes(Buffer.from('ab'))
      .int16(0)
      .finish();
    const [, m] = parseAll(Buffer.concat([startup, fcall]));
    expect(m).toMatchObject({ type: 'FunctionCall', functionOid: 1598, argFormats: [0], resultFormat: 0 });
    const sasl = serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=,r=abc');
    const [, p] = parseAll(Buffer.concat([startup, sasl]));
    const decoded = decodeSaslInitialResponse((p as { data: Buffer }).data);
    expect(decoded.mechanism).toBe('SCRAM-SHA-256');
    expect(decoded.response?.toString()).toBe('n,,n=,r=abc');
  });

  it.each([
    ['an unknown message type', Buffer.from([0x7a, 0, 0, 0, 4]), ProtocolErrorCode.UnknownMessageType],
    ['a length below the header', Buffer.from([0x51, 0, 0, 0, 2]), ProtocolErrorCode.InvalidLength],
    ['a huge length', Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]), ProtocolErrorCode.MessageTooLarge],
    ['a negative length', Buffer.from([0x51, 0xff, 0xff, 0xff, 0xff]), ProtocolErrorCode.InvalidLength],
    ['an unterminated query', Buffer.from([0x51, 0, 0, 0, 6, 0x61, 0x62]), ProtocolErrorCode.Malformed],
    ['trailing bytes after Sync', Buffer.from([0x53, 0, 0, 0, 5, 0]), ProtocolErrorCode.Malformed],
    ['a Bind whose value overruns', serialize.bind({ values: ['x'] }).subarray(0, 12), undefined],
  ])('refuses %s with a ProtocolError', (_what, frame, code) => {
    const parser = new FrontendParser({ maxMessageBytes: 1024 });
    parser.push(startup);
    if (code === undefined) {
      // Truncated: waits for more bytes, never throws or yields garbage.
      expect(parser.push(frame)).toEqual([]);
      return;
    }
    expect(() => parser.push(frame)).toThrow(expect.objectContaining({ code }));
    // A failed parser stays failed.
    expect(() => parser.push(serialize.sync())).toThrow(ProtocolError);
  });

  it.each([
    ['a startup packet over 10 000 bytes', Buffer.from([0, 1, 0, 0, 0, 3, 0, 0]), ProtocolErrorCode.MessageTooLarge],
    ['a startup packet shorter than 8 bytes', Buffer.from([0, 0, 0, 4]), ProtocolErrorCode.InvalidLength],
    ['protocol 2', new MessageWriter().int32(0x20000).int8(0).finish(), ProtocolErrorCode.UnsupportedStartup],
    ['an unterminated parameter', new MessageWriter().int32(196608).cstring('user').finish(), ProtocolErrorCode.Malformed],
  ])('refuses %s in the startup phase', (_what, bytes, code) => {
    expect(() => new FrontendParser().push(bytes)).toThrow(expect.objectContaining({ code }));
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const text = fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replaceAll('\0', ''));
const messageArb = fc.oneof(
  text.map((t) => serialize.query(t)),
  fc.record({ name: text, text, types: fc.array(fc.integer({ min: 0, max: 2 ** 31 - 1 }), { maxLength: 3 }) }).map((p) =>
    serialize.parse(p),
  ),
  fc
    .record({
      portal: text,
      statement: text,
      values: fc.array(fc.oneof(fc.constant(null), text, fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a))), {
        maxLength: 4,
      }),
      binary: fc.boolean(),
    })
    .map((b) => serialize.bind(b)),
  fc.record({ type: fc.constantFrom('S' as const, 'P' as const), name: text }).map((d) => serialize.describe(d)),
  fc.record({ portal: text, rows: fc.nat() }).map((e) => serialize.execute(e)),
  fc.constantFrom(serialize.sync(), serialize.flush(), serialize.copyDone(), serialize.end()),
  fc.uint8Array({ maxLength: 64 }).map((a) => serialize.copyData(Buffer.from(a))),
);

const strip = (ms: FrontendMessage[]): unknown[] => ms.map(({ raw, ...rest }) => ({ ...rest, raw: [...raw] }));

describe('FrontendParser properties', () => {
  it('yields the same messages however the stream is split', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { maxLength: 12 }), fc.array(fc.nat({ max: 40 }), { maxLength: 30 }), (msgs, cuts) => {
        const stream = Buffer.concat([startup, ...msgs]);
        const whole = parseAll(stream);
        expect(whole).toHaveLength(msgs.length + 1);
        expect(strip(parseAll(stream, cuts))).toEqual(strip(whole));
      }),
      { numRuns: 300 },
    );
  });

  it('turns random bytes into messages or a ProtocolError, nothing else', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat({ max: 50 }), { maxLength: 8 }), (afterStartup, bytes, cuts) => {
        const parser = new FrontendParser({ maxMessageBytes: 4096 });
        if (afterStartup) parser.push(startup);
        try {
          let at = 0;
          for (const c of cuts) {
            parser.push(Buffer.from(bytes.subarray(at, at + c)));
            at += c;
          }
          parser.push(Buffer.from(bytes.subarray(at)));
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('turns random bodies under valid type bytes into messages or a ProtocolError', () => {
    fc.assert(
      fc.property(fc.constantFrom(...Object.values(FrontendCode)), fc.uint8Array({ maxLength: 64 }), (code, body) => {
        const parser = new FrontendParser();
        parser.push(startup);
        const frame = new MessageWriter(code).bytes(body).finish();
        try {
          expect(parser.push(frame)).toHaveLength(1);
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
