// manifest.json, written once when a session closes (docs/recording-format.md, "Manifest").
// Stored bytes = canonical JSON (RFC 8785) of the whole manifest followed by one LF. The signature
// is Ed25519 over "warden.recording.v1.manifest\0" || SHA-256(canonical JSON of the manifest
// without its "signature" member). Readers insist on the canonical bytes, so there is exactly one
// byte string per manifest: no whitespace or duplicate-key games between two JSON parsers.

import { canonicalJson, type JsonValue } from './canonical-json.ts';
import { GENESIS_PREV } from './chunk.ts';
import { type SigningKey, sha256, signDigest, type VerifyKey, verifyDigest } from './crypto.ts';
import { fail, ok, RecorderErrorCode, type Result } from './errors.ts';
import { isValidSessionId } from './naming.ts';

export const MANIFEST_VERSION = 1;
export const MANIFEST_SIGNATURE_CONTEXT = 'warden.recording.v1.manifest\0';

/** Session metadata recorded at close; extra JSON members are allowed and signed like the rest. */
export interface SessionMeta {
  protocol: string;
  /** `namespace/name` of the Connection. */
  connection: string;
  user?: string;
  groups?: string[];
  client?: string;
  /** RFC 3339 UTC timestamps. */
  startedAt: string;
  endedAt: string;
  endReason?: string;
  [extra: string]: JsonValue | undefined;
}

export interface ManifestChunk {
  seq: number;
  /** Lowercase hex SHA-256 of the chunk object. */
  digest: string;
  /** Size of the chunk object in bytes. */
  bytes: number;
  events: number;
  t0: number;
  t1: number;
}

export interface ManifestTotals {
  chunks: number;
  events: number;
  /** Sum of chunk object sizes. */
  bytes: number;
  /** Sum of uncompressed body sizes. */
  raw: number;
  /** Largest event `t` (0 without events). */
  duration: number;
  /** Event count per kind. */
  kinds: Record<string, number>;
}

export interface Manifest {
  v: 1;
  session: string;
  meta: SessionMeta;
  chunks: ManifestChunk[];
  totals: ManifestTotals;
  /** Digest of the last chunk; `GENESIS_PREV` when the session has no chunks. */
  final: string;
  signer: string;
  /** Standard base64 of the 64-byte Ed25519 signature. */
  signature: string;
}

export interface SealedManifest {
  readonly manifest: Manifest;
  /** What to store as manifest.json. */
  readonly bytes: Uint8Array;
}

export interface BuildManifestInput {
  readonly session: string;
  readonly meta: SessionMeta;
  readonly chunks: readonly ManifestChunk[];
  readonly kinds: Record<string, number>;
  readonly raw: number;
  readonly signingKey: SigningKey;
}

export function buildManifest(input: BuildManifestInput): SealedManifest {
  const chunks = input.chunks.map((chunk) => ({ ...chunk }));
  const unsigned: Omit<Manifest, 'signature'> = {
    v: MANIFEST_VERSION,
    session: input.session,
    meta: input.meta,
    chunks,
    totals: {
      chunks: chunks.length,
      events: chunks.reduce((sum, chunk) => sum + chunk.events, 0),
      bytes: chunks.reduce((sum, chunk) => sum + chunk.bytes, 0),
      raw: input.raw,
      duration: chunks.reduce((max, chunk) => Math.max(max, chunk.t1), 0),
      kinds: { ...input.kinds },
    },
    final: chunks.at(-1)?.digest ?? GENESIS_PREV,
    signer: input.signingKey.keyId,
  };
  const signature = signDigest(
    input.signingKey,
    MANIFEST_SIGNATURE_CONTEXT,
    manifestDigest(unsigned),
  ).toString('base64');
  const manifest: Manifest = { ...unsigned, signature };
  return { manifest, bytes: Buffer.from(`${canonicalJson(manifest)}\n`, 'utf8') };
}

/** SHA-256 of the canonical JSON of the manifest without `signature`: what the signature covers. */
export function manifestDigest(manifest: Omit<Manifest, 'signature'> | Manifest): Buffer {
  const { signature: _ignored, ...unsigned } = manifest as Manifest;
  return sha256(Buffer.from(canonicalJson(unsigned), 'utf8'));
}

/**
 * Strict parse of manifest.json: framing (one canonical JSON object + LF), signature by a trusted
 * key, schema, and internal consistency (contiguous seqs from 0, totals, final digest).
 */
