// One chunk object: encode and strict decode (docs/recording-format.md, "Chunk object").
//
//   offset      size  field
//   0           8     magic 89 57 52 44 43 0D 0A 1A ("\x89WRDC\r\n\x1a", PNG-style: catches
//                     7-bit and newline-mangling transfers)
//   8           4     H = header length, uint32 big-endian, 2..65536
//   12          4     B = body length, uint32 big-endian
//   16          H     header: canonical JSON (RFC 8785), UTF-8
//   16+H        B     body: JSON-lines events, compressed, then optionally AES-256-GCM encrypted
//   16+H+B      64    Ed25519 signature over "warden.recording.v1.chunk\0" || SHA-256(bytes[0, 16+H+B))
//
// The chunk's digest — what the next chunk's `prev` and the manifest refer to — is SHA-256 of the
// whole object, signature included.
//
// Decoding checks in this order, so the first error is the most telling one: framing, signature
// (before reading the header: any altered byte reads as "altered", not as a confusing parse
// error), header, then body. It never throws on bad input; errors come back as values.

import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync, constants as zc, zstdCompressSync, zstdDecompressSync } from 'node:zlib';
import { canonicalJson } from './canonical-json.ts';
import {
  AES_GCM_IV_BYTES,
  AES_GCM_TAG_BYTES,
  decryptAesGcm,
  ED25519_SIGNATURE_BYTES,
  type EncryptionKey,
  encryptAesGcm,
  randomIv,
  type SigningKey,
  signDigest,
  type VerifyKey,
  verifyDigest,
} from './crypto.ts';
import { fail, ok, RecorderError, RecorderErrorCode, type Result } from './errors.ts';
import type { RecordingEvent } from './events.ts';
import { isValidSessionId } from './naming.ts';

export const FORMAT_VERSION = 1;
export const CHUNK_MAGIC: Uint8Array = Uint8Array.of(0x89, 0x57, 0x52, 0x44, 0x43, 0x0d, 0x0a, 0x1a);
export const CHUNK_SIGNATURE_CONTEXT = 'warden.recording.v1.chunk\0';
/** `prev` of the chunk with seq 0. */
export const GENESIS_PREV = '0'.repeat(64);
export const MAX_HEADER_BYTES = 65_536;
/** Largest uncompressed body a writer may produce and every reader must accept. */
export const MAX_RAW_BYTES = 64 * 1024 * 1024;
const PREAMBLE_BYTES = 16;
const MIN_CHUNK_BYTES = PREAMBLE_BYTES + 2 + ED25519_SIGNATURE_BYTES;

export const Compression = {
  Zstd: 'zstd',
  Gzip: 'gzip',
  None: 'none',
} as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

export const EncryptionAlgorithm = {
  Aes256Gcm: 'A256GCM',
} as const;
export type EncryptionAlgorithm = (typeof EncryptionAlgorithm)[keyof typeof EncryptionAlgorithm];

export interface ChunkHeader {
  v: 1;
  session: string;
  seq: number;
  /** Lowercase hex SHA-256 of the previous chunk object; `GENESIS_PREV` for seq 0. */
  prev: string;
  /** Smallest and largest event `t` in the chunk. */
  t0: number;
  t1: number;
  /** Number of events (lines) in the body, ≥ 1. */
  events: number;
  /** Byte length of the uncompressed JSON-lines body. */
  raw: number;
  comp: Compression;
  /** Key id of the Ed25519 key that signed the chunk. */
  signer: string;
  enc?: { alg: EncryptionAlgorithm; kid: string; iv: string };
}

/** A sealed chunk, ready to be written as one object. */
export interface SealedChunk {
  readonly seq: number;
  readonly bytes: Uint8Array;
  /** Lowercase hex SHA-256 of `bytes`. */
  readonly digest: string;
  readonly header: ChunkHeader;
}

export interface ChunkEncryption {
  readonly key: EncryptionKey;
  /** IV source, 12 bytes per call; random by default. Never reuse an IV with the same key. */
  readonly iv?: () => Uint8Array;
}

