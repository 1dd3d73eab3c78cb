import { ProtocolError, ProtocolErrorCode } from './errors.ts';

/**
 * Reads a message body; every read is bounds-checked and fails with a ProtocolError (never a
 * RangeError), so hostile input surfaces as one typed error the session turns into a protocol
 * violation.
 */
export class ByteReader {
  readonly #buf: Buffer;
  #pos = 0;
  readonly #what: string;

  constructor(buf: Buffer, what: string) {
    this.#buf = buf;
    this.#what = what;
  }

  #need(n: number): void {
    if (n < 0 || this.#pos + n > this.#buf.length) {
      throw new ProtocolError(ProtocolErrorCode.Malformed, `${this.#what}: message is shorter than its fields`);
    }
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  int8(): number {
    this.#need(1);
    return this.#buf.readUInt8(this.#pos++);
  }

  int16(): number {
    this.#need(2);
    const v = this.#buf.readInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  uint16(): number {
    this.#need(2);
    const v = this.#buf.readUInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  int32(): number {
    this.#need(4);
    const v = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  uint32(): number {
    this.#need(4);
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  bytes(n: number): Buffer {
    this.#need(n);
    const v = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }

  rest(): Buffer {
    return this.bytes(this.remaining);
  }

  /** A NUL-terminated string, decoded as UTF-8. */
  cstring(): string {
    const end = this.#buf.indexOf(0, this.#pos);
    if (end < 0) throw new ProtocolError(ProtocolErrorCode.Malformed, `${this.#what}: unterminated string`);
    const v = this.#buf.toString('utf8', this.#pos, end);
    this.#pos = end + 1;
    return v;
  }

  /** A count field (int16) that must be non-negative. */
  count16(): number {
    const n = this.int16();
    if (n < 0) throw new ProtocolError(ProtocolErrorCode.Malformed, `${this.#what}: negative count`);
    return n;
  }

  end(): void {
    if (this.#pos !== this.#buf.length) {
      throw new ProtocolError(ProtocolErrorCode.Malformed, `${this.#what}: unexpected bytes after the message's fields`);
    }
  }
}

/** Builds one message: type byte (or none for untyped), int32 length patched in at the end. */
export class MessageWriter {
  #chunks: Buffer[] = [];
  #length = 0;
  readonly #code: number | undefined;

  constructor(code?: number) {
    this.#code = code;
  }

  #push(b: Buffer): this {
    this.#chunks.push(b);
    this.#length += b.length;
    return this;
  }

  int8(v: number): this {
    const b = Buffer.allocUnsafe(1);
    b.writeUInt8(v);
    return this.#push(b);
  }

  int16(v: number): this {
    const b = Buffer.allocUnsafe(2);
    b.writeInt16BE(v);
    return this.#push(b);
  }

  int32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeInt32BE(v);
    return this.#push(b);
  }

  uint32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v);
    return this.#push(b);
  }

  cstring(s: string): this {
    this.#push(Buffer.from(s, 'utf8'));
    return this.int8(0);
  }

  bytes(b: Uint8Array): this {
    return this.#push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  }

  finish(): Buffer {
    const header = this.#code === undefined ? 4 : 5;
    const out = Buffer.allocUnsafe(header + this.#length);
    if (this.#code !== undefined) out.writeUInt8(this.#code, 0);
    out.writeInt32BE(4 + this.#length, header - 4);
    let at = header;
    for (const c of this.#chunks) {
      c.copy(out, at);
      at += c.length;
    }
    return out;
  }
}

/**
 * Accumulates chunks and cuts complete length-prefixed frames without copying more than once.
 * Shared by the frontend parser and the backend framer.
 */
export class ChunkQueue {
  #chunks: Buffer[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  /** The byte at `offset` (< length) without consuming anything. */
  uint8At(offset: number): number {
    const first = this.#chunks[0];
    if (first && first.length > offset) return first[offset]!;
    return this.peek(offset + 1)[offset]!;
  }

  /** The big-endian int32 at `offset` (offset + 4 ≤ length) without consuming anything or allocating (usually). */
  int32At(offset: number): number {
    const first = this.#chunks[0];
    if (first && first.length >= offset + 4) return first.readInt32BE(offset);
    return this.peek(offset + 4).readInt32BE(offset);
  }

  /** The first `n` bytes (n ≤ length) without consuming them. */
  peek(n: number): Buffer {
    const first = this.#chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    return this.#gather(n, false);
  }

  /** Removes and returns the first `n` bytes (n ≤ length). */
  take(n: number): Buffer {
    const first = this.#chunks[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#length -= n;
      return out;
    }
    return this.#gather(n, true);
  }

  #gather(n: number, consume: boolean): Buffer {
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    let i = 0;
    while (at < n) {
      const c = this.#chunks[i]!;
      const want = Math.min(c.length, n - at);
      c.copy(out, at, 0, want);
      at += want;
      if (consume) {
        if (want === c.length) {
          this.#chunks.shift();
        } else {
          this.#chunks[0] = c.subarray(want);
        }
      } else {
        i++;
      }
    }
    if (consume) this.#length -= n;
    return out;
  }
}