export function parseManifest(bytes: Uint8Array, trustedKeys: readonly VerifyKey[]): Result<Manifest> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) return fail(RecorderErrorCode.ManifestTruncated, 'manifest.json is empty');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf);
  } catch {
    return fail(RecorderErrorCode.ManifestUnparseable, 'manifest.json is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    return text.endsWith('\n')
      ? fail(
          RecorderErrorCode.ManifestUnparseable,
          `manifest.json is not valid JSON (${(cause as Error).message})`,
        )
      : fail(
          RecorderErrorCode.ManifestTruncated,
          `manifest.json is truncated: ${buf.length} bytes that end mid-document (${(cause as Error).message})`,
        );
  }
  if (!text.endsWith('\n')) {
    return fail(
      RecorderErrorCode.ManifestTruncated,
      'manifest.json is truncated: it lacks its final newline',
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(RecorderErrorCode.ManifestInvalid, 'manifest.json is not a JSON object');
  }
  const m = value as Record<string, unknown>;
  if (m.v !== MANIFEST_VERSION) {
    return fail(
      RecorderErrorCode.ManifestUnsupportedVersion,
      `manifest version ${JSON.stringify(m.v)} is not supported by this reader (it reads version ${MANIFEST_VERSION}); use a newer warden`,
    );
  }
  if (`${canonicalJson(value)}\n` !== text) {
    return fail(
      RecorderErrorCode.ManifestNotCanonical,
      'manifest.json is not in canonical JSON form (RFC 8785) followed by one newline',
    );
  }

  // Only the one canonical base64 spelling of a 64-byte signature counts, so the stored bytes of
  // a valid manifest cannot be varied without the key.
  const signature =
    typeof m.signature === 'string' && /^[A-Za-z0-9+/]{86}==$/.test(m.signature)
      ? Buffer.from(m.signature, 'base64')
      : undefined;
  if (signature && signature.toString('base64') !== m.signature) {
    return fail(RecorderErrorCode.ManifestBadSignature, 'the manifest signature is not canonical base64');
  }
  const digest = manifestDigest(m as unknown as Manifest);
  const verified =
    signature && trustedKeys.some((key) => verifyDigest(key, MANIFEST_SIGNATURE_CONTEXT, digest, signature));
  if (!verified) {
    const trusted = trustedKeys.map((key) => key.keyId).join(', ') || 'none given';
    if (typeof m.signer === 'string' && !trustedKeys.some((key) => key.keyId === m.signer)) {
      return fail(
        RecorderErrorCode.ManifestUnknownSigner,
        `manifest.json says it was signed by key ${m.signer}, which is not a trusted key (trusted: ${trusted})`,
      );
    }
    return fail(
      RecorderErrorCode.ManifestBadSignature,
      `the manifest signature does not verify with the trusted key${trustedKeys.length === 1 ? '' : 's'} (${trusted}): ` +
        'manifest.json was altered after it was signed',
    );
  }

  const schema = manifestSchemaProblem(m);
  if (schema) return fail(RecorderErrorCode.ManifestInvalid, `manifest.json ${schema}`);
  const manifest = m as unknown as Manifest;
  const inconsistency = manifestInconsistency(manifest);
  if (inconsistency) return fail(RecorderErrorCode.ManifestInconsistent, `manifest.json ${inconsistency}`);
  return ok(manifest);
}

function manifestSchemaProblem(m: Record<string, unknown>): string | undefined {
  if (typeof m.session !== 'string' || !isValidSessionId(m.session)) return 'has no valid "session"';
  if (typeof m.meta !== 'object' || m.meta === null || Array.isArray(m.meta)) return 'has no "meta" object';
  if (typeof m.final !== 'string' || !isDigest(m.final)) return 'has no valid "final" digest';
  if (typeof m.signer !== 'string') return 'has no "signer"';
  if (!Array.isArray(m.chunks)) return 'has no "chunks" list';
  for (const [index, entry] of (m.chunks as unknown[]).entries()) {
    const c = entry as Record<string, unknown> | null;
    if (
      typeof c !== 'object' ||
      c === null ||
      !isNat(c.seq) ||
      typeof c.digest !== 'string' ||
      !isDigest(c.digest) ||
      !isNat(c.bytes) ||
      !isNat(c.events) ||
      !isNat(c.t0) ||
      !isNat(c.t1)
    ) {
      return `chunk entry ${index} is not {seq, digest, bytes, events, t0, t1}`;
    }
  }
  const t = m.totals as Record<string, unknown> | null;
  if (
    typeof t !== 'object' ||
    t === null ||
    !isNat(t.chunks) ||
    !isNat(t.events) ||
    !isNat(t.bytes) ||
    !isNat(t.raw) ||
    !isNat(t.duration) ||
    typeof t.kinds !== 'object' ||
    t.kinds === null ||
    Object.values(t.kinds).some((count) => !isNat(count))
  ) {
    return 'has no valid "totals" {chunks, events, bytes, raw, duration, kinds}';
  }
  return undefined;
}

function manifestInconsistency(m: Manifest): string | undefined {
  for (const [index, chunk] of m.chunks.entries()) {
    if (chunk.seq !== index)
      return `lists seq ${chunk.seq} at position ${index}; chunks must be listed 0, 1, 2, …`;
  }
  const sum = (pick: (chunk: ManifestChunk) => number): number =>
    m.chunks.reduce((acc, chunk) => acc + pick(chunk), 0);
  if (m.totals.chunks !== m.chunks.length)
    return `totals.chunks is ${m.totals.chunks} but ${m.chunks.length} chunks are listed`;
  if (m.totals.events !== sum((c) => c.events))
    return `totals.events is ${m.totals.events} but the chunks hold ${sum((c) => c.events)}`;
  if (m.totals.bytes !== sum((c) => c.bytes))
    return `totals.bytes is ${m.totals.bytes} but the chunks add up to ${sum((c) => c.bytes)}`;
  const kinds = Object.values(m.totals.kinds).reduce((acc, count) => acc + count, 0);
  if (kinds !== m.totals.events) return `totals.kinds add up to ${kinds} events, not ${m.totals.events}`;
  const final = m.chunks.at(-1)?.digest ?? GENESIS_PREV;
  if (m.final !== final) return `final is ${m.final} but the last listed chunk's digest is ${final}`;
  return undefined;
}

function isDigest(value: string): boolean {
  return /^[0-9a-f]{64}$/.test(value);
}

function isNat(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