export interface SealChunkInput {
  readonly session: string;
  readonly seq: number;
  readonly prev: string;
  readonly t0: number;
  readonly t1: number;
  readonly events: number;
  /** The JSON-lines body: each event's JSON followed by "\n". */
  readonly raw: Uint8Array;
  readonly compression: Compression;
  readonly signingKey: SigningKey;
  readonly encryption?: ChunkEncryption | undefined;
}

/** Low-level sealing of an already serialized body; the chunker and `encodeChunk` use it. */
export function sealChunk(input: SealChunkInput): SealedChunk {
  const header: ChunkHeader = {
    v: FORMAT_VERSION,
    session: input.session,
    seq: input.seq,
    prev: input.prev,
    t0: input.t0,
    t1: input.t1,
    events: input.events,
    raw: input.raw.length,
    comp: input.compression,
    signer: input.signingKey.keyId,
  };
  let iv: Uint8Array | undefined;
  if (input.encryption) {
    iv = (input.encryption.iv ?? randomIv)();
    if (iv.length !== AES_GCM_IV_BYTES) {
      throw new RecorderError(
        RecorderErrorCode.OptionInvalid,
        `AES-GCM IV must be ${AES_GCM_IV_BYTES} bytes, got ${iv.length}`,
      );
    }
    header.enc = {
      alg: EncryptionAlgorithm.Aes256Gcm,
      kid: input.encryption.key.keyId,
      iv: Buffer.from(iv).toString('hex'),
    };
  }
  const headerBytes = Buffer.from(canonicalChunkHeader(header), 'utf8');
  const compressed = compress(input.raw, input.compression);
  // The header is the AAD: an encrypted body cannot be moved under another header even by
  // someone who holds the encryption key but not the signing key.
  const body =
    input.encryption && iv ? encryptAesGcm(input.encryption.key, iv, compressed, headerBytes) : compressed;

  const signedLength = PREAMBLE_BYTES + headerBytes.length + body.length;
  const bytes = Buffer.allocUnsafe(signedLength + ED25519_SIGNATURE_BYTES);
  bytes.set(CHUNK_MAGIC, 0);
  bytes.writeUInt32BE(headerBytes.length, 8);
  bytes.writeUInt32BE(body.length, 12);
  bytes.set(headerBytes, PREAMBLE_BYTES);
  bytes.set(body, PREAMBLE_BYTES + headerBytes.length);
  // One pass over the bytes for both digests: the signed region's hash is a copy of the running
  // hash before the signature is added (the object digest covers the signature too).
  const hash = createHash('sha256').update(bytes.subarray(0, signedLength));
  const signature = signDigest(input.signingKey, CHUNK_SIGNATURE_CONTEXT, hash.copy().digest());
  bytes.set(signature, signedLength);
  return { seq: input.seq, bytes, digest: hash.update(signature).digest('hex'), header };
}

/**
 * `canonicalJson(header)` for the one shape sealChunk builds, written out in key order (RFC 8785
 * sorts keys by UTF-16 code units: comp < enc < events < prev < raw < seq < session < signer < t0
 * < t1 < v) without the generic walk and sort; strings and numbers still go through
 * JSON.stringify exactly as canonicalJson does. A test holds it equal to canonicalJson.
 */
export function canonicalChunkHeader(header: ChunkHeader): string {
  const str = JSON.stringify;
  const enc = header.enc === undefined ? '' : `"enc":{"alg":${str(header.enc.alg)},"iv":${str(header.enc.iv)},"kid":${str(header.enc.kid)}},`;
  return (
    `{"comp":${str(header.comp)},${enc}"events":${str(header.events)},"prev":${str(header.prev)},"raw":${str(header.raw)},` +
    `"seq":${str(header.seq)},"session":${str(header.session)},"signer":${str(header.signer)},"t0":${str(header.t0)},` +
    `"t1":${str(header.t1)},"v":${str(header.v)}}`
  );
}

export interface EncodeChunkInput {
  readonly session: string;
  readonly seq: number;
  readonly prev: string;
  readonly events: readonly RecordingEvent[];
  readonly signingKey: SigningKey;
  readonly compression?: Compression;
  readonly encryption?: ChunkEncryption;
}

