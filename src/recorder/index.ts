// Public API of the recording core: what gateways, the shipping layer and the CLI import.
// The byte-level format is specified in docs/recording-format.md.

export { type JsonValue, canonicalJson } from './canonical-json.ts';
export {
  CHUNK_MAGIC,
  type ChunkEncryption,
  type ChunkHeader,
  Compression,
  type DecodedChunk,
  decodeChunk,
  EncryptionAlgorithm,
  encodeChunk,
  FORMAT_VERSION,
  GENESIS_PREV,
  MAX_RAW_BYTES,
  type SealedChunk,
} from './chunk.ts';
export {
  Chunker,
  type ChunkerOptions,
  type ClosedRecording,
  DEFAULT_MAX_CHUNK_AGE_MS,
  DEFAULT_MAX_CHUNK_BYTES,
  DEFAULT_MAX_EVENT_BYTES,
} from './chunker.ts';
export {
  type EncryptionKey,
  exportSigningKey,
  generateEncryptionKey,
  generateSigningKey,
  loadEncryptionKey,
  loadSigningKey,
  loadVerifyKey,
  type SigningKey,
  type VerifyKey,
} from './crypto.ts';
export { RecorderError, RecorderErrorCode, type Result } from './errors.ts';
export * from './events.ts';
export {
  type Manifest,
  type ManifestChunk,
  type ManifestTotals,
  parseManifest,
  type SealedManifest,
  type SessionMeta,
} from './manifest.ts';
export {
  chunkObjectKey,
  chunkObjectName,
  MANIFEST_OBJECT_NAME,
  manifestObjectKey,
  parseChunkObjectName,
  sessionFolder,
} from './naming.ts';
export {
  type ChunkSource,
  type ReadEventsOptions,
  type RecordingInput,
  RecordingVerifier,
  readEvents,
  type VerifyOptions,
  type VerifyProblem,
  type VerifyReport,
  verifyRecording,
} from './verify.ts';
