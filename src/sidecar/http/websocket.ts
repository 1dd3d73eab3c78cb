// WebSocket framing (RFC 6455 §5.2), I/O-free: a parser that takes chunks split anywhere and
// yields frames with their payload unmasked, and a serializer. The gateway relays upgraded
// connections byte for byte and runs one parser per direction beside the relay, only to record
// what went by (Kubernetes exec/attach channels as `k8s.exec` events). The one exception is a
// Kubernetes exec/attach stream whose output must be masked: `KubernetesChannelMasker` below
// re-frames the target-to-client direction (stdout and stderr through terminal masking).

import { createHash } from 'node:crypto';
import type { MaskedBytes, TerminalMaskStream } from '../../masking/terminal.ts';
import { K8sExecChannel } from '../../recorder/events.ts';

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
  readonly #maxFrame: number;

  /**
   * `maxFrameBytes`: a frame declaring a larger payload is a protocol error (callers that need
   * whole payloads set it, so memory stays bounded); default unlimited (payloads are only counted
   * beyond `maxPayloadBytes`).
   */
  constructor(options: { maxPayloadBytes?: number; maxFrameBytes?: number } = {}) {
    this.#max = options.maxPayloadBytes ?? 64 * 1024;
    this.#maxFrame = options.maxFrameBytes ?? Number.POSITIVE_INFINITY;
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
    if (size > this.#maxFrame) throw new WsProtocolError(`a frame of ${size} bytes is larger than the ${this.#maxFrame} bytes the gateway accepts here`);
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
  const mask = options.mask;
  const header = frameHeader(opcode, payload.length, options.fin ?? true, mask !== undefined);
  const body = mask ? unmask(payload, mask, 0) : payload;
  return Buffer.concat([header, ...(mask ? [mask] : []), body]);
}

/** A server's binary Kubernetes channel frame (`ch` then `data`), built in one allocation. */
export function serializeChannelFrame(ch: number, data: Uint8Array): Buffer {
  const header = frameHeader(WsOpcode.Binary, data.length + 1, true, false);
  const frame = Buffer.allocUnsafe(header.length + 1 + data.length);
  header.copy(frame, 0);
  frame[header.length] = ch;
  frame.set(data, header.length + 1);
  return frame;
}

function frameHeader(opcode: number, length: number, fin: boolean, masked: boolean): Buffer {
  const header: number[] = [(fin ? 0x80 : 0) | (opcode & 0x0f)];
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) header.push(maskBit | length);
  else if (length < 65536) header.push(maskBit | 126, length >> 8, length & 0xff);
  else {
    header.push(maskBit | 127);
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    header.push(...big);
  }
  return Buffer.from(header);
}

/** Kubernetes remote-command subprotocols whose binary frames start with a channel byte. */
export function isKubernetesChannelProtocol(protocol: string | undefined): boolean {
  // base64.channel.k8s.io variants carry text frames with an ASCII channel digit; not recorded yet.
  return protocol !== undefined && /^(v[1-5]\.)?channel\.k8s\.io$/.test(protocol.trim());
}

// ---------------------------------------------------------------------------------------------
// Masking Kubernetes exec/attach output (v1–v5.channel.k8s.io)

/** Data of one channel for the recording, in the order the client receives it. */
export interface ChannelRecord {
  ch: number;
  data: Buffer;
  /**
   * Masking changed the client's output here. When the target's data is recorded as it came, an
   * empty piece with `masked` marks the moment masking let out a changed value on the channel.
   */
  masked: boolean;
}

export interface ChannelMaskerOutput {
  /** Bytes for the client: whole, unmasked (RFC 6455 §5.1: server frames are never masked) frames. */
  wire: Buffer[];
  records: ChannelRecord[];
  /** Output went into a mask stream: the caller arms its idle flush. */
  pushed: boolean;
}

/** Channels whose data is terminal output and is masked: stdout and stderr. */
const MASKED_CHANNELS: ReadonlySet<number> = new Set([K8sExecChannel.Stdout, K8sExecChannel.Stderr]);