/** Encodes a list of events as one chunk (at least one event). */
export function encodeChunk(input: EncodeChunkInput): SealedChunk {
  const first = input.events[0];
  if (first === undefined)
    throw new RecorderError(RecorderErrorCode.OptionInvalid, 'a chunk holds at least one event');
  let t0 = first.t;
  let t1 = first.t;
  for (const event of input.events) {
    t0 = Math.min(t0, event.t);
    t1 = Math.max(t1, event.t);
  }
  return sealChunk({
    session: input.session,
    seq: input.seq,
    prev: input.prev,
    t0,
    t1,
    events: input.events.length,
    raw: Buffer.from(input.events.map((event) => `${JSON.stringify(event)}\n`).join(''), 'utf8'),
    compression: input.compression ?? Compression.Zstd,
    signingKey: input.signingKey,
    encryption: input.encryption,
  });
}

/** The framing of a chunk, split but not yet trusted. */
export interface ChunkFrame {
  readonly headerBytes: Uint8Array;
  readonly body: Uint8Array;
  readonly signature: Uint8Array;
  /** SHA-256 of the signed region (everything before the signature). */
  readonly signedDigest: Uint8Array;
  /** Lowercase hex SHA-256 of the whole object. */
  readonly digest: string;
  readonly size: number;
}

/** Splits the framing; checks magic and lengths only. */
export function parseChunkFrame(bytes: Uint8Array): Result<ChunkFrame> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < MIN_CHUNK_BYTES) {
    return fail(
      buf.length >= CHUNK_MAGIC.length && !startsWithMagic(buf)
        ? RecorderErrorCode.ChunkBadMagic
        : RecorderErrorCode.ChunkTruncated,
      buf.length === 0
        ? 'the object is empty'
        : `the object is ${buf.length} bytes, shorter than any chunk (${MIN_CHUNK_BYTES})`,
    );
  }
  if (!startsWithMagic(buf)) {
    return fail(
      RecorderErrorCode.ChunkBadMagic,
      `the object does not start with the Warden chunk magic 89 57 52 44 43 0d 0a 1a (found ${buf.subarray(0, 8).toString('hex')})`,
    );
  }
  const headerLength = buf.readUInt32BE(8);
  const bodyLength = buf.readUInt32BE(12);
  if (headerLength < 2 || headerLength > MAX_HEADER_BYTES) {
    return fail(
      RecorderErrorCode.ChunkBadLength,
      `header length ${headerLength} is outside 2..${MAX_HEADER_BYTES}`,
    );
  }
  const expected = PREAMBLE_BYTES + headerLength + bodyLength + ED25519_SIGNATURE_BYTES;
  if (expected !== buf.length) {
    return fail(
      expected > buf.length ? RecorderErrorCode.ChunkTruncated : RecorderErrorCode.ChunkBadLength,
      expected > buf.length
        ? `the object is ${buf.length} bytes but its framing says ${expected}: truncated, or a length field was altered`
        : `the object is ${buf.length} bytes but its framing says ${expected}: trailing bytes, or a length field was altered`,
    );
  }
  const signedLength = expected - ED25519_SIGNATURE_BYTES;
  const hash = createHash('sha256').update(buf.subarray(0, signedLength));
  const signedDigest = hash.copy().digest();
  return ok({
    headerBytes: buf.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + headerLength),
    body: buf.subarray(PREAMBLE_BYTES + headerLength, signedLength),
    signature: buf.subarray(signedLength),
    signedDigest,
    digest: hash.update(buf.subarray(signedLength)).digest('hex'),
    size: buf.length,
  });
}

