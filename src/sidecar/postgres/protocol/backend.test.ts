import fc from 'fast-check';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { describe, expect, it } from 'vitest';
import {
  authenticationCleartextPassword,
  authenticationMd5Password,
  authenticationOk,
  authenticationSasl,
  backendKeyData,
  BackendFramer,
  commandComplete,
  dataRow,
  decodeCommandComplete,
  decodeDataRow,
  decodeNoticeFields,
  decodeReadyForQuery,
  decodeRowDescription,
  errorResponse,
  type FieldDescription,
  noticeResponse,
  parameterStatus,
  readyForQuery,
  rowDescription,
} from './backend.ts';
import { ErrorField } from './constants.ts';
import { ProtocolError } from './errors.ts';

/** What pg's own parser (the reference implementation) makes of our bytes. */
function pgParse(bytes: Buffer): BackendMessage[] {
  const out: BackendMessage[] = [];
  new Parser().parse(bytes, (m) => out.push(m));
  return out;
}

const field = (name: string, typeOid = 25, format = 0): FieldDescription => ({
  name,
  tableOid: 16384,
  columnAttr: 2,
  typeOid,
  typeSize: -1,
  typeModifier: -1,
  format,
});

describe('backend writer, read back by pg-protocol', () => {
  it('writes the authentication requests', () => {
    expect(pgParse(authenticationOk())[0]).toMatchObject({ name: 'authenticationOk' });
    expect(pgParse(authenticationCleartextPassword())[0]).toMatchObject({ name: 'authenticationCleartextPassword' });
    expect(pgParse(authenticationMd5Password(Buffer.from([1, 2, 3, 4])))[0]).toMatchObject({
      name: 'authenticationMD5Password',
    });
    expect(pgParse(authenticationSasl(['SCRAM-SHA-256']))[0]).toMatchObject({
      name: 'authenticationSASL',
      mechanisms: ['SCRAM-SHA-256'],
    });
  });

  it('writes the session start messages', () => {
    expect(pgParse(parameterStatus('server_version', '17.2'))[0]).toMatchObject({
      parameterName: 'server_version',
      parameterValue: '17.2',
    });
    expect(pgParse(backendKeyData(7, -9))[0]).toMatchObject({ processID: 7, secretKey: -9 });
    expect(pgParse(readyForQuery('T'))[0]).toMatchObject({ status: 'T' });
  });

  it('writes errors and notices with all their fields', () => {
    const [e] = pgParse(errorResponse({ severity: 'ERROR', code: '42501', message: 'denied', hint: 'ask' }));
    expect(e).toMatchObject({ name: 'error', severity: 'ERROR', code: '42501', message: 'denied', hint: 'ask' });
    const [n] = pgParse(noticeResponse({ severity: 'NOTICE', code: '00000', message: 'hi', detail: 'd' }));
    expect(n).toMatchObject({ name: 'notice', message: 'hi', detail: 'd' });
  });

  it('writes rows and completions', () => {
    const messages = pgParse(
      Buffer.concat([
        rowDescription([field('id', 23), field('email')]),
        dataRow(['1', null]),
        dataRow([Buffer.from('2'), 'b@example.com']),
        commandComplete('SELECT 2'),
      ]),
    );
    expect(messages[0]).toMatchObject({ fieldCount: 2, fields: [{ name: 'id', dataTypeID: 23 }, { name: 'email' }] });
    expect(messages[1]).toMatchObject({ fields: ['1', null] });
    expect(messages[2]).toMatchObject({ fields: ['2', 'b@example.com'] });
    expect(messages[3]).toMatchObject({ text: 'SELECT 2' });
  });
});

describe('backend decoders', () => {
  it('round-trip what the writer writes', () => {
    const fields = [field('a', 23, 1), field('b')];
    expect(decodeRowDescription(rowDescription(fields).subarray(5))).toEqual(fields);
    expect(decodeDataRow(dataRow(['x', null, Buffer.from([0, 255])]).subarray(5))).toEqual([
      Buffer.from('x'),
      null,
      Buffer.from([0, 255]),
    ]);
    expect(decodeCommandComplete(commandComplete('INSERT 0 1').subarray(5))).toBe('INSERT 0 1');
    expect(decodeReadyForQuery(readyForQuery('E').subarray(5))).toBe('E');
    const fieldsMap = decodeNoticeFields(errorResponse({ severity: 'FATAL', code: '28000', message: 'no' }).subarray(5));
    expect(fieldsMap.get(ErrorField.Code)).toBe('28000');
  });

  it('refuse malformed bodies with a ProtocolError', () => {
    expect(() => decodeDataRow(Buffer.from([0, 1, 0, 0, 0, 9, 1]))).toThrow(ProtocolError);
    expect(() => decodeReadyForQuery(Buffer.from('X'))).toThrow(ProtocolError);
  });
});

describe('BackendFramer', () => {
  it('cuts the same frames however the stream is split', () => {
    const row = fc.array(fc.oneof(fc.constant(null), fc.string({ maxLength: 20 })), { maxLength: 5 }).map((v) => dataRow(v));
    fc.assert(
      fc.property(fc.array(fc.oneof(row, fc.constant(readyForQuery('I'))), { maxLength: 10 }), fc.array(fc.nat({ max: 30 })), (frames, cuts) => {
        const stream = Buffer.concat(frames);
        const framer = new BackendFramer();
        const out: Buffer[] = [];
        let at = 0;
        for (const c of cuts) {
          out.push(...framer.push(stream.subarray(at, at + c)).map((f) => f.raw));
          at += c;
        }
        out.push(...framer.push(stream.subarray(at)).map((f) => f.raw));
        expect(out.map((b) => [...b])).toEqual(frames.map((b) => [...b]));
        expect(framer.buffered).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses lengths beyond its bound', () => {
    expect(() => new BackendFramer({ maxMessageBytes: 100 }).push(Buffer.from([0x44, 0, 0, 1, 0]))).toThrow(ProtocolError);
  });
});