/**
 * The target-to-client direction of a Kubernetes remote-command stream, terminated so stdout and
 * stderr can be masked. Each binary frame's first byte is the channel
 * (k8s.io/apimachinery/pkg/util/remotecommand); data on channels 1 and 2 goes through one terminal
 * mask stream per channel (it holds back text a secret split across frames may still need, and
 * keeps UTF-8 characters and escape sequences whole), and what it lets out is sent as new binary
 * frames with the same channel byte. The error channel 3 (the exit Status), ping/pong, Close and
 * empty frames go on unchanged and in order; held output is flushed before channel 3 and ended
 * before Close. A frame larger than `maxFrameBytes` (the API server sends at most 32 KiB), a
 * masked server frame, a text frame, or data on a channel other than 1–3 throws
 * `WsProtocolError`: the caller cuts the stream (fail closed).
 *
 * Recording: by default what the client got (masked), `masked` on the pieces masking changed; with
 * `recordOriginal` (RecordingPolicy `storeMasked: false`) the target's frames as they came, plus an
 * empty piece with `masked` where masking let out a changed value (the masker holds text back, so
 * a changed value does not belong to one frame of the target).
 */
export class KubernetesChannelMasker {
  readonly #parser: WsFrameParser;
  readonly #createStream: () => TerminalMaskStream;
  readonly #recordOriginal: boolean;
  readonly #streams = new Map<number, TerminalMaskStream>();
  /** Channel of a fragmented binary message still open. */
  #open: number | undefined;
  /** Data of masked-channel frames of the current read, not yet pushed into its mask stream. */
  #queued: Buffer[] = [];
  #queuedChannel: number | undefined;
  #closed = false;

  constructor(options: { createStream: () => TerminalMaskStream; maxFrameBytes: number; recordOriginal?: boolean }) {
    this.#parser = new WsFrameParser({ maxPayloadBytes: options.maxFrameBytes, maxFrameBytes: options.maxFrameBytes });
    this.#createStream = options.createStream;
    this.#recordOriginal = options.recordOriginal ?? false;
  }