/** Checks the signature against the trusted keys; returns the key that verified. */
export function checkChunkSignature(frame: ChunkFrame, trustedKeys: readonly VerifyKey[]): Result<VerifyKey> {
  for (const key of trustedKeys) {
    if (verifyDigest(key, CHUNK_SIGNATURE_CONTEXT, frame.signedDigest, frame.signature)) return ok(key);
  }
  const trusted = trustedKeys.map((key) => key.keyId).join(', ') || 'none given';
  const claimed = readJsonObject(frame.headerBytes)?.signer;
  if (typeof claimed === 'string' && !trustedKeys.some((key) => key.keyId === claimed)) {
    return fail(
      RecorderErrorCode.ChunkUnknownSigner,
      `the chunk says it was signed by key ${claimed}, which is not a trusted key (trusted: ${trusted}); ` +
        'verify with the public key of the recording policy that wrote it',
    );
  }
  return fail(
    RecorderErrorCode.ChunkBadSignature,
    `the signature does not verify with the trusted key${trustedKeys.length === 1 ? '' : 's'} (${trusted}): ` +
      'the chunk was altered after it was signed',
  );
}

export interface ParseHeaderOptions {
  /** Refuse chunks whose uncompressed body is larger (default and maximum `MAX_RAW_BYTES`). */
  readonly maxRawBytes?: number;
}

