// Backend (server → client) messages: a writer for what Warden itself says to clients, a framer
// that cuts the upstream server's byte stream into messages without interpreting them, and
// decoders for the few messages the gateway must read (row descriptions, rows, completions,
// errors, ready-for-query). The upstream handshake is decoded with pg-protocol's Parser; in the
// relay it cannot be used because it decodes every DataRow value as UTF-8 text, which corrupts
// binary-format values (its binary mode is unimplemented), and re-encoding what it parsed would
// lose ErrorResponse fields it does not know.

import { ByteReader, ChunkQueue, MessageWriter } from './bytes.ts';
import { AuthCode, BackendCode, ErrorField, type TransactionStatus } from './constants.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';

// ----------------------------------------------------------------------------------------------
// Writer

export function authenticationOk(): Buffer {
  return new MessageWriter(BackendCode.Authentication).int32(AuthCode.Ok).finish();
}

export function authenticationCleartextPassword(): Buffer {
  return new MessageWriter(BackendCode.Authentication).int32(AuthCode.CleartextPassword).finish();
}

export function authenticationMd5Password(salt: Buffer): Buffer {
  return new MessageWriter(BackendCode.Authentication).int32(AuthCode.MD5Password).bytes(salt).finish();
}

export function authenticationSasl(mechanisms: string[]): Buffer {
  const w = new MessageWriter(BackendCode.Authentication).int32(AuthCode.SASL);
  for (const m of mechanisms) w.cstring(m);
  return w.int8(0).finish();
}

export function authenticationSaslContinue(data: Buffer): Buffer {
  return new MessageWriter(BackendCode.Authentication).int32(AuthCode.SASLContinue).bytes(data).finish();
}

export function authenticationSaslFinal(data: Buffer): Buffer {
  return new MessageWriter(BackendCode.Authentication).int32(AuthCode.SASLFinal).bytes(data).finish();
}

export function parameterStatus(name: string, value: string): Buffer {
  return new MessageWriter(BackendCode.ParameterStatus).cstring(name).cstring(value).finish();
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  return new MessageWriter(BackendCode.BackendKeyData).int32(processId).int32(secretKey).finish();
}

export function readyForQuery(status: TransactionStatus): Buffer {
  return new MessageWriter(BackendCode.ReadyForQuery).int8(status.charCodeAt(0)).finish();
}

/** NegotiateProtocolVersion: the newest minor version supported and the options not recognised. */
export function negotiateProtocolVersion(newestMinor: number, unrecognized: string[]): Buffer {
  const w = new MessageWriter(BackendCode.NegotiateProtocolVersion).int32((3 << 16) | newestMinor);
  w.int32(unrecognized.length);
  for (const o of unrecognized) w.cstring(o);
  return w.finish();
}

/** Fields of an ErrorResponse / NoticeResponse, keyed by their field type byte. */
export type NoticeFields = Map<number, string>;

