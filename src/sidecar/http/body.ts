// Bodies: the capped copy a recording keeps, and masking of responses. Masking needs a whole
// document, so a masked body is buffered up to a bound; newline-delimited JSON (Kubernetes watch
// streams) is masked line by line, so an endless stream stays a stream.

import { Transform, type TransformCallback } from 'node:stream';
import { capPayload, type Payload } from '../../recorder/events.ts';
import type { BodyMasker } from './config.ts';
import { HttpGatewayError, HttpGatewayErrorCode } from './errors.ts';
import { isJsonType } from './headers.ts';

/** Keeps the first `cap` bytes of a body (plus one, to know it was cut) and counts them all. */
export class BodyCapture {
  readonly #cap: number;
  readonly #chunks: Buffer[] = [];
  #kept = 0;
  #total = 0;

  constructor(cap: number) {
    this.#cap = cap;
  }

  get total(): number {
    return this.#total;
  }

  push(chunk: Buffer): void {
    this.#total += chunk.length;
    const room = this.#cap + 1 - this.#kept;
    if (room <= 0) return;
    const piece = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.#chunks.push(Buffer.from(piece));
    this.#kept += piece.length;
  }

  /** Whether the cap is reached (what is stored will not change any more). */
  get full(): boolean {
    return this.#kept > this.#cap;
  }

  /** The stored payload; `complete` false marks a body the gateway stopped watching before its end. */
  payload(complete = true): Payload | undefined {
    if (this.#total === 0 && complete) return undefined;
    const payload = capPayload(this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks), this.#cap);
    // `size` is the original length, known only when the whole body went by.
    if (!complete) {
      // capPayload counted only the kept prefix (cap + 1 bytes): no size claim for a body not seen whole.
      const { size: _, ...prefix } = payload;
      return { ...prefix, truncated: true };
    }
    if (this.#total > this.#cap) return { ...payload, truncated: true, size: this.#total };
    return payload;
  }
}

/** Reads a whole body, refusing (and destroying the stream) beyond `max` bytes. */
export async function readBounded(stream: NodeJS.ReadableStream & { destroy(error?: Error): unknown }, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > max) {
      stream.destroy();
      throw tooLarge(max);
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

function tooLarge(max: number): HttpGatewayError {
  return new HttpGatewayError(
    HttpGatewayErrorCode.CannotMask,
    502,
    `the response must be masked and is larger than the gateway masks (${max} bytes); ask for less (pagination, a narrower query)`,
  );
}

/**
 * JSON paths in a policy are written against one object (`$.data.password` of a Secret). An API
 * server also wraps objects: in lists (`items`) and in watch events (`{type, object}`), so for the
 * Kubernetes flavour the paths apply to each wrapped object; the detectors run everywhere.
 */
export function maskKubernetesJson(masker: BodyMasker, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const document = value as Record<string, unknown>;
    if (typeof document.type === 'string' && document.object !== null && typeof document.object === 'object' && Object.keys(document).length <= 2) {
      return { ...document, object: maskKubernetesJson(masker, document.object) };
    }
    if (Array.isArray(document.items) && typeof document.kind === 'string' && document.kind.endsWith('List')) {
      const { items, ...envelope } = document;
      return { ...(masker.maskJson(envelope).value as Record<string, unknown>), items: items.map((item) => maskKubernetesJson(masker, item)) };
    }
  }
  return masker.maskJson(value).value;
}

/** The masker, telling `onHit` each time it replaced something (for the response's `masked` mark). */
export function noticingHits(masker: BodyMasker, onHit: () => void): BodyMasker {
  return {
    empty: masker.empty,
    maskJson(value) {
      const result = masker.maskJson(value);
      if (result.hits.length > 0) onHit();
      return result;
    },
    maskText(text) {
      const result = masker.maskText(text);
      if (result.hits.length > 0) onHit();
      return result;
    },
  };
}

/** Masks a whole body: JSON by paths and detectors, anything else as text. */
export function maskBody(masker: BodyMasker, contentType: string | undefined, body: Buffer, kubernetes = false): Buffer {
  const text = body.toString('utf8');
  if (isJsonType(contentType)) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      // Labelled JSON that is not: the content rules still run over it as text.
      return Buffer.from(masker.maskText(text).text, 'utf8');
    }
    return Buffer.from(JSON.stringify(kubernetes ? maskKubernetesJson(masker, value) : masker.maskJson(value).value), 'utf8');
  }
  return Buffer.from(masker.maskText(text).text, 'utf8');
}

/** Masks newline-delimited JSON line by line; a line longer than `maxLineBytes` fails the stream. */
export class JsonLinesMasker extends Transform {
  readonly #masker: BodyMasker;
  readonly #max: number;
  readonly #kubernetes: boolean;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(masker: BodyMasker, maxLineBytes: number, kubernetes = false) {
    super();
    this.#masker = masker;
    this.#max = maxLineBytes;
    this.#kubernetes = kubernetes;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      if (newline === -1) break;
      this.#pending.push(chunk.subarray(start, newline));
      const line = Buffer.concat(this.#pending);
      this.#pending = [];
      this.#pendingBytes = 0;
      this.push(this.#maskLine(line));
      this.push('\n');
      start = newline + 1;
    }
    if (start < chunk.length) {
      this.#pending.push(Buffer.from(chunk.subarray(start)));
      this.#pendingBytes += chunk.length - start;
      if (this.#pendingBytes > this.#max) {
        callback(tooLarge(this.#max));
        return;
      }
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.#pendingBytes > 0) this.push(this.#maskLine(Buffer.concat(this.#pending)));
    callback();
  }

  #maskLine(line: Buffer): Buffer {
    if (line.length === 0) return line;
    return maskBody(this.#masker, 'application/json', line, this.#kubernetes);
  }
}