/** Parses and validates the header of a frame. */
export function parseChunkHeader(frame: ChunkFrame, options: ParseHeaderOptions = {}): Result<ChunkHeader> {
  const text = decodeUtf8(frame.headerBytes);
  let value: unknown;
  try {
    if (text === undefined) throw new Error('not UTF-8');
    value = JSON.parse(text);
  } catch (cause) {
    return fail(
      RecorderErrorCode.ChunkBadHeaderJson,
      `the header is not valid JSON (${(cause as Error).message})`,
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(RecorderErrorCode.ChunkBadHeaderJson, 'the header is not a JSON object');
  }
  const h = value as Record<string, unknown>;
  if (h.v !== FORMAT_VERSION) {
    return fail(
      RecorderErrorCode.ChunkUnsupportedVersion,
      `format version ${JSON.stringify(h.v)} is not supported by this reader (it reads version ${FORMAT_VERSION}); ` +
        'use a newer warden',
    );
  }
  if (canonicalJson(value) !== text) {
    return fail(
      RecorderErrorCode.ChunkHeaderNotCanonical,
      'the header is not in canonical JSON form (RFC 8785)',
    );
  }
  const bad = (field: string, expected: string): Result<ChunkHeader> =>
    fail(
      RecorderErrorCode.ChunkBadHeader,
      `header field "${field}" must be ${expected}, got ${JSON.stringify(h[field])}`,
    );
  if (typeof h.session !== 'string' || !isValidSessionId(h.session)) return bad('session', 'a session id');
  if (!isNat(h.seq)) return bad('seq', 'a non-negative integer');
  if (typeof h.prev !== 'string' || !/^[0-9a-f]{64}$/.test(h.prev))
    return bad('prev', '64 lowercase hex digits');
  if (!isNat(h.t0)) return bad('t0', 'a non-negative integer');
  if (!isNat(h.t1) || h.t1 < h.t0) return bad('t1', 'an integer ≥ t0');
  if (!isNat(h.events) || h.events < 1) return bad('events', 'a positive integer');
  if (!isNat(h.raw) || h.raw < 1) return bad('raw', 'a positive integer');
  if (!Object.values(Compression).includes(h.comp as Compression))
    return bad('comp', 'one of zstd, gzip, none');
  if (typeof h.signer !== 'string' || !/^[0-9a-f]{16}$/.test(h.signer))
    return bad('signer', '16 lowercase hex digits');
  if (h.enc !== undefined) {
    const enc = h.enc as Record<string, unknown> | null;
    if (
      typeof enc !== 'object' ||
      enc === null ||
      enc.alg !== EncryptionAlgorithm.Aes256Gcm ||
      typeof enc.kid !== 'string' ||
      !/^[A-Za-z0-9._-]{1,64}$/.test(enc.kid) ||
      typeof enc.iv !== 'string' ||
      !/^[0-9a-f]{24}$/.test(enc.iv)
    ) {
      return bad('enc', '{"alg":"A256GCM","iv":<24 hex digits>,"kid":<key id>}');
    }
    if (frame.body.length < AES_GCM_TAG_BYTES)
      return bad('enc', 'absent: the body is too short to be encrypted');
  }
  const limit = Math.min(options.maxRawBytes ?? MAX_RAW_BYTES, MAX_RAW_BYTES);
  if (h.raw > limit) {
    return fail(
      RecorderErrorCode.ChunkTooLarge,
      `the uncompressed body is ${h.raw} bytes, more than the ${limit} this reader accepts`,
    );
  }
  if (h.comp === Compression.None && h.enc === undefined && frame.body.length !== h.raw) {
    return fail(
      RecorderErrorCode.ChunkBodyMismatch,
      `the body is ${frame.body.length} bytes but "raw" says ${h.raw}`,
    );
  }
  return ok(h as unknown as ChunkHeader);
}

export interface DecodeBodyOptions {
  /** Keys for encrypted bodies, matched by key id. */
  readonly decryptionKeys?: readonly EncryptionKey[];
}

/** Decrypts, decompresses and parses the body; checks it against the header. */
export function decodeChunkBody(
  frame: ChunkFrame,
  header: ChunkHeader,
  options: DecodeBodyOptions = {},
): Result<RecordingEvent[]> {
  let compressed: Uint8Array = frame.body;
  if (header.enc) {
    const { kid, iv } = header.enc;
    const key = options.decryptionKeys?.find((candidate) => candidate.keyId === kid);
    if (!key) {
      return fail(
        RecorderErrorCode.ChunkKeyUnavailable,
        `the body is encrypted with key id ${kid}; provide that key (from the recording policy's encryption Secret)`,
      );
    }
    const plain = decryptAesGcm(key, Buffer.from(iv, 'hex'), frame.body, frame.headerBytes);
    if (!plain) {
      return fail(
        RecorderErrorCode.ChunkDecryptFailed,
        `AES-256-GCM authentication failed with key id ${kid}: the key material is not the key that encrypted this chunk`,
      );
    }
    compressed = plain;
  }
  let raw: Buffer;
  try {
    raw = decompress(compressed, header.comp, header.raw);
  } catch (cause) {
    return fail(
      RecorderErrorCode.ChunkDecompressFailed,
      `the ${header.comp} body does not decompress to the ${header.raw} bytes the header announces (${(cause as Error).message})`,
    );
  }
  if (raw.length !== header.raw) {
    return fail(
      RecorderErrorCode.ChunkBodyMismatch,
      `the body decompresses to ${raw.length} bytes but "raw" says ${header.raw}`,
    );
  }
  return parseEventLines(raw, header);
}

export interface DecodeChunkOptions extends ParseHeaderOptions, DecodeBodyOptions {
  /** Public keys whose signatures are accepted. */
  readonly trustedKeys: readonly VerifyKey[];
}

export interface DecodedChunk {
  readonly header: ChunkHeader;
  readonly events: RecordingEvent[];
  readonly digest: string;
  readonly size: number;
  readonly signer: VerifyKey;
}

/** Strict decode of one chunk: framing, signature, header, body. */
export function decodeChunk(bytes: Uint8Array, options: DecodeChunkOptions): Result<DecodedChunk> {
  const frame = parseChunkFrame(bytes);
  if (!frame.ok) return frame;
  const signer = checkChunkSignature(frame.value, options.trustedKeys);
  if (!signer.ok) return signer;
  const header = parseChunkHeader(frame.value, options);
  if (!header.ok) return header;
  const events = decodeChunkBody(frame.value, header.value, options);
  if (!events.ok) return events;
  return ok({
    header: header.value,
    events: events.value,
    digest: frame.value.digest,
    size: frame.value.size,
    signer: signer.value,
  });
}

function parseEventLines(raw: Buffer, header: ChunkHeader): Result<RecordingEvent[]> {
  const text = decodeUtf8(raw);
  if (text === undefined) return fail(RecorderErrorCode.ChunkBadEvent, 'the body is not valid UTF-8');
  if (!text.endsWith('\n'))
    return fail(RecorderErrorCode.ChunkBadEvent, 'the body does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length !== header.events) {
    return fail(
      RecorderErrorCode.ChunkBodyMismatch,
      `the body holds ${lines.length} events but the header says ${header.events}`,
    );
  }
  const events: RecordingEvent[] = [];
  let t0 = Number.POSITIVE_INFINITY;
  let t1 = Number.NEGATIVE_INFINITY;
  for (const [index, line] of lines.entries()) {
    let event: unknown;
    try {
      event = JSON.parse(line);
    } catch (cause) {
      return fail(
        RecorderErrorCode.ChunkBadEvent,
        `event ${index + 1} is not valid JSON (${(cause as Error).message})`,
      );
    }
    const problem = eventShapeProblem(event);
    if (problem) return fail(RecorderErrorCode.ChunkBadEvent, `event ${index + 1} ${problem}`);
    const t = (event as RecordingEvent).t;
    t0 = Math.min(t0, t);
    t1 = Math.max(t1, t);
    events.push(event as RecordingEvent);
  }
  if (t0 !== header.t0 || t1 !== header.t1) {
    return fail(
      RecorderErrorCode.ChunkBodyMismatch,
      `the events span t=${t0}..${t1} but the header says t0=${header.t0}, t1=${header.t1}`,
    );
  }
  return ok(events);
}

/** Why a value is not an event, or undefined if it is one. Kinds are open (see events.ts). */
export function eventShapeProblem(event: unknown): string | undefined {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return 'is not a JSON object';
  const { t, k } = event as { t?: unknown; k?: unknown };
  if (!isNat(t))
    return `has t=${JSON.stringify(t)}; it must be a non-negative integer (ms since session start)`;
  if (typeof k !== 'string' || k === '') return `has k=${JSON.stringify(k)}; it must be a non-empty string`;
  return undefined;
}

/**
 * zstd level for chunk bodies. Level 1 rather than zstd's default 3: on this project's VM it costs
 * 30–40 % less CPU per MiB (source text 6.4 vs 9.4 ms/MiB, `ls`-like output 2.2 vs 3.3, JSON rows
 * 1.8 vs 2.8) for bodies 0–13 % larger (source text 30.2 % vs 26.7 % of raw; JSON lines and HTTP
 * events ±0.1 pt; base64 of binary 75.2 % either way). The gateways are CPU-bound and the level
 * is the writer's choice alone: every zstd decoder reads every level (bench/README.md,
 * "recorder-events.ts").
 */
const ZSTD_LEVEL = 1;

function compress(raw: Uint8Array, compression: Compression): Buffer {
  switch (compression) {
    case Compression.Zstd:
      // An output buffer large enough for the whole frame spares zlib's 16 KiB pieces and their
      // concatenation (≈ 40 % of the call on incompressible bodies).
      return zstdCompressSync(raw, { params: { [zc.ZSTD_c_compressionLevel]: ZSTD_LEVEL }, chunkSize: zstdOutputSize(raw.length) });
    case Compression.Gzip:
      return gzipSync(raw, { level: 6 });
    case Compression.None:
      return Buffer.from(raw);
    default:
      throw new RecorderError(
        RecorderErrorCode.OptionInvalid,
        `unknown compression ${JSON.stringify(compression)}`,
      );
  }
}

/** `ZSTD_COMPRESSBOUND(n)` (zstd.h), at least zlib's minimum chunk size. */
function zstdOutputSize(rawLength: number): number {
  const margin = rawLength < 128 * 1024 ? (128 * 1024 - rawLength) >> 11 : 0;
  return Math.max(zc.Z_MIN_CHUNK, rawLength + (rawLength >> 8) + margin + 64);
}

function decompress(body: Uint8Array, compression: Compression, raw: number): Buffer {
  // maxOutputLength bounds memory: a body cannot inflate past what the signed header announced.
  switch (compression) {
    case Compression.Zstd:
      return zstdDecompressSync(body, { maxOutputLength: raw });
    case Compression.Gzip:
      return gunzipSync(body, { maxOutputLength: raw });
    case Compression.None:
      return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function readJsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(decodeUtf8(bytes) ?? '');
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function isNat(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function startsWithMagic(buf: Buffer): boolean {
  return buf.subarray(0, CHUNK_MAGIC.length).equals(CHUNK_MAGIC);
}