  /** Bytes from the target, split anywhere. */
  push(chunk: Buffer): ChannelMaskerOutput {
    const out: ChannelMaskerOutput = { wire: [], records: [], pushed: false };
    for (const frame of this.#parser.push(chunk)) this.#frame(frame, out);
    this.#drain(out);
    return out;
  }

  /** Lets out the output the mask streams hold (the target has been quiet for a moment). */
  flush(): ChannelMaskerOutput {
    const out: ChannelMaskerOutput = { wire: [], records: [], pushed: false };
    for (const [ch, stream] of this.#streams) this.#emit(ch, stream.flush(), out);
    return out;
  }

  /** The target's stream ended: lets out everything held. Idempotent. */
  end(): ChannelMaskerOutput {
    const out: ChannelMaskerOutput = { wire: [], records: [], pushed: false };
    this.#end(out);
    return out;
  }

  #frame(frame: WsFrame, out: ChannelMaskerOutput): void {
    // RFC 6455 §5.5.1: nothing follows a Close frame; whatever does is dropped, not relayed.
    if (this.#closed) return;
    if (frame.masked) throw new WsProtocolError('the target sent a masked frame (RFC 6455 §5.1: server frames are never masked)');
    // Output queued from earlier frames goes first (only data of the same channel joins it).
    if (frame.opcode !== WsOpcode.Binary && frame.opcode !== WsOpcode.Continuation) this.#drain(out);
    switch (frame.opcode) {
      case WsOpcode.Close:
        this.#end(out);
        out.wire.push(serializeWsFrame(WsOpcode.Close, frame.payload));
        return;
      case WsOpcode.Ping:
      case WsOpcode.Pong:
        out.wire.push(serializeWsFrame(frame.opcode, frame.payload, { fin: frame.fin }));
        return;
      case WsOpcode.Text:
        // The binary channel protocols have no text messages; some clients would read one as
        // channel data, which the masker would not have seen: cut.
        throw new WsProtocolError('the target sent a text frame, which the binary Kubernetes channel protocol does not use');
      case WsOpcode.Binary: {
        if (this.#open !== undefined) throw new WsProtocolError('a new message started inside a fragmented one (RFC 6455 §5.4)');
        if (frame.payload.length === 0) {
          if (!frame.fin) throw new WsProtocolError('a fragmented binary message without its channel byte');
          out.wire.push(serializeWsFrame(WsOpcode.Binary, frame.payload));
          return;
        }
        const ch = frame.payload[0] as number;
        if (!frame.fin) this.#open = ch;
        this.#data(ch, frame.payload.subarray(1), frame.fin, out);
        return;
      }
      case WsOpcode.Continuation: {
        const ch = this.#open;
        if (ch === undefined) throw new WsProtocolError('a continuation frame outside a message (RFC 6455 §5.4)');
        if (frame.fin) this.#open = undefined;
        if (frame.payload.length > 0) this.#data(ch, frame.payload, false, out);
        return;
      }
      default:
        throw new WsProtocolError(`unknown WebSocket opcode ${frame.opcode}`);
    }
  }

  /**
   * One frame's data on channel `ch`. Fragments of a message go out as whole messages of their
   * own, each with the channel byte (the channel protocol is a byte stream per channel, so this
   * changes nothing for the client, and the gateway's own frames can never land inside an open
   * message).
   */
  #data(ch: number, data: Buffer, whole: boolean, out: ChannelMaskerOutput): void {
    if (MASKED_CHANNELS.has(ch) && data.length > 0) {
      // Consecutive frames of one channel within a read are masked as one piece: a terminal mask
      // stream re-scans what it holds back on every push, so a stream of tiny frames would
      // otherwise cost far more CPU than its bytes.
      if (this.#queuedChannel !== ch) this.#drain(out);
      this.#queuedChannel = ch;
      this.#queued.push(data);
      out.pushed = true;
      return;
    }
    this.#drain(out);
    // From the server, only stdout, stderr and the error channel carry data (stdin, resize and
    // close go the other way): data on any other channel is not passed on unmasked: cut.
    if (data.length > 0 && ch !== K8sExecChannel.Error) throw new WsProtocolError(`the target sent data on channel ${ch}, which carries none from the server`);
    // The exit Status follows the output it ends: let out what is held first.
    if (ch === K8sExecChannel.Error) for (const [held, stream] of this.#streams) this.#emit(held, stream.flush(), out);
    if (whole || data.length > 0) out.wire.push(serializeChannelFrame(ch, data));
    out.records.push({ ch, data, masked: false });
  }

  /** Masks the data queued for one channel (see #data). */
  #drain(out: ChannelMaskerOutput): void {
    const ch = this.#queuedChannel;
    if (ch === undefined) return;
    const data = this.#queued.length === 1 ? (this.#queued[0] as Buffer) : Buffer.concat(this.#queued);
    this.#queuedChannel = undefined;
    this.#queued = [];
    let stream = this.#streams.get(ch);
    if (stream === undefined) {
      stream = this.#createStream();
      this.#streams.set(ch, stream);
    }
    this.#emit(ch, stream.push(data), out, data);
  }

  #emit(ch: number, result: MaskedBytes, out: ChannelMaskerOutput, original?: Buffer): void {
    const hit = result.hits.length > 0;
    const bytes = Buffer.from(result.bytes.buffer, result.bytes.byteOffset, result.bytes.byteLength);
    if (bytes.length > 0) out.wire.push(serializeChannelFrame(ch, bytes));
    if (!this.#recordOriginal) {
      if (bytes.length > 0) out.records.push({ ch, data: bytes, masked: hit });
      return;
    }
    if (original !== undefined) out.records.push({ ch, data: original, masked: false });
    if (hit) out.records.push({ ch, data: Buffer.alloc(0), masked: true });
  }

  #end(out: ChannelMaskerOutput): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [ch, stream] of this.#streams) this.#emit(ch, stream.end(), out);
    this.#streams.clear();
  }
}
