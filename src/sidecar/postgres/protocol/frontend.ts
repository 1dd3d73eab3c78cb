// I/O-free parser of what a PostgreSQL client sends (pg-protocol only parses the server side).
// Feed it chunks split anywhere; it yields typed messages, each with its exact bytes (`raw`) so
// the gateway can forward what it allowed unchanged.
// Spec: https://www.postgresql.org/docs/current/protocol-message-formats.html

import { ByteReader, ChunkQueue } from './bytes.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, FrontendCode, MAX_STARTUP_PACKET_BYTES, StartupCode } from './constants.ts';
import { ProtocolError, ProtocolErrorCode } from './errors.ts';

/** Untyped messages that may open a connection (and, for SSL/GSS requests, follow each other). */
export type StartupPhaseMessage =
  | { type: 'SSLRequest'; raw: Buffer }
  | { type: 'GSSENCRequest'; raw: Buffer }
  /** `secretKey` is 4 bytes in protocol 3.0, up to 256 in 3.2. */
  | { type: 'CancelRequest'; processId: number; secretKey: Buffer; raw: Buffer }
  | { type: 'Startup'; major: number; minor: number; params: Record<string, string>; raw: Buffer };

export type DescribeTarget = 'S' | 'P';

export type TypedFrontendMessage =
  | { type: 'Query'; text: string; raw: Buffer }
  | { type: 'Parse'; name: string; text: string; paramTypes: number[]; raw: Buffer }
  | {
      type: 'Bind';
      portal: string;
      statement: string;
      paramFormats: number[];
      params: Array<Buffer | null>;
      resultFormats: number[];
      raw: Buffer;
    }
  | { type: 'Describe'; target: DescribeTarget; name: string; raw: Buffer }
  | { type: 'Execute'; portal: string; maxRows: number; raw: Buffer }
  | { type: 'Close'; target: DescribeTarget; name: string; raw: Buffer }
  | { type: 'Sync'; raw: Buffer }
  | { type: 'Flush'; raw: Buffer }
  | { type: 'CopyData'; data: Buffer; raw: Buffer }
  | { type: 'CopyDone'; raw: Buffer }
  | { type: 'CopyFail'; message: string; raw: Buffer }
  | {
      type: 'FunctionCall';
      functionOid: number;
      argFormats: number[];
      args: Array<Buffer | null>;
      resultFormat: number;
      raw: Buffer;
    }
  /**
   * PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share one type byte; which
   * one it is depends on the authentication request the server sent, so the body stays raw here
   * (see {@link decodePasswordMessage}, {@link decodeSaslInitialResponse}).
   */
  | { type: 'Password'; data: Buffer; raw: Buffer }
  | { type: 'Terminate'; raw: Buffer };

export type FrontendMessage = StartupPhaseMessage | TypedFrontendMessage;

export interface FrontendParserOptions {
  /** Largest typed message accepted (default 64 MiB); larger lengths are a ProtocolError. */
  maxMessageBytes?: number;
}

/**
 * Chunk-fed parser of the client's byte stream. Starts in the startup phase (untyped messages:
 * SSLRequest, GSSENCRequest, CancelRequest, StartupMessage); a StartupMessage switches it to typed
 * messages. Throws only {@link ProtocolError}; after one, the stream is unusable (close it).
 */
export class FrontendParser {
  readonly #queue = new ChunkQueue();
  readonly #max: number;
  #startupPhase = true;
  #failed: ProtocolError | undefined;

