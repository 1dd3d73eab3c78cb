// WebSocket framing (RFC 6455 §5.2), I/O-free: a parser that takes chunks split anywhere and
// yields frames with their payload unmasked, and a serializer. The gateway relays upgraded
// connections byte for byte and runs one parser per direction beside the relay, only to record
// what went by (Kubernetes exec/attach channels as `k8s.exec` events); it never re-frames.

import { createHash } from 'node:crypto';

export const WsOpcode = {
  Continuation: 0x0,
  Text: 0x1,
  Binary: 0x2,
  Close: 0x8,
  Ping: 0x9,
  Pong: 0xa,
} as const;
export type WsOpcode = (typeof WsOpcode)[keyof typeof WsOpcode];

export interface WsFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  /** Unmasked payload; at most `maxPayloadBytes` of it when the frame was larger (see `size`). */
  payload: Buffer;
  /** The frame's payload length as declared. */
  size: number;
}

/** RFC 6455 §1.3: the Sec-WebSocket-Accept value for a Sec-WebSocket-Key. */
export function websocketAccept(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

export class WsProtocolError extends Error {
  readonly code = 'WARDEN_WS_PROTOCOL';
}

interface PartialFrame {
  fin: boolean;
  opcode: number;
  mask: Buffer | undefined;
  size: number;
  seen: number;
  kept: Buffer[];
}

/**
 * Incremental frame parser. Payload bytes beyond `maxPayloadBytes` per frame are counted, not
 * kept, so a huge frame costs no memory; `push` returns the frames completed by the chunk.
 */
export class WsFrameParser {
  readonly #max: number;
  #buffer: Buffer = Buffer.alloc(0);
  #frame: PartialFrame | undefined;

  constructor(options: { maxPayloadBytes?: number } = {}) {
    this.#max = options.maxPayloadBytes ?? 64 * 1024;
  }

  push(chunk: Buffer): WsFrame[] {
    const frames: WsFrame[] = [];
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      if (!this.#frame && !this.#readHeader()) break;
      const frame = this.#frame as PartialFrame;
      const take = Math.min(frame.size - frame.seen, this.#buffer.length);
      if (take > 0) {
        const keepRoom = Math.max(0, this.#max - Math.min(frame.seen, this.#max));
        const kept = this.#buffer.subarray(0, Math.min(take, keepRoom));
        if (kept.length > 0) frame.kept.push(unmask(kept, frame.mask, frame.seen));
        frame.seen += take;
        this.#buffer = this.#buffer.subarray(take);
      }
      if (frame.seen < frame.size) break;
      frames.push({ fin: frame.fin, opcode: frame.opcode, masked: frame.mask !== undefined, payload: Buffer.concat(frame.kept), size: frame.size });
      this.#frame = undefined;
    }
    return frames;
  }

  #readHeader(): boolean {
    const b = this.#buffer;
    if (b.length < 2) return false;
    const first = b[0] as number;
    const second = b[1] as number;
    if ((first & 0x70) !== 0) throw new WsProtocolError('reserved bits set without a negotiated extension');
    let offset = 2;
    let size = second & 0x7f;
    if (size === 126) {
      if (b.length < 4) return false;
      size = b.readUInt16BE(2);
      offset = 4;
    } else if (size === 127) {
      if (b.length < 10) return false;
      const big = b.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw new WsProtocolError('frame length out of range');
      size = Number(big);
      offset = 10;
    }
    const masked = (second & 0x80) !== 0;
    if (masked) {
      if (b.length < offset + 4) return false;
    }
    const mask = masked ? Buffer.from(b.subarray(offset, offset + 4)) : undefined;
    offset += masked ? 4 : 0;
    this.#frame = { fin: (first & 0x80) !== 0, opcode: first & 0x0f, mask, size, seen: 0, kept: [] };
    this.#buffer = b.subarray(offset);
    return true;
  }
}

function unmask(bytes: Buffer, mask: Buffer | undefined, position: number): Buffer {
  if (!mask) return Buffer.from(bytes);
  const out = Buffer.allocUnsafe(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = (bytes[i] as number) ^ (mask[(position + i) & 3] as number);
  return out;
}

/** One frame; `mask` (4 bytes) for client-to-server frames. */
export function serializeWsFrame(opcode: number, payload: Buffer, options: { fin?: boolean; mask?: Buffer } = {}): Buffer {
  const fin = options.fin ?? true;
  const mask = options.mask;
  const length = payload.length;
  const header: number[] = [(fin ? 0x80 : 0) | (opcode & 0x0f)];
  const maskBit = mask ? 0x80 : 0;
  if (length < 126) header.push(maskBit | length);
  else if (length < 65536) header.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    header.push(maskBit | 127);
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    header.push(...big);
  }
  const body = mask ? unmask(payload, mask, 0) : payload;
  return Buffer.concat([Buffer.from(header), ...(mask ? [mask] : []), body]);
}

/** Kubernetes remote-command subprotocols whose binary frames start with a channel byte. */
export function isKubernetesChannelProtocol(protocol: string | undefined): boolean {
  // base64.channel.k8s.io variants carry text frames with an ASCII channel digit; not recorded yet.
  return protocol !== undefined && /^(v[1-5]\.)?channel\.k8s\.io$/.test(protocol.trim());
}
