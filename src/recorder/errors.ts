// The one error module of the recorder (STYLE.md point 8). Every failure the recorder can report
// carries a stable `code` from `RecorderErrorCode`; messages are for people and may change, codes
// may not. Decoding and verification return errors as values (`Result`, `VerifyProblem`) because a
// damaged recording is data to report on, not an exceptional state. Misuse by the caller (bad key
// material, appending after close, an event the format cannot hold) throws a `RecorderError`.

/** Stable error and problem codes. The value is what appears in reports and logs. */
export const RecorderErrorCode = {
  // Chunk framing and header (docs/recording-format.md, "Chunk object").
  ChunkTruncated: 'CHUNK_TRUNCATED',
  ChunkBadMagic: 'CHUNK_BAD_MAGIC',
  ChunkBadLength: 'CHUNK_BAD_LENGTH',
  ChunkBadHeaderJson: 'CHUNK_BAD_HEADER_JSON',
  ChunkHeaderNotCanonical: 'CHUNK_HEADER_NOT_CANONICAL',
  ChunkUnsupportedVersion: 'CHUNK_UNSUPPORTED_VERSION',
  ChunkBadHeader: 'CHUNK_BAD_HEADER',
  ChunkTooLarge: 'CHUNK_TOO_LARGE',
  // Chunk signature and body.
  ChunkBadSignature: 'CHUNK_BAD_SIGNATURE',
  ChunkUnknownSigner: 'CHUNK_UNKNOWN_SIGNER',
  ChunkKeyUnavailable: 'CHUNK_KEY_UNAVAILABLE',
  ChunkDecryptFailed: 'CHUNK_DECRYPT_FAILED',
  ChunkDecompressFailed: 'CHUNK_DECOMPRESS_FAILED',
  ChunkBadEvent: 'CHUNK_BAD_EVENT',
  ChunkBodyMismatch: 'CHUNK_BODY_MISMATCH',
  // A chunk in the context of its session (verification, ordered reading).
  ChunkMisplaced: 'CHUNK_MISPLACED',
  ChunkBadName: 'CHUNK_BAD_NAME',
  ChunkDuplicate: 'CHUNK_DUPLICATE',
  ChunkMissing: 'CHUNK_MISSING',
  ChunkForeignSession: 'CHUNK_FOREIGN_SESSION',
  ChunkUnlisted: 'CHUNK_UNLISTED',
  ChainBroken: 'CHAIN_BROKEN',
  NoChunks: 'NO_CHUNKS',
  // Manifest (docs/recording-format.md, "Manifest").
  ManifestMissing: 'MANIFEST_MISSING',
  ManifestTruncated: 'MANIFEST_TRUNCATED',
  ManifestUnparseable: 'MANIFEST_UNPARSEABLE',
  ManifestNotCanonical: 'MANIFEST_NOT_CANONICAL',
  ManifestInvalid: 'MANIFEST_INVALID',
  ManifestUnsupportedVersion: 'MANIFEST_UNSUPPORTED_VERSION',
  ManifestBadSignature: 'MANIFEST_BAD_SIGNATURE',
  ManifestUnknownSigner: 'MANIFEST_UNKNOWN_SIGNER',
  ManifestForeignSession: 'MANIFEST_FOREIGN_SESSION',
  ManifestDigestMismatch: 'MANIFEST_DIGEST_MISMATCH',
  ManifestEntryMismatch: 'MANIFEST_ENTRY_MISMATCH',
  ManifestInconsistent: 'MANIFEST_INCONSISTENT',
  // Shipping: stores, spool, session objects (src/recorder/store*.ts, spool.ts, shipper.ts).
  StoreUnavailable: 'STORE_UNAVAILABLE',
  StoreDenied: 'STORE_DENIED',
  ObjectExists: 'OBJECT_EXISTS',
  ObjectNotFound: 'OBJECT_NOT_FOUND',
  SpoolFull: 'SPOOL_FULL',
  SpoolWriteFailed: 'SPOOL_WRITE_FAILED',
  RecordingFailed: 'RECORDING_FAILED',
  LocationInvalid: 'LOCATION_INVALID',
  // Caller errors (thrown).
  KeyInvalid: 'KEY_INVALID',
  EventInvalid: 'EVENT_INVALID',
  EventTooLarge: 'EVENT_TOO_LARGE',
  ChunkerClosed: 'CHUNKER_CLOSED',
  OptionInvalid: 'OPTION_INVALID',
  SessionIdInvalid: 'SESSION_ID_INVALID',
} as const;
export type RecorderErrorCode = (typeof RecorderErrorCode)[keyof typeof RecorderErrorCode];

/** Where in a recording an error was found, when that is known. */
export interface ErrorLocation {
  /** Object name as given to the reader (e.g. `chunk-00000003` or a full key). */
  readonly object?: string;
  /** Chunk sequence number the problem concerns. */
  readonly seq?: number;
}

export class RecorderError extends Error {
  readonly code: RecorderErrorCode;
  readonly object: string | undefined;
  readonly seq: number | undefined;

  constructor(code: RecorderErrorCode, message: string, where: ErrorLocation = {}) {
    super(message);
    this.name = 'RecorderError';
    this.code = code;
    this.object = where.object;
    this.seq = where.seq;
  }
}

/** A value or the reason there is none. */
export type Result<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: RecorderError };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(code: RecorderErrorCode, message: string, where?: ErrorLocation): Result<T> {
  return { ok: false, error: new RecorderError(code, message, where) };
}