  constructor(options: FrontendParserOptions = {}) {
    this.#max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  }

  /** Bytes received but not yet part of a complete message. */
  get buffered(): number {
    return this.#queue.length;
  }

  /** True until a StartupMessage has been parsed. */
  get inStartupPhase(): boolean {
    return this.#startupPhase;
  }

  /** Adds a chunk and returns every message it completes, in order. */
  push(chunk: Buffer): FrontendMessage[] {
    if (this.#failed) throw this.#failed;
    this.#queue.push(chunk);
    const out: FrontendMessage[] = [];
    try {
      for (;;) {
        const message = this.#startupPhase ? this.#nextStartup() : this.#nextTyped();
        if (!message) break;
        out.push(message);
      }
    } catch (error) {
      this.#failed = error as ProtocolError;
      throw error;
    }
    return out;
  }

  #nextStartup(): StartupPhaseMessage | undefined {
    if (this.#queue.length < 4) return undefined;
    const length = this.#queue.int32At(0);
    if (length < 8) throw new ProtocolError(ProtocolErrorCode.InvalidLength, `invalid startup packet length ${length}`);
    if (length > MAX_STARTUP_PACKET_BYTES) {
      throw new ProtocolError(ProtocolErrorCode.MessageTooLarge, `startup packet of ${length} bytes is too large`);
    }
    if (this.#queue.length < length) return undefined;
    const raw = this.#queue.take(length);
    const message = decodeStartup(raw);
    if (message.type === 'Startup') this.#startupPhase = false;
    return message;
  }

  #nextTyped(): TypedFrontendMessage | undefined {
    if (this.#queue.length < 5) return undefined;
    const code = this.#queue.uint8At(0);
    const length = this.#queue.int32At(1);
    if (!KNOWN_CODES.has(code)) {
      throw new ProtocolError(ProtocolErrorCode.UnknownMessageType, `invalid frontend message type ${code}`);
    }
    if (length < 4) throw new ProtocolError(ProtocolErrorCode.InvalidLength, `invalid message length ${length}`);
    if (length > this.#max) {
      throw new ProtocolError(
        ProtocolErrorCode.MessageTooLarge,
        `a message of ${length} bytes exceeds the gateway's limit of ${this.#max} bytes`,
      );
    }
    if (this.#queue.length < length + 1) return undefined;
    const raw = this.#queue.take(length + 1);
    return decodeTyped(code, raw);
  }
}

const KNOWN_CODES: ReadonlySet<number> = new Set(Object.values(FrontendCode));

function decodeStartup(raw: Buffer): StartupPhaseMessage {
  const r = new ByteReader(raw.subarray(4), 'startup packet');
  const code = r.int32();
  switch (code) {
    case StartupCode.SSLRequest:
      r.end();
      return { type: 'SSLRequest', raw };
    case StartupCode.GSSENCRequest:
      r.end();
      return { type: 'GSSENCRequest', raw };
    case StartupCode.CancelRequest: {
      const processId = r.int32();
      const secretKey = r.rest();
      if (secretKey.length < 4 || secretKey.length > 256) {
        throw new ProtocolError(ProtocolErrorCode.Malformed, 'CancelRequest: invalid secret key length');
      }
      return { type: 'CancelRequest', processId, secretKey, raw };
    }
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new ProtocolError(
      ProtocolErrorCode.UnsupportedStartup,
      `unsupported frontend protocol ${major}.${minor}: Warden speaks protocol 3`,
    );
  }
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (;;) {
    const name = r.cstring();
    if (name === '') break;
    params[name] = r.cstring();
  }
  r.end();
  return { type: 'Startup', major, minor, params, raw };
}

function formats(r: ByteReader): number[] {
  const n = r.count16();
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(r.int16());
  return out;
}

function values(r: ByteReader): Array<Buffer | null> {
  const n = r.count16();
  const out: Array<Buffer | null> = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    if (len < -1) throw new ProtocolError(ProtocolErrorCode.Malformed, 'invalid parameter length');
    out.push(len === -1 ? null : r.bytes(len));
  }
  return out;
}

function target(r: ByteReader, what: string): DescribeTarget {
  const t = r.int8();
  if (t === 0x53) return 'S';
  if (t === 0x50) return 'P';
  throw new ProtocolError(ProtocolErrorCode.Malformed, `${what}: invalid target type ${t}`);
}

function decodeTyped(code: number, raw: Buffer): TypedFrontendMessage {
  const body = raw.subarray(5);
  switch (code) {
    case FrontendCode.Query: {
      const r = new ByteReader(body, 'Query');
      const text = r.cstring();
      r.end();
      return { type: 'Query', text, raw };
    }
    case FrontendCode.Parse: {
      const r = new ByteReader(body, 'Parse');
      const name = r.cstring();
      const text = r.cstring();
      const n = r.count16();
      const paramTypes: number[] = [];
      for (let i = 0; i < n; i++) paramTypes.push(r.uint32());
      r.end();
      return { type: 'Parse', name, text, paramTypes, raw };
    }
    case FrontendCode.Bind: {
      const r = new ByteReader(body, 'Bind');
      const portal = r.cstring();
      const statement = r.cstring();
      const paramFormats = formats(r);
      const params = values(r);
      const resultFormats = formats(r);
      r.end();
      return { type: 'Bind', portal, statement, paramFormats, params, resultFormats, raw };
    }
    case FrontendCode.Describe:
    case FrontendCode.Close: {
      const what = code === FrontendCode.Describe ? 'Describe' : 'Close';
      const r = new ByteReader(body, what);
      const t = target(r, what);
      const name = r.cstring();
      r.end();
      return { type: what, target: t, name, raw };
    }
    case FrontendCode.Execute: {
      const r = new ByteReader(body, 'Execute');
      const portal = r.cstring();
      const maxRows = r.int32();
      r.end();
      return { type: 'Execute', portal, maxRows, raw };
    }
    case FrontendCode.Sync:
    case FrontendCode.Flush:
    case FrontendCode.CopyDone:
    case FrontendCode.Terminate: {
      const type = code === FrontendCode.Sync ? 'Sync' : code === FrontendCode.Flush ? 'Flush' : code === FrontendCode.CopyDone ? 'CopyDone' : 'Terminate';
      new ByteReader(body, type).end();
      return { type, raw };
    }
    case FrontendCode.CopyData:
      return { type: 'CopyData', data: body, raw };
    case FrontendCode.CopyFail: {
      const r = new ByteReader(body, 'CopyFail');
      const message = r.cstring();
      r.end();
      return { type: 'CopyFail', message, raw };
    }
    case FrontendCode.FunctionCall: {
      const r = new ByteReader(body, 'FunctionCall');
      const functionOid = r.uint32();
      const argFormats = formats(r);
      const args = values(r);
      const resultFormat = r.int16();
      r.end();
      return { type: 'FunctionCall', functionOid, argFormats, args, resultFormat, raw };
    }
    case FrontendCode.Password:
      return { type: 'Password', data: body, raw };
  }
  throw new ProtocolError(ProtocolErrorCode.UnknownMessageType, `invalid frontend message type ${code}`);
}

/** The body of a PasswordMessage: a NUL-terminated password. */
export function decodePasswordMessage(data: Buffer): string {
  const r = new ByteReader(data, 'PasswordMessage');
  const password = r.cstring();
  r.end();
  return password;
}

/** The body of a SASLInitialResponse: mechanism name and the client-first-message (or null). */
export function decodeSaslInitialResponse(data: Buffer): { mechanism: string; response: Buffer | null } {
  const r = new ByteReader(data, 'SASLInitialResponse');
  const mechanism = r.cstring();
  const len = r.int32();
  const response = len === -1 ? null : r.bytes(len);
  r.end();
  return { mechanism, response };
}