export interface NoticeInput {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

function noticeFields(input: NoticeInput): NoticeFields {
  const fields: NoticeFields = new Map([
    [ErrorField.Severity, input.severity],
    [ErrorField.SeverityNonLocalized, input.severity],
    [ErrorField.Code, input.code],
    [ErrorField.Message, input.message],
  ]);
  if (input.detail !== undefined) fields.set(ErrorField.Detail, input.detail);
  if (input.hint !== undefined) fields.set(ErrorField.Hint, input.hint);
  return fields;
}

function writeFields(code: number, fields: NoticeFields): Buffer {
  const w = new MessageWriter(code);
  for (const [type, value] of fields) w.int8(type).cstring(value);
  return w.int8(0).finish();
}

export function errorResponse(input: NoticeInput | NoticeFields): Buffer {
  return writeFields(BackendCode.ErrorResponse, input instanceof Map ? input : noticeFields(input));
}

export function noticeResponse(input: NoticeInput | NoticeFields): Buffer {
  return writeFields(BackendCode.NoticeResponse, input instanceof Map ? input : noticeFields(input));
}

export interface FieldDescription {
  name: string;
  tableOid: number;
  columnAttr: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  format: number;
}

export function rowDescription(fields: FieldDescription[]): Buffer {
  const w = new MessageWriter(BackendCode.RowDescription).int16(fields.length);
  for (const f of fields) {
    w.cstring(f.name).uint32(f.tableOid).int16(f.columnAttr).uint32(f.typeOid).int16(f.typeSize);
    w.int32(f.typeModifier).int16(f.format);
  }
  return w.finish();
}

export function dataRow(values: ReadonlyArray<Buffer | string | null>): Buffer {
  const w = new MessageWriter(BackendCode.DataRow).int16(values.length);
  for (const v of values) {
    if (v === null) {
      w.int32(-1);
      continue;
    }
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    w.int32(b.length).bytes(b);
  }
  return w.finish();
}

export function commandComplete(tag: string): Buffer {
  return new MessageWriter(BackendCode.CommandComplete).cstring(tag).finish();
}

const empty = (code: number) => (): Buffer => new MessageWriter(code).finish();
export const emptyQueryResponse: () => Buffer = empty(BackendCode.EmptyQueryResponse);
export const parseComplete: () => Buffer = empty(BackendCode.ParseComplete);
export const bindComplete: () => Buffer = empty(BackendCode.BindComplete);
export const closeComplete: () => Buffer = empty(BackendCode.CloseComplete);
export const noData: () => Buffer = empty(BackendCode.NoData);
export const portalSuspended: () => Buffer = empty(BackendCode.PortalSuspended);

export function parameterDescription(typeOids: number[]): Buffer {
  const w = new MessageWriter(BackendCode.ParameterDescription).int16(typeOids.length);
  for (const t of typeOids) w.uint32(t);
  return w.finish();
}

// ----------------------------------------------------------------------------------------------
// Framer and decoders

/** One backend message: its type byte, the whole frame (to forward) and the body (to decode). */
export interface BackendFrame {
  code: number;
  raw: Buffer;
  body: Buffer;
}

/** A frame whose body view is made only when something decodes it (most frames are only forwarded). */
class Frame implements BackendFrame {
  readonly code: number;
  readonly raw: Buffer;
  #body: Buffer | undefined;
  constructor(raw: Buffer) {
    this.raw = raw;
    this.code = raw[0]!;
  }
  get body(): Buffer {
    return (this.#body ??= this.raw.subarray(5));
  }
}

/** Cuts a server's byte stream into frames; split-anywhere safe; lengths bounded. */
export class BackendFramer {
  readonly #queue = new ChunkQueue();
  readonly #max: number;

  constructor(options: { maxMessageBytes?: number } = {}) {
    this.#max = options.maxMessageBytes ?? 1024 * 1024 * 1024;
  }

  get buffered(): number {
    return this.#queue.length;
  }

  push(chunk: Buffer): BackendFrame[] {
    this.#queue.push(chunk);
    const out: BackendFrame[] = [];
    while (this.#queue.length >= 5) {
      const length = this.#queue.int32At(1);
      if (length < 4) throw new ProtocolError(ProtocolErrorCode.InvalidLength, `server sent message length ${length}`);
      if (length > this.#max) {
        throw new ProtocolError(ProtocolErrorCode.MessageTooLarge, `server sent a message of ${length} bytes`);
      }
      if (this.#queue.length < length + 1) break;
      const raw = this.#queue.take(length + 1);
      out.push(new Frame(raw));
    }
    return out;
  }
}

export function decodeRowDescription(body: Buffer): FieldDescription[] {
  const r = new ByteReader(body, 'RowDescription');
  const n = r.count16();
  const out: FieldDescription[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      name: r.cstring(),
      tableOid: r.uint32(),
      columnAttr: r.int16(),
      typeOid: r.uint32(),
      typeSize: r.int16(),
      typeModifier: r.int32(),
      format: r.int16(),
    });
  }
  r.end();
  return out;
}

export function decodeDataRow(body: Buffer): Array<Buffer | null> {
  const r = new ByteReader(body, 'DataRow');
  const n = r.count16();
  const out: Array<Buffer | null> = new Array(n);
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    out[i] = len === -1 ? null : r.bytes(len);
  }
  r.end();
  return out;
}

export function decodeCommandComplete(body: Buffer): string {
  const r = new ByteReader(body, 'CommandComplete');
  const tag = r.cstring();
  r.end();
  return tag;
}

export function decodeReadyForQuery(body: Buffer): TransactionStatus {
  const r = new ByteReader(body, 'ReadyForQuery');
  const status = String.fromCharCode(r.int8());
  r.end();
  if (status !== 'I' && status !== 'T' && status !== 'E') {
    throw new ProtocolError(ProtocolErrorCode.Malformed, `ReadyForQuery: invalid status ${JSON.stringify(status)}`);
  }
  return status;
}

/** ErrorResponse / NoticeResponse fields in order (unknown field types kept). */
export function decodeNoticeFields(body: Buffer): NoticeFields {
  const r = new ByteReader(body, 'ErrorResponse');
  const fields: NoticeFields = new Map();
  for (;;) {
    const type = r.int8();
    if (type === 0) break;
    fields.set(type, r.cstring());
  }
  r.end();
  return fields;
}
